"""Configurations as plain arrays, with DFT labels behind a seal.

A ``Dataset`` keeps geometry (positions, numbers, cell, pbc) apart from the DFT labels
(energies in eV, optional forces in eV/Å). The labels of the ``unlabeled`` pool are
*sealed*: reading them through :meth:`Dataset.energies_ev` or :meth:`Dataset.forces_ev_per_angstrom`
raises :class:`SealedLabelError`, so no DFT energy of that pool can reach a model or a
selection step by accident. The one way past the seal is
:meth:`Dataset.read_sealed_energies_ev`, which needs a stated reason and records it (for
the after-training report of label augmentation, which grades its selection against DFT).
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from ase import Atoms

from .errors import DatasetFileError, MissingEnergyError, SealedLabelError

DATABASE_SUFFIXES = (".db", ".json")


@dataclass
class Dataset:
    """Geometry of every configuration plus its (possibly sealed) DFT labels."""

    positions: list[np.ndarray]  # each [n_i, 3], Å
    numbers: list[np.ndarray]  # each [n_i] atomic numbers
    cells: np.ndarray  # [C, 3, 3], Å
    pbc: np.ndarray  # [C, 3] bool
    _energies_ev: np.ndarray  # [C], NaN where a configuration has no energy
    _forces: list[np.ndarray | None]  # each [n_i, 3] eV/Å or None
    name: str = "dataset"
    _sealed: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    unseal_log: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self._sealed) != len(self):
            self._sealed = np.zeros(len(self), dtype=bool)

    def __len__(self) -> int:
        return len(self.positions)

    @property
    def num_atoms(self) -> np.ndarray:
        return np.array([len(p) for p in self.positions], dtype=np.int64)

    def symbols(self) -> list[str]:
        """The chemical symbols present, sorted by atomic number."""
        from ase.data import chemical_symbols

        present = np.unique(np.concatenate(self.numbers)) if len(self) else []
        return [chemical_symbols[int(z)] for z in present]

    def atoms(self, index: int) -> Atoms:
        """Configuration ``index`` as ASE Atoms, without any label attached."""
        return Atoms(
            numbers=self.numbers[index],
            positions=self.positions[index],
            cell=self.cells[index],
            pbc=self.pbc[index],
        )

    def geometry_hash(self) -> str:
        """Content hash of the geometry (not the labels): the key of cached graphs."""
        digest = hashlib.sha256()
        for positions, numbers in zip(self.positions, self.numbers):
            digest.update(np.ascontiguousarray(positions, dtype=np.float64).tobytes())
            digest.update(np.ascontiguousarray(numbers, dtype=np.int64).tobytes())
        digest.update(np.ascontiguousarray(self.cells, dtype=np.float64).tobytes())
        digest.update(np.ascontiguousarray(self.pbc, dtype=bool).tobytes())
        return digest.hexdigest()[:16]

    # --- the seal -------------------------------------------------------------------
    def seal(self, indices: Iterable[int]) -> None:
        """Make the labels of ``indices`` unreadable (the unlabelled pool)."""
        self._sealed[np.asarray(list(indices), dtype=np.int64)] = True

    def is_sealed(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        return self._sealed[np.asarray(indices, dtype=np.int64)]

    def _check_unsealed(self, indices: np.ndarray, what: str) -> None:
        sealed = self._sealed[indices]
        if sealed.any():
            first = indices[sealed][:5].tolist()
            raise SealedLabelError(
                f"{what} of {int(sealed.sum())} sealed configuration(s) of '{self.name}' "
                f"were asked for (first indices {first}): the unlabelled pool's DFT labels "
                "must not reach training; use EIP labels for them, or "
                "read_sealed_energies_ev(indices, reason=...) for an after-training report"
            )

    def energies_ev(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """DFT total energies (eV) of ``indices``; raises for sealed or missing ones."""
        indices = np.asarray(indices, dtype=np.int64)
        self._check_unsealed(indices, "DFT energies")
        energies = self._energies_ev[indices]
        missing = np.isnan(energies)
        if missing.any():
            raise MissingEnergyError(
                f"{int(missing.sum())} configuration(s) of '{self.name}' have no DFT energy "
                f"(first indices {indices[missing][:5].tolist()}); every configuration of "
                "train/val/test needs one (extxyz: an energy= key or a calculator result)"
            )
        return energies.copy()

    def forces_ev_per_angstrom(self, index: int) -> np.ndarray | None:
        """DFT forces (eV/Å) of one configuration, or None when it has none."""
        self._check_unsealed(np.array([index]), "DFT forces")
        forces = self._forces[index]
        return None if forces is None else forces.copy()

    def has_forces(self, indices: Sequence[int] | np.ndarray) -> bool:
        return all(self._forces[int(i)] is not None for i in indices)

    def read_sealed_energies_ev(self, indices: Sequence[int] | np.ndarray, reason: str) -> np.ndarray:
        """The named escape hatch: DFT energies of sealed configurations, for a report made
        after training. ``reason`` is recorded in :attr:`unseal_log`."""
        if not reason.strip():
            raise ValueError("read_sealed_energies_ev needs a reason (it is logged)")
        indices = np.asarray(indices, dtype=np.int64)
        self.unseal_log.append(f"{len(indices)} sealed energies read: {reason}")
        return self._energies_ev[indices].copy()


def _label(atoms: Atoms) -> tuple[float, np.ndarray | None]:
    """DFT energy (NaN if absent) and forces (None if absent) of one ASE Atoms."""
    energy, forces = np.nan, None
    try:
        if atoms.calc is not None:
            results = getattr(atoms.calc, "results", {})
            if "energy" in results:
                energy = float(results["energy"])
            if "forces" in results:
                forces = np.asarray(results["forces"], dtype=np.float64)
        if np.isnan(energy) and "energy" in atoms.info:
            energy = float(atoms.info["energy"])
        if forces is None and "forces" in atoms.arrays:
            forces = np.asarray(atoms.arrays["forces"], dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise DatasetFileError(
            f"a configuration ({atoms.get_chemical_formula()}) has an energy or forces that are not "
            f"numbers: {err}") from None
    return energy, forces


def dataset_from_atoms(configurations: Sequence[Atoms], name: str = "dataset") -> Dataset:
    """A Dataset from ASE Atoms; energies/forces come from their calculator or info/arrays."""
    labels = [_label(atoms) for atoms in configurations]
    return Dataset(
        positions=[np.array(a.positions, dtype=np.float64) for a in configurations],
        numbers=[np.array(a.numbers, dtype=np.int64) for a in configurations],
        cells=np.array([a.cell.array for a in configurations], dtype=np.float64).reshape(-1, 3, 3),
        pbc=np.array([a.pbc for a in configurations], dtype=bool).reshape(-1, 3),
        _energies_ev=np.array([e for e, _ in labels], dtype=np.float64),
        _forces=[f for _, f in labels],
        name=name,
    )


def read_dataset(path: str | os.PathLike, require_energies: bool = True) -> Dataset:
    """Read an extxyz file (gzip allowed) or an ASE database (.db/.json).

    With ``require_energies`` every configuration must carry a DFT energy.
    """
    import ase.io

    path = Path(path)
    if not path.exists():
        raise DatasetFileError(f"dataset file not found: '{path}'")
    try:
        if path.suffix in DATABASE_SUFFIXES:
            import ase.db

            with ase.db.connect(str(path)) as database:
                configurations = [row.toatoms() for row in database.select()]
        else:
            configurations = ase.io.read(str(path), ":")
    except Exception as err:  # ase raises many kinds; say which file, keep the cause
        raise DatasetFileError(f"could not read dataset '{path}': {err}") from err
    if not configurations:
        raise DatasetFileError(f"dataset '{path}' holds no configuration")
    dataset = dataset_from_atoms(configurations, name=path.name)
    if require_energies:
        dataset.energies_ev(np.arange(len(dataset)))  # raises MissingEnergyError
    return dataset
