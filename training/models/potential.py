"""A potential = representation (per-atom features) + atomwise head + reference energies.

``forward`` is the scripted entry point of the model file (see ``eipnn_calc/model_file.py``):

    forward(positions[N,3], species[N], edge_index[2,E], edge_shift[E,3], node_mask[N])
      -> {"energy": [], "energies": [N], "forces": [N,3], "virial": [3,3]}

Edges are directed, i = edge_index[0] receives from j = edge_index[1], and the edge vector
is r_j + shift - r_i. Edges longer than the cutoff (a Verlet skin) are dropped here, so a
caller may pass a list built with cutoff + skin.
"""
from __future__ import annotations

from typing import Dict

import torch
from torch import nn

from .derivatives import forces_and_virial
from .layers import mlp


class AtomwiseHead(nn.Module):
    """Per-atom MLP features -> ``num_outputs`` energies per atom."""

    def __init__(self, num_features: int, hidden: int = 128, num_outputs: int = 1) -> None:
        super().__init__()
        self.net = mlp([num_features, hidden, num_outputs])
        self.num_outputs = num_outputs

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


class Potential(nn.Module):
    """Energies as sum of per-atom terms: E_i = scale * head(features_i) + ref[species_i]."""

    def __init__(
        self,
        representation: nn.Module,
        head: AtomwiseHead,
        num_species: int,
        cutoff_angstrom: float,
    ) -> None:
        super().__init__()
        self.representation = representation
        self.head = head
        self.cutoff = float(cutoff_angstrom)
        # Per-species reference energies (eV) fitted by least squares before training, and
        # the scale of what the network learns on top of them.
        self.register_buffer("atom_ref", torch.zeros(num_species, head.num_outputs))
        self.register_buffer("scale", torch.ones(head.num_outputs))

    def edge_geometry(
        self,
        positions: torch.Tensor,
        edge_index: torch.Tensor,
        edge_shift: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Edges inside the cutoff: (edge_index [2,E'], vectors [E',3], lengths [E'])."""
        vectors = positions[edge_index[1]] - positions[edge_index[0]] + edge_shift
        # Select on detached lengths, then take lengths from the kept vectors: the energy
        # must depend on ``vectors`` alone for the virial to come out of autograd.
        inside = torch.linalg.vector_norm(vectors.detach(), dim=1) < self.cutoff
        keep = torch.nonzero(inside).squeeze(1)
        if keep.numel() < inside.numel():
            edge_index = edge_index.index_select(1, keep)
            vectors = vectors.index_select(0, keep)
        lengths = torch.linalg.vector_norm(vectors, dim=1)
        return edge_index, vectors, lengths

    def atomic_energies_from_edges(
        self,
        species: torch.Tensor,
        edge_index: torch.Tensor,
        vectors: torch.Tensor,
        lengths: torch.Tensor,
    ) -> torch.Tensor:
        """Per-atom energies [N, num_outputs] in eV."""
        features = self.representation(species, edge_index, vectors, lengths)
        return self.head(features) * self.scale + self.atom_ref[species]

    def atomic_energies(
        self,
        positions: torch.Tensor,
        species: torch.Tensor,
        edge_index: torch.Tensor,
        edge_shift: torch.Tensor,
    ) -> torch.Tensor:
        edge_index, vectors, lengths = self.edge_geometry(positions, edge_index, edge_shift)
        return self.atomic_energies_from_edges(species, edge_index, vectors, lengths)

    def forward(
        self,
        positions: torch.Tensor,
        species: torch.Tensor,
        edge_index: torch.Tensor,
        edge_shift: torch.Tensor,
        node_mask: torch.Tensor,
    ) -> Dict[str, torch.Tensor]:
        if not positions.requires_grad:
            positions.requires_grad_(True)
        edge_index, vectors, lengths = self.edge_geometry(positions, edge_index, edge_shift)
        energies = self.atomic_energies_from_edges(species, edge_index, vectors, lengths)[:, 0]
        energies = energies * node_mask.to(energies.dtype)
        energy = energies.sum()
        forces, virial = forces_and_virial(energy, positions, vectors)
        return {
            "energy": energy.detach(),
            "energies": energies.detach(),
            "forces": forces.detach(),
            "virial": virial.detach(),
        }
