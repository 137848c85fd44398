"""SchNet (Schütt et al. 2018): continuous-filter convolutions over a radial basis."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch import nn

from .distinct_lengths import group_lengths, values_and_slopes
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
        if layer_edges is None and not torch.jit.is_scripting():
            return self._by_length(x, edge_index, lengths)
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

    @torch.jit.unused
    def _by_length(self, x: torch.Tensor, edge_index: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``forward`` in eager training: every interaction's filters once per distinct edge
        length (``distinct_lengths``), with their slopes dW/dr when forces are asked for.
        The filter network, 92 % of the work per edge, depends on the edge length alone, and
        every edge i->j has its twin j->i: this at least halves that work, and with forces
        removes the filter network's double backward over every edge (docs/training.md).
        Not in the exported model (TorchScript has no forward mode): it evaluates per edge."""
        groups = group_lengths(lengths, self.edge_chunk)
        receivers = list(edge_index[0].split(self.edge_chunk))
        senders = list(edge_index[1].split(self.edge_chunk))
        if groups.offsets is None:  # energies only
            found = [(table, None) for table in self.filter_tables(groups.distinct)]
        else:
            found = values_and_slopes(self.filter_tables, groups.distinct)
        for interaction, (table, slope) in zip(self.interactions, found):
            x = interaction.convolve(x, receivers, senders, groups.gather(table, slope))
        return x

    def filter_tables(self, lengths: torch.Tensor) -> List[torch.Tensor]:
        """Every interaction's filters W(r) [U, F] at ``lengths`` [U] (Å)."""
        rbf, envelope = self.rbf(lengths), self.envelope(lengths)
        return [interaction.filter_table(rbf, envelope) for interaction in self.interactions]
