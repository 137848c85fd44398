"""The kinds of configuration a pool holds, and how each is drawn.

A recipe draws one batch (one configuration, or the snapshots of one MD run) from a
random generator; ``pool.sample_pool`` calls it until the kind has its share of distinct,
sane configurations. A :class:`System` says which elements, lattice constant, EIP and
temperatures a pool uses, and how many of each kind it wants.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from ase import Atoms

from . import diamond
from .defects import FACETS, slab, vacancies
from .lattices import LATTICES, rattle, set_species, strain, supercell
from .md import solid_liquid_snapshots, thermal_snapshots


@dataclass(frozen=True)
class System:
    """One pool's chemistry and plan. Lengths in Å, temperatures in K.

    ``fcc_a_angstrom``: the fcc lattice constant near PBE's (the other lattices take the
    same volume per atom). ``md_eip``: the EIP (catalogue short name) the MD runs with.
    ``min_distance_angstrom``: configurations with two atoms closer are rejected.
    ``plan``: kind -> how many configurations of it a full-size pool holds.
    ``diamond_a_angstrom``: the diamond lattice constant (the ``diamond-*`` kinds only).
    """

    name: str
    species: tuple[str, ...]
    fcc_a_angstrom: float
    md_eip: str
    solid_K: tuple[float, float]
    liquid_K: tuple[float, float]
    interface_K: tuple[float, float]
    min_distance_angstrom: float
    plan: dict[str, int]
    diamond_a_angstrom: float = 0.0


_PLAN = {
    "bulk-fcc": 600,
    "bulk-hcp": 450,
    "bulk-bcc": 450,
    "vacancy": 500,
    "surface": 550,
    "md-solid": 600,
    "md-liquid": 550,
    "md-vacancy": 200,
    "md-surface": 200,
    "md-solid-liquid": 300,
}

SYSTEMS: dict[str, System] = {
    "al": System(
        name="al",
        species=("Al",),
        fcc_a_angstrom=4.04,
        md_eip="al/eam-zope-mishin",
        solid_K=(300.0, 900.0),
        liquid_K=(1100.0, 2500.0),
        interface_K=(750.0, 1000.0),
        min_distance_angstrom=2.0,
        plan=dict(_PLAN),
    ),
    "agau": System(
        name="agau",
        species=("Ag", "Au"),
        fcc_a_angstrom=4.16,
        md_eip="agau/eam-zhou-johnson-wadley",
        solid_K=(300.0, 1100.0),
        liquid_K=(1450.0, 2500.0),
        interface_K=(1050.0, 1400.0),
        min_distance_angstrom=2.1,
        plan=dict(_PLAN),
    ),
    # Not a DFT data set: configurations that widen si-pbe's EIP-only pool with the regions
    # a property card probes (issue 22; data/si-eip-pool). Solid MD stays below SW's melting
    # point (~1,690 K), the liquid above it.
    "si": System(
        name="si",
        species=("Si",),
        fcc_a_angstrom=3.87,  # PBE fcc Si; unused by the diamond kinds
        md_eip="si/sw-bht",
        solid_K=(300.0, 1400.0),
        liquid_K=(1900.0, 2500.0),
        interface_K=(1600.0, 1700.0),
        min_distance_angstrom=2.0,
        plan={
            "diamond-strain": 350,
            "diamond-shear": 250,
            "diamond-vacancy": 150,
            "diamond-interstitial": 100,
            "diamond-surface": 100,
            "md-diamond": 200,
            "md-diamond-vacancy": 100,
            "md-diamond-liquid": 50,
        },
        diamond_a_angstrom=5.469,  # VASP-PBE, as si-pbe (training/validation/references.yaml)
    ),
}

MD_SNAPSHOTS = 5  # per trajectory: nearby snapshots are correlated, so few per run


def _lattice(rng: np.random.Generator) -> str:
    """fcc (the ground state of both systems) half the time, hcp and bcc a quarter each."""
    return LATTICES[rng.choice(3, p=[0.5, 0.25, 0.25])]


def _crystal(system: System, rng, lattice: str, min_atoms=4, max_atoms=32) -> Atoms:
    cell = supercell(lattice, system.fcc_a_angstrom, rng, min_atoms, max_atoms)
    return set_species(cell, system.species, rng)


def _bulk(lattice: str):
    def draw(system: System, rng) -> list[Atoms]:
        cell = _crystal(system, rng, lattice)
        cell = strain(cell, rng, max_strain=0.04, scale_range=(0.94, 1.06))
        return [rattle(cell, rng, 0.10)]

    return draw


def _vacancy_cell(system: System, rng) -> Atoms:
    cell = _crystal(system, rng, _lattice(rng), min_atoms=8, max_atoms=32)
    count = 2 if len(cell) >= 16 and rng.random() < 0.3 else 1
    cell = vacancies(cell, count, rng)
    cell.info["vacancies"] = count
    return cell


def _vacancy(system: System, rng) -> list[Atoms]:
    cell = strain(_vacancy_cell(system, rng), rng, max_strain=0.02, scale_range=(0.98, 1.02))
    return [rattle(cell, rng, 0.08)]


def _slab(system: System, rng) -> Atoms:
    facets = sorted(FACETS)
    lattice, facet = facets[rng.integers(len(facets))]
    surface = slab(lattice, facet, system.fcc_a_angstrom, rng)
    return set_species(surface, system.species, rng)


def _surface(system: System, rng) -> list[Atoms]:
    surface = strain(_slab(system, rng), rng, max_strain=0.02, scale_range=(0.98, 1.02))
    return [rattle(surface, rng, 0.08)]


def _md(start: Callable, temperatures: str, scale_range=(0.98, 1.03), equilibration=400):
    def draw(system: System, rng) -> list[Atoms]:
        atoms = start(system, rng)
        if atoms.pbc.all():
            atoms = strain(atoms, rng, max_strain=0.0, scale_range=scale_range)
        temperature = rng.uniform(*getattr(system, temperatures))
        return thermal_snapshots(
            atoms, system.md_eip, temperature, rng, MD_SNAPSHOTS, equilibration
        )

    return draw


def _solid_start(system: System, rng) -> Atoms:
    return _crystal(system, rng, _lattice(rng), min_atoms=8, max_atoms=32)


def _liquid_start(system: System, rng) -> Atoms:
    return _crystal(system, rng, "fcc", min_atoms=16, max_atoms=32)


def _solid_liquid(system: System, rng) -> list[Atoms]:
    """fcc, 1 × 1 × 6 or 8 cubic cells (24 or 32 atoms) along z: half melted at the top of
    the liquid range, then all of it near the melting point."""
    from ase.build import bulk

    layers = (6, 8)[rng.integers(2)]
    cell = bulk("X", "fcc", a=system.fcc_a_angstrom, cubic=True).repeat((1, 1, layers))
    cell = set_species(cell, system.species, rng)
    cell.info["lattice"] = "fcc"
    temperature = rng.uniform(*system.interface_K)
    return solid_liquid_snapshots(
        cell, system.md_eip, system.liquid_K[1], temperature, rng, MD_SNAPSHOTS
    )


RECIPES: dict[str, Callable[[System, np.random.Generator], list[Atoms]]] = {
    "bulk-fcc": _bulk("fcc"),
    "bulk-hcp": _bulk("hcp"),
    "bulk-bcc": _bulk("bcc"),
    "vacancy": _vacancy,
    "surface": _surface,
    "md-solid": _md(_solid_start, "solid_K"),
    "md-liquid": _md(_liquid_start, "liquid_K", scale_range=(1.0, 1.05), equilibration=800),
    "md-vacancy": _md(_vacancy_cell, "solid_K"),
    "md-surface": _md(_slab, "solid_K"),
    "md-solid-liquid": _solid_liquid,
    # diamond kinds after the others: a kind's random stream is its position here
    "diamond-strain": diamond.strained,
    "diamond-shear": diamond.sheared,
    "diamond-vacancy": diamond.vacancy,
    "diamond-interstitial": diamond.interstitial,
    "diamond-surface": diamond.surface,
    "md-diamond": _md(diamond.solid_start, "solid_K", scale_range=(0.99, 1.02)),
    "md-diamond-vacancy": _md(diamond.vacancy_cell, "solid_K", scale_range=(0.99, 1.02)),
    "md-diamond-liquid": _md(diamond.liquid_start, "liquid_K", scale_range=(0.96, 0.99), equilibration=800),
}
