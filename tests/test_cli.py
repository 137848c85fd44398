"""Every console script reports a user's mistake as one line on stderr and a non-zero exit
(``eipnn_calc/cli_errors.py``); ``--debug`` shows the traceback. No case trains anything:
each fails before training starts."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import ase.io
import pytest
from ase.build import bulk

from eipnn_calc.cli_errors import EXIT_ERROR, EXIT_INTERRUPTED, one_line
from eipnn_calc.kim.exporter import main as export_kim_main
from eipnn_training.cli import train as train_cli
from eipnn_training.cli.alpha_search import main as alpha_main
from eipnn_training.cli.export import main as export_main
from eipnn_training.cli.label import main as label_main
from eipnn_training.cli.maps import main as maps_main
from eipnn_training.config import ConfigError, config_from_dict, save_config

train_main = train_cli.main


def error_line(capsys, code: int, prog: str) -> str:
    """The one stderr line of a command that failed on a named problem."""
    err = capsys.readouterr().err
    assert code == EXIT_ERROR, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{prog}: error: "), lines[0]
    return lines[0]


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A private cache, and a config whose data is a small extxyz file with energies."""
    monkeypatch.setenv("EIPNN_CACHE", str(tmp_path / "cache"))
    configurations = []
    for index in range(30):  # the protocol split needs >= 25
        atoms = bulk("Si", "diamond", 5.43)
        atoms.rattle(0.02, seed=index)
        atoms.info["energy"] = -10.8 + 0.01 * index
        configurations.append(atoms)
    ase.io.write(tmp_path / "tiny.extxyz", configurations)
    (tmp_path / "run.yaml").write_text(
        f"name: cli\nprogress: false\nruns_dir: {tmp_path / 'runs'}\n"
        f"data: {{path: {tmp_path / 'tiny.extxyz'}}}\n"
    )
    return tmp_path


def train_error(capsys, workspace, text: str | None, *overrides: str) -> str:
    config = workspace / "run.yaml"
    if text is not None:
        config = workspace / "case.yaml"
        config.write_text(text)
    return error_line(capsys, train_main([str(config), *overrides]), "eipnn-train")


# --- eipnn-train: the configuration ---------------------------------------------------
def test_missing_config_file(capsys, tmp_path):
    line = error_line(capsys, train_main([str(tmp_path / "missing.yaml")]), "eipnn-train")
    assert "config file not found" in line and "missing.yaml" in line


@pytest.mark.parametrize("text, overrides, words", [
    ("train: {nope: 1}\n", (), ["unknown config key 'train.nope'", "known keys here"]),
    ("train: {epochs: many}\n", (), ["'train.epochs' must be int", "got str"]),
    (None, ("train.epochs=-3",), ["'train.epochs' must be > 0", "-3"]),
    (None, ("train.epochs=[1,",), ["override 'train.epochs=[1,'", "not valid YAML", "column"]),
    (None, ("train.epochs",), ["must look like key=value"]),
])
def test_bad_keys_types_values_and_overrides(capsys, workspace, text, overrides, words):
    line = train_error(capsys, workspace, text, *overrides)
    for word in words:
        assert word in line, line


def test_malformed_yaml_names_the_file_line_and_column(capsys, workspace):
    line = train_error(capsys, workspace, "name: x\ntrain:\n  epochs: 3\n lr: 0.1\n")
    assert "case.yaml' is not valid YAML" in line
    assert "line 4, column 2" in line, line


def test_malformed_yaml_flow_mapping(capsys, workspace):
    line = train_error(capsys, workspace, "name: x\ntrain: {epochs: 3\nseed: 1\n")
    assert "is not valid YAML: line 3, column 5" in line, line


# --- eipnn-train: the data file -------------------------------------------------------
def test_missing_data_path(capsys, workspace):
    line = train_error(capsys, workspace, None, f"data.path={workspace / 'nowhere.extxyz'}")
    assert "dataset file not found" in line and "nowhere.extxyz" in line


def test_corrupt_data_path(capsys, workspace):
    (workspace / "corrupt.extxyz").write_text("3\nnot a comment line = = =\nSi 0 0\nxx\n")
    line = train_error(capsys, workspace, None, f"data.path={workspace / 'corrupt.extxyz'}")
    assert "could not read dataset" in line and "corrupt.extxyz" in line


def test_data_path_without_energies(capsys, workspace):
    configurations = [bulk("Si", "diamond", 5.43 + 0.01 * i) for i in range(30)]
    ase.io.write(workspace / "bare.extxyz", configurations)
    line = train_error(capsys, workspace, None, f"data.path={workspace / 'bare.extxyz'}")
    assert "have no DFT energy" in line and "bare.extxyz" in line


# --- eipnn-export ---------------------------------------------------------------------
def test_export_of_a_folder_that_is_not_a_run(capsys, tmp_path):
    line = error_line(capsys, export_main([str(tmp_path)]), "eipnn-export")
    assert "is not a run folder (no config.yaml)" in line
    line = error_line(capsys, export_main([str(tmp_path / "nope")]), "eipnn-export")
    assert "does not exist" in line


@pytest.fixture
def unfinished_run(tmp_path) -> Path:
    """A run folder as a start that stopped before its first epoch leaves it."""
    run = tmp_path / "runs" / "unfinished"
    (run / "checkpoints").mkdir(parents=True)
    save_config(config_from_dict({"name": "unfinished", "runs_dir": str(tmp_path / "runs"),
                                  "model": {"species": ["Si"]}}), run / "config.yaml")
    return run


def test_export_of_a_run_without_checkpoint(capsys, unfinished_run):
    line = error_line(capsys, export_main([str(unfinished_run)]), "eipnn-export")
    assert "has no checkpoint" in line and "train it with eipnn-train" in line
    (unfinished_run / "checkpoints" / "last.pt").write_bytes(b"")
    line = error_line(capsys, export_main([str(unfinished_run)]), "eipnn-export")
    assert "no checkpoint 'best.pt' (it has last)" in line


def test_export_of_a_corrupt_checkpoint(capsys, unfinished_run):
    (unfinished_run / "checkpoints" / "best.pt").write_text("not a checkpoint")
    line = error_line(capsys, export_main([str(unfinished_run)]), "eipnn-export")
    assert "checkpoint" in line and "cannot be read" in line


# --- the other console scripts --------------------------------------------------------
def test_label_with_an_unknown_eip(capsys, workspace, monkeypatch):
    monkeypatch.chdir(workspace)  # a failed KIM lookup is logged to ./kim.log
    code = label_main([str(workspace / "tiny.extxyz"), "--eips", "si/nope", "--store", str(workspace / "s")])
    assert "unknown EIP 'si/nope'" in error_line(capsys, code, "eipnn-label")


@pytest.mark.parametrize("name, text, message", [
    ("missing.extxyz", None, "no configuration file"),
    ("corrupt.extxyz", "3\nnot a comment line = = =\nSi 0 0\nxx\n", "could not read configurations"),
])
def test_label_of_a_missing_or_corrupt_file(capsys, tmp_path, name, text, message):
    if text is not None:
        (tmp_path / name).write_text(text)
    code = label_main([str(tmp_path / name), "--eips", "si/edip", "--store", str(tmp_path / "s")])
    line = error_line(capsys, code, "eipnn-label")
    assert message in line and name in line


def test_maps_of_a_folder_that_is_not_a_run(capsys, tmp_path):
    line = error_line(capsys, maps_main([str(tmp_path)]), "eipnn-maps")
    assert "is not a finished mp or mp+la run" in line
    (tmp_path / "results.json").write_text('{"pretrained_dir": ')  # cut short
    assert "is not valid JSON" in error_line(capsys, maps_main([str(tmp_path)]), "eipnn-maps")
    (tmp_path / "results.json").write_text(f'{{"pretrained_dir": "{tmp_path / "gone"}"}}')
    assert "pretrained.pt does not exist" in error_line(capsys, maps_main([str(tmp_path)]), "eipnn-maps")


def test_data_path_with_an_energy_that_is_no_number(capsys, workspace):
    frames = ase.io.read(workspace / "tiny.extxyz", ":")
    frames[3].calc = None
    frames[3].info["energy"] = "high"
    ase.io.write(workspace / "words.extxyz", frames)
    line = train_error(capsys, workspace, None, f"data.path={workspace / 'words.extxyz'}")
    assert "energy or forces that are not numbers" in line


def test_export_of_a_run_whose_config_was_edited(capsys, unfinished_run):
    import torch

    from eipnn_training.train.checkpoint import save_atomic

    # Weights of another network: the config says 128 features, these have 8.
    save_atomic({"model": {"representation.embedding.weight": torch.zeros(1, 8)}},
                unfinished_run / "checkpoints" / "best.pt")
    line = error_line(capsys, export_main([str(unfinished_run)]), "eipnn-export")
    assert "does not fit the model its config.yaml describes" in line


def test_export_kim_of_a_missing_model_file(capsys, tmp_path):
    code = export_kim_main([str(tmp_path / "missing.pt"), "Si_test", "--output-dir", str(tmp_path)])
    line = error_line(capsys, code, "eipnn-export-kim")
    assert "model file not found" in line and "missing.pt" in line


def test_alpha_search_with_a_missing_config(capsys, tmp_path):
    line = error_line(capsys, alpha_main([str(tmp_path / "missing.yaml")]), "eipnn-la-alpha")
    assert "config file not found" in line


# --- the wrapper ----------------------------------------------------------------------
def test_debug_reraises_in_process(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        train_main([str(tmp_path / "missing.yaml"), "--debug"])


def test_ctrl_c_is_one_line_and_a_bug_keeps_its_traceback(capsys, monkeypatch, tmp_path):
    def interrupted(*_):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_cli, "load_config", interrupted)
    assert train_main([str(tmp_path / "x.yaml")]) == EXIT_INTERRUPTED
    assert capsys.readouterr().err == "eipnn-train: interrupted\n"

    def buggy(*_):
        raise KeyError("a bug")

    monkeypatch.setattr(train_cli, "load_config", buggy)
    with pytest.raises(KeyError, match="a bug"):
        train_main([str(tmp_path / "x.yaml")])


def test_a_multi_line_message_becomes_one_line():
    assert one_line(ConfigError("first\n  second\n\nthird")) == "first; second; third"
    assert one_line(ConfigError("")) == "ConfigError"


@pytest.mark.parametrize("debug", [False, True])
def test_the_installed_console_script(tmp_path, debug):
    script = Path(sys.executable).with_name("eipnn-train")
    assert script.exists(), f"{script}: run scripts/setup_env.sh (pip install -e .)"
    result = subprocess.run([str(script), "missing.yaml", *(["--debug"] if debug else [])],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode != 0
    if debug:
        assert "Traceback" in result.stderr and "ConfigError" in result.stderr
    else:
        assert result.returncode == EXIT_ERROR
        assert result.stderr == "eipnn-train: error: config file not found: 'missing.yaml'\n"
