"""SchNet (Schütt et al. 2018): continuous-filter convolutions over a radial basis."""
from __future__ import annotations

import torch
from torch import nn

from .layers import CosineCutoff, GaussianRBF, ShiftedSoftplus, mlp, scatter_sum


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
        edge_index: torch.Tensor,
        rbf: torch.Tensor,
        envelope: torch.Tensor,
    ) -> torch.Tensor:
        filters = self.filter_net(rbf) * envelope.unsqueeze(-1)  # [E, F]
        messages = self.in2f(x).index_select(0, edge_index[1]) * filters  # [E, F]
        return x + self.f2out(scatter_sum(messages, edge_index[0], x.shape[0]))


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
    ) -> torch.Tensor:
        x = self.embedding(species)
        rbf = self.rbf(lengths)
        envelope = self.envelope(lengths)
        for interaction in self.interactions:
            x = interaction(x, edge_index, rbf, envelope)
        return x
