"""Predictions over a loader and the paper's metrics (configuration and atom MAE)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..data.batching import Batch, BatchLoader
from ..models.layers import scatter_sum
from ..models.potential import Potential

AtomicEnergies = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def batch_energies(potential: Potential, batch: Batch, atomic_energies: AtomicEnergies | None = None) -> torch.Tensor:
    """Total energies [B, K] (eV) of a batch: per-atom energies summed per configuration.
    ``atomic_energies``: a stand-in for ``potential.atomic_energies`` (its compiled form)."""
    atomic = (atomic_energies or potential.atomic_energies)(batch.positions, batch.species, batch.edge_index,
                                                            batch.edge_shift)
    return scatter_sum(atomic, batch.batch, batch.num_rows)


@dataclass
class Predictions:
    rows: np.ndarray  # configuration indices
    predicted_ev: np.ndarray  # [R] output 0
    target_ev: np.ndarray  # [R]
    num_atoms: np.ndarray  # [R]

    def config_mae_ev(self) -> float:
        return float(np.mean(np.abs(self.predicted_ev - self.target_ev)))

    def atom_mae_ev(self) -> float:
        return float(np.mean(np.abs(self.predicted_ev - self.target_ev) / self.num_atoms))


def predict(potential: Potential, loader: BatchLoader, device: torch.device, dtype: torch.dtype) -> Predictions:
    """Energies of every row of ``loader`` (in order), without gradients."""
    if loader.shuffle:
        raise ValueError("predict needs an unshuffled loader (rows come back in loader order)")
    was_training = potential.training
    potential.eval()
    parts = []
    with torch.no_grad():
        for batch in loader.epoch(0):
            batch = batch.to(device, dtype)
            parts.append((batch_energies(potential, batch)[:, 0], batch.num_atoms))
    potential.train(was_training)
    predicted, num_atoms = [torch.cat([p[k] for p in parts]).cpu().double().numpy() for k in range(2)]
    # Targets from the rows themselves (float64), not from the batch cast to the model dtype.
    rows = loader.rows
    return Predictions(rows.indices.astype(np.int64), predicted, rows.targets[:, 0].copy(), num_atoms)


def energy_metrics(potential: Potential, loader: BatchLoader, device: torch.device, dtype: torch.dtype) -> dict[str, float]:
    """Validation metrics of an energy model: configuration MAE (eV), atom MAE (eV/atom)."""
    predictions = predict(potential, loader, device, dtype)
    return {"val_config_mae": predictions.config_mae_ev(), "val_atom_mae": predictions.atom_mae_ev()}
