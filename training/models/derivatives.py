"""Forces and virial by autograd: the one place every model gets its derivatives
(``forces_and_virial`` inside the exported model; ``predicted_forces`` for training's
force losses, one gradient per output head)."""
from __future__ import annotations

from typing import Tuple

import torch


def forces_and_virial(
    energy: torch.Tensor,
    positions: torch.Tensor,
    edge_vectors: torch.Tensor,
    create_graph: bool = False,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Forces -dE/dx [N, 3], virial W = -sum_e r_e (x) dE/dr_e [3, 3] in eV, and the edge
    gradients dE/dr_e [E, 3].

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
    return forces, virial, grad_edges


def predicted_forces(energies: torch.Tensor, positions: torch.Tensor, create_graph: bool = True,
                     batched: bool = False) -> torch.Tensor:
    """Forces -dE_k/dx [N, K, 3] (eV/Å) of every output k of ``energies`` [B, K], which must
    have been computed from ``positions`` (requires_grad). K outputs need K gradients: one
    autograd call per output (``retain_graph`` between them), or with ``batched`` one call
    that vmaps the K unit cotangents (``is_grads_batched``)."""
    num_outputs = energies.shape[1]
    if num_outputs == 1:
        (grad,) = torch.autograd.grad(energies[:, 0].sum(), positions, create_graph=create_graph)
        return -grad.unsqueeze(1)
    totals = energies.sum(0)  # [K]
    if batched:
        eye = torch.eye(num_outputs, dtype=totals.dtype, device=totals.device)
        (grads,) = torch.autograd.grad(totals, positions, eye, create_graph=create_graph, is_grads_batched=True)
        return -grads.transpose(0, 1)  # [K, N, 3] -> [N, K, 3]
    grads = [torch.autograd.grad(totals[k], positions, create_graph=create_graph, retain_graph=True)[0]
             for k in range(num_outputs)]
    return -torch.stack(grads, dim=1)
