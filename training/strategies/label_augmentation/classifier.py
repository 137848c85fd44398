"""The auxiliary K+1 classifier (METHOD.md "Label augmentation", 2): the potential's own
representation, trained from scratch, with a graph-level head

    sum-pool node features -> BatchNorm -> MLP F->hidden (shifted softplus) -> K+1 logits
"""
from __future__ import annotations

import torch
from torch import nn

from ...data.batching import Batch
from ...models.build import ModelSpec, build_representation, feature_size
from ...models.layers import mlp, scatter_sum


class EIPClassifier(nn.Module):
    """Configuration -> logits [B, K+1] over "EIP k is closest" and "none is good"."""

    def __init__(self, representation: nn.Module, num_features: int, hidden: int,
                 num_classes: int, cutoff_angstrom: float) -> None:
        super().__init__()
        self.representation = representation
        self.norm = nn.BatchNorm1d(num_features)
        self.head = mlp([num_features, hidden, num_classes])
        self.num_classes = num_classes
        self.cutoff = float(cutoff_angstrom)

    def forward(self, batch: Batch) -> torch.Tensor:
        index, shift = batch.edge_index, batch.edge_shift
        vectors = batch.positions[index[1]] - batch.positions[index[0]] + shift  # [E, 3]
        lengths = torch.linalg.vector_norm(vectors, dim=1)
        inside = lengths < self.cutoff  # graphs may be built with a skin
        features = self.representation(batch.species, index[:, inside], vectors[inside], lengths[inside])
        pooled = scatter_sum(features, batch.batch, batch.num_rows)  # [B, F]
        return self.head(self.norm(pooled))


def build_classifier(spec: ModelSpec, num_classes: int, seed: int) -> EIPClassifier:
    """A fresh classifier of ``spec``'s architecture; weights depend on ``seed`` alone."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        representation = build_representation(spec)
        return EIPClassifier(representation, feature_size(representation), spec.head_hidden,
                             num_classes, spec.cutoff_angstrom)
