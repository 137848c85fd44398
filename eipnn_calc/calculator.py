"""EIPNNCalculator: an ASE calculator for exported eipnn model files."""
from __future__ import annotations

import os

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.data import atomic_numbers, chemical_symbols
from ase.stress import full_3x3_to_voigt_6_stress

from . import malloc, memory
from .errors import (
    DeviceUnavailableError,
    InvalidConfigurationError,
    MemoryLimitError,
    StressUnavailableError,
    UnknownSpeciesError,
)
from .model_file import DTYPES, load_model
from .neighbors import NeighborList, SearchGeometry, estimated_edges
from .shipped import resolve_model

# Closer than any two atoms in matter; at zero distance a pair has no direction (NaN forces).
MIN_DISTANCE_ANGSTROM = 0.1
# The smallest step float32 positions must resolve (Å): beyond ~800 Å from the origin it
# would not, and distances near the cutoff would be decided by rounding.
FLOAT32_RESOLUTION_ANGSTROM = 1e-4



def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise DeviceUnavailableError(
            f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto', not {device!r} ({err})") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceUnavailableError(
                f"device={device!r} was asked for, but this torch ({torch.__version__}) sees no "
                "CUDA device; use device='cpu', or 'auto' to take CUDA only when present")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise DeviceUnavailableError(
                f"device={device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif resolved.type != "cpu":
        raise DeviceUnavailableError(f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto', not {device!r}")
    return resolved


class EIPNNCalculator(Calculator):
    """Energy, forces, stress and per-atom energies from an eipnn model file.

    A committee model file (``eipnn-train`` with ``train.committee`` > 1) gives the members'
    mean as energy, forces and stress, and their spread in ``calc.results`` after a call:
    ``"energy_std"`` (eV, float) and ``"forces_std"`` ([N, 3] eV/Å, each component), also
    through ``calc.get_property("energy_std", atoms)``. ``calc.committee_size`` is the number
    of members (1 for a single model).

    Parameters
    ----------
    model: path of the exported TorchScript model file, or the name of a shipped model
        (``eipnn_calc.shipped``: "si-pbe-schnet", "si-pbe-soapnet").
    device: "cpu", "cuda" (or "cuda:N"), or "auto" (CUDA when available).
    dtype: "float64" (default; exact derivatives) or "float32" (faster).
    skin: Verlet skin in Å. The neighbour list is built with cutoff + skin and reused until
        an atom has moved more than skin/2; 0 rebuilds on every call.
    tune_malloc: raise glibc's malloc trim threshold for this process, so large systems do
        not page-fault their temporaries in again on every step (see ``eipnn_calc.malloc``).
    memory_limit_gb: the most memory (GB, 1e9 bytes) one evaluation may plan to use; a
        configuration whose estimate (``eipnn_calc.memory``) is larger raises
        MemoryLimitError before any work. None: half of the device's memory.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress", "energies"]

    def __init__(
        self,
        model: str | os.PathLike,
        device: str = "cpu",
        dtype: str = "float64",
        skin: float = 0.5,
        tune_malloc: bool = False,
        memory_limit_gb: float | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be 'float64' or 'float32', not '{dtype}'")
        if memory_limit_gb is not None and not (isinstance(memory_limit_gb, (int, float))
                                                and memory_limit_gb > 0):
            raise ValueError(f"memory_limit_gb must be a number > 0 or None, not {memory_limit_gb!r}")
        if tune_malloc:
            malloc.tune_malloc()
        self.device = resolve_device(device)
        self.dtype = DTYPES[dtype]
        module, self.metadata = load_model(resolve_model(model), device=self.device)
        self.committee_size = int(self.metadata.model.get("committee", 1))
        if self.committee_size > 1:  # an instance attribute: get_property checks it
            self.implemented_properties = [*type(self).implemented_properties, "energy_std", "forces_std"]
        self.model = module.to(dtype=self.dtype)
        self.neighbors = NeighborList(self.metadata.cutoff_angstrom, skin)
        self.memory_limit_bytes = (int(memory_limit_gb * 1e9) if memory_limit_gb is not None
                                   else memory.default_limit_bytes(self.device))
        # Atomic number -> the model's species index (-1: not in the model), one lookup per step.
        self._species_index = np.full(len(chemical_symbols), -1, dtype=np.int64)
        for index, symbol in enumerate(self.metadata.species):
            self._species_index[atomic_numbers[symbol]] = index

    @property
    def cutoff(self) -> float:
        return self.metadata.cutoff_angstrom

    def calculate(self, atoms: Atoms | None = None, properties=None, system_changes=all_changes) -> None:
        super().calculate(atoms, properties or ["energy"], system_changes)
        atoms = self.atoms
        self._check(atoms, properties or [])
        species = self._species(atoms.numbers)
        geometry = self.neighbors.prepare(atoms)
        if geometry is not None:
            self._check_memory(geometry, self.neighbors.cutoff, "expected")
        positions, edge_index, edge_shift = self.neighbors.get(atoms, geometry)
        if geometry is not None:
            try:
                self._check_memory(geometry, self.neighbors.cutoff, "found", len(edge_index[0]))
            except MemoryLimitError:
                self.neighbors.reset()  # the next call must not reuse a list it refused
                raise
        self._check_positions(positions, edge_index, edge_shift)
        out = self._evaluate(positions, species, edge_index, edge_shift)
        for key in ("energy", "forces", "virial"):
            if not np.isfinite(out[key]).all():
                raise InvalidConfigurationError(
                    f"the model returned a non-finite {key} for this configuration "
                    f"({len(atoms)} atoms); it lies where the model is undefined")
        energy = float(out["energy"])
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "energies": out["energies"],
            "forces": out["forces"],
        }
        if atoms.pbc.any() and abs(atoms.cell.volume) > 1e-12:
            stress = -out["virial"] / atoms.cell.volume
            self.results["stress"] = full_3x3_to_voigt_6_stress(stress)
        if "energy_std" in out:  # a committee: the members' spread beside their mean
            self.results["energy_std"] = float(out["energy_std"])
            self.results["forces_std"] = out["forces_std"]

    def _evaluate(
        self, positions: np.ndarray, species: np.ndarray, edge_index: np.ndarray, edge_shift: np.ndarray
    ) -> dict[str, np.ndarray]:
        tensor = lambda a, dtype: torch.as_tensor(a, dtype=dtype, device=self.device)  # noqa: E731
        try:
            # On the CPU, no graph-executor optimisation (as in the KIM driver): the profiling
            # executor spends the first calls profiling (each 1.5-2.5x a steady call) and
            # re-specialises whenever the number of edges changes (every MD step with a skin),
            # and its optimised graph was no faster here (tabulated paper-size SchNet, 512
            # atoms, float32: 150 against 92 ms per call). Without it a fresh calculator's first
            # call is 1.0-1.7x a steady one (docs/benchmarks.md, "peers").
            with torch.enable_grad(), torch.jit.optimized_execution(self.device.type != "cpu"):
                out = self.model(
                    tensor(positions, self.dtype),
                    tensor(species, torch.int64),
                    tensor(edge_index, torch.int64),
                    tensor(edge_shift, self.dtype),
                    torch.ones(len(species), dtype=torch.bool, device=self.device),
                )
        except (torch.OutOfMemoryError, MemoryError) as err:
            raise MemoryLimitError(self._out_of_memory(len(species), len(edge_shift), err)) from None
        except RuntimeError as err:
            # The CPU allocator's failure is a RuntimeError of thousands of characters.
            if "can't allocate memory" not in str(err) and "out of memory" not in str(err):
                raise
            raise MemoryLimitError(self._out_of_memory(len(species), len(edge_shift), err)) from None
        return {key: value.detach().to("cpu", torch.float64).numpy() for key, value in out.items()}

    def _out_of_memory(self, atoms: int, edges: int, err: BaseException) -> str:
        # TorchScript wraps the allocator's line in a page of interpreter trace: keep that line.
        lines = [line.strip() for line in str(err).splitlines() if "allocate" in line or "memory" in line]
        first = (lines or [type(err).__name__])[0][:200]
        return (f"{self.device.type} ran out of memory evaluating {atoms} atoms with {edges:,} pairs "
                f"({first}); other processes may hold the memory: lower memory_limit_gb so the "
                "calculator refuses such systems before trying, or evaluate a smaller one")

    def _species(self, numbers: np.ndarray) -> np.ndarray:
        outside = (numbers < 1) | (numbers >= len(chemical_symbols))
        if outside.any():
            raise UnknownSpeciesError(
                f"atomic number(s) {', '.join(str(z) for z in sorted(set(numbers[outside].tolist())))} "
                f"are not chemical elements (1..{len(chemical_symbols) - 1}); the model knows "
                f"{', '.join(self.metadata.species)}"
            )
        species = self._species_index[numbers]
        if (species < 0).any():
            unknown = sorted({chemical_symbols[z] for z in numbers[species < 0]})
            raise UnknownSpeciesError(
                f"species {', '.join(unknown)} not in the model, which knows only "
                f"{', '.join(self.metadata.species)}"
            )
        return species

    def _check(self, atoms: Atoms, properties: list[str]) -> None:
        if len(atoms) == 0:
            raise InvalidConfigurationError("the configuration has no atoms")
        pbc = np.asarray(atoms.pbc, dtype=bool)
        if "stress" in properties:
            if not pbc.any():
                raise StressUnavailableError(
                    "stress needs at least one periodic direction; this system has pbc=False"
                )
            if np.isfinite(atoms.cell.array).all() and abs(atoms.cell.volume) <= 1e-12:
                raise InvalidConfigurationError(
                    "stress needs a cell with non-zero volume; set the cell's open vectors too"
                )

    def _check_memory(self, geometry: SearchGeometry, cutoff: float, how: str, edges: int | None = None) -> None:
        """Refuse, before any work, an evaluation whose memory estimate is over the limit:
        first from the number density (``how`` "expected"), then from the edges found."""
        if edges is None:
            edges = estimated_edges(geometry, cutoff)
        need = memory.estimated_bytes(edges, self.metadata.model, len(self.metadata.species), self.dtype)
        if need > self.memory_limit_bytes:
            atoms = len(geometry.positions)
            raise MemoryLimitError(
                f"this configuration needs about {need / 1e9:.3g} GB: {edges:,} pairs within "
                f"{cutoff:.3g} Å {how} for {atoms} atoms ({edges / atoms:,.0f} per atom; a solid "
                f"has 20-150), over the calculator's limit of {self.memory_limit_bytes / 1e9:.3g} GB. "
                "Check the cell and the positions, or raise EIPNNCalculator(memory_limit_gb=...)"
            )

    def _check_positions(self, positions: np.ndarray, edge_index: np.ndarray, edge_shift: np.ndarray) -> None:
        if self.dtype == torch.float32:
            largest = float(np.abs(positions).max(initial=0.0))
            if np.spacing(np.float32(largest)) > FLOAT32_RESOLUTION_ANGSTROM:
                raise InvalidConfigurationError(
                    f"the system spans {largest:.4g} Å, where float32 resolves only "
                    f"{np.spacing(np.float32(largest)):.2g} Å; use dtype='float64'")
        if len(edge_shift) == 0:
            return
        i, j = edge_index
        lengths = np.linalg.norm(positions[j] + edge_shift - positions[i], axis=1)
        closest = int(np.argmin(lengths))
        if lengths[closest] < MIN_DISTANCE_ANGSTROM:
            image = "" if not edge_shift[closest].any() else " (a periodic image)"
            raise InvalidConfigurationError(
                f"atoms {i[closest]} and {j[closest]}{image} are {lengths[closest]:.3g} Å apart, "
                f"closer than {MIN_DISTANCE_ANGSTROM} Å: coincident or overlapping atoms; "
                "check the positions")
