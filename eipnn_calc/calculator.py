"""EIPNNCalculator: an ASE calculator for exported eipnn model files."""
from __future__ import annotations

import os

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.data import atomic_numbers, chemical_symbols
from ase.stress import full_3x3_to_voigt_6_stress

from . import malloc
from .errors import InvalidConfigurationError, StressUnavailableError, UnknownSpeciesError
from .model_file import ModelMetadata, load_model
from .neighbors import NeighborList

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' was asked for but torch sees no CUDA device")
    return torch.device(device)


class EIPNNCalculator(Calculator):
    """Energy, forces, stress and per-atom energies from an eipnn model file.

    Parameters
    ----------
    model: path of the exported TorchScript model file.
    device: "cpu", "cuda" (or "cuda:N"), or "auto" (CUDA when available).
    dtype: "float64" (default; exact derivatives) or "float32" (faster).
    skin: Verlet skin in Å. The neighbour list is built with cutoff + skin and reused until
        an atom has moved more than skin/2; 0 rebuilds on every call.
    tune_malloc: raise glibc's malloc trim threshold for this process, so large systems do
        not page-fault their temporaries in again on every step (see ``eipnn_calc.malloc``).
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress", "energies"]

    def __init__(
        self,
        model: str | os.PathLike,
        device: str = "cpu",
        dtype: str = "float64",
        skin: float = 0.5,
        tune_malloc: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if tune_malloc:
            malloc.tune_malloc()
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be 'float64' or 'float32', not '{dtype}'")
        self.device = resolve_device(device)
        self.dtype = DTYPES[dtype]
        module, self.metadata = load_model(model, device=self.device)
        self.model = module.to(dtype=self.dtype)
        self.neighbors = NeighborList(self.metadata.cutoff_angstrom, skin)
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
        edge_index, edge_shift = self.neighbors.get(atoms)
        out = self._evaluate(atoms.positions, species, edge_index, edge_shift)
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

    def _evaluate(
        self, positions: np.ndarray, species: np.ndarray, edge_index: np.ndarray, edge_shift: np.ndarray
    ) -> dict[str, np.ndarray]:
        tensor = lambda a, dtype: torch.as_tensor(a, dtype=dtype, device=self.device)  # noqa: E731
        with torch.enable_grad():
            out = self.model(
                tensor(positions, self.dtype),
                tensor(species, torch.int64),
                tensor(edge_index, torch.int64),
                tensor(edge_shift, self.dtype),
                torch.ones(len(species), dtype=torch.bool, device=self.device),
            )
        return {key: value.detach().to("cpu", torch.float64).numpy() for key, value in out.items()}

    def _species(self, numbers: np.ndarray) -> np.ndarray:
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
        if not np.isfinite(atoms.positions).all():
            raise InvalidConfigurationError("positions contain NaN or inf")
        pbc = np.asarray(atoms.pbc, dtype=bool)
        if pbc.any():
            periodic = atoms.cell.array[pbc]
            if not np.isfinite(periodic).all() or np.linalg.matrix_rank(periodic, tol=1e-8) < pbc.sum():
                raise InvalidConfigurationError(
                    f"the periodic cell vectors are degenerate (zero volume/area); cell = "
                    f"{atoms.cell.array.tolist()}, pbc = {pbc.tolist()}"
                )
        if "stress" in properties:
            if not pbc.any():
                raise StressUnavailableError(
                    "stress needs at least one periodic direction; this system has pbc=False"
                )
            if abs(atoms.cell.volume) <= 1e-12:
                raise InvalidConfigurationError(
                    "stress needs a cell with non-zero volume; set the cell's open vectors too"
                )
