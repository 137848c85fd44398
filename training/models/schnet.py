"""SchNet (Schütt et al. 2018): continuous-filter convolutions over a radial basis."""
from __future__ import annotations

from typing import List, Optional

import torch
from torch import nn

from .layers import CosineCutoff, GaussianRBF, ShiftedSoftplus, mlp

# Edge work runs in chunks of this many edges, so that every [edges, features] temporary
# stays under glibc's 32 MB mmap ceiling and is recycled from the heap instead of being
# mapped and page-faulted afresh on every call (PERFORMANCE.md: 2x at 4,096 atoms).
EDGE_CHUNK = 16384


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
        h = self.in2f(x)
        aggregated = torch.zeros_like(h)
        for k in range(len(rbf)):
            filters = self.filter_net(rbf[k]) * envelope[k].unsqueeze(-1)  # [E_k, F]
            messages = h.index_select(0, senders[k]) * filters  # [E_k, F]
            aggregated = aggregated.index_add(0, receivers[k], messages)
        return x + self.f2out(aggregated)

    def forward_by_length(
        self,
        x: torch.Tensor,
        receivers: List[torch.Tensor],
        senders: List[torch.Tensor],
        rbf: torch.Tensor,
        envelope: torch.Tensor,
        length_ids: List[torch.Tensor],
    ) -> torch.Tensor:
        """``forward`` with the filters computed once per distinct edge length: ``rbf`` and
        ``envelope`` hold one row per distinct length, ``length_ids[k]`` the row of each edge."""
        h = self.in2f(x)
        table = self.filter_net(rbf) * envelope.unsqueeze(-1)  # [U, F]
        aggregated = torch.zeros_like(h)
        for k in range(len(senders)):
            messages = h.index_select(0, senders[k]) * table.index_select(0, length_ids[k])
            aggregated = aggregated.index_add(0, receivers[k], messages)
        return x + self.f2out(aggregated)


class SchNet(nn.Module):
    """Per-atom features [N, num_features] from species and edge lengths."""

    def __init__(
        self,
        num_species: int,
        cutoff_angstrom: float = 5.0,
        num_features: int = 128,
        num_interactions: int = 5,
        num_rbf: int = 128,
    ) -> None:
        super().__init__()
        self.num_layers = num_interactions
        self.num_features = num_features
        self.edge_chunk = EDGE_CHUNK
        self.embedding = nn.Embedding(num_species, num_features)
        self.rbf = GaussianRBF(num_rbf, cutoff_angstrom)
        self.envelope = CosineCutoff(cutoff_angstrom)
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
                    self._leading(receivers, count),
                    self._leading(senders, count),
                    self._leading(rbf, count),
                    self._leading(envelope, count),
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
            x = interaction.forward_by_length(x, receivers, senders, rbf, envelope, ids)
        return x

    def _leading(self, chunks: List[torch.Tensor], count: int) -> List[torch.Tensor]:
        """The first ``count`` rows of the concatenation of ``chunks``, as chunks (views)."""
        kept: List[torch.Tensor] = []
        start = 0
        for chunk in chunks:
            if start >= count:
                break
            kept.append(chunk[: count - start])
            start += chunk.shape[0]
        return kept
