"""Losses over a batch: ``loss(predicted [B, K] eV, batch) -> scalar``.

The batch carries per-row ``kind``, ``weight`` and ``target_mask``, so a strategy can add
rows of another kind (EIP labels) with their own loss term and weight; the baseline's
loss uses the DFT rows alone.
"""
from __future__ import annotations

from typing import Callable

import torch

from ..data.batching import KIND_DFT, Batch

LossFunction = Callable[[torch.Tensor, Batch], torch.Tensor]


def masked_mse(predicted: torch.Tensor, batch: Batch, rows: torch.Tensor) -> torch.Tensor:
    """Mean squared error (eV²) over the present targets of ``rows`` [B] bool; 0 if none."""
    mask = batch.target_mask & rows.unsqueeze(1)
    if not bool(mask.any()):
        return predicted.sum() * 0.0
    return ((predicted - batch.targets)[mask] ** 2).mean()


def energy_mse(predicted: torch.Tensor, batch: Batch) -> torch.Tensor:
    """The paper's loss: MSE on total energies of the DFT rows."""
    return masked_mse(predicted, batch, batch.kind == KIND_DFT)


LOSSES: dict[str, LossFunction] = {"mse": energy_mse}
