"""train/passes.py: a step in passes of at most N atoms has the one-pass step's loss and
weight gradient, for every loss the strategies use (batch means, Tukey's batch scale)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from models import sw_configurations

from eipnn_training.data.batching import KIND_DFT, KIND_EIP, Rows, collate, select_rows
from eipnn_training.data.dataset import dataset_from_atoms
from eipnn_training.data.graphs import build_graphs
from eipnn_training.models.build import ModelSpec, build_potential
from eipnn_training.strategies.label_augmentation.tukey import AugmentedForceLoss, AugmentedLoss
from eipnn_training.train.loop import FitSettings, _step_backward
from eipnn_training.train.losses import ForceMSE, rows_for_forces
from eipnn_training.train.metrics import batch_energies
from eipnn_training.train.passes import row_groups, sub_batch

CUTOFF = 4.0


@pytest.fixture(scope="module")
def batch():
    """Six SW-labelled Si cells (8 and 16 atoms), DFT and EIP rows, with forces."""
    configurations = sw_configurations(6, 5)
    energies = [a.get_potential_energy() for a in configurations]
    forces = [a.get_forces() for a in configurations]
    configurations[2] = configurations[2].repeat((2, 1, 1))  # the SW labels of the double cell:
    energies[2], forces[2] = 2 * energies[2], np.tile(forces[2], (2, 1))
    dataset = dataset_from_atoms(configurations)
    graphs = build_graphs(dataset, CUTOFF, progress=False)
    targets = np.array(energies)[:, None] + np.linspace(-0.5, 0.5, 6)[:, None]  # residuals of both signs
    kinds = np.array([KIND_DFT, KIND_EIP, KIND_DFT, KIND_EIP, KIND_EIP, KIND_DFT])
    rows = Rows(np.arange(6), targets, np.ones(6), kinds, forces=forces)
    return collate(graphs, graphs.species_index(["Si"]), rows, np.arange(6)).to("cpu", torch.float64)


def test_rows_are_grouped_up_to_the_atom_limit():
    assert row_groups(torch.tensor([8, 8, 16, 8, 8]), 16) == [(0, 2), (2, 3), (3, 5)]
    assert row_groups(torch.tensor([8, 8, 16, 8, 8]), 10) == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]
    assert row_groups(torch.tensor([20]), 10) == [(0, 1)]  # a row larger than the limit alone


def test_a_sub_batch_is_its_rows(batch):
    torch.manual_seed(0)
    potential = build_potential(ModelSpec("schnet", ["Si"], CUTOFF, {"num_features": 8, "num_interactions": 2,
                                                                      "num_rbf": 8}, 8)).double()
    whole = batch_energies(potential, batch)
    part = sub_batch(batch, 2, 4)
    assert part.num_atoms.tolist() == [16, 8] and part.positions.shape[0] == 24
    torch.testing.assert_close(batch_energies(potential, part), whole[2:4])
    torch.testing.assert_close(part.forces, batch.forces[16:40])
    keep = torch.tensor([True, False, True, False, False, True])  # rows 0, 2, 5: atoms 0-7, 16-31, 48-55
    picked = select_rows(batch, keep)
    assert picked.num_atoms.tolist() == [8, 16, 8] and picked.batch.tolist() == [0] * 8 + [1] * 16 + [2] * 8
    torch.testing.assert_close(batch_energies(potential, picked), whole[keep])
    torch.testing.assert_close(picked.forces, torch.cat([batch.forces[0:8], batch.forces[16:32], batch.forces[48:56]]))


LOSSES = {
    "energies": dict(),
    "energies and forces": dict(force_weight=10.0),
    "LA with Tukey on energies and forces": dict(loss=AugmentedLoss(0.5, 2.0), force_weight=10.0,
                                                 force_loss=AugmentedForceLoss(10.0, 0.5, 2.0, 1.0)),
    "LA with DFT forces only": dict(loss=AugmentedLoss(0.5, 2.0), force_weight=10.0,
                                    force_loss=AugmentedForceLoss(10.0, 0.5, 2.0, 0.0)),
}


@pytest.mark.parametrize("kind", ["schnet", "gemnet"])
@pytest.mark.parametrize("loss", list(LOSSES))
def test_passes_give_the_one_pass_loss_and_gradient(batch, kind, loss):
    hyper = {"schnet": {"num_features": 8, "num_interactions": 2, "num_rbf": 8},
             "gemnet": {"num_blocks": 1, "atom_features": 8, "edge_features": 8, "triplet_features": 4,
                        "rbf_features": 4, "cbf_features": 4, "bilinear_features": 4, "num_spherical": 3,
                        "num_radial": 4, "num_atom_layers": 1, "triplet_cutoff_angstrom": 3.0}}[kind]
    torch.manual_seed(1)
    potential = build_potential(ModelSpec(kind, ["Si"], CUTOFF, hyper, 8)).double()
    results = []
    for limit in (None, 10, 24):
        settings = FitSettings(dtype=torch.float64, max_atoms_per_pass=limit, **LOSSES[loss])
        value = _step_backward(potential, batch, settings)
        results.append((float(value.detach()), [p.grad.clone() for p in potential.parameters() if p.grad is not None]))
    assert len(results[0][1]) > 0
    for value, gradients in results[1:]:
        assert value == pytest.approx(results[0][0], rel=1e-12)
        assert len(gradients) == len(results[0][1])
        for a, b in zip(gradients, results[0][1]):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


class AllRows:
    """A force term that does not say which rows it uses: forces of every row are computed."""

    def __init__(self, term) -> None:
        self.term = term

    def __call__(self, forces: torch.Tensor, batch) -> torch.Tensor:
        return self.term(forces, batch)


@pytest.mark.parametrize("term", [ForceMSE(10.0), AugmentedForceLoss(10.0, 0.5, 2.0, 0.0)],
                         ids=["DFT forces", "LA, DFT forces only"])
@pytest.mark.parametrize("kind", ["schnet", "soapnet"])
def test_forces_of_the_rows_a_term_uses_alone_give_the_same_step(batch, term, kind):
    """The step computes forces only for the rows with a force term (here the 3 DFT rows of
    6), and its loss and weight gradient are those of computing every row's forces."""
    assert rows_for_forces(term, batch).tolist() == [True, False, True, False, False, True]
    hyper = {"schnet": {"num_features": 8, "num_interactions": 2, "num_rbf": 8},
             "soapnet": {"n_max": 3, "l_max": 2, "num_features": 8, "num_dense": 2}}[kind]
    torch.manual_seed(2)
    potential = build_potential(ModelSpec(kind, ["Si"], CUTOFF, hyper, 8)).double()
    batch_energies(potential, batch)  # SOAPNet's standardisation from a first batch, in both
    potential.eval()
    results = []
    for force_loss in (term, AllRows(term)):
        settings = FitSettings(dtype=torch.float64, loss=AugmentedLoss(0.5, 2.0), force_loss=force_loss)
        value = _step_backward(potential, batch, settings)
        results.append((float(value.detach()), [p.grad.clone() for p in potential.parameters() if p.grad is not None]))
    (split, split_gradients), (full, full_gradients) = results
    assert split == pytest.approx(full, rel=1e-12)
    assert len(split_gradients) == len(full_gradients) > 0
    for a, b in zip(split_gradients, full_gradients):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
