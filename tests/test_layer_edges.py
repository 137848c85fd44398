"""layer_edges: with padding atoms, each layer may use only the edges it needs.

The KIM driver hands the model the receptive field of the contributing atoms with the edges
ordered by how far their receiver is from a contributing atom, and tells each layer how
many leading edges it needs. These tests build the same graph in Python and check that the
pruned evaluation gives the contributing atoms exactly the energies and forces of the full
one.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.neighborlist import neighbor_list

from eipnn_training.models.build import ModelSpec, build_potential
from eipnn_training.models.tabulated import tabulated

CUTOFF = 5.0


def _padded_graph(num_layers: int, cutoff: float = CUTOFF):
    """A Si cluster whose middle atoms contribute and whose outer atoms are padding; edges
    in breadth-first order from the contributing atoms, as the KIM driver builds them."""
    atoms = bulk("Si", "diamond", 5.43, cubic=True) * (5, 5, 5)
    atoms.rattle(0.05, seed=3)
    atoms.pbc = False
    centre = atoms.positions.mean(axis=0)
    contributing = np.linalg.norm(atoms.positions - centre, axis=1) < 4.0
    i, j = neighbor_list("ij", atoms, cutoff)
    neighbours = [j[i == a] for a in range(len(atoms))]
    depth = np.full(len(atoms), -1)
    depth[contributing] = 0
    frontier = list(np.flatnonzero(contributing))
    receivers, senders, layer_counts = [], [], []
    for d in range(num_layers):
        following = []
        for a in frontier:
            for b in neighbours[a]:
                if depth[b] < 0:
                    depth[b] = d + 1
                    following.append(b)
                receivers.append(a)
                senders.append(b)
        frontier = following
        layer_counts.append(len(receivers))
    used = np.flatnonzero(depth >= 0)  # the receptive field; the rest is left out
    node = -np.ones(len(atoms), dtype=np.int64)
    node[used] = np.arange(len(used))
    edge_index = torch.tensor(np.array([node[receivers], node[senders]]))
    layer_edges = torch.tensor([layer_counts[num_layers - 1 - layer] for layer in range(num_layers)])
    return atoms, used, contributing[used], edge_index, layer_edges


def _evaluate(potential, atoms, used, mask, edge_index, layer_edges=None):
    positions = torch.tensor(atoms.positions[used])
    species = torch.zeros(len(used), dtype=torch.int64)
    shifts = torch.zeros(edge_index.shape[1], 3, dtype=torch.float64)
    args = [positions, species, edge_index, shifts, torch.tensor(mask)]
    if layer_edges is not None:
        args.append(layer_edges)
    return potential(*args)


@pytest.mark.parametrize("kind", ["schnet", "cgcnn"])
@pytest.mark.parametrize("tabulate", [False, True], ids=["exact", "tabulated"])
@pytest.mark.parametrize("num_layers", [2, 3])
def test_pruned_layers_give_the_contributing_atoms_the_full_result(num_layers, tabulate, kind):
    """For every message-passing model, also in the tabulated form the KIM driver runs."""
    torch.manual_seed(0)
    layers = {"schnet": "num_interactions", "cgcnn": "num_layers"}[kind]
    spec = ModelSpec(kind, ["Si"], CUTOFF, {"num_features": 16, layers: num_layers, "num_rbf": 16})
    potential = build_potential(spec).double()
    if tabulate:
        potential.representation = tabulated(potential.representation, CUTOFF)
    potential = torch.jit.script(potential)
    atoms, used, mask, edge_index, layer_edges = _padded_graph(num_layers)
    assert layer_edges[-1] < layer_edges[0] == edge_index.shape[1]  # there is something to prune
    full = _evaluate(potential, atoms, used, mask, edge_index)
    pruned = _evaluate(potential, atoms, used, mask, edge_index, layer_edges)
    assert pruned["energy"].item() == pytest.approx(full["energy"].item(), rel=1e-12)
    torch.testing.assert_close(pruned["energies"], full["energies"], rtol=0, atol=1e-12)
    torch.testing.assert_close(pruned["forces"], full["forces"], rtol=0, atol=1e-12)
    torch.testing.assert_close(pruned["virial"], full["virial"], rtol=0, atol=1e-10)


def test_too_few_edges_for_a_layer_changes_the_result():
    """The check above can fail: cutting a layer's edges below what it needs is visible."""
    torch.manual_seed(0)
    spec = ModelSpec("schnet", ["Si"], CUTOFF, {"num_features": 16, "num_interactions": 2, "num_rbf": 16})
    potential = torch.jit.script(build_potential(spec).double())
    atoms, used, mask, edge_index, layer_edges = _padded_graph(2)
    full = _evaluate(potential, atoms, used, mask, edge_index)
    starved = _evaluate(potential, atoms, used, mask, edge_index, torch.tensor([layer_edges[1], layer_edges[1]]))
    assert abs(starved["energy"].item() - full["energy"].item()) > 1e-6


def test_edges_beyond_the_cutoff_are_dropped_and_the_prefixes_follow():
    """Given edges longer than the model's cutoff (a skin), the layer prefixes are counted
    over the edges kept."""
    torch.manual_seed(0)
    spec = ModelSpec("schnet", ["Si"], CUTOFF, {"num_features": 16, "num_interactions": 2, "num_rbf": 16})
    potential = torch.jit.script(build_potential(spec).double())
    atoms, used, mask, edge_index, layer_edges = _padded_graph(2)
    _, skin_used, skin_mask, skin_edges, skin_layers = _padded_graph(2, cutoff=CUTOFF + 0.6)
    assert skin_edges.shape[1] > edge_index.shape[1]
    full = _evaluate(potential, atoms, used, mask, edge_index)
    pruned = _evaluate(potential, atoms, skin_used, skin_mask, skin_edges, skin_layers)
    assert pruned["energy"].item() == pytest.approx(full["energy"].item(), rel=1e-12)
