"""GPAW as the property card's calculator: the PBE references of an element computed with
the settings of the data it is compared with (``benchmarks/dft_references.py``).

The card builds cubic cells of one element: the conventional cell under volumetric and
shear strain (E-V, elastic constants) and a supercell with and without a vacancy. Plane
waves with a k-point grid recomputed for every cell would change the basis along an E-V
scan (small steps in the energy) and sample a vacancy cell differently from its perfect
cell. So one GPAW calculator serves every cell of one size, with one k-point grid: the
production density's grid of that size at the element's reference lattice constant.
Importing GPAW initialises MPI: only a process that labels nothing else should use this.
"""
from __future__ import annotations

import math

from ase.calculators.calculator import Calculator, all_changes

from .settings import DFTSettings


class CrystalGPAW(Calculator):
    """Energy, forces and stress of the card's cubic crystals of one element, at
    ``settings`` (plane waves, PBE, smearing, SCF) with a fixed k-point grid per cell size.

    ``atoms_per_cell``: atoms of the conventional cell (4 fcc, 8 diamond, 2 bcc); a cell
    of N atoms is the k-fold repeat with k = ceil(N / atoms_per_cell) (a vacancy cell
    shares its perfect cell's grid); ``reference_a_angstrom``: the lattice constant the
    grids are computed at."""

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, settings: DFTSettings, symbol: str, structure: str, atoms_per_cell: int,
                 reference_a_angstrom: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.settings, self.symbol, self.structure = settings, symbol, structure
        self.atoms_per_cell, self.reference_a = atoms_per_cell, reference_a_angstrom
        self.grids: dict[int, tuple[int, int, int]] = {}
        self.calculators: dict[int, Calculator] = {}
        self.calls = 0

    def cells(self, num_atoms: int) -> int:
        """How many conventional cells a cell of ``num_atoms`` atoms is (a vacancy cell: its
        perfect cell's)."""
        return math.ceil(num_atoms / self.atoms_per_cell)

    def grid(self, num_atoms: int) -> tuple[int, int, int]:
        """The k-point grid of the cell of ``num_atoms`` atoms."""
        from ..validation.structures import conventional_cell

        cells = self.cells(num_atoms)
        if cells not in self.grids:
            repeat = round(cells ** (1 / 3))
            reference = conventional_cell(self.symbol, self.structure, self.reference_a).repeat(repeat)
            self.grids[cells] = self.settings.kpoint_grid(reference)
        return self.grids[cells]

    def _gpaw(self, atoms):
        from gpaw import GPAW

        cells = self.cells(len(atoms))
        if cells not in self.calculators:
            parameters = self.settings.gpaw_parameters(atoms)
            parameters["kpts"] = {"size": self.grid(len(atoms)), "gamma": True}
            self.calculators[cells] = GPAW(**parameters)
        return self.calculators[cells]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        work = self.atoms.copy()
        work.calc = self._gpaw(work)
        self.calls += 1
        # GPAW's get_potential_energy is extrapolated to zero smearing width; forces and
        # stress are those of the free energy, as in the labels (docs/dft.md).
        self.results = {
            "energy": work.get_potential_energy(),
            "free_energy": work.get_potential_energy(force_consistent=True),
            "forces": work.get_forces(),
        }
        if "stress" in properties:
            self.results["stress"] = work.get_stress()
