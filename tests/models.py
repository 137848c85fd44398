"""Small models for tests: a random SchNet and one fitted to Stillinger-Weber through KIM."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from ase.build import bulk

from eipnn_calc.neighbors import build_edges
from eipnn_training.export import export_model
from eipnn_training.models.build import ModelSpec, build_potential
from eipnn_training.models.layers import scatter_sum

SW_SI = "SW_StillingerWeber_1985_Si__MO_405512056662_005"
SMALL_SCHNET = {"num_features": 32, "num_interactions": 2, "num_rbf": 32}


def random_schnet(path: Path, species=("Si",), seed: int = 0, dtype: str = "float64") -> Path:
    """Export a randomly initialised small SchNet (smooth, but not physical)."""
    torch.manual_seed(seed)
    spec = ModelSpec("schnet", list(species), 5.0, dict(SMALL_SCHNET))
    potential = build_potential(spec)
    potential.atom_ref.fill_(-5.4)
    export_model(potential, spec, path, dtype=dtype)
    return path


def sw_configurations(count: int, seed: int) -> list[Atoms]:
    """Rattled, strained 8-atom diamond cells labelled with SW energies and forces (KIM)."""
    from ase.calculators.kim import KIM
    from ase.calculators.singlepoint import SinglePointCalculator

    rng = np.random.default_rng(seed)
    calculator = KIM(SW_SI)
    configurations = []
    for _ in range(count):
        atoms = bulk("Si", "diamond", 5.431, cubic=True)
        atoms.set_cell(atoms.cell.array @ (np.eye(3) + rng.normal(0, 0.02, (3, 3))), scale_atoms=True)
        atoms.positions += rng.normal(0, 0.1, atoms.positions.shape)
        atoms.calc = calculator
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
        configurations.append(atoms)
    return configurations


def sw_lattice_configurations(count: int, strain: tuple[float, float], max_repeat: int,
                               rattle_angstrom: float, forces: bool) -> list[Atoms]:
    """Si in four lattices (diamond, fcc, bcc, sc, in turn), the lattice constant scaled by a
    factor drawn from ``strain``, repeated 1..``max_repeat`` times along z and rattled;
    labelled with SW energies (and forces when ``forces``) through KIM."""
    from ase.calculators.kim import KIM
    from ase.calculators.singlepoint import SinglePointCalculator

    rng = np.random.default_rng(0)
    calculator = KIM(SW_SI)
    lattices = [("diamond", 5.43), ("fcc", 3.9), ("bcc", 3.1), ("sc", 2.55)]
    configurations = []
    for k in range(count):
        name, a = lattices[k % 4]
        atoms = bulk("Si", name, a=a * rng.uniform(*strain)).repeat((1, 1, 1 + k % max_repeat))
        atoms.rattle(rattle_angstrom, seed=k)
        atoms.calc = calculator
        labels = {"energy": atoms.get_potential_energy()}
        if forces:
            labels["forces"] = atoms.get_forces()
        atoms.calc = SinglePointCalculator(atoms, **labels)
        configurations.append(atoms)
    return configurations


def write_dataset(path: Path, configurations: list[Atoms], unlabeled: list[int]) -> Path:
    """An extxyz data set whose ``unlabeled`` rows carry no energies: training must not need
    them (the sealed pool)."""
    import ase.io

    for index in unlabeled:
        configurations[index].calc = None
    ase.io.write(path, configurations)
    return path


def batched(configurations: list[Atoms], cutoff: float) -> dict[str, torch.Tensor]:
    """One graph batch (float64) of labelled configurations: positions (requiring grad),
    edges within ``cutoff`` Å, graph index per atom, energies (eV) and forces (eV/Å)."""
    positions, edges, shifts, batch, offset = [], [], [], [], 0
    for k, atoms in enumerate(configurations):
        edge_index, edge_shift = build_edges(atoms, cutoff)
        positions.append(atoms.positions)
        edges.append(edge_index + offset)
        shifts.append(edge_shift)
        batch.append(np.full(len(atoms), k))
        offset += len(atoms)
    as_tensor = lambda a, dtype=torch.float64: torch.tensor(np.concatenate(a, axis=-1 if a is edges else 0), dtype=dtype)  # noqa: E731
    return {
        "positions": as_tensor(positions).requires_grad_(True),
        "edge_index": as_tensor(edges, torch.int64),
        "edge_shift": as_tensor(shifts),
        "batch": as_tensor(batch, torch.int64),
        "energy": torch.tensor([a.get_potential_energy() for a in configurations], dtype=torch.float64),
        "forces": torch.tensor(np.concatenate([a.get_forces() for a in configurations])),
    }


def fit_energies_and_forces(potential, data: dict[str, torch.Tensor], steps: int) -> None:
    """Full-batch Adam (lr 3e-3) on energy MSE / 64 + force MSE for a one-species (index 0)
    potential, from atom_ref = the mean energy per atom of ``data`` (a ``batched`` dict)."""
    n_graphs = len(data["energy"])
    potential.atom_ref.fill_(float(data["energy"].sum() / len(data["batch"])))
    species = torch.zeros_like(data["batch"])
    optimizer = torch.optim.Adam(potential.parameters(), lr=3e-3)
    for _ in range(steps):
        optimizer.zero_grad()
        atomic = potential.atomic_energies(data["positions"], species, data["edge_index"], data["edge_shift"])
        energy = scatter_sum(atomic[:, 0], data["batch"], n_graphs)
        forces = -torch.autograd.grad(energy.sum(), data["positions"], create_graph=True)[0]
        loss = ((energy - data["energy"]) ** 2).mean() / 64 + ((forces - data["forces"]) ** 2).mean()
        loss.backward()
        optimizer.step()


def sw_fitted_schnet(path: Path, steps: int = 150, seed: int = 0) -> Path:
    """A small SchNet fitted to SW energies and forces near diamond: enough for stable MD."""
    torch.manual_seed(seed)
    spec = ModelSpec("schnet", ["Si"], 5.0, dict(SMALL_SCHNET))
    potential = build_potential(spec).double()
    fit_energies_and_forces(potential, batched(sw_configurations(24, seed), spec.cutoff_angstrom), steps)
    export_model(potential, spec, path, provenance={"fitted_to": SW_SI, "steps": steps})
    return path
