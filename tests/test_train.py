"""Training pipeline end to end on a small SW-labelled silicon set: learning, run folder,
export, resume, force term, and the seal on the unlabelled pool."""
from __future__ import annotations

import csv
import json

import ase.io
import pytest
import torch
from models import sw_lattice_configurations, write_dataset
from torch._dynamo.utils import counters

from eipnn_calc.calculator import EIPNNCalculator
from eipnn_training.cli.export import export_run
from eipnn_training.cli.train import main, train
from eipnn_training.config import DEFAULT_FORCE_WEIGHT, config_from_dict
from eipnn_training.data.errors import SealedLabelError
from eipnn_training.data.si_pbe import protocol_split
from eipnn_training.runs import RunFolderError
from eipnn_training.train.loop import FitSettings, _step_loss
from eipnn_training.train.losses import ForceMSE, energy_mse
from eipnn_training.models.derivatives import predicted_forces
from eipnn_training.train.metrics import batch_energies
from eipnn_training.train.session import model_spec, prepare_data, resolve_force_weight, seeded_potential

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
    write_dataset(root / "sw.extxyz", sw_configurations(), protocol_split(NUM_CONFIGURATIONS, 1)["unlabeled"])
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EIPNN_CACHE", str(root / "cache"))
        yield root


def small_config(root, name, **train):
    """Energy-only unless ``force_weight`` is given (the data has forces: null would train them)."""
    train = {"force_weight": 0.0, **train}
    return config_from_dict({
        "name": name, "runs_dir": str(root / "runs"), "seed": 3, "progress": False,
        "data": {"path": str(root / "sw.extxyz"), "split_seed": 1},
        "model": {"kind": "schnet", "cutoff_angstrom": 4.0, "head_hidden": 16,
                  "hyperparameters": {"num_features": 16, "num_interactions": 2, "num_rbf": 16}},
        "train": {"epochs": 12, "batch_size": 8, "lr": 5e-3, "lr_final": 5e-4, **train},
        "validation": {"enabled": False},  # the card is tested once, on short_run
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
        "validation: {quick: true}\n"
    )
    assert main([str(config_path), "train.epochs=12", "train.batch_size=8", "train.lr=5e-3", "train.lr_final=5e-4",
                 "train.force_weight=0"]) == 0
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


def test_a_run_ends_with_the_property_card_of_its_model(short_run):
    results = json.loads((short_run / "results.json").read_text())
    card = results["property_card"]
    assert card["dir"] == str(short_run / "property_card") and card["quick"] is True
    assert {"a0_angstrom", "c11_gpa", "vacancy_formation_ev", "nve_stable", "passed"} <= set(card["elements"]["Si"])
    for name in ("property_card.md", "property_card.json", "ev_Si.png"):
        assert (short_run / "property_card" / name).exists(), name


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


def _force_batch(workspace, size=4):
    config = small_config(workspace, "force-batch")
    data = prepare_data(config)
    potential = seeded_potential(model_spec(config, data.species), seed=0).double()
    rows = data.dft_rows("train", with_forces=True)
    return potential, next(data.loader(rows, size).epoch(0)).to("cpu", torch.float64)


def test_force_weight_zero_is_the_energy_loss_bit_for_bit(workspace):
    """With force_weight 0 the step is the paper's: the same number and the same weight
    gradients as the energy MSE alone, even on a batch that carries forces."""
    potential, batch = _force_batch(workspace)
    loss = _step_loss(potential, batch, FitSettings(force_weight=0.0))
    loss.backward()
    got = [p.grad.clone() for p in potential.parameters()]
    potential.zero_grad()
    reference = energy_mse(batch_energies(potential, batch), batch)
    reference.backward()
    assert torch.equal(loss, reference)
    assert all(torch.equal(a, p.grad) for a, p in zip(got, potential.parameters()))
    assert FitSettings(force_weight=0.0).force_term() is None


def test_force_term_weight_gradient_matches_finite_differences(workspace):
    """d(force term)/d(weights) through the double backward, against central differences."""
    potential, batch = _force_batch(workspace, size=2)
    settings = FitSettings(force_weight=0.7)

    def force_term():
        return _step_loss(potential, batch, settings) - _step_loss(potential, batch, FitSettings(force_weight=0.0))

    potential.zero_grad()
    force_term().backward()
    checked = 0
    for name, parameter in potential.named_parameters():
        if parameter.grad is None or parameter.numel() == 0:
            continue
        flat, grad = parameter.data.view(-1), parameter.grad.view(-1)
        index = int(torch.argmax(grad.abs()))
        saved, h = float(flat[index]), 1e-5
        flat[index] = saved + h
        plus = float(force_term().detach())
        flat[index] = saved - h
        minus = float(force_term().detach())
        flat[index] = saved
        assert float(grad[index]) == pytest.approx((plus - minus) / (2 * h), rel=1e-4, abs=1e-8), name
        checked += 1
    assert checked >= 4
    assert any(float(p.grad.abs().max()) > 1e-6 for p in potential.representation.parameters())


def test_force_term_skips_rows_without_forces(workspace):
    """A row without force labels (an LA pool row) is masked out of the force MSE."""
    potential, batch = _force_batch(workspace, size=4)
    positions = batch.positions.requires_grad_(True)
    forces = predicted_forces(batch_energies(potential, batch), positions)
    full = ForceMSE(1.0)(forces, batch)
    first = batch.batch == 0
    batch.force_mask = batch.force_mask & ~first.unsqueeze(1)
    expected = ((forces - batch.forces)[~first] ** 2).mean()
    assert float(ForceMSE(1.0)(forces, batch).detach()) == pytest.approx(float(expected.detach()), rel=1e-12)
    assert float(full.detach()) != pytest.approx(float(expected.detach()), rel=1e-6)


def test_per_output_and_batched_force_gradients_agree():
    """K outputs: K autograd calls and one vmapped call give the same [N, K, 3] forces."""
    torch.manual_seed(0)
    positions = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(3, 3, dtype=torch.float64)
    energies = torch.stack([(positions @ weights[:, k]).sin().sum() + (positions ** 2).sum() * k
                            for k in range(3)]).unsqueeze(0)  # [1, 3]
    loop = predicted_forces(energies, positions)
    batched = predicted_forces(energies, positions, batched=True)
    assert loop.shape == (5, 3, 3)
    torch.testing.assert_close(loop, batched)
    for k in range(3):
        (grad,) = torch.autograd.grad(energies[0, k], positions, retain_graph=True)
        torch.testing.assert_close(loop[:, k], -grad)


def test_force_weight_null_trains_forces_when_the_data_has_them(workspace):
    """The default (null) resolves to DEFAULT_FORCE_WEIGHT on data with DFT forces; the run
    reports force MAEs and keeps the epoch of the best combined validation metric."""
    config = small_config(workspace, "auto-forces", epochs=3, force_weight=None)
    assert config.train.force_weight is None
    results = train(config)
    assert results["force_weight"] == DEFAULT_FORCE_WEIGHT
    assert f"force_weight: {DEFAULT_FORCE_WEIGHT}" in (config.run_dir / "config.yaml").read_text()
    history = read_metrics(config.run_dir)
    combined = [float(r["val_combined_mae"]) for r in history]
    for row in history:
        assert float(row["val_combined_mae"]) == pytest.approx(
            float(row["val_config_mae"]) + DEFAULT_FORCE_WEIGHT ** 0.5 * float(row["val_force_mae"]))
    assert results["best_epoch"] == 1 + combined.index(min(combined))
    assert 0 < results["test_force_mae_ev_per_angstrom"] < 5
    assert results["best_val_force_mae_ev_per_angstrom"] == pytest.approx(
        float(history[results["best_epoch"] - 1]["val_force_mae"]))


def test_force_weight_null_stays_energy_only_without_forces(workspace, monkeypatch):
    data = prepare_data(small_config(workspace, "no-forces"))
    config = small_config(workspace, "no-forces", force_weight=None)
    assert resolve_force_weight(config, data) == DEFAULT_FORCE_WEIGHT
    config = small_config(workspace, "no-forces", force_weight=None)
    missing = int(data.split.splits["val"][0])  # one val configuration without DFT forces
    dataset = data.split.dataset
    monkeypatch.setattr(dataset, "has_forces", lambda indices: missing not in set(map(int, indices)))
    assert resolve_force_weight(config, data) == 0.0 and config.train.force_weight == 0.0


def test_force_step_leaves_the_batch_positions_alone(workspace):
    """The force step differentiates a copy: the batch keeps positions without grad, so a
    later energy-only step on it still takes SchNet's energy-only shortcut."""
    potential, batch = _force_batch(workspace, size=2)
    _step_loss(potential, batch, FitSettings(force_weight=1.0))
    assert not batch.positions.requires_grad
