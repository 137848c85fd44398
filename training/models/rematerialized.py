"""The exported form of a potential whose representation differentiates itself block by
block (``edge_gradients``: GemNet), so that an energy + forces call holds one block's graph
at a time instead of every block's (issue 19: GemNet inference at 4,096 atoms in 8 GB).

The forward runs the representation without a graph, keeping each block's input
(``features_and_block_inputs``), differentiates the head by the per-atom features (cheap:
atom-sized), and hands that gradient to the representation, which returns dE/dr_e for every
edge. The forces, virial and edge gradients then come out of the
one derivative helper (``derivatives.forces_and_virial``) applied to sum_e dE/dr_e . r_e,
whose derivatives by the positions and edge vectors are the energy's. First derivatives only:
training differentiates the plain ``Potential`` (forces of forces need its graph).
"""
from __future__ import annotations

from typing import Dict, Optional

import torch

from .potential import Potential


class RematerializedPotential(Potential):
    @classmethod
    def of(cls, potential: Potential) -> "RematerializedPotential":
        """The same modules and buffers, with this forward."""
        out = cls(potential.representation, potential.head, potential.atom_ref.shape[0], potential.cutoff)
        out.to(potential.atom_ref.dtype).load_state_dict(potential.state_dict())  # buffers in their dtype
        return out

    def forward(
        self,
        positions: torch.Tensor,
        species: torch.Tensor,
        edge_index: torch.Tensor,
        edge_shift: torch.Tensor,
        node_mask: torch.Tensor,
        layer_edges: Optional[torch.Tensor] = None,
    ) -> Dict[str, torch.Tensor]:
        """``Potential.forward``'s contract; ``layer_edges`` is not used (GemNet runs every
        block over every edge)."""
        if not positions.requires_grad:
            positions.requires_grad_(True)
        edge_index, vectors, _, kept = self.edges_inside(positions, edge_index, edge_shift)
        features, h_inputs, m_inputs = self.representation.features_and_block_inputs(species, edge_index,
                                                                                     vectors.detach())
        features = features.requires_grad_(True)
        energies = self.energies_of(features, species)[:, 0] * node_mask.to(features.dtype)
        energy = energies.sum()
        (features_gradient,) = torch.autograd.grad([energy], [features], allow_unused=True)
        if features_gradient is None:  # no atom contributes (an empty node mask)
            features_gradient = torch.zeros_like(features)
        edge_gradients = self.representation.edge_gradients(species, edge_index, vectors.detach(), features_gradient,
                                                            h_inputs, m_inputs)
        # Value aside, sum_e g_e . r_e has the energy's derivatives (g_e = dE/dr_e, fixed).
        stand_in = (edge_gradients.detach() * vectors).sum()
        return self.outputs(energy.detach(), energies.detach(), stand_in, positions, vectors, edge_shift, kept)
