"""MP's objective: masked multi-task MSE, the validation metric, per-output references."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk

from eipnn_training.data.batching import KIND_DFT, KIND_EIP, Rows, collate
from eipnn_training.data.dataset import dataset_from_atoms
from eipnn_training.data.graphs import build_graphs
from eipnn_training.strategies.multitask.objective import multitask_mse
from eipnn_training.train.losses import ForceMSE

NAN = float("nan")


def _batch(targets: np.ndarray, kind: int = KIND_EIP):
    """A real collated batch of len(targets) small Si cells with the given [B, K] targets."""
    configurations = [bulk("Si", "diamond", a=5.43 + 0.01 * i) for i in range(len(targets))]
    graphs = build_graphs(dataset_from_atoms(configurations), 4.0, progress=False)
    species_index = graphs.species_index(["Si"])
    rows = Rows(np.arange(len(targets)), targets, np.ones(len(targets)), np.full(len(targets), kind))
    return collate(graphs, species_index, rows, np.arange(len(targets)))


def test_masked_mse_equals_hand_computed_value_over_present_entries():
    targets = np.array([[1.0, NAN, 3.0], [NAN, NAN, -2.0], [0.5, 4.0, NAN]])
    batch = _batch(targets)
    predicted = torch.tensor([[2.0, 100.0, 1.0], [7.0, -9.0, -1.0], [0.0, 1.0, 50.0]], dtype=torch.float64)
    # Present: (0,0) err 1, (0,2) err -2, (1,2) err 1, (2,0) err -0.5, (2,1) err -3.
    expected = (1.0 + 4.0 + 1.0 + 0.25 + 9.0) / 5
    assert float(multitask_mse(predicted, batch)) == pytest.approx(expected)


def test_missing_entries_change_neither_loss_nor_gradient():
    targets = np.array([[1.0, NAN], [NAN, 2.0]])
    batch = _batch(targets)
    predicted = torch.tensor([[0.0, 5.0], [-3.0, 1.0]], dtype=torch.float64, requires_grad=True)
    loss = multitask_mse(predicted, batch)
    loss.backward()
    assert float(loss.detach()) == pytest.approx((1.0 + 1.0) / 2)
    assert predicted.grad[0, 1] == 0 and predicted.grad[1, 0] == 0
    assert predicted.grad[0, 0] != 0 and predicted.grad[1, 1] != 0
    # Any prediction in a missing slot gives the same loss.
    moved = predicted.detach().clone()
    moved[0, 1], moved[1, 0] = -1e6, 1e6
    assert float(multitask_mse(moved, batch)) == pytest.approx(float(loss.detach()))


def test_rows_of_another_kind_and_empty_batches_add_nothing():
    dft = _batch(np.array([[1.0, 2.0]]), kind=KIND_DFT)
    predicted = torch.tensor([[5.0, 5.0]], dtype=torch.float64, requires_grad=True)
    loss = multitask_mse(predicted, dft)
    assert float(loss.detach()) == 0.0
    loss.backward()  # still part of the graph: a batch without EIP entries is not an error
    none_present = _batch(np.array([[NAN, NAN]]))
    assert float(multitask_mse(predicted, none_present).detach()) == 0.0


def test_eip_force_mse_skips_missing_eip_entries():
    """Forces [N, K, 3] with NaN where an EIP has no entry: masked out of the force MSE."""
    targets = np.array([[1.0, 2.0], [3.0, NAN]])
    configurations = [bulk("Si", "diamond", a=5.43 + 0.01 * i) for i in range(2)]
    graphs = build_graphs(dataset_from_atoms(configurations), 4.0, progress=False)
    forces = [np.arange(12.0).reshape(2, 2, 3), np.ones((2, 2, 3))]
    forces[1][:, 1] = NAN  # EIP 1 failed on configuration 1
    rows = Rows(np.arange(2), targets, np.ones(2), np.full(2, KIND_EIP), forces)
    batch = collate(graphs, graphs.species_index(["Si"]), rows, np.arange(2))
    assert batch.forces.shape == (4, 2, 3)
    assert batch.force_mask.tolist() == [[True, True], [True, True], [True, False], [True, False]]
    predicted = torch.zeros(4, 2, 3, dtype=torch.float64)
    predicted[2:, 1] = 1e6  # where the label is missing: must not count
    present = np.concatenate([forces[0].reshape(-1), forces[1][:, 0].reshape(-1)])
    assert float(ForceMSE(2.0, kind=KIND_EIP)(predicted, batch)) == pytest.approx(2.0 * np.mean(present ** 2))
    assert float(ForceMSE(2.0, kind=KIND_DFT)(predicted, batch)) == 0.0  # no DFT rows
