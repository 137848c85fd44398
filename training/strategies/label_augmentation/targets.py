"""EIP energies of the configurations LA touches, and the K+1 class targets.

Class of a configuration with a DFT energy (METHOD.md "Label augmentation", 1): the EIP
whose total energy is closest to DFT, ``argmin_k |E_k - E_DFT|`` over the EIPs present on
it (a tie goes to the first in catalogue order); class ``K`` ("no EIP is good") when even
the closest is more than ``threshold_ev_per_atom`` away per atom, or no EIP has an energy.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...eip import fit_alignment, label
from ...eip.alignment import species_counts
from ...train.session import TrainingData
from .errors import UnknownEIPSelection


@dataclass
class EIPTable:
    """EIP total energies (eV) for every configuration of the dataset, NaN where an EIP
    failed or the configuration was not labelled (``test`` is not)."""

    names: list[str]
    energies_ev: np.ndarray  # [C, K], aligned or raw
    aligned: bool
    offsets_ev: np.ndarray | None  # [K, S] alignment offsets, None when raw

    @property
    def num_classes(self) -> int:
        return len(self.names) + 1  # the K EIPs and "no EIP is good"


def eip_table(data: TrainingData, eips: list[str], indices: np.ndarray, aligned: bool,
              workers: int = 1, progress: bool = True) -> EIPTable:
    """Label ``indices`` (from the store, computing what is missing) and align on train.

    Only DFT energies of ``train`` are read (for the alignment): never the pool's.
    """
    dataset = data.split.dataset
    indices = np.asarray(indices, dtype=np.int64)
    configurations = [dataset.atoms(int(i)) for i in indices]
    labels = label(configurations, eips, workers=workers, progress=progress)
    energies = np.full((len(dataset), len(labels.names)), np.nan)
    energies[indices] = labels.energies
    offsets = None
    if aligned:
        train = data.split.splits["train"]
        position = {int(c): row for row, c in enumerate(indices)}
        subset = np.array([position[int(c)] for c in train], dtype=np.int64)
        dft = np.full(len(indices), np.nan)
        dft[subset] = dataset.energies_ev(train)
        counts, _ = species_counts(configurations, data.species)
        alignment = fit_alignment(labels, dft, counts, subset, data.species)
        energies[indices] = alignment.apply(labels, counts)
        offsets = alignment.offsets_ev
    return EIPTable(list(labels.names), energies, aligned, offsets)


def selected_forces(data: TrainingData, eips: list[str], indices: np.ndarray, columns: np.ndarray,
                    workers: int = 1, progress: bool = True) -> list[np.ndarray | None]:
    """Forces [N_i, 3] (eV/Å) of configuration ``indices[m]`` under EIP ``eips[columns[m]]``
    (None where that EIP failed): the force labels of LA's selected rows. Each EIP labels
    only the configurations it was chosen for. An alignment shifts energies by per-species
    constants, so aligned and raw forces are the same."""
    dataset = data.split.dataset
    columns = np.asarray(columns, dtype=np.int64)
    forces: list[np.ndarray | None] = [None] * len(indices)
    for k in np.unique(columns):
        rows = np.flatnonzero(columns == k)
        labels = label([dataset.atoms(int(indices[m])) for m in rows], [eips[int(k)]], workers=workers,
                       progress=progress, with_forces=True)
        for position, m in enumerate(rows):
            forces[m] = labels.forces[0][position]
    return forces


def eip_classes(eip_ev: np.ndarray, dft_ev: np.ndarray, num_atoms: np.ndarray,
                threshold_ev_per_atom: float) -> np.ndarray:
    """Class [R] of each row: the closest EIP's column, or K (= number of EIPs)."""
    eip_ev = np.asarray(eip_ev, dtype=np.float64)
    error = np.abs(eip_ev - np.asarray(dft_ev, dtype=np.float64)[:, None])  # [R, K] eV
    error = np.where(np.isnan(error), np.inf, error)  # a missing EIP is never the closest
    closest = np.argmin(error, axis=1)  # first minimum: ties go to the lower column
    gap = error[np.arange(len(error)), closest] / np.asarray(num_atoms, dtype=np.float64)
    return np.where(gap > threshold_ev_per_atom, eip_ev.shape[1], closest).astype(np.int64)


def eip_atom_mae(eip_ev: np.ndarray, dft_ev: np.ndarray, num_atoms: np.ndarray) -> np.ndarray:
    """[K] mean |E_k - E_DFT| / N (eV/atom) of each EIP over the rows where it is present."""
    error = np.abs(eip_ev - dft_ev[:, None]) / num_atoms[:, None]
    return np.array([np.nanmean(column) if np.isfinite(column).any() else np.inf for column in error.T])


def resolve_eip_columns(names: list[str], wanted: list[str] | None, atom_mae: np.ndarray) -> list[int] | None:
    """Columns of ``wanted``: EIP names, or ``best`` / ``worst`` (lowest / highest train
    atom MAE, ``atom_mae`` [K]); None stays None (every EIP)."""
    if wanted is None:
        return None
    columns = []
    for name in wanted:
        if name == "best":
            columns.append(int(np.argmin(atom_mae)))
        elif name == "worst":
            columns.append(int(np.argmax(np.where(np.isfinite(atom_mae), atom_mae, -np.inf))))
        elif name in names:
            columns.append(names.index(name))
        else:
            raise UnknownEIPSelection(
                f"la.select_eips names '{name}', which is not among la.eips {names}: use one "
                "of those names, 'best' or 'worst'"
            )
    return sorted(set(columns))
