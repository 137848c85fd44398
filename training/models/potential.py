"""A potential = representation (per-atom features) + atomwise head + reference energies.

``forward`` is the scripted entry point of the model file (see ``eipnn_calc/model_file.py``):

    forward(positions[N,3], species[N], edge_index[2,E], edge_shift[E,3], node_mask[N],
            layer_edges[L] = None)
      -> {"energy": [], "energies": [N], "forces": [N,3], "virial": [3,3],
          "edge_gradients": [E,3]}

Edges are directed, i = edge_index[0] receives from j = edge_index[1], and the edge vector
is r_j + shift - r_i. Edges longer than the cutoff (a Verlet skin) are dropped here, so a
caller may pass a list built with cutoff + skin.

``layer_edges`` (model file format 2) is for callers that pass padding atoms, such as the
KIM driver: message-passing layer ``l`` then uses only the first ``layer_edges[l]`` edges.
The last layer only needs the edges into contributing atoms, the one before it also those
into their neighbours, and so on; with the edges ordered by how far their receiver is from
a contributing atom, each layer's edges are a prefix, and later layers skip the outer
padding shells. None: every layer uses every edge.

``edge_gradients`` (format 3) is dE/dr_e for each given edge (zero for edges beyond the
cutoff). The energy depends on positions only through the edge vectors, so these are all of
its geometry: the KIM driver, which folds periodic padding atoms onto their owners, uses them
to give each padding atom the forces of its own edges (see
eipnn_calc/kim/driver/periodic_images.hpp).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from .derivatives import forces_and_virial
from .layers import mlp


def edge_vectors(positions: torch.Tensor, edge_index: torch.Tensor, edge_shift: torch.Tensor) -> torch.Tensor:
    """[E, 3] vectors from each edge's receiver ``edge_index[0]`` to its sender
    ``edge_index[1]`` (Å), the sender's periodic image included (``edge_shift``): the one
    place the models, the descriptor cache and the exported model take edge geometry from."""
    return positions[edge_index[1]] - positions[edge_index[0]] + edge_shift


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

    def edges_inside(
        self,
        positions: torch.Tensor,
        edge_index: torch.Tensor,
        edge_shift: torch.Tensor,
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
        """Edges inside the cutoff: (edge_index [2,E'], vectors [E',3], lengths [E'],
        the indices of the kept edges among those given, or None when all are kept)."""
        vectors = edge_vectors(positions, edge_index, edge_shift)
        # Select on detached lengths, then take lengths from the kept vectors: the energy
        # must depend on ``vectors`` alone for the virial to come out of autograd.
        inside = torch.linalg.vector_norm(vectors.detach(), dim=1) < self.cutoff
        kept: Optional[torch.Tensor] = None
        if not bool(inside.all()):
            kept = torch.nonzero(inside).squeeze(1)
            edge_index = edge_index.index_select(1, kept)
            vectors = vectors.index_select(0, kept)
        lengths = torch.linalg.vector_norm(vectors, dim=1)
        return edge_index, vectors, lengths, kept

    def edge_geometry(
        self,
        positions: torch.Tensor,
        edge_index: torch.Tensor,
        edge_shift: torch.Tensor,
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Edges inside the cutoff: (edge_index [2,E'], vectors [E',3], lengths [E'])."""
        edge_index, vectors, lengths, _ = self.edges_inside(positions, edge_index, edge_shift)
        return edge_index, vectors, lengths

    def atomic_energies_from_edges(
        self,
        species: torch.Tensor,
        edge_index: torch.Tensor,
        vectors: torch.Tensor,
        lengths: torch.Tensor,
        layer_edges: Optional[List[int]] = None,
    ) -> torch.Tensor:
        """Per-atom energies [N, num_outputs] in eV."""
        features = self.representation(species, edge_index, vectors, lengths, layer_edges)
        return self.energies_of(features, species)

    def energies_of(self, features: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        """Per-atom energies [N, num_outputs] in eV from the representation's features."""
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
        layer_edges: Optional[torch.Tensor] = None,
    ) -> Dict[str, torch.Tensor]:
        if not positions.requires_grad:
            positions.requires_grad_(True)
        edge_index, vectors, lengths, kept = self.edges_inside(positions, edge_index, edge_shift)
        prefixes: Optional[List[int]] = None
        if layer_edges is not None:
            if kept is not None:  # a prefix of the given edges -> the kept edges in it
                layer_edges = torch.searchsorted(kept, layer_edges.to(kept.device))
            prefixes = torch.jit.annotate(List[int], layer_edges.tolist())
        energies = self.atomic_energies_from_edges(
            species, edge_index, vectors, lengths, prefixes
        )[:, 0]
        energies = energies * node_mask.to(energies.dtype)
        energy = energies.sum()
        return self.outputs(energy, energies, energy, positions, vectors, edge_shift, kept)

    def outputs(self, energy: torch.Tensor, energies: torch.Tensor, differentiated: torch.Tensor,
                positions: torch.Tensor, vectors: torch.Tensor, edge_shift: torch.Tensor,
                kept: Optional[torch.Tensor]) -> Dict[str, torch.Tensor]:
        """The model file's outputs; forces, virial and edge gradients are those of
        ``differentiated`` (the energy, or a stand-in with its derivatives:
        ``rematerialized.RematerializedPotential``)."""
        forces, virial, edge_gradients = forces_and_virial(differentiated, positions, vectors)
        if kept is not None:  # back onto the edges as given
            edge_gradients = torch.zeros_like(edge_shift).index_copy(0, kept, edge_gradients)
        return {
            "energy": energy.detach(),
            "energies": energies.detach(),
            "forces": forces.detach(),
            "virial": virial.detach(),
            "edge_gradients": edge_gradients.detach(),
        }
