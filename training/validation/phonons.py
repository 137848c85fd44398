"""Phonons by finite displacements (``ase.phonons.Phonons``) of the primitive cell in a
supercell: the band structure along ASE's standard path and the optical frequency at Γ."""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from ase import units
from ase.calculators.calculator import Calculator
from ase.phonons import Phonons
from tqdm.auto import tqdm

from .structures import primitive_cell

EV_PER_THZ = units._hplanck / units._e * 1e12  # phonon energy (eV) of 1 THz


@dataclass(frozen=True)
class PhononBands:
    path_labels: str  # ASE's special-point path, e.g. "GXWKGLUWLK,UX"
    x: np.ndarray  # [Q] distance along the path
    special_x: np.ndarray  # [S] where the special points lie
    special_labels: list[str]
    frequencies_thz: np.ndarray  # [Q, 3 atoms]; negative = imaginary
    gamma_thz: np.ndarray  # [3 atoms], sorted
    supercell: int

    @property
    def gamma_optical_thz(self) -> Optional[float]:
        """The highest frequency at Γ when the primitive cell has optical modes."""
        return float(self.gamma_thz.max()) if len(self.gamma_thz) > 3 else None

    @property
    def min_frequency_thz(self) -> float:
        return float(self.frequencies_thz.min())

    @property
    def max_frequency_thz(self) -> float:
        return float(self.frequencies_thz.max())


class _CountedPhonons(Phonons):
    """``Phonons`` that ticks a progress bar once per supercell calculation."""

    bar: Optional[tqdm] = None

    def calculate(self, atoms_N, disp):
        output = super().calculate(atoms_N, disp)
        if self.bar is not None:
            self.bar.update(1)
        return output


def phonon_bands(calculator: Calculator, symbol: str, structure: str, a0_angstrom: float,
                 supercell: int, delta_angstrom: float, path_points: int,
                 progress: bool = False) -> PhononBands:
    """Force constants from ± ``delta_angstrom`` displacements of each primitive-cell atom
    in a ``supercell``³ supercell (acoustic sum rule imposed), then frequencies (THz) on
    ``path_points`` q-points of ASE's standard path for the lattice and at Γ."""
    primitive = primitive_cell(symbol, structure, a0_angstrom)
    with tempfile.TemporaryDirectory(prefix="eipnn-phonons-") as folder:
        phonons = _CountedPhonons(primitive, calculator, supercell=(supercell,) * 3,
                                  delta=delta_angstrom, name=str(Path(folder) / "phonon"))
        with tqdm(total=1 + 6 * len(primitive), desc=f"{symbol} phonons", disable=not progress,
                  leave=False) as bar:
            phonons.bar = bar
            phonons.run()
        phonons.read(acoustic=True)
        path = primitive.cell.bandpath(npoints=path_points)
        energies = phonons.band_structure(path.kpts, verbose=False)  # [Q, 3n] eV
        gamma = phonons.band_structure(np.zeros((1, 3)), verbose=False)[0]
    x, special_x, labels = path.get_linear_kpoint_axis()
    return PhononBands(path.path, np.asarray(x), np.asarray(special_x), list(labels),
                       np.asarray(energies) / EV_PER_THZ, np.sort(gamma) / EV_PER_THZ, supercell)
