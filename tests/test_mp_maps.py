"""Representation maps: pooled features, t-SNE, the neighbour number, ``eipnn-maps``."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from mp_tiny import tiny_config, write_tiny_dataset

from eipnn_training.cli.maps import main as maps_main
from eipnn_training.cli.train import train
from eipnn_training.data.batching import KIND_DFT, Rows
from eipnn_training.representation_maps import MapsError, neighbour_mae, pooled_features, tsne
from eipnn_training.train.session import model_spec, prepare_data, seeded_potential


@pytest.fixture(scope="module")
def mp_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("maps")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EIPNN_CACHE", str(root / "cache"))
        config = tiny_config(write_tiny_dataset(root / "tiny.extxyz"), root / "runs",
                             pretrain={"epochs": 1}, train={"epochs": 1, "batch_size": 8})
        train(config)
        yield {"root": root, "config": config}


def test_pooled_features_are_per_configuration_means(mp_run):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EIPNN_CACHE", str(mp_run["root"] / "cache"))
        data = prepare_data(mp_run["config"])
    potential = seeded_potential(model_spec(mp_run["config"], data.species), 0)
    indices = data.split.splits["train"][:5]
    rows = Rows(indices, data.split.dataset.energies_ev(indices), np.ones(5), np.full(5, KIND_DFT))
    pooled = pooled_features(potential, data.loader(rows, batch_size=3), torch.float64)
    assert pooled.shape == (5, 8)
    for r in range(5):  # one configuration at a time, averaged by hand
        (batch,) = list(data.loader(Rows(indices[r:r + 1], rows.targets[r:r + 1], np.ones(1),
                                         np.full(1, KIND_DFT)), 1).epoch(0))
        batch = batch.to("cpu", torch.float64)
        edges, vectors, lengths = potential.edge_geometry(batch.positions, batch.edge_index, batch.edge_shift)
        with torch.no_grad():
            atoms = potential.representation(batch.species, edges, vectors, lengths)
        np.testing.assert_allclose(pooled[r], atoms.mean(dim=0).numpy(), rtol=1e-10, atol=1e-12)


def test_neighbour_mae_by_hand():
    # Two tight clusters far apart: each point's nearest neighbour is its twin.
    coordinates = np.array([[0.0, 0.0], [0.0, 0.1], [10.0, 0.0], [10.0, 0.1]])
    values = np.array([1.0, 1.5, -2.0, -2.0])
    assert neighbour_mae(coordinates, values, k=1) == pytest.approx((0.5 + 0.5 + 0 + 0) / 4)


def test_tsne_is_reproducible_from_its_seed():
    features = np.random.default_rng(0).normal(size=(30, 6))
    first, again = tsne(features, seed=2), tsne(features, seed=2)
    assert first.shape == (30, 2)
    np.testing.assert_allclose(first, again)
    with pytest.raises(MapsError, match="at least 5"):
        tsne(features[:3])


def test_maps_command_writes_three_panels(mp_run, tmp_path, capsys):
    output = tmp_path / "maps.png"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EIPNN_CACHE", str(mp_run["root"] / "cache"))
        assert maps_main([str(mp_run["config"].run_dir), "-o", str(output), "--perplexity", "5"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list(summary["neighbour_mae_ev_per_atom"]) == ["random init", "after MP pretraining", "after fine-tuning"]
    assert summary["num_configurations"] == sum(len(v) for k, v in prepare_split_sizes(mp_run).items())


def prepare_split_sizes(mp_run) -> dict:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EIPNN_CACHE", str(mp_run["root"] / "cache"))
        splits = prepare_data(mp_run["config"]).split.splits
    return {k: v for k, v in splits.items() if k != "unlabeled"}


def test_maps_refuse_a_run_without_pretraining_and_the_sealed_pool(mp_run, tmp_path):
    (tmp_path / "results.json").write_text(json.dumps({"test_config_mae_ev": 1.0}))
    with pytest.raises(MapsError, match="not a finished mp"):
        maps_main([str(tmp_path), "--debug"])  # --debug: the error is raised, not printed
    with pytest.MonkeyPatch.context() as patch, pytest.raises(MapsError, match="DFT-labelled"):
        patch.setenv("EIPNN_CACHE", str(mp_run["root"] / "cache"))
        maps_main([str(mp_run["config"].run_dir), "--splits", "unlabeled", "--debug"])
