"""Crystal cells of 4–32 atoms (fcc, hcp, bcc), strained, rattled and decorated.

Every function takes the random generator it draws from (``numpy.random.Generator``), so a
pool is reproducible from its seed. Lattice constants are near the PBE ones, so the
unstrained cells sit near the DFT minimum and the strains sample around it.
"""
from __future__ import annotations

import itertools

import numpy as np
from ase import Atoms
from ase.build import bulk

LATTICES = ("fcc", "hcp", "bcc")
MIN_ATOMS, MAX_ATOMS = 4, 32


def lattice_constant_angstrom(lattice: str, fcc_a_angstrom: float) -> float:
    """fcc ``a``; bcc ``a`` and hcp ``a`` (ideal c/a) at the fcc volume per atom."""
    if lattice == "fcc":
        return fcc_a_angstrom
    if lattice == "bcc":
        return (fcc_a_angstrom**3 / 2.0) ** (1.0 / 3.0)
    if lattice == "hcp":
        return fcc_a_angstrom / np.sqrt(2.0)
    raise ValueError(f"unknown lattice '{lattice}': use one of {', '.join(LATTICES)}")


def _unit_cells(lattice: str, a: float, symbol: str) -> list[Atoms]:
    """The primitive cell and the conventional one (cubic fcc/bcc, orthorhombic hcp)."""
    if lattice == "hcp":
        return [bulk(symbol, "hcp", a=a), bulk(symbol, "hcp", a=a, orthorhombic=True)]
    return [bulk(symbol, lattice, a=a), bulk(symbol, lattice, a=a, cubic=True)]


def repetitions(n_unit: int, min_atoms: int = MIN_ATOMS, max_atoms: int = MAX_ATOMS):
    """Diagonal repetitions (a ≥ b ≥ c, each ≤ 4) giving ``min_atoms..max_atoms`` atoms."""
    return [
        r
        for r in itertools.product(range(1, 5), repeat=3)
        if r[0] >= r[1] >= r[2] and min_atoms <= n_unit * np.prod(r) <= max_atoms
    ]


def supercell(
    lattice: str,
    fcc_a_angstrom: float,
    rng: np.random.Generator,
    min_atoms: int = MIN_ATOMS,
    max_atoms: int = MAX_ATOMS,
    symbol: str = "X",
) -> Atoms:
    """A random supercell of the lattice with ``min_atoms..max_atoms`` atoms. First a size
    is drawn uniformly among the sizes reachable, then a shape of that size: so small cells
    are as common as large ones."""
    a = lattice_constant_angstrom(lattice, fcc_a_angstrom)
    cell = repeated(_unit_cells(lattice, a, symbol), rng, min_atoms, max_atoms)
    cell.info["lattice"] = lattice
    return cell


def repeated(units: list[Atoms], rng: np.random.Generator, min_atoms: int, max_atoms: int) -> Atoms:
    """One of ``units`` repeated diagonally to ``min_atoms..max_atoms`` atoms: first a size
    drawn uniformly among the sizes reachable, then a shape of that size."""
    options = [(unit, r) for unit in units for r in repetitions(len(unit), min_atoms, max_atoms)]
    sizes = sorted({len(unit) * int(np.prod(r)) for unit, r in options})
    size = sizes[rng.integers(len(sizes))]
    shapes = [(unit, r) for unit, r in options if len(unit) * int(np.prod(r)) == size]
    unit, r = shapes[rng.integers(len(shapes))]
    return unit.repeat(r)


def strain(atoms: Atoms, rng: np.random.Generator, max_strain: float, scale_range) -> Atoms:
    """Deformed copy: isotropic linear scale ~U(scale_range) times (1 + ε), ε symmetric with
    entries ~U(-max_strain, max_strain); atoms follow the cell."""
    deformed = atoms.copy()
    epsilon = rng.uniform(-max_strain, max_strain, size=(3, 3))
    epsilon = 0.5 * (epsilon + epsilon.T)
    scale = rng.uniform(*scale_range)
    deformation = scale * (np.eye(3) + epsilon)
    deformed.set_cell(atoms.cell.array @ deformation.T, scale_atoms=True)
    return deformed


def rattle(atoms: Atoms, rng: np.random.Generator, max_sigma_angstrom: float) -> Atoms:
    """Copy with Gaussian displacements, σ ~U(0, max_sigma_angstrom) Å."""
    moved = atoms.copy()
    sigma = rng.uniform(0.0, max_sigma_angstrom)
    moved.positions += rng.normal(0.0, sigma, size=moved.positions.shape)
    return moved


def decorate(atoms: Atoms, symbols: tuple[str, str], rng: np.random.Generator) -> Atoms:
    """Random A_x B_{1−x}: x ~U(0, 1), round(x·N) sites of A chosen at random, the rest B."""
    decorated = atoms.copy()
    n = len(decorated)
    n_first = int(round(rng.uniform(0.0, 1.0) * n))
    chosen = np.zeros(n, dtype=bool)
    chosen[rng.permutation(n)[:n_first]] = True
    decorated.set_chemical_symbols(np.where(chosen, symbols[0], symbols[1]).tolist())
    return decorated


def set_species(atoms: Atoms, species: tuple[str, ...], rng: np.random.Generator) -> Atoms:
    """One element everywhere, or a random decoration of two (``decorate``)."""
    if len(species) == 1:
        atoms = atoms.copy()
        atoms.set_chemical_symbols([species[0]] * len(atoms))
        return atoms
    return decorate(atoms, (species[0], species[1]), rng)
