"""Reusable physics checks for any ASE calculator (every model's tests call these).

Numerical derivatives live here once: central differences in float64.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
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


def assert_smooth_through_the_cutoff(calc, cutoff_angstrom: float, element: str = "Si") -> None:
    """A dimer pulled through r_c: the interaction energy and the force fall to zero
    continuously (a pair crossing the cutoff in MD leaves no jump); ``calc`` without a skin."""

    def dimer(r: float) -> tuple[float, float]:
        atoms = Atoms(f"{element}2", positions=[[0, 0, 0], [r, 0, 0]])
        atoms.calc = calc
        return atoms.get_potential_energy(), atoms.get_forces()[1, 0]

    far_energy, far_force = dimer(cutoff_angstrom + 0.5)
    assert far_force == 0.0
    near_energy, near_force = dimer(cutoff_angstrom - 1.0)
    assert abs(near_energy - far_energy) > 1e-4 and abs(near_force) > 1e-4  # a test of something
    energy, force = dimer(cutoff_angstrom - 1e-3)
    assert abs(energy - far_energy) < 1e-4 * abs(near_energy - far_energy)
    assert abs(force) < 1e-2 * abs(near_force)


def nve_energy_drift(calc, temperature_K: float, steps: int, repeat: int = 2, seed: int = 0) -> float:
    """Max |E_total - E_total(0)| (eV/atom) of diamond Si (8 repeat^3 atoms) in velocity
    Verlet with 1 fs steps from velocities at ``temperature_K``."""
    from ase import units
    from ase.build import bulk
    from ase.md.velocitydistribution import Stationary, thermalize_momenta
    from ase.md.verlet import VelocityVerlet

    atoms = bulk("Si", "diamond", 5.431, cubic=True).repeat(repeat)
    thermalize_momenta(atoms, temperature_K=temperature_K, rng=np.random.default_rng(seed))
    Stationary(atoms)
    atoms.calc = calc
    totals = []
    dyn = VelocityVerlet(atoms, timestep=1.0 * units.fs)
    dyn.attach(lambda: totals.append(atoms.get_total_energy()), 5)
    dyn.run(steps)
    totals = np.array(totals) / len(atoms)
    return float(np.abs(totals - totals[0]).max())


def strained_rattled_si(seed: int) -> Atoms:
    """The 8-atom cubic diamond cell, sheared and strained by ~2 % and rattled by 0.1 Å:
    no symmetry left to hide a wrong derivative."""
    from ase.build import bulk

    atoms = bulk("Si", "diamond", 5.431, cubic=True)
    atoms.set_cell(atoms.cell.array @ np.array([[1.02, 0.01, 0], [0, 0.99, 0.02], [0, 0, 1.01]]), scale_atoms=True)
    atoms.rattle(0.1, seed=seed)
    return atoms


def _energy_force_loss(potential, positions, edge_index, edge_shift, per_edge: bool, forces: bool):
    """Energy, forces (None without) and the weight gradients of an energy (+ force) loss,
    through the model's default path or, with ``per_edge``, every layer on every edge (the
    path of the exported model's pruned layers, evaluated per edge)."""
    potential.zero_grad()
    positions = positions.clone().requires_grad_(forces)
    edge_index, vectors, lengths = potential.edge_geometry(positions, edge_index, edge_shift)
    every_edge = [lengths.shape[0]] * potential.representation.num_layers if per_edge else None
    species = torch.zeros(len(positions), dtype=torch.long)
    energy = potential.atomic_energies_from_edges(species, edge_index, vectors, lengths, every_edge).sum()
    loss, predicted = (energy + 5.0) ** 2, None
    if forces:
        (predicted,) = torch.autograd.grad(-energy, positions, create_graph=True)
        loss = loss + 10.0 * ((predicted - 0.1) ** 2).sum()
    loss.backward()
    grads = [p.grad.clone() for p in potential.parameters() if p.grad is not None]
    return energy.item(), None if predicted is None else predicted.detach(), grads


def assert_by_length_equals_per_edge(potential, positions, edge_index, edge_shift) -> None:
    """A model's training paths that compute functions of the edge length once per distinct
    length (``distinct_lengths``) give the per-edge model's energy, forces and the weight
    gradients of an energy loss and of an energy + force loss (the double backward)."""
    for forces in (False, True):
        fast = _energy_force_loss(potential, positions, edge_index, edge_shift, False, forces)
        edge = _energy_force_loss(potential, positions, edge_index, edge_shift, True, forces)
        assert fast[0] == pytest.approx(edge[0], rel=1e-12)
        if forces:
            torch.testing.assert_close(fast[1], edge[1], rtol=1e-10, atol=1e-12)
        assert len(fast[2]) == len(edge[2]) > 0
        for a, b in zip(fast[2], edge[2]):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


def diamond_graph(rattle: float, cutoff: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Positions, edge index and edge shifts (float64 tensors, Å) of 64-atom diamond Si,
    rattled by ``rattle`` Å (0: every length repeated many times)."""
    from ase.build import bulk
    from ase.neighborlist import neighbor_list

    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat(2)
    if rattle:
        atoms.rattle(rattle, seed=3)
    i, j, shift = neighbor_list("ijS", atoms, cutoff)
    return (torch.tensor(atoms.positions), torch.tensor(np.stack([i, j])),
            torch.tensor(shift @ atoms.cell.array))
