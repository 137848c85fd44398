"""``strategy: la`` end to end on a small SW-labelled silicon set: the run folder reports,
the alpha search command, resume, and the seal on the pool's DFT energies."""
from __future__ import annotations

import csv
import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator
from models import sw_lattice_configurations, write_dataset

from eipnn_training.cli.alpha_search import main as alpha_main
from eipnn_training.cli.train import train
from eipnn_training.config import ConfigError, load_config
from eipnn_training.data.dataset import dataset_from_atoms
from eipnn_training.data.si_pbe import protocol_split
from eipnn_training.strategies.label_augmentation.errors import PoolLabelsReadEarly
from eipnn_training.data.batching import collate
from eipnn_training.eip import label
from eipnn_training.strategies.label_augmentation.report import REPORT_REASON, PoolSeal
from eipnn_training.strategies.label_augmentation.selection import Selection
from eipnn_training.strategies.label_augmentation.strategy import augmented_job
from eipnn_training.strategies.label_augmentation.tukey import AugmentedLoss, tukey_force_term
from eipnn_training.train.loop import _step_loss
from eipnn_training.train.metrics import batch_energies
from eipnn_training.train.session import prepare_data, resolve_force_weight

NUM_CONFIGURATIONS = 240
EIPS = ["si/sw-bht", "si/tersoff-t3", "si/edip"]


def sw_configurations() -> list:
    """Strained, rattled Si in four lattices; 'DFT' = Stillinger-Weber 1985 through KIM."""
    return sw_lattice_configurations(NUM_CONFIGURATIONS, strain=(0.94, 1.08), max_repeat=2,
                                     rattle_angstrom=0.08, forces=False)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """The dataset (half of the pool written WITHOUT energies: LA must not need them) and
    a private cache (graphs, label store)."""
    root = tmp_path_factory.mktemp("la")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)  # the KIM API appends its error log to ./kim.log
        patch.setenv("EIPNN_CACHE", str(root / "cache"))
        yield make_workspace(root)


def make_workspace(root):
    pool = protocol_split(NUM_CONFIGURATIONS, 1)["unlabeled"]
    write_dataset(root / "sw.extxyz", sw_configurations(), pool[::2])
    (root / "la.yaml").write_text(
        "name: la\nstrategy: la\nseed: 2\nprogress: false\n"
        f"runs_dir: {root / 'runs'}\n"
        f"data: {{path: {root / 'sw.extxyz'}, split_seed: 1}}\n"
        "model: {cutoff_angstrom: 4.0, head_hidden: 16, "
        "hyperparameters: {num_features: 16, num_interactions: 2, num_rbf: 16}}\n"
        "train: {epochs: 3, batch_size: 8, lr: 5.0e-3, lr_final: 5.0e-4}\n"
        f"la: {{eips: {EIPS}, classifier_epochs: 3, classifier_lr: 5.0e-3, alpha: 1.0}}\n"
        "validation: {enabled: false}\n"  # the card at the end of a run: tests/test_train.py
    )
    return root


@pytest.fixture(scope="module")
def searched(workspace):
    """One run of the alpha search command over two alphas."""
    assert alpha_main([str(workspace / "la.yaml"), "--grid", "0.1", "10"]) == 0
    return workspace / "runs" / "la"


def test_run_folder_has_the_la_reports(searched):
    for name in ("model.pt", "results.json", "metrics.csv", "parity.png", "checkpoints/best.pt",
                 "checkpoints/classifier/best.pt", "la/classes.json", "la/classifier_metrics.csv",
                 "la/confusion.png", "la/selection.csv", "la/alpha_search.csv", "la/alpha_curve.png",
                 "la/outliers.json"):
        assert (searched / name).exists(), name
    la = json.loads((searched / "results.json").read_text())["la"]
    assert la["eips"] == EIPS
    balance = la["class_balance"]["train"]
    assert sum(balance.values()) == 28 and set(balance) == set(EIPS + ["none"])
    confusion = np.array(la["classifier"]["val_confusion"])
    assert confusion.shape == (4, 4) and confusion.sum() == 10
    assert la["classifier"]["val_accuracy"] == pytest.approx(np.trace(confusion) / 10)
    assert la["num_pool"] == 192
    assert la["num_selected"] + la["num_predicted_none"] + la["num_missing_label"] == 192
    assert la["balance_n_train_over_n_added"] == pytest.approx(28 / la["num_selected"])


def test_alpha_search_picks_the_best_validation_alpha(searched):
    la = json.loads((searched / "results.json").read_text())["la"]
    search = la["alpha_search"]
    assert set(search) == {"0.1", "10"}
    assert la["alpha"] == float(min(search, key=search.get))
    assert search["0.1"] != search["10"]  # alpha changes the training
    for alpha in ("0.1", "10"):
        assert (searched / "checkpoints" / f"alpha_{alpha}" / "done.json").exists()


def test_an_alpha_trained_alone_is_its_member_of_the_search(searched, workspace):
    """benchmarks/run_model_experiments.py --alpha-runs trains a search as one run per alpha
    and picks among them: each must be the search's member, to the last digit."""
    search = json.loads((searched / "results.json").read_text())["la"]
    for alpha in ("0.1", "10"):
        alone = train(load_config(workspace / "la.yaml", [f"name=la_alone_{alpha}", f"la.alpha={alpha}"]))
        assert alone["best_val_config_mae_ev"] == search["alpha_search"][alpha]
        member = json.loads((searched / "checkpoints" / f"alpha_{alpha}" / "done.json").read_text())
        assert alone["best_epoch"] == member["best_epoch"]


def test_selection_never_holds_class_k_and_labels_are_eip_energies(searched):
    with open(searched / "la" / "selection.csv") as handle:
        rows = list(csv.DictReader(handle))
    la = json.loads((searched / "results.json").read_text())["la"]
    assert len(rows) == la["num_selected"] > 0
    assert {row["eip"] for row in rows} <= set(EIPS)
    pool = set(protocol_split(NUM_CONFIGURATIONS, 1)["unlabeled"].tolist())
    assert {int(row["index"]) for row in rows} <= pool


def test_outliers_are_graded_after_training_with_the_pool_energies_that_exist(searched):
    la = json.loads((searched / "results.json").read_text())["la"]
    outliers = la["outliers"]
    with open(searched / "la" / "selection.csv") as handle:
        selected = [int(row["index"]) for row in csv.DictReader(handle)]
    with_energy = set(protocol_split(NUM_CONFIGURATIONS, 1)["unlabeled"][1::2].tolist())
    assert outliers["num_graded"] == len(with_energy.intersection(selected))
    assert sum(outliers["by_severity"].values()) == outliers["num_outliers"] == sum(outliers["by_eip"].values())
    # The pool's DFT energies were read once, by the report, and for nothing else.
    assert la["pool_dft_reads"] == [f"{len(selected)} sealed energies read: {REPORT_REASON}"]


def test_resume_of_a_finished_run_retrains_nothing(searched, workspace):
    classifier = searched / "checkpoints" / "classifier" / "best.pt"
    before = classifier.stat().st_mtime_ns, json.loads((searched / "results.json").read_text())
    config = load_config(workspace / "la.yaml", ["la.alpha=null", "la.alpha_grid=[0.1, 10]"])
    results = train(config, resume=True)
    assert classifier.stat().st_mtime_ns == before[0]
    assert results["test_config_mae_ev"] == before[1]["test_config_mae_ev"]
    assert results["la"]["classifier"] == before[1]["la"]["classifier"]


def test_runs_differing_only_after_the_classifier_share_it(searched, workspace):
    """An ablation (other name, MSE for the EIP rows) loads the search run's classifier;
    another class threshold is another classifier, trained anew."""
    first = json.loads((searched / "results.json").read_text())["la"]
    assert first["classifier"]["reused"] is False
    ablation = train(load_config(workspace / "la.yaml", ["name=la_mse", "la.eip_loss=mse", "la.alpha=10"]))["la"]
    assert ablation["classifier"]["reused"] is True
    assert ablation["classifier"]["shared_dir"] == first["classifier"]["shared_dir"]
    weights = [torch.load(run / "checkpoints" / "classifier" / "best.pt", weights_only=False)["model"]
               for run in (searched, workspace / "runs" / "la_mse")]
    assert all(torch.equal(weights[0][name], weights[1][name]) for name in weights[0])
    assert ((workspace / "runs" / "la_mse" / "la" / "selection.csv").read_text()
            == (searched / "la" / "selection.csv").read_text())
    other = train(load_config(workspace / "la.yaml", ["name=la_t2", "la.threshold_ev_per_atom=0.2"]))["la"]
    assert other["classifier"]["reused"] is False
    assert other["classifier"]["shared_dir"] != first["classifier"]["shared_dir"]


def test_pool_seal_refuses_reads_before_training_is_done():
    configurations = [bulk("Si", "diamond", a=5.43) for _ in range(3)]
    for atoms in configurations:
        atoms.calc = SinglePointCalculator(atoms, energy=-10.0)
    dataset = dataset_from_atoms(configurations)
    dataset.seal([1, 2])
    seal = PoolSeal(dataset)
    with pytest.raises(PoolLabelsReadEarly, match="only for the report after training"):
        seal.read_for_report(np.array([1]))
    dataset.read_sealed_energies_ev([2], reason="a selection step peeking")
    seal.training_done = True
    with pytest.raises(PoolLabelsReadEarly, match="read before the LA report"):
        seal.read_for_report(np.array([1]))


def test_la_settings_are_checked(workspace):
    for override, message in (("la.confidence=top", "la.confidence' must be one of"),
                              ("la.eip_loss=huber", "la.eip_loss' must be one of"),
                              ("la.alpha=-1", "need numbers > 0"),
                              ("la.select_eips=[]", "must name at least one EIP")):
        with pytest.raises(ConfigError, match=message):
            load_config(workspace / "la.yaml", [override])


def test_la_with_eip_forces_adds_the_tukey_force_term_and_trains(searched, workspace):
    """la.force_weight > 0: the selected rows carry their chosen EIP's forces, the step's
    loss is the energy loss + alpha * balance * w * Tukey(force residuals), and a run of a
    few epochs trains on them (sharing the search run's classifier and selection)."""
    weight = 0.4
    config = load_config(workspace / "la.yaml", ["name=la_forces", f"la.force_weight={weight}"])
    data = prepare_data(config)
    resolve_force_weight(config, data)
    assert config.train.force_weight == 0.0  # this set has no DFT forces: energies only there
    pool = data.split.splits["unlabeled"][:5]
    selection = Selection(pool, np.array([0, 1, 2, 0, 1]), np.full(5, 0.9), np.full(5, -40.0), 5, 0, 0, 0)
    job, train_rows = augmented_job(config, data, selection)
    direct = label([data.split.dataset.atoms(int(i)) for i in pool], EIPS, store=False, progress=False,
                   with_forces=True)
    added = job.train.rows.forces[len(train_rows):]
    assert job.train.rows.forces[:len(train_rows)] == [None] * len(train_rows)
    for m, k in enumerate(selection.classes):
        np.testing.assert_allclose(added[m], direct.forces[k][m])
    potential = job.new_potential().double()
    batch = collate(data.graphs, data.species_index, job.train.rows, np.arange(len(train_rows) - 3, len(job.train.rows)))
    batch = batch.to("cpu", torch.float64)
    settings = job.settings_for(1.0)
    loss = _step_loss(potential, batch, settings)
    positions = batch.positions.detach().clone().requires_grad_(True)
    energies = batch_energies(potential, replace(batch, positions=positions))
    (grad,) = torch.autograd.grad(energies.sum(), positions)
    expected = AugmentedLoss(1.0, job.balance)(energies, batch) + job.balance * weight * tukey_force_term(
        -grad.unsqueeze(1), batch)
    assert float(loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-10)
    assert float(tukey_force_term(-grad.unsqueeze(1), batch)) > 0
    results = train(config)
    assert results["la"]["force_weight"] == weight and results["la"]["classifier"]["reused"]
    assert np.isfinite(results["test_config_mae_ev"])
    history = list(csv.DictReader(open(workspace / "runs" / "la_forces" / "metrics.csv")))
    assert len(history) == 3 and all(np.isfinite(float(row["train_loss"])) for row in history)
