"""Ensembles trained in one pass (issue 16): each member ends as its own run would, a killed
run resumes exactly, and a committee exports as one model file with its spread."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pytest
import torch
from ase.build import bulk
from models import sw_lattice_configurations, write_dataset

from eipnn_calc.calculator import EIPNNCalculator
from eipnn_training.config import ConfigError, config_from_dict
from eipnn_training.data.si_pbe import protocol_split
from eipnn_training.train.ensemble import fit_ensemble
from eipnn_training.train.loop import FitSettings, fit
from eipnn_training.train.session import fit_reference, model_spec, prepare_data, seeded_potential

CONFIGURATIONS = 160


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("ensemble")
    configurations = sw_lattice_configurations(CONFIGURATIONS, strain=(0.96, 1.06), max_repeat=2,
                                               rattle_angstrom=0.05, forces=True)
    write_dataset(root / "sw.extxyz", configurations, protocol_split(CONFIGURATIONS, 1)["unlabeled"])
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EIPNN_CACHE", str(root / "cache"))
        yield root


def config_values(root, name: str, **train) -> dict:
    return {
        "name": name, "runs_dir": str(root / "runs"), "seed": 3, "progress": False,
        "data": {"path": str(root / "sw.extxyz"), "split_seed": 1},
        "model": {"kind": "schnet", "cutoff_angstrom": 4.0, "head_hidden": 16,
                  "hyperparameters": {"num_features": 16, "num_interactions": 2, "num_rbf": 16}},
        "train": {"epochs": 4, "batch_size": 8, "lr": 5e-3, "lr_final": 5e-4, "force_weight": 0.0, **train},
        "validation": {"enabled": False},
    }


def _members(workspace, seeds):
    config = config_from_dict(config_values(workspace, "members"))
    data = prepare_data(config)
    rows = data.dft_rows("train", with_forces=True)
    potentials = [seeded_potential(model_spec(config, data.species), seed).double() for seed in seeds]
    for potential in potentials:
        fit_reference(potential, data, rows)
    train = data.loader(rows, 8, shuffle=True, seed=1)
    val = data.loader(data.dft_rows("val", with_forces=True), 32)
    return potentials, train, val


def test_each_member_ends_as_its_own_run(workspace, tmp_path):
    """Three members (two seeds; one with forces in its loss), trained together, against
    three runs of ``fit``: the same histories and the same best weights."""
    base = FitSettings(epochs=3, lr=5e-3, lr_final=5e-4, dtype=torch.float64, progress=False)
    settings = [base, base, replace(base, force_weight=10.0, lr=2e-3)]
    together, train, val = _members(workspace, [1, 2, 1])
    results = fit_ensemble(together, train, val, settings, tmp_path / "together")
    alone, _, _ = _members(workspace, [1, 2, 1])
    for k, (potential, own) in enumerate(zip(alone, settings)):
        (tmp_path / f"alone_{k}").mkdir()
        result = fit(potential, train, val, own, tmp_path / f"alone_{k}")
        strip = lambda rows: [{key: v for key, v in r.items() if key != "seconds"} for r in rows]  # noqa: E731
        assert len(results[k].history) == len(result.history) == 3
        for row, own_row in zip(strip(results[k].history), strip(result.history)):
            assert row == pytest.approx(own_row, rel=1e-12)
        assert results[k].best_epoch == result.best_epoch
        for name, value in potential.state_dict().items():
            torch.testing.assert_close(together[k].state_dict()[name], value, rtol=1e-12, atol=1e-14)
    # The members did differ: different seeds, different losses, different weights.
    first = together[0].state_dict()
    assert all(not torch.equal(first[n], together[1].state_dict()[n]) for n in ("head.net.0.weight",))
    assert not torch.equal(first["head.net.0.weight"], together[2].state_dict()["head.net.0.weight"])


def test_members_must_share_the_pass_over_the_data(workspace, tmp_path):
    potentials, train, val = _members(workspace, [1, 2])
    settings = [FitSettings(epochs=2), FitSettings(epochs=3)]
    with pytest.raises(ValueError, match="must share 'epochs'"):
        fit_ensemble(potentials, train, val, settings, tmp_path)


def _train_command(config_path, *extra) -> list[str]:
    return [sys.executable, "-m", "eipnn_training.cli.train", str(config_path), *extra]


def _write_config(workspace, name: str, **train):
    import yaml

    path = workspace / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config_values(workspace, name, **train)))
    return path


def _environment() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def committee_run(workspace):
    """A 3-member committee trained through the command line, uninterrupted."""
    path = _write_config(workspace, "committee", committee=3, epochs=6)
    subprocess.run(_train_command(path), check=True, env=_environment(), capture_output=True)
    return workspace / "runs" / "committee"


def test_a_committee_run_killed_with_sigkill_resumes_exactly(workspace, committee_run):
    path = _write_config(workspace, "killed", committee=3, epochs=6)
    run = workspace / "runs" / "killed"
    process = subprocess.Popen(_train_command(path), env=_environment(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    last = run / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if last.exists() and torch.load(last, weights_only=False)["epoch"] >= 1:
            break  # two epochs done: kill it inside the third
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (run / "results.json").exists()
    subprocess.run(_train_command(path, "--resume"), check=True, env=_environment(), capture_output=True)
    for k in range(3):
        whole = torch.load(committee_run / "checkpoints" / f"member_{k}" / "best.pt", weights_only=False)
        resumed = torch.load(run / "checkpoints" / f"member_{k}" / "best.pt", weights_only=False)
        assert whole["epoch"] == resumed["epoch"]
        assert all(torch.equal(whole["model"][n], resumed["model"][n]) for n in whole["model"])
    results = [json.loads((r / "results.json").read_text()) for r in (committee_run, run)]
    assert results[0]["test_config_mae_ev"] == results[1]["test_config_mae_ev"]


def test_the_committee_model_gives_the_members_mean_and_their_spread(committee_run):
    results = json.loads((committee_run / "results.json").read_text())
    assert results["committee"]["members"] == 3 and results["committee"]["seeds"] == [3, 4, 5]
    calculator = EIPNNCalculator(committee_run / "model.pt")
    assert calculator.committee_size == 3
    atoms = bulk("Si", "diamond", 5.43, cubic=True)
    atoms.rattle(0.05, seed=2)
    atoms.calc = calculator
    energy = atoms.get_potential_energy()
    forces = atoms.get_forces()
    members = []
    for k in range(3):  # each member exported alone (its best weights) and evaluated
        member_file = committee_run / f"member_{k}.pt"
        subprocess.run([sys.executable, "-m", "eipnn_training.cli.export", str(committee_run), "-o", str(member_file),
                        "--member", str(k)], check=True, capture_output=True)
        copy = atoms.copy()
        copy.calc = EIPNNCalculator(member_file)
        members.append((copy.get_potential_energy(), copy.get_forces()))
    energies = np.array([e for e, _ in members])
    member_forces = np.array([f for _, f in members])
    assert energy == pytest.approx(energies.mean(), rel=1e-12)
    np.testing.assert_allclose(forces, member_forces.mean(0), atol=1e-12)
    assert calculator.results["energy_std"] == pytest.approx(energies.std(), rel=1e-9)
    np.testing.assert_allclose(calculator.results["forces_std"], member_forces.std(0), atol=1e-12)
    assert calculator.get_property("energy_std", atoms) == calculator.results["energy_std"]
    assert results["committee"]["member_test_config_mae_ev"][0] != results["committee"]["member_test_config_mae_ev"][1]


def test_the_spread_grows_away_from_the_training_data(committee_run):
    """Trained on diamond/fcc/bcc/sc Si strained by 0.96-1.06: the members agree there, far
    less on diamond compressed to 0.80 or 0.75 (bonds of 1.9 and 1.8 Å, shorter than any in
    the data). (Stretched far, neighbours leave the 4 Å cutoff and every member falls back
    to the same reference energies: agreement there says nothing.)"""
    calculator = EIPNNCalculator(committee_run / "model.pt")

    def spread(scale: float) -> tuple[float, float]:
        atoms = bulk("Si", "diamond", 5.43 * scale, cubic=True)
        atoms.rattle(0.05, seed=1)
        atoms.calc = calculator
        atoms.get_potential_energy()
        return calculator.results["energy_std"] / len(atoms), float(np.abs(calculator.results["forces_std"]).mean())

    inside = spread(1.0)
    for scale in (0.80, 0.75):
        outside = spread(scale)
        assert outside[0] > 3 * inside[0], (scale, outside, inside)


def test_a_committee_is_for_the_baseline_and_mp(workspace):
    with pytest.raises(ConfigError, match="train.committee"):
        config_from_dict({**config_values(workspace, "bad", committee=3), "strategy": "la"})
    with pytest.raises(ConfigError, match="must be >= 1"):
        config_from_dict(config_values(workspace, "bad", committee=0))


def test_a_soapnet_committee_trains_stacked_and_exports(workspace, monkeypatch):
    """Through ``train``: a SOAPNet committee with forces steps as one on its cached
    descriptor (train/stacked.py), and its model file gives the members' mean and spread."""
    from eipnn_training.cli.train import train
    from eipnn_training.train.stacked import StackedMembers

    steps = []
    step = StackedMembers.step
    monkeypatch.setattr(StackedMembers, "step", lambda self, b: steps.append(1) or step(self, b))
    values = config_values(workspace, "soap_committee", committee=2, epochs=2, force_weight=10.0)
    values["model"] = {"kind": "soapnet", "cutoff_angstrom": 4.0, "head_hidden": 16,
                       "hyperparameters": {"n_max": 3, "l_max": 3, "num_features": 16, "num_dense": 2,
                                           "smooth_width_angstrom": 1.5}}
    results = train(config_from_dict(values))
    assert steps and results["committee"]["seeds"] == [3, 4]
    calc = EIPNNCalculator(str(workspace / "runs" / "soap_committee" / "model.pt"))
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    atoms.rattle(0.05, seed=1)
    atoms.calc = calc
    atoms.get_forces()
    assert calc.committee_size == 2 and calc.results["energy_std"] > 0
