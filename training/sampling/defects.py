"""Vacancies and surface slabs.

Slabs are periodic in the surface plane only (``pbc = (True, True, False)``) with
``VACUUM_ANGSTROM`` of vacuum on each side; the DFT labeller runs them periodic in all
three directions with one k-point along the normal (docs/dft.md), which is the same thing
for any potential whose cutoff is shorter than twice the vacuum.
"""
from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.build import bcc100, bcc110, fcc100, fcc110, fcc111, hcp0001

from .lattices import MAX_ATOMS, MIN_ATOMS, lattice_constant_angstrom

VACUUM_ANGSTROM = 5.0

# (lattice, facet) -> ase.build function; sizes (nx, ny, layers) are drawn below
FACETS = {
    ("fcc", "111"): fcc111,
    ("fcc", "100"): fcc100,
    ("fcc", "110"): fcc110,
    ("bcc", "100"): bcc100,
    ("bcc", "110"): bcc110,
    ("hcp", "0001"): hcp0001,
}


def vacancies(atoms: Atoms, count: int, rng: np.random.Generator) -> Atoms:
    """Copy with ``count`` atoms removed at random."""
    if count >= len(atoms):
        raise ValueError(f"cannot remove {count} atoms from a cell of {len(atoms)}")
    reduced = atoms.copy()
    del reduced[sorted(rng.choice(len(atoms), size=count, replace=False).tolist())]
    return reduced


def slab(
    lattice: str,
    facet: str,
    fcc_a_angstrom: float,
    rng: np.random.Generator,
    symbol: str = "X",
    min_atoms: int = MIN_ATOMS,
    max_atoms: int = MAX_ATOMS,
) -> Atoms:
    """A slab of the facet, 1–3 × 1–3 surface cells and at least 3 layers (4 for fcc110 and
    bcc110, whose layers are thin), ``min_atoms..max_atoms`` atoms; the size is drawn
    uniformly among those reachable."""
    build = FACETS[(lattice, facet)]
    a = lattice_constant_angstrom(lattice, fcc_a_angstrom)
    min_layers = 4 if facet == "110" else 3
    options = [
        (nx, ny, layers)
        for nx in range(1, 4)
        for ny in range(1, nx + 1)
        for layers in range(min_layers, 13)
        if min_atoms <= nx * ny * layers <= max_atoms  # one atom per layer and surface cell
    ]
    size = options[rng.integers(len(options))]
    kwargs = dict(a=a, vacuum=VACUUM_ANGSTROM)
    if lattice == "hcp":
        kwargs["c"] = a * np.sqrt(8.0 / 3.0)
    surface = build(symbol, size=size, **kwargs)
    surface.pbc = (True, True, False)
    surface.info.clear()  # ase.build's adsorbate_info is not geometry
    surface.info["lattice"] = lattice
    surface.info["facet"] = f"({facet})"  # in brackets: extxyz would read "111" back as a number
    return surface
