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
        arguments = self._arguments
        names = kimpy.compute_argument_name
        arguments.set_callback_pointer(
            kimpy.compute_callback_name.GetNeighborList,
            kimpy.neighlist.get_neigh_kim(),
            self._neighbors,
        )
        # Buffers that live as long as the model, so that their pointers are handed to
        # KIM once instead of on every call (each set_argument_pointer costs ~1.4 us, as
        # much as the allocations; together ~20 % of a 1-atom call). Per-particle buffers
        # grow on demand (``_reserve``); KIM reads only ``numberOfParticles`` entries.
        self._count = np.zeros(1, dtype=np.intc)
        self._energy = np.zeros(1, dtype=np.double)
        arguments.set_argument_pointer(names.numberOfParticles, self._count)
        arguments.set_argument_pointer(names.partialEnergy, self._energy)
        # A null pointer tells the model not to compute forces at all.
        arguments.set_argument_null_pointer(names.partialForces)
        self._forces_pointer_set = False
        self._capacity = 0
        self._reserve(64)

    def _reserve(self, n_particles: int) -> None:
        """Per-particle buffers for at least ``n_particles``, their pointers given to KIM."""
        if n_particles <= self._capacity:
            return
        capacity = max(n_particles, 2 * self._capacity)
        self._coordinates = np.zeros((capacity, 3), dtype=np.double)
        self._particle_codes = np.zeros(capacity, dtype=np.intc)
        self._contributing = np.zeros(capacity, dtype=np.intc)
        self._need_neighbors = np.ones(capacity, dtype=np.intc)
        names = self._kimpy.compute_argument_name
        arguments = self._arguments
        arguments.set_argument_pointer(names.particleSpeciesCodes, self._particle_codes)
        arguments.set_argument_pointer(names.particleContributing, self._contributing)
        arguments.set_argument_pointer(names.coordinates, self._coordinates)
        self._capacity = capacity

    def _codes(self, numbers: np.ndarray) -> np.ndarray:
        """The model's species codes [N] for atomic numbers [N] (table cached per element)."""
        codes = self._code_table[numbers]
        if not codes.size or codes.min() >= 0:
            return codes
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
        positions = structure.positions  # float64, C-contiguous (Structure.from_atoms)
        pbc = structure.pbc
        if pbc[0] or pbc[1] or pbc[2]:
            try:
                ghost_positions, ghost_codes, image_of = kimpy.neighlist.create_paddings(
                    self._influence_angstrom,
                    structure.cell,
                    pbc.astype(np.intc),
                    np.ascontiguousarray(positions, dtype=np.double),
                    codes,
                )
            except RuntimeError as error:
                raise EIPComputeError(f"KIM padding failed: {error}") from error
            n_particles = n_atoms + len(ghost_codes)
        else:
            n_particles = n_atoms
        self._reserve(n_particles)
        coordinates = self._coordinates[:n_particles]
        particle_codes = self._particle_codes
        contributing = self._contributing
        coordinates[:n_atoms] = positions
        particle_codes[:n_atoms] = codes
        contributing[:n_atoms] = 1
        if n_particles > n_atoms:
            coordinates[n_atoms:] = ghost_positions
            particle_codes[n_atoms:n_particles] = ghost_codes
            contributing[n_atoms:n_particles] = 0
        need_neighbors = self._need_neighbors[:n_particles]
        if not self._padding_needs_neighbors:
            need_neighbors[:n_atoms] = 1
            need_neighbors[n_atoms:] = 0
        self._count[0] = n_particles
        self._energy[0] = 0.0
        arguments = self._arguments
        forces = None
        try:
            self._neighbors.build(
                coordinates, self._influence_angstrom, self._cutoffs_angstrom, need_neighbors
            )
            if with_forces:
                forces = np.zeros((n_particles, 3), dtype=np.double)
                arguments.set_argument_pointer(kimpy.compute_argument_name.partialForces, forces)
                self._forces_pointer_set = True
            elif self._forces_pointer_set:
                arguments.set_argument_null_pointer(kimpy.compute_argument_name.partialForces)
                self._forces_pointer_set = False
            self._model.compute(arguments)
        except RuntimeError as error:
            raise EIPComputeError(f"{self.kim_id} failed: {error}") from error
        energy = float(self._energy[0])
        if forces is None:
            return energy, None
        total = forces[:n_atoms].copy()
        if n_particles > n_atoms:
            np.add.at(total, image_of, forces[n_atoms:])  # ghost forces act on their images
        return energy, total


class KIMModelPerElements:
    """A KIM model with one ``KIMPortableModel`` per set of elements it is given.

    Some portable models fix their elements at their first compute: Asap's EMT
    (``EMT_Asap_Standard_..._AlAgAuCuNiPdPt``, the AgAu EIP ``agau/emt``) computes every
    later configuration with the parameters of the elements of its first one, so that
    after a pure-Ag cell, Au and Ag3Au came out as Ag (ASE's own KIM calculator does the
    same when reused). A model object per element set is what a fresh model gives, for any
    model, at the cost of one model creation per set (milliseconds)."""

    def __init__(self, kim_id: str):
        self.kim_id = kim_id
        self._models: dict[tuple[int, ...], KIMPortableModel] = {}

    def _model_for(self, numbers: np.ndarray) -> KIMPortableModel:
        key = tuple(int(z) for z in np.unique(numbers))
        model = self._models.get(key)
        if model is None:
            model = self._models[key] = KIMPortableModel(self.kim_id)
        return model

    def compute(self, structure: Structure, with_forces: bool) -> tuple[float, np.ndarray | None]:
        """Total energy (eV) and, when asked, forces [N, 3] (eV/Å)."""
        return self._model_for(structure.numbers).compute(structure, with_forces)
