"""Any EIP of the engine as an ASE calculator (same code path as the labels)."""
from __future__ import annotations

import numpy as np
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes

from .catalogue import resolve
from .evaluation import model_for
from .structure import Structure


class EIPCalculator(Calculator):
    """Energy (eV), forces (eV/Å) and, for periodic cells, stress (eV/Å³) of an EIP by
    short name or KIM ID. The stress is a central difference of the energy under the six
    strains (±``STRESS_STRAIN``, 12 energy calls): the engine gives no virial, and the
    property card's elastic constants need a stress (``benchmarks/eip_cards.py``).

    Errors are raised (``UnsupportedSpecies``, ``EIPComputeError``), not turned into
    missing entries: this is for interactive use and tests, the engine is for bulk labels.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]
    STRESS_STRAIN = 1e-5

    def __init__(self, name: str, **kwargs):
        super().__init__(**kwargs)
        self.eip = resolve(name)
        self._model = model_for(self.eip)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        structure = Structure.from_atoms(self.atoms)
        energy, forces = self._model.compute(structure, "forces" in properties)
        self.results = {"energy": energy, "free_energy": energy}
        if forces is not None:
            self.results["forces"] = forces
        if "stress" in properties:
            self.results["stress"] = self._stress()

    def _stress(self) -> np.ndarray:
        """Voigt stress (xx, yy, zz, yz, xz, xy), ASE's sign: dE/dε / V."""
        if not self.atoms.pbc.all():
            raise PropertyNotImplementedError("stress needs a cell periodic in all three directions")
        h, stress = self.STRESS_STRAIN, np.zeros(6)
        for k, (i, j) in enumerate(((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))):
            energies = []
            for sign in (1.0, -1.0):
                epsilon = np.zeros((3, 3))
                epsilon[i, j] = epsilon[j, i] = sign * h / (1.0 if i == j else 2.0)
                strained = self.atoms.copy()
                strained.set_cell(self.atoms.cell.array @ (np.eye(3) + epsilon), scale_atoms=True)
                energies.append(self._model.compute(Structure.from_atoms(strained), False)[0])
            stress[k] = (energies[0] - energies[1]) / (2.0 * h)
        return stress / self.atoms.get_volume()
