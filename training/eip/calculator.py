"""Any EIP of the engine as an ASE calculator (same code path as the labels)."""
from __future__ import annotations

from ase.calculators.calculator import Calculator, all_changes

from .catalogue import resolve
from .evaluation import model_for
from .structure import Structure


class EIPCalculator(Calculator):
    """Energy (eV) and forces (eV/Å) of an EIP by short name or KIM ID.

    Errors are raised (``UnsupportedSpecies``, ``EIPComputeError``), not turned into
    missing entries: this is for interactive use and tests, the engine is for bulk labels.
    """

    implemented_properties = ["energy", "free_energy", "forces"]

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
