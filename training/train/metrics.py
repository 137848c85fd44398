"""Predictions over a loader and the paper's metrics (configuration and atom MAE), plus the
force MAE (eV/Å) when forces are trained."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable, Optional

import numpy as np
import torch

from ..data.batching import Batch, BatchLoader, select_rows
from ..distributed import gather_in_order, global_sum
from ..models.derivatives import predicted_forces
from ..models.layers import scatter_sum
from ..models.potential import Potential

# A stand-in for ``potential.atomic_energies`` in training steps: per-atom energies [N, K] of
# a batch (its compiled form, its DDP wrapper, or from cached descriptors); None = take the
# potential's own.
AtomicEnergies = Callable[[Batch], Optional[torch.Tensor]]


def batch_energies(potential: Potential, batch: Batch, atomic_energies: AtomicEnergies | None = None) -> torch.Tensor:
    """Total energies [B, K] (eV) of a batch: per-atom energies summed per configuration."""
    atomic = atomic_energies(batch) if atomic_energies is not None else None
    if atomic is None:
        atomic = potential.atomic_energies(batch.positions, batch.species, batch.edge_index, batch.edge_shift)
    return scatter_sum(atomic, batch.batch, batch.num_rows)


def energies_and_forces(potential: Potential, batch: Batch, atomic_energies: AtomicEnergies | None = None,
                        create_graph: bool = True, batched: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Total energies [B, K] (eV) and forces -dE_k/dx [N, K, 3] (eV/Å) of every output:
    from the stand-in's own force path when it has one (``with_forces``: cached descriptors,
    one product with J for all K), else by the gradient by the positions (``batched``: one
    vmapped call for the K outputs)."""
    direct = getattr(atomic_energies, "with_forces", None)
    found = direct(batch, create_graph) if direct is not None else None
    if found is not None:
        atomic, forces = found
        return scatter_sum(atomic, batch.batch, batch.num_rows), forces
    # A leaf of its own: the caller's batch keeps positions without grad (SchNet takes its
    # energy-only shortcut only for those).
    positions = batch.positions.detach().requires_grad_(True)
    batch = replace(batch, positions=positions)
    energies = batch_energies(potential, batch, atomic_energies)
    return energies, predicted_forces(energies, positions, create_graph=create_graph, batched=batched)


def energies_and_forces_of_rows(potential: Potential, batch: Batch, needed: torch.Tensor,
                                atomic_energies: AtomicEnergies | None = None, create_graph: bool = True,
                                batched: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``energies_and_forces`` with the forces of the rows ``needed`` [B] bool alone; the
    other rows' energies come from a forward pass and their forces are 0.

    The double backward of force training costs as the atoms it covers: LA with DFT forces
    has a force term on its DFT rows only (~1 in 5 rows, or 1 in 70 on al-pbe), so the
    forces of its EIP rows were work thrown away. A SOAPNet not yet standardised takes its
    statistics from the first batch it sees in training, so that batch goes whole."""
    if bool(needed.all()) or not bool(getattr(potential.representation, "standardized", True)):
        return energies_and_forces(potential, batch, atomic_energies, create_graph, batched)
    rest = batch_energies(potential, select_rows(batch, ~needed), atomic_energies)  # [B - F, K]
    outputs = rest.shape[1]
    forces = rest.new_zeros((batch.positions.shape[0], outputs, 3))
    if not bool(needed.any()):
        return rest, forces
    part_energies, part_forces = energies_and_forces(potential, select_rows(batch, needed), atomic_energies,
                                                     create_graph, batched)
    order = torch.cat([needed.nonzero()[:, 0], (~needed).nonzero()[:, 0]])
    energies = torch.cat([part_energies, rest])[torch.argsort(order)]
    atoms = needed[batch.batch].nonzero()[:, 0]
    return energies, forces.index_copy(0, atoms, part_forces)


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


def predict(potential: Potential, loader: BatchLoader, device: torch.device, dtype: torch.dtype,
            energies: AtomicEnergies | None = None) -> Predictions:
    """Energies of every row of ``loader`` (in order), without gradients (``energies``: a
    stand-in for the potential's, e.g. from cached descriptors)."""
    if loader.shuffle:
        raise ValueError("predict needs an unshuffled loader (rows come back in loader order)")
    was_training = potential.training
    potential.eval()
    parts = [(torch.zeros(0, dtype=torch.float64), torch.zeros(0, dtype=torch.float64))]
    with torch.no_grad():
        for batch in loader.epoch(0):
            batch = batch.to(device, dtype)
            parts.append((batch_energies(potential, batch, energies)[:, 0], batch.num_atoms))
    potential.train(was_training)
    predicted, num_atoms = [torch.cat([p[k].cpu().double() for p in parts]).numpy() for k in range(2)]
    if loader.sharded:  # every rank's share, back in loader order
        positions = np.concatenate([np.zeros(0, dtype=np.int64), *loader.selections(0)])
        predicted = gather_in_order(positions, predicted, len(loader.rows))
        num_atoms = gather_in_order(positions, num_atoms, len(loader.rows))
    # Targets from the rows themselves (float64), not from the batch cast to the model dtype.
    rows = loader.rows
    return Predictions(rows.indices.astype(np.int64), predicted, rows.targets[:, 0].copy(), num_atoms)


def energy_metrics(potential: Potential, loader: BatchLoader, device: torch.device, dtype: torch.dtype,
                   energies: AtomicEnergies | None = None) -> dict[str, float]:
    """Validation metrics of an energy model: configuration MAE (eV), atom MAE (eV/atom)."""
    predictions = predict(potential, loader, device, dtype, energies)
    return {"val_config_mae": predictions.config_mae_ev(), "val_atom_mae": predictions.atom_mae_ev()}


def force_mae(potential: Potential, loader: BatchLoader, device: torch.device, dtype: torch.dtype,
              energies: AtomicEnergies | None = None) -> float:
    """Mean |F_model - F_label| (eV/Å) over every present force component of ``loader``'s
    rows, all outputs (the K heads of MP against their EIPs); NaN when no row has forces."""
    was_training = potential.training
    potential.eval()
    total, count = 0.0, 0
    for batch in loader.epoch(0):
        if batch.forces is None:
            continue
        batch = batch.to(device, dtype)
        _, forces = energies_and_forces(potential, batch, energies, create_graph=False)
        error = (forces.detach() - batch.forces).abs()[batch.force_mask]  # [present, 3]
        total, count = total + float(error.double().sum()), count + error.numel()
    potential.train(was_training)
    if loader.sharded:
        total, count = global_sum(total, float(count))
    return total / count if count else float("nan")


def combined_mae(energy_mae_ev: float, force_mae_ev_per_angstrom: float, force_weight: float) -> float:
    """The checkpoint metric when forces are trained (eV): energy MAE + sqrt(w) * force MAE.
    The loss weighs squared errors by ``w`` (Å²), so a force error f counts there as much as
    an energy error sqrt(w) * f; the same trade-off, in MAEs."""
    return energy_mae_ev + math.sqrt(force_weight) * force_mae_ev_per_angstrom


@dataclass
class EnergyForceMetrics:
    """Validation metrics of a model trained on energies and forces: those of ``energy``
    + ``<prefix>force_mae`` (eV/Å) + ``<prefix>combined_mae`` (eV, the monitor), the latter
    from ``energy_key``. MP: ``EnergyForceMetrics(w, eip_metrics, "val_eip_mae", "val_eip_")``."""

    force_weight: float
    energy: Callable = energy_metrics
    energy_key: str = "val_config_mae"
    prefix: str = "val_"

    @property
    def monitor(self) -> str:
        return self.prefix + "combined_mae"

    def __call__(self, potential: Potential, loader: BatchLoader, device: torch.device,
                 dtype: torch.dtype, energies: AtomicEnergies | None = None) -> dict[str, float]:
        metrics = self.energy(potential, loader, device, dtype, energies)
        forces = force_mae(potential, loader, device, dtype, energies)
        return {**metrics, self.prefix + "force_mae": forces,
                self.monitor: combined_mae(metrics[self.energy_key], forces, self.force_weight)}
