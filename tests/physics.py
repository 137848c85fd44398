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


# --- The checks every model passes (tests/test_calculator.py, test_schnet.py, test_soapnet.py) ---

def assert_forces_and_stress_are_derivatives(atoms: Atoms, indices=range(3), force_atol: float = 1e-6,
                                             stress_atol: float = 1e-7, smallest_force: float = 0.05) -> None:
    """Forces = -dE/dx for the atoms in ``indices`` and stress = (1/V) dE/d(strain), by central
    differences; ``atoms.calc`` set. The forces must not be ~0, or the check proves nothing."""
    forces, stress = atoms.get_forces(), atoms.get_stress(voigt=False)
    assert np.abs(forces).max() > smallest_force
    indices = list(indices)
    np.testing.assert_allclose(forces[indices], numerical_forces(atoms, indices=indices)[indices], atol=force_atol)
    np.testing.assert_allclose(stress, numerical_stress(atoms), atol=stress_atol)


def assert_invariant(atoms: Atoms, calc, seed: int, atol: float = 1e-9) -> None:
    """Energy unchanged and forces co-rotating under a rigid rotation, unchanged under a
    translation and permuted with the atoms under a permutation."""
    atoms.calc = calc
    energy, forces = atoms.get_potential_energy(), atoms.get_forces()
    rotation = random_rotation(seed)
    turned = rotated(atoms, rotation)
    turned.calc = calc
    assert abs(turned.get_potential_energy() - energy) < atol
    np.testing.assert_allclose(turned.get_forces(), forces @ rotation.T, atol=atol)
    moved = atoms.copy()
    moved.positions += np.random.default_rng(seed).normal(0.0, 50.0, 3)
    moved.calc = calc
    assert abs(moved.get_potential_energy() - energy) < atol
    np.testing.assert_allclose(moved.get_forces(), forces, atol=atol)
    order = np.random.default_rng(seed).permutation(len(atoms))
    permuted = atoms[order]
    permuted.calc = calc
    assert abs(permuted.get_potential_energy() - energy) < atol
    np.testing.assert_allclose(permuted.get_forces(), forces[order], atol=atol)


def assert_extensive(atoms: Atoms, make_calc, repeat=(2, 1, 1), rel: float = 1e-10) -> None:
    """A periodic supercell has the energy of its copies and the same stress."""
    atoms.calc = make_calc()
    supercell = atoms.repeat(repeat)
    supercell.calc = make_calc()
    copies = int(np.prod(repeat))
    assert abs(supercell.get_potential_energy() - copies * atoms.get_potential_energy()) <= rel * abs(
        copies * atoms.get_potential_energy())
    np.testing.assert_allclose(supercell.get_stress(), atoms.get_stress(), atol=1e-10)
