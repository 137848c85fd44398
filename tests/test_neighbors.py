"""Neighbour lists: agreement with ASE's for periodic, mixed and open systems; skin reuse."""
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, fcc111, molecule
from ase.neighborlist import neighbor_list

from eipnn_calc.neighbors import NeighborList, build_edges


def _pairs(atoms, edge_index, shifts):
    vectors = atoms.positions[edge_index[1]] - atoms.positions[edge_index[0]] + shifts
    return sorted(
        (int(i), int(j), *np.round(v, 6)) for i, j, v in zip(edge_index[0], edge_index[1], vectors)
    )


def _ase_pairs(atoms, cutoff):
    i, j, D = neighbor_list("ijD", atoms, cutoff)
    return sorted((int(a), int(b), *np.round(d, 6)) for a, b, d in zip(i, j, D))


@pytest.mark.parametrize(
    "atoms",
    [
        bulk("Si", "diamond", 5.43) * (1, 1, 1),  # primitive cell smaller than the cutoff
        bulk("Si", "diamond", 5.43, cubic=True),
        fcc111("Al", (2, 2, 3), vacuum=6.0),  # pbc = [True, True, False]
        molecule("CH3CH2OH"),
    ],
    ids=["primitive", "cubic", "slab", "molecule"],
)
def test_matches_ase(atoms):
    atoms = atoms.copy()
    atoms.rattle(0.05, seed=1)
    edge_index, shifts = build_edges(atoms, 5.0)
    assert _pairs(atoms, edge_index, shifts) == _ase_pairs(atoms, 5.0)


def test_molecule_far_from_origin_and_without_cell():
    atoms = molecule("C6H6")
    near = _pairs(atoms, *build_edges(atoms, 4.0))
    atoms.positions += 1e6
    far = build_edges(atoms, 4.0)
    assert len(far[0][0]) == len(near)
    assert np.allclose(np.abs(far[1]), 0.0)


def test_slab_with_zero_third_vector():
    slab = fcc111("Al", (2, 2, 2), vacuum=5.0)
    expected = _ase_pairs(slab, 5.0)
    slab.cell[2] = 0.0
    assert _pairs(slab, *build_edges(slab, 5.0)) == expected


def test_skin_rebuild_rules():
    atoms = bulk("Si", "diamond", 5.43, cubic=True)
    nl = NeighborList(cutoff=5.0, skin=1.0)
    nl.get(atoms)
    moved = atoms.copy()
    moved.positions[0] += [0.49, 0, 0]
    nl.get(moved)
    assert nl.builds == 1
    moved.positions[0] += [0.02, 0, 0]
    nl.get(moved)
    assert nl.builds == 2
    strained = moved.copy()
    strained.set_cell(moved.cell * 1.001, scale_atoms=False)
    nl.get(strained)
    assert nl.builds == 3
    swapped = strained.copy()
    swapped.numbers[0] = 6
    nl.get(swapped)
    assert nl.builds == 4
    nl.get(Atoms("Si", positions=[[0, 0, 0]]))
    assert nl.builds == 5
