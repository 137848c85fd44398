"""Training under torchrun (DistributedDataParallel, gloo on this CPU): two ranks against one
process on the same global batches, a killed rank, and a resume with another world size."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from models import sw_lattice_configurations, write_dataset

from eipnn_training import distributed
from eipnn_training.data.batching import BatchLoader, Rows
from eipnn_training.data.si_pbe import protocol_split

NUM_CONFIGURATIONS = 120  # 14 training rows: batches of 13 and 1, so one rank gets none


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    configurations = sw_lattice_configurations(NUM_CONFIGURATIONS, strain=(0.96, 1.06), max_repeat=2,
                                               rattle_angstrom=0.05, forces=True)
    write_dataset(root / "sw.extxyz", configurations, protocol_split(NUM_CONFIGURATIONS, 1)["unlabeled"])
    (root / "run.yaml").write_text(
        f"runs_dir: {root / 'runs'}\nseed: 3\nprogress: false\n"
        f"data: {{path: {root / 'sw.extxyz'}, split_seed: 1}}\n"
        "model: {kind: schnet, cutoff_angstrom: 4.0, head_hidden: 16, "
        "hyperparameters: {num_features: 16, num_interactions: 2, num_rbf: 16}}\n"
        # float64: one process and two ranks differ only in the order of sums.
        "train: {epochs: 2, batch_size: 13, lr: 5.0e-3, lr_final: 5.0e-4, force_weight: 0.0, dtype: float64}\n"
        "la: {eips: [si/sw-bht, si/tersoff-t3], classifier_epochs: 10, classifier_lr: 5.0e-3, alpha_grid: [0.1, 1.0], threshold_ev_per_atom: 5.0}\n"
        "pretrain: {eips: [si/sw-bht, si/tersoff-t3], epochs: 2}\n"
        "validation: {enabled: false}\n"
    )
    return root


def environment(root: Path) -> dict[str, str]:
    return {**os.environ, "EIPNN_CACHE": str(root / "cache"), "OMP_NUM_THREADS": "1"}


def command(root: Path, ranks: int, *overrides: str) -> list[str]:
    """``torchrun`` with ``ranks`` processes, or the plain command for one process."""
    train = ["-m", "eipnn_training.cli.train", str(root / "run.yaml"), *overrides]
    if ranks == 1:
        return [sys.executable, *train]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}", *train]


def train(root: Path, ranks: int, *overrides: str) -> Path:
    result = subprocess.run(command(root, ranks, *overrides), cwd=root, env=environment(root),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    name = next(o.split("=", 1)[1] for o in overrides if o.startswith("name="))
    return root / "runs" / name


def weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    if "members" in state:  # an ensemble's checkpoint
        return {f"{k}.{name}": value for k, member in enumerate(state["members"])
                for name, value in member["model"].items()}
    return state["model"]


def metrics(run: Path) -> list[dict[str, float]]:
    with open(run / "metrics.csv") as handle:
        return [{k: float(v) for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]


def assert_same_training(one: Path, two: Path, checkpoint: str = "checkpoints/last.pt") -> None:
    a, b = weights(one / checkpoint), weights(two / checkpoint)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=0, atol=1e-10, msg=name)
    for row_a, row_b in zip(metrics(one), metrics(two), strict=True):
        assert row_b == pytest.approx(row_a, rel=1e-10, abs=1e-12)
    results_a, results_b = (json.loads((run / "results.json").read_text()) for run in (one, two))
    for key in ("test_config_mae_ev", "test_atom_mae_ev_per_atom", "test_force_mae_ev_per_angstrom"):
        if key in results_a:
            assert results_b[key] == pytest.approx(results_a[key], rel=1e-10)
    assert results_b["distributed"] == {"ranks": 2, "backend": "gloo"}
    assert "distributed" not in results_a


def test_a_rank_takes_its_share_of_every_global_batch(monkeypatch):
    """The shares of the ranks partition each global batch, contiguously and in order, with
    about equal work each (within one row's cost of the even split), and the global batches
    are those of one process (same seed, same epoch)."""
    rows = Rows(np.arange(23), np.zeros(23), np.ones(23), np.zeros(23, dtype=np.int64))
    loader = BatchLoader(None, None, rows, batch_size=10, shuffle=True, seed=4, shard=True)
    loader._costs = np.random.default_rng(0).integers(2, 200, 23).astype(float)  # edges + atoms
    whole = list(loader.selections(epoch=2))
    for size in (2, 3):
        shares = []
        for rank in range(size):
            monkeypatch.setattr(distributed, "_world", distributed.World(rank, size))
            assert loader.sharded
            shares.append(list(loader.selections(epoch=2)))
        for b, batch in enumerate(whole):
            parts = [share[b] for share in shares]
            np.testing.assert_array_equal(np.concatenate(parts), batch)
            work = [loader.costs()[part].sum() for part in parts]
            even = sum(work) / size
            assert max(abs(w - even) for w in work) <= loader.costs()[batch].max()
    monkeypatch.setattr(distributed, "_world", distributed.World())
    assert not loader.sharded


@pytest.mark.parametrize("overrides", [
    ("strategy=baseline",),  # energies; the last global batch of one row leaves rank 1 empty
    ("strategy=baseline", "train.force_weight=1.0", "train.committee=2", "train.batch_size=5"),
], ids=["energies", "forces-committee"])
def test_two_ranks_train_as_one_process_on_the_global_batch(workspace, overrides):
    tag = "-".join(o.split("=")[1] for o in overrides)
    one = train(workspace, 1, *overrides, f"name=one-{tag}")
    two = train(workspace, 2, *overrides, f"name=two-{tag}")
    assert_same_training(one, two)
    assert (two / "model.pt").exists() and (two / "parity.png").exists()


def test_every_strategy_on_two_ranks_gives_the_one_process_result(workspace):
    """mp+la: MP pretraining (with EIP forces), LA's classifier, alpha search and selection
    (with EIP forces under Tukey), DFT forces; each run pretrains and trains its classifier
    itself (own cache folders), so nothing is reused between the two."""
    common = ("strategy=mp+la", "train.force_weight=1.0", "pretrain.force_weight=0.5", "la.force_weight=0.5")
    runs = []
    for ranks in (1, 2):
        runs.append(train(workspace, ranks, *common, f"name=mpla{ranks}",
                          f"pretrain.checkpoint_dir={workspace / f'pretrained{ranks}'}",
                          f"la.classifier_dir={workspace / f'classifiers{ranks}'}"))
    assert_same_training(*runs, checkpoint="checkpoints/best.pt")
    one, two = (json.loads((run / "results.json").read_text()) for run in runs)
    assert not one["pretrain_reused"] and not two["pretrain_reused"]
    assert two["pretrain_best_val_eip_mae_ev"] == pytest.approx(one["pretrain_best_val_eip_mae_ev"], rel=1e-10)
    assert two["la"]["alpha_search"] == pytest.approx(one["la"]["alpha_search"], rel=1e-10)
    assert two["la"]["num_selected"] == one["la"]["num_selected"]


def test_a_killed_rank_stops_the_run_and_resume_finishes_it_on_another_world_size(workspace):
    overrides = ("strategy=baseline", "train.epochs=8", "train.batch_size=4", "train.force_weight=1.0")
    run = workspace / "runs" / "killed"
    process = subprocess.Popen(command(workspace, 2, *overrides, "name=killed"), cwd=workspace,
                               env=environment(workspace), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    deadline = time.time() + 300
    while not (run / "checkpoints" / "last.pt").exists():  # an epoch is done: kill mid-run
        assert process.poll() is None and time.time() < deadline
        time.sleep(0.2)
    ranks = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout.split()
    assert len(ranks) == 2
    os.kill(int(ranks[1]), signal.SIGKILL)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode != 0
    assert "Signal 9 (SIGKILL)" in stderr  # torchrun names the rank that died and stops the others
    epochs_done = len(metrics(run))
    assert 1 <= epochs_done < 8
    # Resume on one rank (another world size); it ends as an uninterrupted run does.
    resumed = train(workspace, 1, *overrides, "name=killed", "--resume")
    uninterrupted = train(workspace, 1, *overrides, "name=uninterrupted")
    a, b = weights(uninterrupted / "checkpoints/last.pt"), weights(resumed / "checkpoints/last.pt")
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=0, atol=1e-10, msg=name)
    assert len(metrics(resumed)) == 8


def test_a_rank_that_stops_says_how_to_go_on(monkeypatch, tmp_path):
    """The survivor of a killed peer sees a gloo error inside a collective; eipnn-train turns
    it into one line with the rank and --resume (when torchrun's SIGTERM does not come first)."""
    from eipnn_training.cli.train import RankStopped, _rank_stopped
    from eipnn_training.runs import RunFolder

    run = RunFolder(tmp_path / "run")
    lost = RuntimeError("[gloo/transport/tcp/pair.cc:553] Connection closed by peer [127.0.0.1]:43924")
    assert _rank_stopped(lost, run) is lost  # one process: the error as it is
    monkeypatch.setattr(distributed, "_world", distributed.World(0, 2))
    stopped = _rank_stopped(lost, run)
    assert isinstance(stopped, RankStopped)
    assert str(stopped) == (f"rank 0 of 2 stopped ([gloo/transport/tcp/pair.cc:553] Connection closed by peer "
                            f"[127.0.0.1]:43924); the finished epochs are in '{run.checkpoints}': continue with "
                            "--resume, on any number of ranks")
