"""A KIM portable model called directly through kimpy (no ASE calculator in between).

The model and its compute-arguments object are created once per process and reused for
every configuration; per call we only build the padding (ghost) atoms for periodic cells
and the kimpy neighbour list, then fold the ghost forces back onto their images.
"""
from __future__ import annotations

import numpy as np

from .catalogue import quiet_kim_log
from .errors import EIPComputeError, EIPNotInstalled, UnsupportedSpecies
from .structure import Structure


class KIMPortableModel:
    """Energies (eV) and forces (eV/Å) of one KIM portable model."""

    def __init__(self, kim_id: str):
        import kimpy

        quiet_kim_log(kimpy)
        self._kimpy = kimpy
        self.kim_id = kim_id
        try:
            accepted, self._model = kimpy.model.create(
                kimpy.numbering.zeroBased,
                kimpy.length_unit.A,
                kimpy.energy_unit.eV,
                kimpy.charge_unit.e,
                kimpy.temperature_unit.K,
                kimpy.time_unit.ps,
                kim_id,
            )
        except RuntimeError as error:
            raise EIPNotInstalled(
                f"KIM model '{kim_id}' could not be created: is it installed "
                "(Debian package openkim-models)?"
            ) from error
        if not accepted:
            # Models that reject eV/Å would need unit conversion we do not do.
            raise EIPNotInstalled(f"KIM model '{kim_id}' does not accept eV and Å units")
        self._arguments = self._model.compute_arguments_create()
        self._influence_angstrom = float(self._model.get_influence_distance())
        cutoffs, padding_without_neighbors = self._model.get_neighbor_list_cutoffs_and_hints()
        self._cutoffs_angstrom = np.asarray(cutoffs, dtype=np.double)
        self._padding_needs_neighbors = not bool(np.all(padding_without_neighbors))
        self._species_codes: dict[int, int] = {}
        self._code_table = np.full(119, -1, dtype=np.intc)  # by atomic number
        self._neighbors = kimpy.neighlist.NeighList()
        self._arguments.set_callback_pointer(
            kimpy.compute_callback_name.GetNeighborList,
            kimpy.neighlist.get_neigh_kim(),
            self._neighbors,
        )

    def _codes(self, numbers: np.ndarray) -> np.ndarray:
        """The model's species codes [N] for atomic numbers [N] (table cached per element)."""
        table = self._species_codes
        for z in np.unique(numbers):
            if int(z) not in table:
                from ase.data import chemical_symbols

                symbol = chemical_symbols[int(z)]
                supported, code = self._model.get_species_support_and_code(
                    self._kimpy.species_name.SpeciesName(symbol)
                )
                if not supported:
                    raise UnsupportedSpecies(f"{self.kim_id} has no parameters for {symbol}")
                table[int(z)] = code
                self._code_table[int(z)] = code
        return self._code_table[numbers]

    def compute(self, structure: Structure, with_forces: bool) -> tuple[float, np.ndarray | None]:
        """Total energy (eV) and, when asked, forces [N, 3] (eV/Å)."""
        kimpy = self._kimpy
        n_atoms = len(structure.numbers)
        codes = self._codes(structure.numbers)
        positions = np.ascontiguousarray(structure.positions, dtype=np.double)
        if structure.pbc.any():
            try:
                ghost_positions, ghost_codes, image_of = kimpy.neighlist.create_paddings(
                    self._influence_angstrom,
                    np.ascontiguousarray(structure.cell, dtype=np.double),
                    structure.pbc.astype(np.intc),
                    positions,
                    codes,
                )
            except RuntimeError as error:
                raise EIPComputeError(f"KIM padding failed: {error}") from error
            coordinates = np.concatenate([positions, ghost_positions])
            codes = np.concatenate([codes, ghost_codes]).astype(np.intc)
        else:
            image_of = np.zeros(0, dtype=np.intc)
            coordinates = positions
        n_particles = len(coordinates)
        contributing = np.zeros(n_particles, dtype=np.intc)
        contributing[:n_atoms] = 1
        need_neighbors = np.ones(n_particles, dtype=np.intc)
        if not self._padding_needs_neighbors:
            need_neighbors[n_atoms:] = 0
        energy = np.zeros(1, dtype=np.double)
        forces = np.zeros((n_particles, 3), dtype=np.double)
        count = np.array([n_particles], dtype=np.intc)
        names = kimpy.compute_argument_name
        try:
            self._neighbors.build(
                coordinates, self._influence_angstrom, self._cutoffs_angstrom, need_neighbors
            )
            arguments = self._arguments
            arguments.set_argument_pointer(names.numberOfParticles, count)
            arguments.set_argument_pointer(names.particleSpeciesCodes, codes)
            arguments.set_argument_pointer(names.particleContributing, contributing)
            arguments.set_argument_pointer(names.coordinates, coordinates)
            arguments.set_argument_pointer(names.partialEnergy, energy)
            if with_forces:
                arguments.set_argument_pointer(names.partialForces, forces)
            else:
                # A null pointer tells the model not to compute forces at all.
                arguments.set_argument_null_pointer(names.partialForces)
            self._model.compute(arguments)
        except RuntimeError as error:
            raise EIPComputeError(f"{self.kim_id} failed: {error}") from error
        if not with_forces:
            return float(energy[0]), None
        total = forces[:n_atoms].copy()
        np.add.at(total, image_of, forces[n_atoms:])  # ghost forces act on their images
        return float(energy[0]), total
