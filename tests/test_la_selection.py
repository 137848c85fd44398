"""Selection from the pool: class K never selected, labels, confidences, options."""
from __future__ import annotations

import numpy as np
import pytest

from eipnn_training.data.batching import KIND_EIP
from eipnn_training.strategies.label_augmentation.selection import confidence_third, select


def random_probabilities(n: int, classes: int, seed: int) -> np.ndarray:
    logits = np.random.default_rng(seed).normal(size=(n, classes)) * 3
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


def test_class_k_is_never_selected_and_labels_follow_the_prediction():
    pool = np.arange(100, 400)
    probabilities = random_probabilities(300, 4, seed=0)  # 3 EIPs + class K
    energies = np.random.default_rng(1).normal(size=(300, 3))
    energies[5, :] = np.nan  # every EIP failed on pool row 5
    selection = select(pool, probabilities, energies)
    predicted = probabilities.argmax(axis=1)
    assert (predicted == 3).sum() > 50  # the test has class-K predictions to drop
    assert not np.isin(selection.indices, pool[predicted == 3]).any()
    assert (selection.classes < 3).all()
    rows = selection.indices - 100
    assert np.array_equal(selection.energies_ev, energies[rows, selection.classes])
    assert np.array_equal(selection.confidence, probabilities[rows, selection.classes])
    missing = int(predicted[5] < 3)
    assert selection.num_predicted_none == (predicted == 3).sum()
    assert selection.num_missing_label == missing
    assert len(selection) + selection.num_predicted_none + missing == 300
    training = selection.rows()
    assert (training.kind == KIND_EIP).all() and training.targets.shape == (len(selection), 1)


def test_eip_subset_keeps_only_those_eips():
    probabilities = random_probabilities(200, 4, seed=2)
    energies = np.zeros((200, 3))
    selection = select(np.arange(200), probabilities, energies, eip_columns=[0, 2])
    assert set(selection.classes.tolist()) == {0, 2}
    assert selection.num_dropped_by_options == int((probabilities.argmax(axis=1) == 1).sum())


def test_confidence_thirds_partition_the_selected():
    probabilities = random_probabilities(300, 3, seed=3)
    energies = np.zeros((300, 2))
    everything = select(np.arange(300), probabilities, energies)
    thirds = {t: select(np.arange(300), probabilities, energies, third=t) for t in ("low", "medium", "high")}
    joined = np.sort(np.concatenate([s.indices for s in thirds.values()]))
    assert np.array_equal(joined, everything.indices)
    assert thirds["low"].confidence.max() < thirds["medium"].confidence.min()
    assert thirds["medium"].confidence.max() < thirds["high"].confidence.min()
    assert abs(len(thirds["high"]) - 0.34 * len(everything)) <= 1


def test_confidence_third_cuts_at_the_033_and_066_quantiles():
    confidence = np.linspace(0.0, 1.0, 101)
    assert confidence_third(confidence, "low").sum() == 34  # 0.00 .. 0.33
    assert confidence_third(confidence, "high").sum() == 34  # 0.67 .. 1.00
    with pytest.raises(ValueError, match="must be all, low, medium or high"):
        confidence_third(confidence, "top")


def test_probabilities_must_have_k_plus_one_columns():
    with pytest.raises(ValueError, match=r"must be \[pool 4, K\+1 = 3\]"):
        select(np.arange(4), np.full((4, 2), 0.5), np.zeros((4, 2)))
