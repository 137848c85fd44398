"""Strategy ``mp``: pretraining on EIP energies, its stored reuse, fine-tuning from the
pretrained representation with a fresh head, and ``mp+la``'s dependency on LA."""
from __future__ import annotations

import json
import os
from dataclasses import replace

import numpy as np
import pytest
import torch
from mp_tiny import PRETRAIN_EIPS, tiny_config, write_tiny_dataset

from eipnn_training.cli.train import train
from eipnn_training.config import ConfigError, load_config
from eipnn_training.data.batching import KIND_EIP
from eipnn_training.eip import label
from eipnn_training.strategies.multitask import initializer, pretrain, representation_hash
from eipnn_training.strategies.multitask.cache import PretrainCacheError, pretrain_key
from eipnn_training.strategies.multitask.finetune import (
    PretrainMismatch,
    load_representation,
)
from eipnn_training.strategies.multitask.objective import multitask_mse
from eipnn_training.strategies.multitask.pretrain import pretrain_settings
from eipnn_training.strategies.multitask.targets import eip_rows
from eipnn_training.train.loop import _step_loss
from eipnn_training.train.metrics import batch_energies
from eipnn_training.train.session import model_spec, prepare_data, seeded_potential


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A private cache (labels, graphs), the tiny data set, and one finished mp run."""
    root = tmp_path_factory.mktemp("mp")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EIPNN_CACHE", str(root / "cache"))
        data_path = write_tiny_dataset(root / "tiny.extxyz")
        config = tiny_config(data_path, root / "runs")
        results = train(config)
        yield {"root": root, "data": data_path, "config": config, "results": results}


def _config(workspace, **sections):
    return tiny_config(workspace["data"], workspace["root"] / "runs", **sections)


def test_mp_run_records_pretraining_and_test_metrics(workspace):
    results, config = workspace["results"], workspace["config"]
    assert np.isfinite(results["test_config_mae_ev"]) and np.isfinite(results["test_atom_mae_ev_per_atom"])
    assert results["pretrain_reused"] is False
    assert results["pretrain_eips"] == PRETRAIN_EIPS
    assert results["pretrain_seconds"] > 0
    folder = workspace["root"] / "runs" / "pretrained"
    (stored,) = folder.iterdir()
    assert str(stored) == results["pretrained_dir"]
    for name in ("pretrained.pt", "key.yaml", "config.yaml", "metrics.csv", "checkpoints/best.pt"):
        assert (stored / name).exists(), name
    lines = (stored / "metrics.csv").read_text().splitlines()
    assert lines[0].split(",")[:5] == ["epoch", "lr", "train_loss", "val_eip_mae", "val_eip_atom_mae"]
    assert len(lines) == 1 + config.pretrain.epochs
    assert (config.run_dir / "model.pt").exists()


def test_pretraining_targets_are_the_pool_eip_energies(workspace):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EIPNN_CACHE", str(workspace["root"] / "cache"))
        data = prepare_data(workspace["config"])
        pool = data.split.splits["unlabeled"]
        rows, labels = eip_rows(data, pool, PRETRAIN_EIPS, progress=False)  # the pool stays sealed
        direct = label([data.split.dataset.atoms(int(i)) for i in pool], PRETRAIN_EIPS,
                       store=False, progress=False)
    assert rows.targets.shape == (len(pool), 2)
    np.testing.assert_allclose(rows.targets, direct.energies)
    assert (rows.kind == KIND_EIP).all()
    assert data.split.dataset.unseal_log == []


def test_finetuning_starts_from_pretrained_representation_with_fresh_head(workspace):
    config, results = workspace["config"], workspace["results"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EIPNN_CACHE", str(workspace["root"] / "cache"))
        pretrained = pretrain(config)
    assert pretrained.reused
    spec = model_spec(config, ["Si"])
    potential, fresh = seeded_potential(spec, config.seed), seeded_potential(spec, config.seed)
    initializer(pretrained)(potential)
    stored = pretrained.representation_state()
    loaded = potential.representation.state_dict()
    assert loaded.keys() == stored.keys()
    assert all(torch.equal(loaded[name], stored[name]) for name in stored)
    assert not all(torch.equal(fresh.representation.state_dict()[n], stored[n]) for n in stored)
    # The head is the fresh single-output one, not the pretrained K-output head.
    assert potential.head.num_outputs == 1 and pretrained.state["head.net.2.weight"].shape[0] == 2
    for name, value in fresh.head.state_dict().items():
        assert torch.equal(potential.head.state_dict()[name], value)
    assert all(p.requires_grad for p in potential.parameters())  # nothing frozen
    # The real run started there too: the hash taken inside the trainer matches.
    assert results["finetune_start_hash"] == results["pretrained_representation_hash"]
    assert results["finetune_start_hash"] == representation_hash(stored)
    assert results["finetune_start_hash"] != representation_hash(fresh.representation.state_dict())


def test_same_pretraining_is_reused_and_a_different_one_is_not(workspace):
    first = workspace["results"]["pretrained_dir"]
    stamp = os.stat(os.path.join(first, "pretrained.pt")).st_mtime_ns
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EIPNN_CACHE", str(workspace["root"] / "cache"))
        again = train(_config(workspace, name="mp_again", train={"epochs": 1, "batch_size": 8}))
        other = pretrain(_config(workspace, pretrain={"epochs": 1}))
    assert again["pretrain_reused"] and again["pretrained_dir"] == first
    assert os.stat(os.path.join(first, "pretrained.pt")).st_mtime_ns == stamp
    assert not other.reused and str(other.folder) != first


class Crash(RuntimeError):
    pass


def test_interrupted_pretraining_continues_to_the_uninterrupted_weights(workspace, tmp_path):
    def crash_in_epoch_2(epoch: int, step: int) -> None:
        if epoch == 1 and step == 0:
            raise Crash("killed")

    settings = {"epochs": 3, "batch_size": 16}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EIPNN_CACHE", str(workspace["root"] / "cache"))
        whole = pretrain(_config(workspace, pretrain={**settings, "checkpoint_dir": str(tmp_path / "a")}))
        config = _config(workspace, pretrain={**settings, "checkpoint_dir": str(tmp_path / "b")})
        with pytest.raises(Crash):
            pretrain(config, on_batch_end=crash_in_epoch_2)
        epochs_run = set()
        resumed = pretrain(config, on_batch_end=lambda epoch, step: epochs_run.add(epoch))
    assert epochs_run == {1, 2}  # continued after the finished epoch, not started again
    assert not resumed.reused and resumed.results["best_epoch"] == whole.results["best_epoch"]
    assert len((resumed.folder / "metrics.csv").read_text().splitlines()) == 1 + 3
    for name, value in whole.state.items():
        assert torch.equal(resumed.state[name], value), name


def test_a_folder_holding_another_pretraining_is_refused(workspace):
    folder = workspace["results"]["pretrained_dir"]
    key_file = os.path.join(folder, "key.yaml")
    original = open(key_file).read()
    try:
        open(key_file, "w").write(original.replace("seed: 3", "seed: 4"))
        with pytest.MonkeyPatch.context() as patch, pytest.raises(PretrainCacheError, match="different pretraining"):
            patch.setenv("EIPNN_CACHE", str(workspace["root"] / "cache"))
            pretrain(workspace["config"])
    finally:
        open(key_file, "w").write(original)


def test_pretrained_weights_of_another_model_are_refused(workspace):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EIPNN_CACHE", str(workspace["root"] / "cache"))
        pretrained = pretrain(workspace["config"])
    wider = tiny_config(workspace["data"], workspace["root"] / "runs", model={
        "hyperparameters": {"num_features": 16, "num_interactions": 1, "num_rbf": 8}})
    potential = seeded_potential(model_spec(wider, ["Si"]), 0)
    with pytest.raises(PretrainMismatch, match="does not fit"):
        load_representation(potential, pretrained)


def test_mp_la_fine_tunes_la_from_the_same_stored_pretraining(workspace):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EIPNN_CACHE", str(workspace["root"] / "cache"))
        results = train(_config(workspace, name="mp_la", strategy="mp+la",
                                la={"eips": PRETRAIN_EIPS, "classifier_epochs": 1, "alpha": 1.0,
                                    "threshold_ev_per_atom": 1.0}))
    mp = workspace["results"]
    assert results["pretrain_reused"] and results["pretrained_dir"] == mp["pretrained_dir"]
    assert results["finetune_start_hash"] == mp["pretrained_representation_hash"]
    assert results["la"]["num_selected"] > 0 and np.isfinite(results["test_config_mae_ev"])


def test_pretrain_settings_are_validated(tmp_path):
    with pytest.raises(ConfigError, match="pretrain.lr_ratio"):
        load_config(None, ["pretrain.lr_ratio=0.5"])
    with pytest.raises(ConfigError, match="pretrain.epochs"):
        load_config(None, ["pretrain.epochs=0"])
    with pytest.raises(ConfigError, match="pretrain.max_unlabeled"):
        load_config(None, ["pretrain.max_unlabeled=0"])


def test_results_json_on_disk_matches_returned_results(workspace):
    on_disk = json.loads((workspace["config"].run_dir / "results.json").read_text())
    assert on_disk["pretrained_dir"] == workspace["results"]["pretrained_dir"]
    assert on_disk["finetune_start_hash"] == workspace["results"]["finetune_start_hash"]


def test_pretraining_with_eip_forces_fits_every_head_to_its_eip_forces(workspace, tmp_path):
    """pretrain.force_weight > 0: rows carry each EIP's forces [N, K, 3]; the step's loss is
    the energy MSE + w * MSE of head k's -dE_k/dx against EIP k's forces; a few epochs run,
    validated and checkpointed on the combined metric, in a pretraining of its own."""
    weight = 0.5
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EIPNN_CACHE", str(workspace["root"] / "cache"))
        config = _config(workspace, pretrain={"epochs": 3, "batch_size": 16, "force_weight": weight,
                                              "checkpoint_dir": str(tmp_path)})
        data = prepare_data(config)
        pool = data.split.splits["unlabeled"][:6]
        rows, _ = eip_rows(data, pool, PRETRAIN_EIPS, progress=False, with_forces=True)
        direct = label([data.split.dataset.atoms(int(i)) for i in pool], PRETRAIN_EIPS, store=False,
                       progress=False, with_forces=True)
        pretrained = pretrain(config)
    for i in range(len(pool)):
        assert rows.forces[i].shape == (direct.n_atoms[i], 2, 3)
        for k in range(2):
            np.testing.assert_allclose(rows.forces[i][:, k], direct.forces[k][i])
    # The loss of one step has the force term, by hand with one autograd call per head.
    potential = seeded_potential(model_spec(config, data.species), 0, num_outputs=2).double()
    batch = next(data.loader(rows, 6).epoch(0)).to("cpu", torch.float64)
    settings = pretrain_settings(config)
    loss = _step_loss(potential, batch, settings)
    positions = batch.positions.detach().clone().requires_grad_(True)
    energies = batch_energies(potential, replace(batch, positions=positions))
    squared = []
    for k in range(2):
        (grad,) = torch.autograd.grad(energies[:, k].sum(), positions, retain_graph=True)
        squared.append((-grad - torch.from_numpy(np.concatenate([f[:, k] for f in rows.forces]))) ** 2)
    expected = multitask_mse(energies, batch) + weight * torch.cat(squared).mean()
    assert float(loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-10)
    assert float((loss - multitask_mse(energies, batch)).detach()) > 0
    # The run: force metrics every epoch, the best epoch by the combined metric.
    history = (pretrained.folder / "metrics.csv").read_text().splitlines()
    header = history[0].split(",")
    assert {"val_eip_force_mae", "val_eip_combined_mae"} <= set(header) and len(history) == 1 + 3
    combined = [float(line.split(",")[header.index("val_eip_combined_mae")]) for line in history[1:]]
    assert pretrained.results["best_epoch"] == 1 + combined.index(min(combined))
    assert pretrained.results["force_weight"] == weight
    assert 0 < pretrained.results["best_val_eip_force_mae_ev_per_angstrom"] < 10
    assert str(pretrained.folder) != workspace["results"]["pretrained_dir"]


def test_energy_only_pretraining_keeps_its_key():
    """pretrain.force_weight 0 leaves the key as before forces existed (stored pretrainings
    are still found); any other weight is part of it."""
    config = load_config(None, ["pretrain.force_weight=0"])
    spec = model_spec(config, ["Si"])
    assert "force_weight" not in pretrain_key(config, spec, "g", ["e"])["pretrain"]
    forced = load_config(None, ["pretrain.force_weight=0.1"])
    assert pretrain_key(forced, spec, "g", ["e"])["pretrain"]["force_weight"] == 0.1
