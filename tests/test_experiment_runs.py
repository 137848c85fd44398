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


def _card_results(config_mae: float, force_mae: float, alpha: float | None = None) -> dict:
    card = {"a0_angstrom": 5.47, "bulk_modulus_gpa": 150.0, "c11_gpa": 200.0, "c12_gpa": 100.0, "c44_gpa": 75.0,
            "vacancy_formation_ev": 3.0, "ev_wiggle_mev_per_atom": 20.0, "gamma_optical_thz": 14.0,
            "failed": ["bulk_modulus_gpa", "c12_gpa"]}
    results = {"test_config_mae_ev": config_mae, "test_force_mae_ev_per_angstrom": force_mae,
               "test_atom_mae_ev_per_atom": config_mae / 10, "property_card": {"elements": {"Si": card}}}
    if alpha is not None:
        results["la"] = {"alpha": alpha}
    return results


def test_the_product_default_runs_take_the_alpha_of_the_energy_only_search_and_are_reported(tmp_path, finished):
    import run_model_experiments as models

    runs = tmp_path / "runs"
    cgcnn = models.Experiments("cgcnn", models.DATASETS["si-pbe"])
    assert models.force_overrides(cgcnn, "LA", 1, runs) is None  # waits for the energy-only search
    assert models.force_overrides(cgcnn, "MP", 1, runs) == ["train.force_weight=10.0", "data.split_seed=1", "seed=1"]
    finished_run(runs, "si_pbe_cgcnn_la_s1", _card_results(0.30, 0.0, alpha=0.05))
    assert models.force_overrides(cgcnn, "LA", 1, runs)[-1] == "la.alpha=0.05"
    finished_run(runs, "si_pbe_cgcnn_forces_s1", _card_results(0.40, 0.20))
    finished_run(runs, "si_pbe_cgcnn_forces_s2", _card_results(0.20, 0.10))
    finished_run(runs, "si_pbe_cgcnn_la_forces_s1", _card_results(0.30, 0.25, alpha=0.05))
    section = models.report_forces(cgcnn, runs, [1, 2, 3])
    assert section.startswith("<!-- cgcnn-forces:begin -->") and section.rstrip().endswith("<!-- cgcnn-forces:end -->")
    assert "| baseline, seed 1 | 0.400 | 0.200 | 5.470 | 150 | 200 | 100 | 75 | 3.00 | 20.0 | 14.00 | 8/10 |" in section
    assert "| **baseline, mean of 2 seeds** | **0.300** | **0.150** |" in section
    assert "| LA, seed 1, α 0.05 | 0.300 | 0.250 |" in section
    assert "| MP, seed 3 | not run |" in section
    # against the baseline of seed 1 only, the one seed LA has
    assert "- LA vs baseline (seeds 1): energy MAE -25.0 %, force MAE +25.0 %." in section


def test_an_alpha_search_run_as_one_run_per_alpha_picks_the_best_validation_alpha(tmp_path, finished):
    grid = [0.1, 1.0, 10.0]

    def la_results(val: float, test: float, combined: float | None = None) -> dict:
        results = {"best_val_config_mae_ev": val, "test_config_mae_ev": test, "la": {"alpha": None}}
        if combined is not None:
            results["best_val_combined_mae_ev"] = combined
        return results

    runs = tmp_path / "runs"
    finished_run(runs, "m_la_s1_a0.1", la_results(0.30, 0.33))
    finished_run(runs, "m_la_s1_a1", la_results(0.25, 0.31))
    assert experiment_runs.read_alpha_search(runs, "m_la_s1", grid) is None  # alpha 10 has not run
    finished_run(runs, "m_la_s1_a10", la_results(0.25, 0.40))
    chosen = experiment_runs.read_alpha_search(runs, "m_la_s1", grid)
    assert chosen["test_config_mae_ev"] == 0.31  # the smaller alpha of two equal ones
    assert chosen["la"]["alpha_search"] == {"0.1": 0.30, "1": 0.25, "10": 0.25}
    assert chosen["la"]["alpha_runs"] == ["m_la_s1_a0.1", "m_la_s1_a1", "m_la_s1_a10"]
    assert experiment_runs.read(runs, "m_la_s1_a1")["la"] == {"alpha": None}  # the kept run untouched
    # With forces the search minimises the combined validation MAE.
    finished_run(runs, "f_la_s1_a0.1", la_results(0.30, 0.33, combined=0.50))
    finished_run(runs, "f_la_s1_a1", la_results(0.25, 0.31, combined=0.70))
    finished_run(runs, "f_la_s1_a10", la_results(0.26, 0.40, combined=0.60))
    assert experiment_runs.read_alpha_search(runs, "f_la_s1", grid)["test_config_mae_ev"] == 0.33
    # A search made in one run wins over the pieces.
    finished_run(runs, "m_la_s1", la_results(0.2, 0.2))
    assert experiment_runs.read_alpha_search(runs, "m_la_s1", grid)["test_config_mae_ev"] == 0.2


def _metal_card(failed: list[str], num_checks: int = 9, **values) -> dict:
    return {"a0_angstrom": 4.0, "bulk_modulus_gpa": 70.0, "c11_gpa": 110.0, "c12_gpa": 60.0, "c44_gpa": 30.0,
            "vacancy_formation_ev": 0.6, "ev_wiggle_mev_per_atom": 1.0, "gamma_optical_thz": None,
            "failed": failed, "num_checks": num_checks, **values}


def test_the_metal_sets_train_the_si_configs_under_their_own_names_and_cards(tmp_path, finished):
    import run_model_experiments as models

    al = models.Experiments("soapnet", models.DATASETS["al-pbe"])
    assert al.prefix == "al_pbe_soapnet_" and al.section == "al-pbe-soapnet"
    assert "data.path=data/al-pbe" in al.data.overrides and "la.eips=[al]" in al.data.overrides
    runs = tmp_path / "runs"
    results = {"test_config_mae_ev": 0.2, "test_force_mae_ev_per_angstrom": 0.1, "test_atom_mae_ev_per_atom": 0.02,
               "num_train": 55, "num_val": 23, "num_test": 19,
               "property_card": {"elements": {"Al": _metal_card(["c12_gpa"])}}}
    finished_run(runs, "al_pbe_soapnet_forces_s1", results)
    section = models.report_forces(al, runs, [1])
    # No optical phonon column for fcc Al; its card judges 9 checks.
    assert "| baseline, seed 1 | 0.200 | 0.100 | 4.000 | 70 | 110 | 60 | 30 | 0.60 | 1.0 | 8/9 |" in section
    assert "Γ (THz)" not in section and "Train / val / test configurations by seed: 55 / 23 / 19." in section
    # A two-element model: a0, B and vacancy of each element, the alloy's mixing, checks of all parts.
    agau = models.Experiments("schnet", models.DATASETS["agau-pbe"])
    card = {"elements": {"Ag": _metal_card([]), "Au": _metal_card(["a0_angstrom"], vacancy_formation_ev=None)},
            "alloys": {"AgAu": {"mixing_x0.5_mev_per_atom": -50.0, "failed": ["mixing_x0.25_mev_per_atom"],
                                "num_checks": 3}}}
    values = experiment_runs.card_values({**results, "property_card": card}, agau.columns)
    assert values["checks"] == 19 and values["num_checks"] == 21
    row = experiment_runs.card_row("x", values, agau.columns)
    assert row == "| x | 0.200 | 0.100 | 4.000 | 70 | 0.60 | 4.000 | 70 | – | -50 | 19/21 |"
    assert agau.paper_cell("MP") == "0.3353 (-54.0 %)"
    # The model's description gives the set's cutoff and, for SOAP, its feature count.
    assert "r_c 7 Å" in al.description and "; 252 features" in al.description
    assert "r_c 7 Å" in models.Experiments("soapnet", models.DATASETS["agau-pbe"]).description
    assert "; 952 features" in models.Experiments("soapnet", models.DATASETS["agau-pbe"]).description
    assert "cutoff 5 Å" in models.Experiments("schnet", models.DATASETS["si-pbe"]).description


def test_a_section_is_not_rewritten_with_fewer_finished_runs_than_it_shows(tmp_path):
    """A section written before the finished mark counts its per-seed result cells (energy
    tables) and per-seed rows (force tables): a run over fewer seeds, whose table has no
    "not run" cells at all, must not replace three seeds' results with one."""
    results = tmp_path / "results.md"
    begin, end = "<!-- x:begin -->", "<!-- x:end -->"
    kept = (f"{begin}\n| baseline | 0.4236 / 0.0676 | 0.4363 / 0.0630 | 0.4866 / 0.0751 | 0.4488 (0.0334) |\n"
            f"| MP, seed 1 | 0.217 | 0.106 |\n{end}")
    results.write_text(f"# Results\n\n{kept}\n")
    one_seed = f"{begin}\n{experiment_runs.finished_mark(2)}\n| baseline | 0.4286 / 0.0690 | 0.4286 |\n{end}\n"
    assert experiment_runs.publish(one_seed, str(results), begin, end) == 1
    assert kept in results.read_text()
    all_seeds = one_seed.replace(experiment_runs.finished_mark(2), experiment_runs.finished_mark(4))
    assert experiment_runs.publish(all_seeds, str(results), begin, end) == 0
    assert "| baseline | 0.4286 / 0.0690 | 0.4286 |" in results.read_text()


def test_a_section_with_its_finished_count_may_grow_by_seeds_but_not_lose_runs(tmp_path):
    results = tmp_path / "results.md"
    begin, end = "<!-- x:begin -->", "<!-- x:end -->"
    one_seed = f"{begin}\n{experiment_runs.finished_mark(2)}\n| LA | 0.3 |\n| MP | 0.2 |\n{end}"
    results.write_text(f"# Results\n\n{one_seed}\n")
    three_seeds = f"{begin}\n{experiment_runs.finished_mark(3)}\n| LA | 0.3 | not run | not run |\n| MP | 0.2 | 0.1 | not run |\n{end}\n"
    assert experiment_runs.publish(three_seeds, str(results), begin, end) == 0  # more "not run", more runs
    lost = f"{begin}\n{experiment_runs.finished_mark(1)}\n| LA | not run | not run | not run |\n| MP | 0.2 | not run | not run |\n{end}\n"
    assert experiment_runs.publish(lost, str(results), begin, end) == 1
    assert "| MP | 0.2 | 0.1 | not run |" in results.read_text()
