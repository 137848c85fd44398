"""What MP pretraining minimises and how it picks its best epoch.

Loss: MSE (eV²) over every present (configuration, EIP) entry of the batch, total energies
(METHOD.md). Validation: MAE over the present entries of ``val``'s EIP energies.
With ``pretrain.force_weight`` w > 0 (beyond the paper): + w * MSE over the present
(atom, component, EIP) force entries, head k's -dE_k/dx against EIP k's forces; the best
epoch is then the lowest ``val_eip_combined_mae`` = energy MAE + sqrt(w) * force MAE (eV).
"""
from __future__ import annotations

import numpy as np
import torch

from ...data.batching import KIND_EIP, Batch, BatchLoader
from ...distributed import gather_objects
from ...models.potential import Potential
from ...train.losses import masked_mse
from ...train.metrics import AtomicEnergies, batch_energies

MONITOR = "val_eip_mae"
FORCE_MONITOR = "val_eip_combined_mae"


def multitask_mse(predicted: torch.Tensor, batch: Batch) -> torch.Tensor:
    """predicted [B, K] eV -> mean of squared errors over the present EIP entries."""
    return masked_mse(predicted, batch, batch.kind == KIND_EIP)


def eip_metrics(potential: Potential, loader: BatchLoader, device: torch.device, dtype: torch.dtype,
                energies: AtomicEnergies | None = None) -> dict[str, float]:
    """MAE over present entries: ``val_eip_mae`` (eV) and ``val_eip_atom_mae`` (eV/atom)."""
    was_training = potential.training
    potential.eval()
    errors, per_atom = [], []
    with torch.no_grad():
        for batch in loader.epoch(0):
            batch = batch.to(device, dtype)
            error = (batch_energies(potential, batch, energies) - batch.targets).abs()  # [B, K]
            mask = batch.target_mask
            errors.append(error[mask].double().cpu())
            per_atom.append((error / batch.num_atoms.unsqueeze(1))[mask].double().cpu())
    potential.train(was_training)
    if loader.sharded:  # the mean over every rank's entries (order does not matter)
        errors = [part for parts in gather_objects(errors) for part in parts]
        per_atom = [part for parts in gather_objects(per_atom) for part in parts]
    empty = torch.zeros(0, dtype=torch.float64)
    errors_ev, per_atom_ev = torch.cat([empty, *errors]).numpy(), torch.cat([empty, *per_atom]).numpy()
    if len(errors_ev) == 0:
        return {MONITOR: float("inf"), "val_eip_atom_mae": float("inf")}
    return {MONITOR: float(np.mean(errors_ev)), "val_eip_atom_mae": float(np.mean(per_atom_ev))}
