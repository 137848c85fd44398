"""The committed copies of finished runs' results (benchmarks/experiment_runs.py): a section
rewritten on a fresh machine, without runs/, still finds the runs that had finished."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import experiment_runs  # noqa: E402  (benchmarks/ is not a package)


@pytest.fixture
def finished(tmp_path, monkeypatch):
    folder = tmp_path / "finished"
    monkeypatch.setattr(experiment_runs, "FINISHED", folder)
    return folder


def finished_run(runs: Path, name: str, results: dict) -> Path:
    folder = runs / name
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(results))
    return folder


def test_a_kept_run_is_read_and_not_trained_again_without_its_run_folder(tmp_path, finished):
    results = {"test_config_mae_ev": 0.3697, "best_epoch": 92}
    experiment_runs.keep(finished_run(tmp_path / "old_machine", "si_pbe_x_baseline_s1", results))
    fresh = tmp_path / "new_machine"  # no run folders at all
    assert experiment_runs.read(fresh, "si_pbe_x_baseline_s1") == results
    assert experiment_runs.read(fresh, "si_pbe_x_la_s1") is None
    # A config that does not exist: run_once would fail if it tried to train.
    assert experiment_runs.run_once("no/such/config.yaml", "si_pbe_x_baseline_s1", [], fresh) == results


def test_the_run_folder_wins_over_the_kept_copy_and_an_unfinished_run_cannot_be_kept(tmp_path, finished):
    experiment_runs.keep(finished_run(tmp_path / "a", "run_s1", {"mae": 1.0}))
    finished_run(tmp_path / "b", "run_s1", {"mae": 2.0})
    assert experiment_runs.read(tmp_path / "b", "run_s1") == {"mae": 2.0}
    (tmp_path / "c" / "run_s2").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="has not finished"):
        experiment_runs.keep(tmp_path / "c" / "run_s2")


def test_an_la_run_that_selected_nothing_is_kept_and_not_tried_again_on_a_fresh_machine(tmp_path, finished):
    old = tmp_path / "old_machine" / "si_pbe_x_la_s1_raw"
    old.mkdir(parents=True)
    (old / experiment_runs.NOTHING_SELECTED).write_text("every train class is K\n")
    marker = experiment_runs.keep(old)
    assert marker.read_text() == "every train class is K\n"
    fresh = tmp_path / "new_machine"
    assert experiment_runs.nothing_selected(fresh, "si_pbe_x_la_s1_raw")
    assert not experiment_runs.nothing_selected(fresh, "si_pbe_x_la_s2_raw")
    assert experiment_runs.read(fresh, "si_pbe_x_la_s1_raw") is None
    # A config that does not exist: run_once would fail if it tried to train.
    assert experiment_runs.run_once("no/such/config.yaml", "si_pbe_x_la_s1_raw", [], fresh) == {}
