"""Losses over a batch: ``loss(predicted [B, K] eV, batch) -> scalar``, and force terms
``force_loss(forces [N, K, 3] eV/Å, batch) -> scalar`` (weights included); a force term
may say which rows' forces it uses (``rows(batch) -> [B] bool``), so that a step computes
the forces of those rows alone.

The batch carries per-row ``kind``, ``weight`` and ``target_mask``, so a strategy can add
rows of another kind (EIP labels) with their own loss term and weight; the baseline's
loss uses the DFT rows alone. Force labels come per atom with ``force_mask`` [N, K].
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..data.batching import KIND_DFT, Batch
from ..distributed import batch_mean, world

LossFunction = Callable[[torch.Tensor, Batch], torch.Tensor]
ForceLoss = Callable[[torch.Tensor, Batch], torch.Tensor]


def masked_mse(predicted: torch.Tensor, batch: Batch, rows: torch.Tensor) -> torch.Tensor:
    """Mean squared error (eV²) over the present targets of ``rows`` [B] bool; 0 if none.
    Under DDP the mean is over the global batch (``distributed.batch_mean``)."""
    mask = batch.target_mask & rows.unsqueeze(1)
    return batch_mean((predicted - batch.targets)[mask] ** 2)


def energy_mse(predicted: torch.Tensor, batch: Batch) -> torch.Tensor:
    """The paper's loss: MSE on total energies of the DFT rows."""
    return masked_mse(predicted, batch, batch.kind == KIND_DFT)


LOSSES: dict[str, LossFunction] = {"mse": energy_mse}


def force_rows(batch: Batch, rows: torch.Tensor) -> torch.Tensor:
    """[N, K] bool: atoms of the rows ``rows`` [B] bool that have a force label."""
    if batch.force_mask is None:
        return torch.zeros((batch.positions.shape[0], 1), dtype=torch.bool, device=batch.positions.device)
    return batch.force_mask & rows[batch.batch].unsqueeze(1)


def labelled_rows(batch: Batch, rows: torch.Tensor) -> torch.Tensor:
    """[B] bool: the rows of ``rows`` [B] bool with at least one force label, the rows
    whose predicted forces a force term looks at."""
    if batch.force_mask is None:
        return torch.zeros_like(rows)
    counts = torch.zeros(batch.num_rows, dtype=torch.int64, device=rows.device)
    counts.index_add_(0, batch.batch, batch.force_mask.any(1).to(torch.int64))
    return rows & (counts > 0)


def rows_for_forces(term: ForceLoss, batch: Batch) -> torch.Tensor:
    """[B] bool: the rows whose forces a step computes for ``term``: those it says it uses,
    else all. All under torchrun too: DistributedDataParallel takes one forward per step,
    and the split is two."""
    used = getattr(term, "rows", None)
    if used is None or world().distributed:
        return torch.ones(batch.num_rows, dtype=torch.bool, device=batch.num_atoms.device)
    return used(batch)


def masked_force_mse(forces: torch.Tensor, batch: Batch, rows: torch.Tensor) -> torch.Tensor:
    """Mean squared error (eV/Å)² over the present force components of the atoms of
    ``rows`` [B] bool, every output k: forces [N, K, 3]; 0 if none."""
    mask = force_rows(batch, rows)
    if batch.forces is None:  # no force labels in this batch at all
        return batch_mean(forces.sum().reshape(1)[:0])
    return batch_mean((forces - batch.forces)[mask] ** 2)


@dataclass
class ForceMSE:
    """``weight * MSE`` (Å² x (eV/Å)² = eV², the unit of the energy MSE) over the present
    force components of the rows of ``kind`` (DFT forces by default)."""

    weight: float
    kind: int = KIND_DFT

    def __call__(self, forces: torch.Tensor, batch: Batch) -> torch.Tensor:
        return self.weight * masked_force_mse(forces, batch, batch.kind == self.kind)

    def rows(self, batch: Batch) -> torch.Tensor:
        """[B] bool: the rows whose forces this term uses (the others' may be left 0)."""
        return labelled_rows(batch, batch.kind == self.kind)
