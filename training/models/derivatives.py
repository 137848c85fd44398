"""Forces and virial by autograd: the one place every model gets its derivatives."""
from __future__ import annotations

from typing import Tuple

import torch


def forces_and_virial(
    energy: torch.Tensor,
    positions: torch.Tensor,
    edge_vectors: torch.Tensor,
    create_graph: bool = False,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Forces -dE/dx [N, 3] and virial W = -sum_e r_e (x) dE/dr_e [3, 3] in eV.

    ``edge_vectors`` must be the tensor the energy was computed from (r_j + shift - r_i),
    so dE/dr_e holds every dependence on the geometry; stress = -W / volume.
    """
    grads = torch.autograd.grad(
        [energy],
        [positions, edge_vectors],
        create_graph=create_graph,
        allow_unused=True,
    )
    grad_positions = grads[0]
    grad_edges = grads[1]
    if grad_positions is None:
        grad_positions = torch.zeros_like(positions)
    if grad_edges is None:
        grad_edges = torch.zeros_like(edge_vectors)
    forces = -grad_positions
    virial = -(edge_vectors.transpose(0, 1) @ grad_edges)
    virial = 0.5 * (virial + virial.transpose(0, 1))
    return forces, virial
