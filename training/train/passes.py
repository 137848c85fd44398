"""A training step in passes of at most ``max_atoms`` atoms (``train.max_atoms_per_pass``),
with the gradient of the whole batch's loss, exactly.

Force training keeps the graph of the forces for their loss's weight gradient (a double
backward), so a step's memory grows with the atoms of its batch: GemNet on 32 cells of 250
atoms needs ~95 GB at once. Gradient accumulation over sub-batches would give the gradient of
a different loss wherever the loss is not a sum over rows (a mean over the batch's force
components, Tukey's scale, a median over the batch). Here instead:

1. every pass predicts its rows' energies and forces, keeping no graph beyond the pass;
2. the loss of the whole batch is taken from those predictions (as leaves), and its
   gradient by them, dL/dE [B, K] and dL/dF [N, K, 3], is what the weights see of it;
3. every pass predicts again with its graph and back-propagates sum(dL/dE . E + dL/dF . F),
   its share of dL/dw by the chain rule; the shares add up in ``.grad``.

The weight gradient is the one-pass step's (a test), at the price of a second forward (and a
force backward) per pass.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch

from ..data.batching import Batch, select_rows
from ..models.potential import Potential
from .losses import ForceLoss, rows_for_forces
from .metrics import AtomicEnergies, batch_energies, energies_and_forces_of_rows

Predict = Callable[[Batch, bool], tuple[torch.Tensor, Optional[torch.Tensor]]]


def row_groups(num_atoms: torch.Tensor, max_atoms: int) -> list[tuple[int, int]]:
    """Consecutive row ranges [start, stop) of at most ``max_atoms`` atoms each (a row larger
    than that on its own)."""
    groups: list[tuple[int, int]] = []
    start, atoms = 0, 0
    for row, count in enumerate(num_atoms.tolist()):
        if row > start and atoms + count > max_atoms:
            groups.append((start, row))
            start, atoms = row, 0
        atoms += count
    if start < len(num_atoms):
        groups.append((start, len(num_atoms)))
    return groups


def sub_batch(batch: Batch, start: int, stop: int) -> Batch:
    """Rows [start, stop) of ``batch``, with atom indices from 0."""
    keep = torch.zeros(batch.num_rows, dtype=torch.bool, device=batch.num_atoms.device)
    keep[start:stop] = True
    return select_rows(batch, keep)


def weights(potential: Potential) -> list[torch.Tensor]:
    """The trained parameters: what a step's backward is for. Naming them stops autograd
    from also taking the force loss's gradient by the positions, a leaf there, through the
    whole double-backward graph (SOAPNet's cached force step 20 % faster)."""
    return [p for p in potential.parameters() if p.requires_grad]


def backward_in_passes(potential: Potential, batch: Batch, loss: Callable[..., torch.Tensor],
                       force_term: Optional[ForceLoss], max_atoms: int, atomic_energies: AtomicEnergies | None = None,
                       batched_force_gradients: bool = False) -> torch.Tensor:
    """Add dL/dw of ``loss(energies [B, K], forces [N, K, 3] or None, batch)`` to the weights'
    ``.grad`` in passes of at most ``max_atoms`` atoms; returns L (detached). Forces are
    predicted when there is a ``force_term``, for the rows it uses."""
    parts = [sub_batch(batch, start, stop) for start, stop in row_groups(batch.num_atoms, max_atoms)]
    with_forces = force_term is not None

    def predict(part: Batch, graph: bool) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        if force_term is None:
            with torch.set_grad_enabled(graph):
                return batch_energies(potential, part, atomic_energies), None
        return energies_and_forces_of_rows(potential, part, rows_for_forces(force_term, part), atomic_energies,
                                           create_graph=graph, batched=batched_force_gradients)

    predictions = [predict(part, graph=False) for part in parts]
    energies = torch.cat([e.detach() for e, _ in predictions]).requires_grad_(True)
    forces = torch.cat([f.detach() for _, f in predictions]).requires_grad_(True) if with_forces else None
    total = loss(energies, forces, batch)
    leaves = [energies] if forces is None else [energies, forces]
    gradients = torch.autograd.grad(total, leaves, allow_unused=True)
    energy_gradient = torch.zeros_like(energies) if gradients[0] is None else gradients[0]
    force_gradient = None
    if forces is not None:
        force_gradient = torch.zeros_like(forces) if gradients[1] is None else gradients[1]
    row, atom = 0, 0
    for part in parts:
        rows, atoms = part.num_rows, int(part.num_atoms.sum())
        part_energies, part_forces = predict(part, graph=True)
        share = (part_energies * energy_gradient[row:row + rows]).sum()
        if part_forces is not None and force_gradient is not None:
            share = share + (part_forces * force_gradient[atom:atom + atoms]).sum()
        if share.requires_grad:
            share.backward(inputs=weights(potential))
        row, atom = row + rows, atom + atoms
    return total.detach()
