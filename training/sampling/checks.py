"""What every sampled configuration must pass, and what makes two of them the same.

``min_distance_angstrom``: the shortest interatomic distance, periodic images included.
``fingerprint``: the species, the volume per atom (to 0.01 Å³) and, per pair of species,
the sorted multiset of interatomic distances up to ``FINGERPRINT_CUTOFF_ANGSTROM`` (to
0.01 Å). It does not change under translation, rotation, permutation of atoms of one
species or a change of cell basis, so symmetry-equivalent vacancies or a repeated ideal
crystal count once; any real displacement of more than ~0.01 Å makes a new one.
"""
from __future__ import annotations

import hashlib

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list

FINGERPRINT_CUTOFF_ANGSTROM = 4.5
_RESOLUTION_ANGSTROM = 0.01


def min_distance_angstrom(atoms: Atoms, search_angstrom: float = 4.0) -> float:
    """The shortest distance between two atoms (or an atom and an image of itself); inf
    when none is within ``search_angstrom``."""
    distances = neighbor_list("d", atoms, search_angstrom)
    return float(distances.min()) if len(distances) else float("inf")


def fingerprint(atoms: Atoms) -> str:
    """A hash that is equal for configurations that are the same up to symmetry."""
    i, j, d = neighbor_list("ijd", atoms, FINGERPRINT_CUTOFF_ANGSTROM)
    numbers = atoms.numbers
    digest = hashlib.blake2b(digest_size=16)
    digest.update(np.sort(numbers).astype(np.int64).tobytes())
    volume = abs(atoms.cell.volume) if atoms.pbc.all() else 0.0
    digest.update(np.int64(round(volume / len(atoms) / _RESOLUTION_ANGSTROM)).tobytes())
    digest.update(np.asarray(atoms.pbc, dtype=bool).tobytes())
    low, high = np.minimum(numbers[i], numbers[j]), np.maximum(numbers[i], numbers[j])
    for pair in sorted(set(zip(low.tolist(), high.tolist()))):
        mask = (low == pair[0]) & (high == pair[1])
        binned = np.sort(np.rint(d[mask] / _RESOLUTION_ANGSTROM).astype(np.int64))
        digest.update(np.asarray(pair, np.int64).tobytes())
        digest.update(binned.tobytes())
    return digest.hexdigest()
