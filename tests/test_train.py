"""Training pipeline end to end on a small SW-labelled silicon set: learning, run folder,
export, resume, force term, and the seal on the unlabelled pool."""
from __future__ import annotations

import csv
import json

import ase.io
import pytest
import torch
from models import sw_lattice_configurations
from torch._dynamo.utils import counters

from eipnn_calc.calculator import EIPNNCalculator
from eipnn_training.cli.export import export_run
from eipnn_training.cli.train import main, train
from eipnn_training.config import config_from_dict
from eipnn_training.data.errors import SealedLabelError
from eipnn_training.data.si_pbe import protocol_split
from eipnn_training.runs import RunFolderError
from eipnn_training.train.loop import FitSettings, _step_loss
from eipnn_training.train.session import model_spec, prepare_data, seeded_potential

NUM_CONFIGURATIONS = 300


def sw_configurations() -> list:
    """Strained, rattled Si in four lattices, labelled by Stillinger-Weber through KIM."""
    return sw_lattice_configurations(NUM_CONFIGURATIONS, strain=(0.96, 1.06), max_repeat=3,
                                     rattle_angstrom=0.05, forces=True)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """The dataset file (the unlabelled pool written WITHOUT energies: training must not
    need them) and a private cache folder."""
    root = tmp_path_factory.mktemp("train")
    configurations = sw_configurations()
    for index in protocol_split(NUM_CONFIGURATIONS, 1)["unlabeled"]:
        configurations[index].calc = None
    ase.io.write(root / "sw.extxyz", configurations)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EIPNN_CACHE", str(root / "cache"))
        yield root


def small_config(root, name, **train):
    return config_from_dict({
        "name": name, "runs_dir": str(root / "runs"), "seed": 3, "progress": False,
        "data": {"path": str(root / "sw.extxyz"), "split_seed": 1},
        "model": {"kind": "schnet", "cutoff_angstrom": 4.0, "head_hidden": 16,
                  "hyperparameters": {"num_features": 16, "num_interactions": 2, "num_rbf": 16}},
        "train": {"epochs": 12, "batch_size": 8, "lr": 5e-3, "lr_final": 5e-4, **train},
    })


@pytest.fixture(scope="module")
def short_run(workspace):
    """One run through the command line entry point."""
    config_path = workspace / "short.yaml"
    config_path.write_text(
        "name: short\nseed: 3\nprogress: false\n"
        f"runs_dir: {workspace / 'runs'}\n"
        f"data: {{path: {workspace / 'sw.extxyz'}, split_seed: 1}}\n"
        "model: {cutoff_angstrom: 4.0, head_hidden: 16, "
        "hyperparameters: {num_features: 16, num_interactions: 2, num_rbf: 16}}\n"
    )
    assert main([str(config_path), "train.epochs=12", "train.batch_size=8", "train.lr=5e-3", "train.lr_final=5e-4"]) == 0
    return workspace / "runs" / "short"


def read_metrics(run_dir):
    with open(run_dir / "metrics.csv") as handle:
        return list(csv.DictReader(handle))


def test_short_run_lowers_validation_mae_and_fills_the_run_folder(short_run):
    for name in ("config.yaml", "metrics.csv", "model.pt", "parity.png", "learning_curves.png",
                 "results.json", "test_predictions.csv", "checkpoints/best.pt", "checkpoints/last.pt"):
        assert (short_run / name).exists(), name
    history = read_metrics(short_run)
    assert [int(row["epoch"]) for row in history] == list(range(1, 13))
    first = float(history[0]["val_config_mae"])
    best = min(float(row["val_config_mae"]) for row in history)
    assert best < 0.75 * first  # 0.61 measured; an untrained run stays near 1
    results = json.loads((short_run / "results.json").read_text())
    assert results["best_val_config_mae_ev"] == pytest.approx(best)
    assert results["num_train"] == 36 and results["num_test"] == 12
    assert results["test_atom_mae_ev_per_atom"] < results["test_config_mae_ev"]
    assert "species:\n  - Si" in (short_run / "config.yaml").read_text()


def test_exported_model_reproduces_the_trainer_predictions(short_run, workspace):
    configurations = ase.io.read(workspace / "sw.extxyz", ":")
    calc = EIPNNCalculator(short_run / "model.pt")
    with open(short_run / "test_predictions.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 12
    for row in rows:
        atoms = configurations[int(row["index"])]
        atoms.calc = calc
        # float32 training vs float64 export: agreement to float32 rounding.
        assert atoms.get_potential_energy() == pytest.approx(float(row["predicted_ev"]), abs=2e-4)
    # Re-export of the best checkpoint gives the same file contents' predictions.
    again = export_run(short_run, short_run / "again.pt")
    atoms = configurations[int(rows[0]["index"])]
    atoms.calc = EIPNNCalculator(again)
    assert atoms.get_potential_energy() == pytest.approx(float(rows[0]["predicted_ev"]), abs=2e-4)


class Killed(Exception):
    """Stands for a SIGKILL: the loop stops in the middle of an epoch."""


def test_resume_after_a_kill_mid_epoch_matches_an_uninterrupted_run(workspace):
    whole = small_config(workspace, "whole", epochs=3)
    train(whole)

    def kill(epoch, step):
        if epoch == 1 and step == 2:
            raise Killed()

    cut = small_config(workspace, "cut", epochs=3)
    with pytest.raises(Killed):
        train(cut, on_batch_end=kill)
    assert len(read_metrics(cut.run_dir)) == 1
    with pytest.raises(RunFolderError, match="already exists"):
        train(cut)
    train(cut, resume=True)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(read_metrics(cut.run_dir)) == strip(read_metrics(whole.run_dir))
    a = torch.load(whole.run_dir / "checkpoints" / "best.pt")["model"]
    b = torch.load(cut.run_dir / "checkpoints" / "best.pt")["model"]
    assert all(torch.equal(a[key], b[key]) for key in a)
    results = [json.loads((c.run_dir / "results.json").read_text()) for c in (whole, cut)]
    assert results[0]["test_config_mae_ev"] == results[1]["test_config_mae_ev"]


def test_compiled_training_follows_the_eager_one(workspace):
    """``train.compile``: the compiler really runs the steps, and the training is the same
    up to float32 rounding (fused kernels sum in another order)."""
    torch._dynamo.reset()
    counters.clear()
    eager = small_config(workspace, "eager", epochs=3)
    compiled = small_config(workspace, "compiled", epochs=3, compile=True)
    train(eager)
    assert not counters["stats"]
    train(compiled)
    assert counters["stats"]["unique_graphs"] >= 1
    rows = [read_metrics(c.run_dir) for c in (eager, compiled)]
    for key in ("train_loss", "val_config_mae"):
        a, b = ([float(r[key]) for r in run] for run in rows)
        assert b == pytest.approx(a, rel=1e-4), key


def test_resume_needs_a_checkpoint(workspace):
    with pytest.raises(RunFolderError, match="no checkpoint to resume"):
        train(small_config(workspace, "never-started"), resume=True)


def test_unlabelled_pool_is_sealed_during_training(workspace):
    data = prepare_data(small_config(workspace, "sealed"))
    with pytest.raises(SealedLabelError, match="must not reach training"):
        data.dft_rows("unlabeled")
    assert len(data.dft_rows("train")) == 36


def test_force_term_adds_the_force_mse_of_the_model_forces(workspace):
    config = small_config(workspace, "forces", force_weight=1.0)
    data = prepare_data(config)
    potential = seeded_potential(model_spec(config, data.species), seed=0).double()
    rows = data.dft_rows("train", with_forces=True)
    batch = next(data.loader(rows, 4).epoch(0)).to("cpu", torch.float64)
    energy_only = _step_loss(potential, batch, FitSettings(force_weight=0.0))
    with_forces = _step_loss(potential, batch, FitSettings(force_weight=1.0))
    squared = []
    for k, index in enumerate(rows.indices[:4]):
        atoms = batch.batch == k
        out = potential(batch.positions[atoms].detach().clone(), batch.species[atoms],
                        *single_edges(batch, atoms), torch.ones(int(atoms.sum()), dtype=torch.bool))
        dft = torch.from_numpy(data.split.dataset.forces_ev_per_angstrom(int(index)))
        squared.append((out["forces"] - dft) ** 2)
    expected = torch.cat(squared).mean()
    assert float((with_forces - energy_only).detach()) == pytest.approx(float(expected), rel=1e-8)


def single_edges(batch, atoms):
    """The edges of one configuration of a batch, re-indexed from 0."""
    first = int(torch.nonzero(atoms)[0])
    keep = atoms[batch.edge_index[0]]
    return batch.edge_index[:, keep] - first, batch.edge_shift[keep]
