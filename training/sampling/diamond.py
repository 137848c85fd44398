"""Recipes for a diamond-structure element (Si): the regions a property card probes.

The si-pbe training split is mostly small random crystals; it says little about diamond
under strain, its vacancy, interstitials or surfaces, which is where the card's bulk
modulus, elastic constants and vacancy energy come from. These recipes sample exactly
those regions around the PBE lattice constant (``System.diamond_a_angstrom``), for a pool
that only the EIPs label (issue 22: the pool needs no DFT). Defect cells are partly
relaxed with the system's MD EIP, so the pool holds the relaxed geometries the card's
vacancy and interstitial calculations pass through, not only rattled ideal ones.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from ase import Atoms
from ase.build import bulk, diamond100, diamond111

from .defects import VACUUM_ANGSTROM, vacancies
from .lattices import rattle, repeated, strain
from .md import _calculator

if TYPE_CHECKING:  # recipes.py imports this module
    from .recipes import System

RELAX_STEPS = 40  # FIRE steps of a partial relaxation: enough to leave the unrelaxed geometry
INTERSTITIAL_TRIES = 50
_DIAMOND_SURFACES = {"100": diamond100, "111": diamond111}


def diamond_cell(system: "System", rng: np.random.Generator, min_atoms: int, max_atoms: int) -> Atoms:
    """A random diamond supercell of the primitive (2-atom) or cubic (8-atom) cell, drawn as
    ``lattices.supercell`` draws the others."""
    a = system.diamond_a_angstrom
    units = [bulk(system.species[0], "diamond", a=a), bulk(system.species[0], "diamond", a=a, cubic=True)]
    cell = repeated(units, rng, min_atoms, max_atoms)
    cell.info["lattice"] = "diamond"
    return cell


def _relaxed(atoms: Atoms, system: "System", rng: np.random.Generator) -> Atoms:
    """Half the time a partial relaxation with the MD EIP (fixed cell), else as it is."""
    if rng.random() < 0.5:
        return atoms
    from ase.optimize import FIRE

    moving = atoms.copy()
    moving.calc = _calculator(system.md_eip)
    FIRE(moving, logfile=None).run(fmax=0.05, steps=RELAX_STEPS)
    relaxed = Atoms(numbers=moving.numbers, positions=moving.positions, cell=moving.cell, pbc=moving.pbc)
    relaxed.info.update(atoms.info, relaxed_with=system.md_eip)
    return relaxed


def strained(system: "System", rng: np.random.Generator) -> list[Atoms]:
    """Diamond scaled 0.90–1.10 in length (the card's E–V range, 5.0–6.0 Å) with a small
    random strain on top: the curvature that sets the bulk modulus."""
    cell = diamond_cell(system, rng, 4, 32)
    cell = strain(cell, rng, max_strain=0.02, scale_range=(0.90, 1.10))
    return [rattle(cell, rng, 0.05)]


def sheared(system: "System", rng: np.random.Generator) -> list[Atoms]:
    """Diamond near its volume under random strains of up to 6 %: C11, C12 and C44."""
    cell = diamond_cell(system, rng, 4, 32)
    cell = strain(cell, rng, max_strain=0.06, scale_range=(0.98, 1.02))
    return [rattle(cell, rng, 0.04)]


def vacancy_cell(system: "System", rng: np.random.Generator) -> Atoms:
    cell = diamond_cell(system, rng, 16, 32)
    cell = vacancies(cell, 1, rng)
    cell.info["vacancies"] = 1
    return cell


def vacancy(system: "System", rng: np.random.Generator) -> list[Atoms]:
    cell = _relaxed(vacancy_cell(system, rng), system, rng)
    cell = strain(cell, rng, max_strain=0.01, scale_range=(0.98, 1.02))
    return [rattle(cell, rng, 0.05)]


def interstitial_cell(system: "System", rng: np.random.Generator) -> Atoms:
    """One atom added at a random site no closer than the system's minimum distance to any
    other (a cell where no such site is found in ``INTERSTITIAL_TRIES`` draws is returned
    without one, and the pool rejects it as a repeat of the ideal crystal)."""
    cell = diamond_cell(system, rng, 15, 31)
    for _ in range(INTERSTITIAL_TRIES):
        trial = cell.copy()
        trial.append(system.species[0])
        trial.positions[-1] = rng.random(3) @ cell.cell.array
        distances = trial.get_distances(len(trial) - 1, range(len(cell)), mic=True)
        if distances.min() >= system.min_distance_angstrom:
            trial.info["interstitials"] = 1
            return trial
    return cell


def interstitial(system: "System", rng: np.random.Generator) -> list[Atoms]:
    cell = _relaxed(interstitial_cell(system, rng), system, rng)
    return [rattle(cell, rng, 0.05)]


def surface_slab(system: "System", rng: np.random.Generator) -> Atoms:
    """A (100) or (111) slab, 1–2 × 1–2 surface cells and 4–8 layers (4–32 atoms)."""
    facet = sorted(_DIAMOND_SURFACES)[rng.integers(len(_DIAMOND_SURFACES))]
    options = [(nx, ny, layers) for nx in (1, 2) for ny in range(1, nx + 1) for layers in range(4, 9)]
    size = options[rng.integers(len(options))]
    surface = _DIAMOND_SURFACES[facet](
        system.species[0], size=size, a=system.diamond_a_angstrom, vacuum=VACUUM_ANGSTROM
    )
    surface.pbc = (True, True, False)
    surface.info.clear()  # ase.build's adsorbate_info is not geometry
    surface.info.update(lattice="diamond", facet=f"({facet})")
    return surface


def surface(system: "System", rng: np.random.Generator) -> list[Atoms]:
    cell = _relaxed(surface_slab(system, rng), system, rng)
    return [rattle(cell, rng, 0.05)]


def solid_start(system: "System", rng: np.random.Generator) -> Atoms:
    return diamond_cell(system, rng, 8, 32)


def liquid_start(system: "System", rng: np.random.Generator) -> Atoms:
    return diamond_cell(system, rng, 16, 32)
