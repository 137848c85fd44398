"""SchNet's energy-only path (filters once per distinct edge length) against the general
path (filters per edge): the same energies and weight gradients, and the forces of the
exported model still come from the general path."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.neighborlist import neighbor_list

from eipnn_training.models.build import ModelSpec, build_potential

CUTOFF = 4.0
SPEC = ModelSpec("schnet", ["Si"], CUTOFF, {"num_features": 16, "num_interactions": 3, "num_rbf": 16}, 16)


def _graph(rattle: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat(2)
    if rattle:
        atoms.rattle(rattle, seed=3)
    i, j, shift = neighbor_list("ijS", atoms, CUTOFF)
    positions = torch.tensor(atoms.positions)
    edge_index = torch.tensor(np.stack([i, j]))
    edge_shift = torch.tensor(shift @ atoms.cell.array)
    return positions, edge_index, edge_shift


def _energy_and_grads(potential, positions, edge_index, edge_shift, general: bool):
    """The energy and the weight gradients; ``general`` makes the lengths require a
    gradient, which sends SchNet through its per-edge path."""
    potential.zero_grad()
    positions = positions.clone().requires_grad_(general)
    atomic = potential.atomic_energies(positions, torch.zeros(len(positions), dtype=torch.long), edge_index, edge_shift)
    energy = atomic.sum()
    energy.backward()
    return energy.item(), [p.grad.clone() for p in potential.parameters()]


@pytest.mark.parametrize("rattle", [0.0, 0.05])
def test_energy_only_path_gives_the_same_energy_and_weight_gradients(rattle):
    torch.manual_seed(0)
    potential = build_potential(SPEC).double()
    positions, edge_index, edge_shift = _graph(rattle)
    _, _, lengths = potential.edge_geometry(positions, edge_index, edge_shift)
    # Every edge has a twin of the same length, so there is work to save.
    assert len(torch.unique(lengths)) <= lengths.shape[0] // 2
    energy_general, grads_general = _energy_and_grads(potential, positions, edge_index, edge_shift, True)
    energy_fast, grads_fast = _energy_and_grads(potential, positions, edge_index, edge_shift, False)
    assert energy_fast == pytest.approx(energy_general, rel=1e-13)
    for fast, general in zip(grads_fast, grads_general):
        torch.testing.assert_close(fast, general, rtol=1e-10, atol=1e-12)


def test_a_wrong_length_table_would_be_seen():
    """The comparison above can fail: the table rows shuffled give another energy."""
    torch.manual_seed(0)
    potential = build_potential(SPEC).double()
    positions, edge_index, edge_shift = _graph(0.05)
    _, _, lengths = potential.edge_geometry(positions, edge_index, edge_shift)
    schnet = potential.representation
    x = schnet.embedding(torch.zeros(len(positions), dtype=torch.long))
    right = schnet._energy_only(x, edge_index, lengths).sum().item()
    real_unique = torch.unique

    def shuffled_unique(values, return_inverse=False):
        distinct, ids = real_unique(values, return_inverse=True)
        return distinct, (ids + 1) % len(distinct)

    torch.unique = shuffled_unique
    try:
        wrong = schnet._energy_only(x, edge_index, lengths).sum().item()
    finally:
        torch.unique = real_unique
    assert abs(wrong - right) > 1e-6


def test_exported_forces_match_finite_differences_on_a_crystal_with_equal_lengths():
    """Equal lengths of different pairs must not share a derivative: the exported model
    (positions require a gradient there) gets forces from the per-edge path."""
    torch.manual_seed(0)
    potential = torch.jit.script(build_potential(SPEC).double())
    positions, edge_index, edge_shift = _graph(0.0)
    positions[0, 0] += 0.03  # a nonzero force on atom 0 in an otherwise perfect crystal
    mask = torch.ones(len(positions), dtype=torch.bool)
    species = torch.zeros(len(positions), dtype=torch.long)
    forces = potential(positions.clone(), species, edge_index, edge_shift, mask)["forces"]
    step = 1e-5
    for axis in range(3):
        plus, minus = positions.clone(), positions.clone()
        plus[0, axis] += step
        minus[0, axis] -= step
        e_plus = potential(plus, species, edge_index, edge_shift, mask)["energy"].item()
        e_minus = potential(minus, species, edge_index, edge_shift, mask)["energy"].item()
        assert forces[0, axis].item() == pytest.approx(-(e_plus - e_minus) / (2 * step), abs=1e-7)
