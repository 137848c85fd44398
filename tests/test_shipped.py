"""Ready-made models by name (eipnn_calc/shipped.py), and the models this repository ships."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from ase.build import bulk

from eipnn_calc import EIPNNCalculator, ModelFileError
from eipnn_calc.shipped import MODELS_ENV, models_dir, resolve_model, shipped_models


def test_a_model_is_found_by_name_in_the_models_folder(random_si_model, tmp_path, monkeypatch):
    monkeypatch.setenv(MODELS_ENV, str(tmp_path))
    shutil.copy(random_si_model, tmp_path / "si-test.pt")
    assert shipped_models() == ["si-test"]
    atoms = bulk("Si", "diamond", 5.43)
    atoms.calc = EIPNNCalculator("si-test")
    by_name = atoms.get_potential_energy()
    atoms.calc = EIPNNCalculator(random_si_model)
    assert by_name == atoms.get_potential_energy()


def test_an_unknown_name_lists_the_shipped_models(random_si_model, tmp_path, monkeypatch):
    monkeypatch.setenv(MODELS_ENV, str(tmp_path))
    shutil.copy(random_si_model, tmp_path / "si-test.pt")
    with pytest.raises(ModelFileError, match=r"no shipped model of that name; shipped models .*: si-test"):
        EIPNNCalculator("si-nope")
    # Anything that looks like a path stays a path, with the missing-file message.
    with pytest.raises(ModelFileError, match="model file not found"):
        resolve_model("si-test") and EIPNNCalculator(tmp_path / "elsewhere" / "si-test.pt")


def test_every_shipped_model_loads_and_has_its_card():
    names = shipped_models()
    if not models_dir().is_dir():
        pytest.skip("this checkout ships no models/ folder")
    assert names, f"{models_dir()} holds no model"
    for name in names:
        atoms = bulk("Si", "diamond", 5.469)
        atoms.calc = EIPNNCalculator(name)
        assert np.isfinite(atoms.get_potential_energy())
        assert (models_dir() / f"{name}.card" / "property_card.md").exists(), f"{name} has no property card"
