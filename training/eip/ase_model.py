"""An EIP that is an ASE calculator (for potentials KIM cannot run, e.g. Tersoff TMOD)."""
from __future__ import annotations

import numpy as np

from .catalogue import CALCULATOR_CATALOGUE
from .errors import EIPComputeError, UnsupportedSpecies
from .structure import Structure


class ASECalculatorModel:
    """Energies (eV) and forces (eV/Å) of a catalogued ASE calculator."""

    def __init__(self, name: str):
        entry = CALCULATOR_CATALOGUE[name]
        self.name = name
        self._calculator = entry.factory()
        self._species = set(entry.species)

    def compute(self, structure: Structure, with_forces: bool) -> tuple[float, np.ndarray | None]:
        atoms = structure.to_atoms()
        missing = set(atoms.get_chemical_symbols()) - self._species
        if missing:
            raise UnsupportedSpecies(
                f"{self.name} has no parameters for {', '.join(sorted(missing))}"
            )
        atoms.calc = self._calculator
        try:
            # Overlapping atoms give NaN here; the engine records non-finite results.
            with np.errstate(divide="ignore", invalid="ignore"):
                energy = float(atoms.get_potential_energy())
                forces = np.array(atoms.get_forces()) if with_forces else None
        except Exception as error:  # noqa: BLE001 - any calculator failure is recorded, not fatal
            raise EIPComputeError(f"{self.name} failed: {type(error).__name__}: {error}") from error
        return energy, forces
