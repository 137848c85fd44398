"""The K+1 classifier: head layout, reproducible initial weights, confusion matrix, and
training that keeps the weights of the best validation accuracy."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk
from torch import nn

from eipnn_training.data.batching import KIND_DFT, BatchLoader, Rows
from eipnn_training.data.dataset import dataset_from_atoms
from eipnn_training.data.graphs import build_graphs
from eipnn_training.models.build import ModelSpec
from eipnn_training.models.layers import ShiftedSoftplus
from eipnn_training.strategies.label_augmentation.classifier import build_classifier
from eipnn_training.strategies.label_augmentation.classifier_training import (
    ClassifierSettings,
    class_probabilities,
    confusion_matrix,
    fit_classifier,
)

SPEC = ModelSpec("schnet", ["Si"], 4.0, {"num_features": 8, "num_interactions": 1, "num_rbf": 8}, 12)


def lattices():
    """Diamond (class 0) and simple cubic (class 1) cells, a little strained and rattled:
    a task a small SchNet separates in a few epochs."""
    rng = np.random.default_rng(0)
    configurations, classes = [], []
    for k in range(48):
        name, a = (("diamond", 5.43), ("sc", 2.55))[k % 2]
        atoms = bulk("Si", name, a=a * rng.uniform(0.97, 1.03))
        atoms.rattle(0.03, seed=k)
        configurations.append(atoms)
        classes.append(k % 2)
    dataset = dataset_from_atoms(configurations)
    graphs = build_graphs(dataset, SPEC.cutoff_angstrom, progress=False)
    return graphs, graphs.species_index(["Si"]), np.array(classes, dtype=np.float64)


def rows(indices, classes) -> Rows:
    return Rows(indices, classes[indices, None], np.ones(len(indices)), np.full(len(indices), KIND_DFT))


def test_head_is_pool_batchnorm_mlp_and_seeded():
    model = build_classifier(SPEC, num_classes=4, seed=3)
    assert isinstance(model.norm, nn.BatchNorm1d) and model.norm.num_features == 8
    layers = list(model.head)
    assert [type(x) for x in layers] == [nn.Linear, ShiftedSoftplus, nn.Linear]
    assert (layers[0].in_features, layers[0].out_features, layers[2].out_features) == (8, 12, 4)
    again, other = build_classifier(SPEC, 4, seed=3), build_classifier(SPEC, 4, seed=4)
    first = next(iter(model.state_dict()))
    assert torch.equal(model.state_dict()[first], again.state_dict()[first])
    assert not torch.equal(model.state_dict()[first], other.state_dict()[first])


def test_confusion_matrix_by_hand():
    matrix = confusion_matrix(np.array([0, 0, 1, 2, 2, 2]), np.array([0, 2, 1, 2, 2, 0]), 3)
    assert matrix.tolist() == [[1, 0, 1], [0, 1, 0], [1, 0, 2]]


def test_training_learns_and_keeps_the_best_validation_weights():
    graphs, species_index, classes = lattices()
    train = BatchLoader(graphs, species_index, rows(np.arange(32), classes), 8, shuffle=True, seed=0)
    val = BatchLoader(graphs, species_index, rows(np.arange(32, 48), classes), 16)
    model = build_classifier(SPEC, num_classes=3, seed=0)  # classes 0, 1 and "none"
    result = fit_classifier(model, train, val, ClassifierSettings(epochs=6, lr=1e-2, progress=False))
    accuracies = [row["val_accuracy"] for row in result.history]
    assert result.best_accuracy == max(accuracies) == 1.0
    assert result.best_epoch == accuracies.index(max(accuracies)) + 1
    # The model holds the best epoch's weights: its accuracy now is the best one.
    _, probabilities = class_probabilities(model, val, torch.device("cpu"), torch.float32)
    assert np.mean(probabilities.argmax(axis=1) == classes[32:]) == pytest.approx(result.best_accuracy)
    assert probabilities.sum(axis=1) == pytest.approx(np.ones(16))
    lrs = [row["lr"] for row in result.history]
    assert lrs.index(max(lrs)) == 1 and lrs[-1] == pytest.approx(1e-2 / 32)  # slanted triangular
