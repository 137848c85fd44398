"""Reusable physics checks for any ASE calculator (every model's tests call these).

Numerical derivatives live here once: central differences in float64.
"""
from __future__ import annotations

import numpy as np
from ase import Atoms


def numerical_forces(atoms: Atoms, delta: float = 1e-4, indices=None) -> np.ndarray:
    """-dE/dx by central differences for the atoms in ``indices`` (all by default)."""
    indices = range(len(atoms)) if indices is None else indices
    forces = np.zeros((len(atoms), 3))
    original = atoms.positions.copy()
    for i in indices:
        for axis in range(3):
            energies = []
            for sign in (1, -1):
                displaced = original.copy()
                displaced[i, axis] += sign * delta
                atoms.positions = displaced
                energies.append(atoms.get_potential_energy())
            forces[i, axis] = -(energies[0] - energies[1]) / (2 * delta)
    atoms.positions = original
    return forces


def numerical_stress(atoms: Atoms, delta: float = 1e-5) -> np.ndarray:
    """(1/V) dE/d(strain) by central differences, as a 3x3 matrix in eV/Å^3."""
    cell = atoms.cell.array.copy()
    volume = atoms.get_volume()
    stress = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            energies = []
            for sign in (1, -1):
                strain = np.eye(3)
                strain[a, b] += sign * delta
                atoms.set_cell(cell @ strain, scale_atoms=True)
                energies.append(atoms.get_potential_energy())
            atoms.set_cell(cell, scale_atoms=True)
            stress[a, b] = (energies[0] - energies[1]) / (2 * delta) / volume
    return stress


def random_rotation(seed: int) -> np.ndarray:
    """A proper rotation matrix (det +1) drawn from ``seed``."""
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def rotated(atoms: Atoms, rotation: np.ndarray) -> Atoms:
    """``atoms`` with positions and cell rotated rigidly."""
    copy = atoms.copy()
    copy.positions = atoms.positions @ rotation.T
    copy.set_cell(atoms.cell.array @ rotation.T, scale_atoms=False)
    return copy
