"""SchNet (Schütt et al. 2018): continuous-filter convolutions over a radial basis."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch import nn
from torch.autograd import forward_ad

from .layers import BesselRBF, CosineCutoff, GaussianRBF, PolynomialCutoff, ShiftedSoftplus, mlp

# Edge work runs in chunks of this many edges, so that every [edges, features] temporary
# stays under glibc's 32 MB mmap ceiling and is recycled from the heap instead of being
# mapped and page-faulted afresh on every call (PERFORMANCE.md: 2x at 4,096 atoms).
EDGE_CHUNK = 16384


def _gaussian(num_rbf: int, cutoff_angstrom: float, width: Optional[str]) -> nn.Module:
    return GaussianRBF(num_rbf, cutoff_angstrom, "dgl" if width is None else width)


def _bessel(num_rbf: int, cutoff_angstrom: float, width: Optional[str]) -> nn.Module:
    if width is not None:
        raise ValueError(f"rbf_width '{width}' is a width of the gaussian basis; the bessel basis has none")
    return BesselRBF(num_rbf, cutoff_angstrom)


@dataclass(frozen=True)
class RadialBasis:
    """A radial basis SchNet can expand edge lengths in, and what goes with it by default."""

    build: Callable[[int, float, Optional[str]], nn.Module]  # (num_rbf, r_c in Å, rbf_width)
    num_rbf: int
    envelope: str


# The ``radial_basis`` hyper-parameter (docs/radial_basis.md). "gaussian" is the paper's
# (128 of them, the DGL width unless ``rbf_width`` says otherwise, the cosine envelope);
# "bessel" a smooth one for new models: 16 functions, the polynomial envelope.
RADIAL_BASES: Dict[str, RadialBasis] = {
    "gaussian": RadialBasis(_gaussian, 128, "cosine"),
    "bessel": RadialBasis(_bessel, 16, "polynomial"),
}
# The ``envelope`` hyper-parameter: what multiplies every filter, r_c in Å -> [E] -> [E].
ENVELOPES: Dict[str, Callable[[float], nn.Module]] = {"cosine": CosineCutoff, "polynomial": PolynomialCutoff}


def radial_parts(radial_basis: str, num_rbf: Optional[int], rbf_width: Optional[str], envelope: Optional[str],
                 cutoff_angstrom: float) -> Tuple[nn.Module, nn.Module, int]:
    """(basis [E] -> [E, num_rbf], envelope [E] -> [E], num_rbf) from the hyper-parameters
    SchNet and CGCNN share; None takes the basis's default."""
    if radial_basis not in RADIAL_BASES:
        raise ValueError(f"unknown radial_basis '{radial_basis}'; known: {', '.join(sorted(RADIAL_BASES))}")
    basis = RADIAL_BASES[radial_basis]
    envelope = basis.envelope if envelope is None else envelope
    if envelope not in ENVELOPES:
        raise ValueError(f"unknown envelope '{envelope}'; known: {', '.join(sorted(ENVELOPES))}")
    num_rbf = basis.num_rbf if num_rbf is None else num_rbf
    return basis.build(num_rbf, cutoff_angstrom, rbf_width), ENVELOPES[envelope](cutoff_angstrom), num_rbf


def leading_rows(chunks: List[torch.Tensor], count: int) -> List[torch.Tensor]:
    """The first ``count`` rows of the concatenation of ``chunks``, as chunks (views)."""
    kept: List[torch.Tensor] = []
    start = 0
    for chunk in chunks:
        if start >= count:
            break
        kept.append(chunk[: count - start])
        start += chunk.shape[0]
    return kept


class Interaction(nn.Module):
    """One SchNet interaction block: x_i += f2out(sum_j in2f(x_j) * W(r_ij))."""

    def __init__(self, num_features: int, num_rbf: int) -> None:
        super().__init__()
        self.filter_net = nn.Sequential(
            nn.Linear(num_rbf, num_features), ShiftedSoftplus(), nn.Linear(num_features, num_features)
        )
        self.in2f = nn.Linear(num_features, num_features, bias=False)
        self.f2out = mlp([num_features, num_features, num_features])

    def forward(
        self,
        x: torch.Tensor,
        receivers: List[torch.Tensor],
        senders: List[torch.Tensor],
        rbf: List[torch.Tensor],
        envelope: List[torch.Tensor],
    ) -> torch.Tensor:
        filters = [self.filter_table(rbf[k], envelope[k]) for k in range(len(rbf))]  # [E_k, F]
        return self.convolve(x, receivers, senders, filters)

    def convolve(
        self,
        x: torch.Tensor,
        receivers: List[torch.Tensor],
        senders: List[torch.Tensor],
        filters: List[torch.Tensor],
    ) -> torch.Tensor:
        """The block given every edge's filter W(r_ij) [E_k, F], chunk by chunk: the one
        message-passing loop of the trained model, the distinct-length paths and the
        tabulated export (``tabulated.TabulatedSchNet``)."""
        h = self.in2f(x)
        aggregated = torch.zeros_like(h)
        for k in range(len(filters)):
            messages = h.index_select(0, senders[k]) * filters[k]  # [E_k, F]
            aggregated = aggregated.index_add(0, receivers[k], messages)
        return x + self.f2out(aggregated)

    def filter_table(self, rbf: torch.Tensor, envelope: torch.Tensor) -> torch.Tensor:
        """Filters [U, F] of the rows of ``rbf`` [U, num_rbf] and ``envelope`` [U]."""
        return self.filter_net(rbf) * envelope.unsqueeze(-1)

    def forward_by_length(
        self,
        x: torch.Tensor,
        receivers: List[torch.Tensor],
        senders: List[torch.Tensor],
        table: torch.Tensor,
        length_ids: List[torch.Tensor],
        slope: Optional[torch.Tensor] = None,
        offsets: Optional[List[torch.Tensor]] = None,
    ) -> torch.Tensor:
        """``forward`` with the filters computed once per distinct edge length: ``table``
        [U, F] (``filter_table``) holds one row per distinct length, ``length_ids[k]`` the row
        of each edge. With ``slope`` dW/dr [U, F] and ``offsets`` (each edge's length minus
        that same length detached: 0 in value, derivative 1), an edge's filter is
        table + slope * offset, so the filter and its first derivative by the edge length
        are exact (the force path)."""
        filters: List[torch.Tensor] = []
        for k in range(len(length_ids)):
            edge_filters = table.index_select(0, length_ids[k])
            if slope is not None and offsets is not None:
                edge_filters = edge_filters + slope.index_select(0, length_ids[k]) * offsets[k].unsqueeze(-1)
            filters.append(edge_filters)
        return self.convolve(x, receivers, senders, filters)


class SchNet(nn.Module):
    """Per-atom features [N, num_features] from species and edge lengths.

    ``radial_basis`` names a RADIAL_BASES entry; ``num_rbf`` and ``envelope`` (an ENVELOPES
    name) default to that basis's. ``rbf_width`` (Gaussian basis only) names a
    ``layers.GAUSSIAN_WIDTHS`` entry: "dgl" (the default, the paper's) or "spacing"."""

    def __init__(
        self,
        num_species: int,
        cutoff_angstrom: float = 5.0,
        num_features: int = 128,
        num_interactions: int = 5,
        num_rbf: Optional[int] = None,
        radial_basis: str = "gaussian",
        rbf_width: Optional[str] = None,
        envelope: Optional[str] = None,
    ) -> None:
        super().__init__()
        rbf, envelope_module, num_rbf = radial_parts(radial_basis, num_rbf, rbf_width, envelope, cutoff_angstrom)
        self.num_layers = num_interactions
        self.num_features = num_features
        self.edge_chunk = EDGE_CHUNK
        self.embedding = nn.Embedding(num_species, num_features)
        self.rbf, self.envelope = rbf, envelope_module  # after the embedding: the state dict's order as before
        self.interactions = nn.ModuleList(
            [Interaction(num_features, num_rbf) for _ in range(num_interactions)]
        )

    def forward(
        self,
        species: torch.Tensor,
        edge_index: torch.Tensor,
        vectors: torch.Tensor,
        lengths: torch.Tensor,
        layer_edges: Optional[List[int]] = None,
    ) -> torch.Tensor:
        """``layer_edges[l]``: interaction ``l`` uses only that many leading edges (see
        ``Potential.forward``); None: all of them."""
        x = self.embedding(species)
        if layer_edges is None and not lengths.requires_grad:
            return self._energy_only(x, edge_index, lengths)
        if layer_edges is None and not torch.jit.is_scripting():
            return self._by_length_with_slope(x, edge_index, lengths)
        length_chunks = lengths.split(self.edge_chunk)
        rbf = [self.rbf(chunk) for chunk in length_chunks]
        envelope = [self.envelope(chunk) for chunk in length_chunks]
        receivers = list(edge_index[0].split(self.edge_chunk))
        senders = list(edge_index[1].split(self.edge_chunk))
        for layer, interaction in enumerate(self.interactions):
            if layer_edges is None:
                x = interaction(x, receivers, senders, rbf, envelope)
            else:
                count = layer_edges[layer]
                x = interaction(
                    x,
                    leading_rows(receivers, count),
                    leading_rows(senders, count),
                    leading_rows(rbf, count),
                    leading_rows(envelope, count),
                )
        return x

    def _energy_only(self, x: torch.Tensor, edge_index: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The forward pass when no derivative by the geometry is asked for (training on
        energies, evaluation). The filter network, 92 % of the work, depends on the edge
        length alone, and every edge i->j has its twin j->i of the same length: computing it
        once per distinct length at least halves that work. Weight gradients are unchanged;
        forces would not be (equal lengths of different pairs are different functions of the
        positions), hence only here."""
        distinct, length_ids = torch.unique(lengths, return_inverse=True)
        rbf = self.rbf(distinct)
        envelope = self.envelope(distinct)
        receivers = list(edge_index[0].split(self.edge_chunk))
        senders = list(edge_index[1].split(self.edge_chunk))
        ids = list(length_ids.split(self.edge_chunk))
        for interaction in self.interactions:
            x = interaction.forward_by_length(x, receivers, senders, interaction.filter_table(rbf, envelope), ids)
        return x

    @torch.jit.unused
    def _by_length_with_slope(self, x: torch.Tensor, edge_index: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The forward pass when forces are asked for, in eager mode (training on forces):
        the filter network runs once per distinct length, as in ``_energy_only``, and
        forward-mode differentiation gives each filter's slope dW/dr there. The slopes are
        functions of the weights that autograd follows, so the double backward of force
        training sees the same function as per edge; what it no longer does is the filter
        network's double backward over every edge (docs/training.md). Not in the exported
        model (TorchScript has no forward mode): it evaluates per edge."""
        distinct, length_ids = torch.unique(lengths.detach(), return_inverse=True)
        offsets = lengths - distinct.index_select(0, length_ids)  # 0 in value, d/d length = 1
        tables = self.filters_and_slopes(distinct)
        receivers = list(edge_index[0].split(self.edge_chunk))
        senders = list(edge_index[1].split(self.edge_chunk))
        ids = list(length_ids.split(self.edge_chunk))
        offset_chunks = list(offsets.split(self.edge_chunk))
        for interaction, (table, slope) in zip(self.interactions, tables):
            x = interaction.forward_by_length(x, receivers, senders, table, ids, slope, offset_chunks)
        return x

    @torch.jit.unused
    def filters_and_slopes(self, lengths: torch.Tensor) -> List[Tuple[torch.Tensor, torch.Tensor]]:
        """Every interaction's filters W(r) and slopes dW/dr [U, F] at ``lengths`` [U] (Å),
        by forward-mode differentiation (the force path above)."""
        tables: List[Tuple[torch.Tensor, torch.Tensor]] = []
        with forward_ad.dual_level():
            dual = forward_ad.make_dual(lengths, torch.ones_like(lengths))
            rbf, envelope = self.rbf(dual), self.envelope(dual)
            for interaction in self.interactions:
                value, slope = forward_ad.unpack_dual(interaction.filter_table(rbf, envelope))
                tables.append((value, slope))
        return tables
