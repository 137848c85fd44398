"""GemNet-T (Gasteiger, Becker & Günnemann 2021), the paper's fourth model (issue 19).

Directed edge embeddings m_(i<-j) exchange two-hop messages over triplets: edge i <- j takes a
message from every other edge i <- k into the same atom, through the angle jik and the edge
lengths; atom embeddings gather their edges; every block's output gathers the edges into
each atom again. The layout is fairchem's GemNet-T with its "efficient" bilinear layer (the
radial part projected once per edge, the angular part per triplet, contracted without a
[triplet, radial, angular] tensor):

    embedding:  h_i = emb(species_i);  m_e = silu(W [h_i, h_j, rbf(r_e)])
    block:      x = (silu(W m) + triplets(m)) / sqrt2 -> residual layers -> m = (m + x) / sqrt2
                -> residual layers; h = (h + atom_update(m)) / sqrt2;
                m = (m + residual(silu(W [h_i, h_j, m]))) / sqrt2
    output b:   features_i += layers(Σ_(e into i) m_e * W rbf(r_e))      (b = 0 .. blocks)

The sum of the outputs is the per-atom feature vector the potential's head maps to energies.

What differs from fairchem's, and why:
* **A triplet cutoff of its own** (``triplet_cutoff_angstrom``, default 4 Å), enveloped on
  both edges of a triplet: triplets grow as the square of the neighbours, and 5 Å in a dense
  metal is ~1,700 per atom. Every triplet term carries u_t(r_ij) u_t(r_ik), with u_t the
  polynomial envelope on the triplet cutoff, so the energy stays smooth when an edge crosses it.
* **No neighbour cap** (fairchem keeps the 50 nearest, which makes the energy jump), and
  triplet work in chunks of a memory budget (``triplet_memory_mb``, ``models.triplets``).
* **Fixed sum normalisations** (1/sqrt of a typical count) instead of fairchem's scale factors
  fitted to a data set: the energy stays a fixed, extensive function of the weights.
* **No reverse-edge term** (fairchem adds the triplet message of j <- i to i <- j): it needs
  every edge's reverse, which the KIM driver's outermost padding atoms do not have.

Receptive field: an edge into atom i after block b depends on the edges into i and into its
neighbours before it, so a contributing atom's energy depends on atoms up to (blocks + 1)
cutoffs away; ``num_layers`` (the KIM influence distance in cutoffs) is blocks + 1, and the
driver's per-layer edge prefixes are not used (every block runs over every edge it is given).
"""
from __future__ import annotations

import math
from typing import List, Optional, Tuple

import torch
from torch import nn

from .layers import BesselRBF, PolynomialCutoff
from .triplets import chunked_triplet_sum, triplet_index, triplet_sum



def rescaled(x: torch.Tensor) -> torch.Tensor:
    """x / sqrt2: a sum of two unit-variance terms back to unit variance (GemNet's skips)."""
    return x * 0.7071067811865476


def dense(n_in: int, n_out: int) -> nn.Sequential:
    """Linear (no bias, as fairchem's Dense) then SiLU."""
    return nn.Sequential(nn.Linear(n_in, n_out, bias=False), nn.SiLU())


class Residual(nn.Module):
    """x -> (x + silu(W2 silu(W1 x))) / sqrt2."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(dense(width, width), dense(width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rescaled(x + self.net(x))


def residuals(width: int, count: int) -> nn.Sequential:
    return nn.Sequential(*[Residual(width) for _ in range(count)])


class AngularBasis(nn.Module):
    """Y_l0(theta) = sqrt((2l + 1) / 4 pi) P_l(cos theta), l = 0 .. num_spherical - 1:
    [T] cosines -> [T, num_spherical] (Legendre recurrence, no arccos)."""

    def __init__(self, num_spherical: int) -> None:
        super().__init__()
        self.num_spherical = num_spherical
        norms = [math.sqrt((2 * l + 1) / (4 * math.pi)) for l in range(num_spherical)]
        self.register_buffer("norms", torch.tensor(norms))

    def forward(self, cosines: torch.Tensor) -> torch.Tensor:
        polynomials = [torch.ones_like(cosines), cosines]
        for l in range(1, self.num_spherical - 1):
            polynomials.append(((2 * l + 1) * cosines * polynomials[l] - l * polynomials[l - 1]) / (l + 1))
        return torch.stack(polynomials[: self.num_spherical], dim=1) * self.norms


class AtomSum(nn.Module):
    """Edges -> atoms: layers(norm * Σ_(e into i) m_e * W rbf_e); fairchem's atom update and
    output blocks."""

    def __init__(self, atom_features: int, edge_features: int, rbf_features: int, num_layers: int,
                 norm: float) -> None:
        super().__init__()
        self.radial = nn.Linear(rbf_features, edge_features, bias=False)
        self.layers = nn.Sequential(dense(edge_features, atom_features), residuals(atom_features, num_layers))
        self.norm = norm

    def forward(self, m: torch.Tensor, rbf: torch.Tensor, receivers: torch.Tensor, num_atoms: int) -> torch.Tensor:
        summed = torch.zeros((num_atoms, m.shape[1]), dtype=m.dtype, device=m.device)
        summed.index_add_(0, receivers, m * self.radial(rbf))
        return self.layers(summed * self.norm)


class Triplets(nn.Module):
    """What the triplet edges tell edge i <- j: the efficient bilinear layer over every triplet
    (i <- j, i <- k) of edges inside the triplet cutoff."""

    def __init__(self, edge_features: int, triplet_features: int, rbf_features: int, cbf_features: int,
                 bilinear_features: int, num_spherical: int, norm: float, memory_mb: float) -> None:
        super().__init__()
        self.source = dense(edge_features, edge_features)
        self.radial = nn.Linear(rbf_features, edge_features, bias=False)
        self.down = dense(edge_features, triplet_features)
        self.bilinear = nn.Parameter(torch.empty(cbf_features * triplet_features, bilinear_features))
        nn.init.normal_(self.bilinear, std=1.0 / math.sqrt(cbf_features * triplet_features))
        self.up = dense(bilinear_features, edge_features)
        self.num_spherical = num_spherical
        self.triplet_features = triplet_features
        self.norm = norm
        self.memory_mb = float(memory_mb)
        # False: plain autograd over the chunks, which keeps every chunk's products for the
        # backward (what a naive implementation does; benchmarks/gemnet_memory.py compares).
        self.bounded = True

    def chunk(self, x: torch.Tensor) -> int:
        """Triplets per chunk: each holds ~3 [S, F] temporaries (products, gathers)."""
        per_triplet = 3 * self.num_spherical * self.triplet_features * x.element_size()
        return max(1, int(self.memory_mb * 2.0**20 / per_triplet))

    def forward(self, m: torch.Tensor, rbf3: torch.Tensor, cbf: torch.Tensor, angular: torch.Tensor,
                source_envelope: torch.Tensor, triplet_edges: torch.Tensor, into: torch.Tensor,
                source: torch.Tensor) -> torch.Tensor:
        """[E, edge_features]: zero on edges outside the triplet cutoff. ``cbf`` [E_t, C, S]:
        the radial basis of the receiving edge projected per angular order (carries its
        triplet envelope); ``source_envelope`` [E_t]: u_t of each triplet edge as a source."""
        x = self.source(m.index_select(0, triplet_edges)) * self.radial(rbf3.index_select(0, triplet_edges))
        x = self.down(x) * source_envelope.unsqueeze(1)  # [E_t, F_t]
        num_edges = triplet_edges.shape[0]
        if torch.jit.is_scripting() or not self.bounded:
            summed = chunked_triplet_sum(x, angular, into, source, num_edges, self.chunk(x))
        else:
            summed = self._bounded_sum(x, angular, into, source, num_edges)
        mixed = torch.bmm(cbf, summed * self.norm)  # [E_t, C, F_t]
        out = self.up(mixed.reshape(num_edges, self.bilinear.shape[0]) @ self.bilinear)  # [E_t, edge_features]
        return torch.zeros_like(m).index_add(0, triplet_edges, out)

    @torch.jit.unused
    def _bounded_sum(self, x: torch.Tensor, angular: torch.Tensor, into: torch.Tensor, source: torch.Tensor,
                     num_edges: int) -> torch.Tensor:
        return triplet_sum(x, angular, into, source, num_edges, self.chunk(x))


class InteractionBlock(nn.Module):
    """fairchem's InteractionBlockTripletsOnly, without the reverse-edge term, and the output
    block that reads its edges (``output``)."""

    def __init__(self, atom_features: int, edge_features: int, triplets: Triplets, rbf_features: int,
                 num_before_skip: int, num_after_skip: int, num_concat: int, num_atom_layers: int,
                 neighbour_norm: float) -> None:
        super().__init__()
        self.skip = dense(edge_features, edge_features)
        self.triplets = triplets
        self.before_skip = residuals(edge_features, num_before_skip)
        self.after_skip = residuals(edge_features, num_after_skip)
        self.atom_update = AtomSum(atom_features, edge_features, rbf_features, num_atom_layers, neighbour_norm)
        self.concat = dense(2 * atom_features + edge_features, edge_features)
        self.concat_residuals = residuals(edge_features, num_concat)
        self.output = AtomSum(atom_features, edge_features, rbf_features, num_atom_layers, neighbour_norm)

    def forward(self, h: torch.Tensor, m: torch.Tensor, rbf3: torch.Tensor, cbf: torch.Tensor,
                angular: torch.Tensor, source_envelope: torch.Tensor, triplet_edges: torch.Tensor,
                into: torch.Tensor, source: torch.Tensor, rbf_h: torch.Tensor,
                receivers: torch.Tensor, senders: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        x = (self.skip(m) + self.triplets(m, rbf3, cbf, angular, source_envelope, triplet_edges, into, source))
        x = self.before_skip(rescaled(x))
        m = self.after_skip(rescaled(m + x))
        h = rescaled(h + self.atom_update(m, rbf_h, receivers, h.shape[0]))
        pair = torch.cat([h.index_select(0, receivers), h.index_select(0, senders), m], dim=1)
        m = rescaled(m + self.concat_residuals(self.concat(pair)))
        return h, m

    def run(self, h: torch.Tensor, m: torch.Tensor, features: torch.Tensor, geometry: List[torch.Tensor],
            triplet_edges: torch.Tensor, into: torch.Tensor, source: torch.Tensor, receivers: torch.Tensor,
            senders: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(h, m, features plus this block's output) from ``GemNet.geometry``'s list."""
        h, m = self(h, m, geometry[1], geometry[4], geometry[5], geometry[6], triplet_edges, into, source,
                    geometry[2], receivers, senders)
        return h, m, features + self.output(m, geometry[3], receivers, h.shape[0])


class GemNet(nn.Module):
    """GemNet-T: per-atom features [N, atom_features] from species and edge vectors. The
    defaults are the GemNet-T paper's (and the issue's) sizes."""

    def __init__(
        self,
        num_species: int,
        cutoff_angstrom: float = 5.0,
        triplet_cutoff_angstrom: Optional[float] = 4.0,
        num_blocks: int = 4,
        atom_features: int = 128,
        edge_features: int = 128,
        triplet_features: int = 64,
        rbf_features: int = 16,
        cbf_features: int = 16,
        bilinear_features: int = 64,
        num_spherical: int = 7,
        num_radial: int = 6,
        envelope_exponent: int = 5,
        num_before_skip: int = 1,
        num_after_skip: int = 2,
        num_concat: int = 1,
        num_atom_layers: int = 3,
        neighbours: float = 30.0,
        triplet_neighbours: float = 12.0,
        triplet_memory_mb: float = 64.0,
    ) -> None:
        super().__init__()
        triplet_cutoff = cutoff_angstrom if triplet_cutoff_angstrom is None else float(triplet_cutoff_angstrom)
        if not 0.0 < triplet_cutoff <= cutoff_angstrom:
            raise ValueError(f"triplet_cutoff_angstrom must be in (0, cutoff = {cutoff_angstrom} Å], got {triplet_cutoff}")
        if num_blocks < 1:
            raise ValueError(f"num_blocks must be at least 1, got {num_blocks}")
        if num_spherical < 2:
            raise ValueError(f"num_spherical must be at least 2, got {num_spherical}")
        if triplet_memory_mb <= 0:
            raise ValueError(f"triplet_memory_mb must be positive, got {triplet_memory_mb}")
        self.num_features = atom_features
        self.num_layers = num_blocks + 1  # receptive field in cutoffs (module docstring)
        self.triplet_cutoff = triplet_cutoff
        self.embedding = nn.Embedding(num_species, atom_features)
        self.rbf = BesselRBF(num_radial, cutoff_angstrom)
        self.envelope = PolynomialCutoff(cutoff_angstrom, envelope_exponent)
        self.triplet_rbf = BesselRBF(num_radial, triplet_cutoff)
        self.triplet_envelope = PolynomialCutoff(triplet_cutoff, envelope_exponent)
        self.angular = AngularBasis(num_spherical)
        self.edge_embedding = dense(2 * atom_features + num_radial, edge_features)
        self.rbf3 = nn.Linear(num_radial, rbf_features, bias=False)
        self.rbf_h = nn.Linear(num_radial, rbf_features, bias=False)
        self.rbf_out = nn.Linear(num_radial, rbf_features, bias=False)
        # fairchem's EfficientInteractionDownProjection: radial basis -> [C, S] per edge.
        self.cbf_down = nn.Parameter(torch.empty(num_radial, cbf_features * num_spherical))
        nn.init.normal_(self.cbf_down, std=1.0 / math.sqrt(num_radial))
        self.cbf_features, self.num_spherical = cbf_features, num_spherical
        neighbour_norm, triplet_norm = 1.0 / math.sqrt(neighbours), 1.0 / math.sqrt(triplet_neighbours)
        self.blocks = nn.ModuleList([
            InteractionBlock(atom_features, edge_features,
                             Triplets(edge_features, triplet_features, rbf_features, cbf_features, bilinear_features,
                                      num_spherical, triplet_norm, triplet_memory_mb),
                             rbf_features, num_before_skip, num_after_skip, num_concat, num_atom_layers,
                             neighbour_norm)
            for _ in range(num_blocks)
        ])
        self.output = AtomSum(atom_features, edge_features, rbf_features, num_atom_layers, neighbour_norm)

    def forward(
        self,
        species: torch.Tensor,
        edge_index: torch.Tensor,
        vectors: torch.Tensor,
        lengths: torch.Tensor,
        layer_edges: Optional[List[int]] = None,
    ) -> torch.Tensor:
        """``layer_edges`` is accepted for the common signature and not used: every block
        runs over every edge given (``num_layers`` is set so that this is exact)."""
        receivers, senders = edge_index[0], edge_index[1]
        triplet_edges, into, source = self.triplets_of(receivers, lengths, species.shape[0])
        geometry = self.geometry(vectors, lengths, triplet_edges, into, source)
        h, m, features = self.embed(species, receivers, senders, geometry)
        for block in self.blocks:
            h, m, features = block.run(h, m, features, geometry, triplet_edges, into, source,
                                            receivers, senders)
        return features

    def triplets_of(self, receivers: torch.Tensor, lengths: torch.Tensor,
                    num_atoms: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(triplet edges [E_t] among the edges, into [T], source [T] among the triplet edges)."""
        triplet_edges = torch.nonzero(lengths.detach() < self.triplet_cutoff).squeeze(1)
        into, source = triplet_index(receivers.index_select(0, triplet_edges), num_atoms)
        return triplet_edges, into, source

    def geometry(self, vectors: torch.Tensor, lengths: torch.Tensor, triplet_edges: torch.Tensor,
                 into: torch.Tensor, source: torch.Tensor) -> List[torch.Tensor]:
        """What every block reads of the geometry: [rbf [E, R], rbf3, rbf_h, rbf_out [E, rbf_features],
        cbf [E_t, C, S], angular [T, S], triplet envelope [E_t]]."""
        rbf = self.rbf(lengths) * self.envelope(lengths).unsqueeze(1)
        triplet_lengths = lengths.index_select(0, triplet_edges)
        units = vectors.index_select(0, triplet_edges) / triplet_lengths.unsqueeze(1)
        cosines = (units.index_select(0, into) * units.index_select(0, source)).sum(1)
        triplet_envelope = self.triplet_envelope(triplet_lengths)
        triplet_rbf = self.triplet_rbf(triplet_lengths) * triplet_envelope.unsqueeze(1)
        cbf = (triplet_rbf @ self.cbf_down).reshape(-1, self.cbf_features, self.num_spherical)
        return [rbf, self.rbf3(rbf), self.rbf_h(rbf), self.rbf_out(rbf), cbf, self.angular(cosines), triplet_envelope]

    def embed(self, species: torch.Tensor, receivers: torch.Tensor, senders: torch.Tensor,
              geometry: List[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(h [N, A], m [E, F_e], the first output's features [N, A])."""
        h = self.embedding(species)
        m = self.edge_embedding(torch.cat([h.index_select(0, receivers), h.index_select(0, senders), geometry[0]],
                                          dim=1))
        return h, m, self.output(m, geometry[3], receivers, species.shape[0])

    def features_and_block_inputs(self, species: torch.Tensor, edge_index: torch.Tensor,
                                  vectors: torch.Tensor) -> Tuple[torch.Tensor, List[torch.Tensor], List[torch.Tensor]]:
        """The forward pass of the rematerialisation, without a graph: the features [N, A]
        and each block's input h [N, A] and m [E, F_e], all ``edge_gradients`` needs of it."""
        h_inputs: List[torch.Tensor] = []
        m_inputs: List[torch.Tensor] = []
        with torch.no_grad():
            receivers, senders = edge_index[0], edge_index[1]
            lengths = torch.linalg.vector_norm(vectors, dim=1)
            triplet_edges, into, source = self.triplets_of(receivers, lengths, species.shape[0])
            geometry = self.geometry(vectors, lengths, triplet_edges, into, source)
            h, m, features = self.embed(species, receivers, senders, geometry)
            for block in self.blocks:
                h_inputs.append(h)
                m_inputs.append(m)
                h, m, features = block.run(h, m, features, geometry, triplet_edges, into, source, receivers, senders)
        return features, h_inputs, m_inputs

    def edge_gradients(self, species: torch.Tensor, edge_index: torch.Tensor, vectors: torch.Tensor,
                       features_gradient: torch.Tensor, h_inputs: List[torch.Tensor],
                       m_inputs: List[torch.Tensor]) -> torch.Tensor:
        """dE/dr_e [E, 3] given dE/dfeatures [N, A], by rematerialisation: from the last block
        back, each block is run again from its input (``features_and_block_inputs``) with its
        graph, differentiated and dropped. Peak memory is one block's graph plus the blocks'
        inputs, instead of every block's graph at once (~5x less at 4 blocks). ``vectors``:
        the edges inside the cutoff, detached."""
        receivers, senders = edge_index[0], edge_index[1]
        edges = vectors.detach().requires_grad_(True)
        lengths = torch.linalg.vector_norm(edges, dim=1)
        triplet_edges, into, source = self.triplets_of(receivers, lengths, species.shape[0])
        # The geometry's graph is kept (it is small) and entered once at the end; the blocks
        # read detached copies, so that a gradient by one entry (rbf) does not also hold the
        # paths through another computed from it (rbf3 = W rbf).
        computed = self.geometry(edges, lengths, triplet_edges, into, source)
        geometry = [g.detach().requires_grad_(True) for g in computed]
        geometry_gradients: List[Optional[torch.Tensor]] = [None for _ in geometry]
        h_gradient, m_gradient = torch.zeros_like(h_inputs[0]), torch.zeros_like(m_inputs[0])
        for k in range(len(h_inputs) - 1, -1, -1):
            for j, backward_block in enumerate(self.blocks):  # TorchScript: a ModuleList has no [k]
                if j == k:
                    h_in = h_inputs[k].detach().requires_grad_(True)
                    m_in = m_inputs[k].detach().requires_grad_(True)
                    h_out, m_out, out = backward_block.run(h_in, m_in, torch.zeros_like(features_gradient),
                                                       geometry, triplet_edges, into, source, receivers, senders)
                    scalar = (out * features_gradient).sum() + (h_out * h_gradient).sum() + (m_out * m_gradient).sum()
                    grads = torch.autograd.grad([scalar], [h_in, m_in] + geometry, allow_unused=True)
                    h_grad, m_grad = grads[0], grads[1]
                    h_gradient = torch.zeros_like(h_in) if h_grad is None else h_grad
                    m_gradient = torch.zeros_like(m_in) if m_grad is None else m_grad
                    accumulate(geometry_gradients, grads[2:])
        h_out, m_out, out = self.embed(species, receivers, senders, geometry)
        scalar = (out * features_gradient).sum() + (h_out * h_gradient).sum() + (m_out * m_gradient).sum()
        accumulate(geometry_gradients, torch.autograd.grad([scalar], geometry, allow_unused=True))
        used: List[torch.Tensor] = []
        cotangents: List[Optional[torch.Tensor]] = []
        for g in range(len(geometry)):
            gradient = geometry_gradients[g]
            if gradient is not None:
                used.append(computed[g])
                cotangents.append(gradient)
        (result,) = torch.autograd.grad(used, [edges], cotangents, allow_unused=True)
        return torch.zeros_like(edges) if result is None else result


def accumulate(totals: List[Optional[torch.Tensor]], gradients: List[Optional[torch.Tensor]]) -> None:
    """totals[g] += gradients[g], where either may be None (unused)."""
    for g in range(len(totals)):
        gradient = gradients[g]
        if gradient is not None:
            total = totals[g]
            totals[g] = gradient if total is None else total + gradient
