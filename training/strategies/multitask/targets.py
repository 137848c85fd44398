"""EIP energies of a split as training rows, and per-output reference energies.

Only the geometry of a configuration is handed to the EIPs, so the sealed DFT energies of
the ``unlabeled`` pool are never read. Entries an EIP could not give (failure, energy above
200 eV/atom) stay NaN: ``collate`` turns them into ``target_mask`` False, and every loss and
metric of MP skips them.
"""
from __future__ import annotations

import numpy as np

from eipnn_calc.errors import EIPNNError

from ...data.batching import KIND_EIP, Rows
from ...eip import Labels, label
from ...models.potential import Potential
from ...train.reference import fit_reference_energies, set_reference, species_counts
from ...train.session import TrainingData


class MissingEIPEnergies(EIPNNError, ValueError):
    """An EIP gave no energy on any configuration of a split: it cannot be pretrained on."""


def subsample(indices: np.ndarray, limit: int | None, seed: int) -> np.ndarray:
    """A random ``limit`` of ``indices`` drawn with ``seed`` (all of them when None)."""
    if limit is None or limit >= len(indices):
        return indices
    return np.sort(np.random.default_rng([seed, 11]).permutation(indices)[:limit])


def eip_rows(
    data: TrainingData,
    indices: np.ndarray,
    eips: list[str],
    workers: int = 1,
    progress: bool = True,
    with_forces: bool = False,
) -> tuple[Rows, Labels]:
    """Rows of ``indices`` with targets [R, K] = EIP total energies (eV, NaN = missing);
    ``with_forces``: also ``forces`` [N_i, K, 3] per row, EIP k's forces (eV/Å), NaN where
    EIP k has no entry for that configuration.

    Raises :class:`MissingEIPEnergies` when one EIP has no energy on any of them.
    """
    atoms = [data.split.dataset.atoms(int(i)) for i in indices]  # geometry only, no DFT label
    labels = label(atoms, eips, workers=workers, progress=progress, with_forces=with_forces)
    empty = [name for k, name in enumerate(labels.names) if not labels.present[:, k].any()]
    if empty:
        raise MissingEIPEnergies(
            f"EIP(s) {empty} gave no energy on any of {len(indices)} configurations "
            f"(reasons: {sorted(set(labels.reasons[:, labels.names.index(empty[0])]))[:3]}); "
            "drop them from pretrain.eips"
        )
    n = len(indices)
    forces = per_row_forces(labels) if with_forces else None
    rows = Rows(np.asarray(indices, dtype=np.int64), labels.energies, np.ones(n), np.full(n, KIND_EIP), forces)
    return rows, labels


def per_row_forces(labels: Labels) -> list[np.ndarray]:
    """[N_i, K, 3] eV/Å per configuration from ``labels.forces[k][i]``, NaN where missing."""
    rows = []
    for i, n_atoms in enumerate(labels.n_atoms):
        stacked = np.full((int(n_atoms), len(labels.names), 3), np.nan)
        for k, per_eip in enumerate(labels.forces):
            if per_eip[i] is not None:
                stacked[:, k] = per_eip[i]
        rows.append(stacked)
    return rows


def fit_multitask_reference(potential: Potential, data: TrainingData, rows: Rows) -> list[float]:
    """Per-species reference energies of each output k, fitted on the entries present for
    EIP k (each EIP has its own zero of energy); returns the per-output scales (eV/atom)."""
    counts = species_counts(data.graphs, data.species_index, rows.indices, len(data.species))
    scales = []
    for k in range(rows.targets.shape[1]):
        present = ~np.isnan(rows.targets[:, k])
        reference, scale = fit_reference_energies(counts[present], rows.targets[present, k])
        set_reference(potential, reference, scale, output=k)
        scales.append(scale)
    return scales
