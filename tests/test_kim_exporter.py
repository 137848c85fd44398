"""eipnn-export-kim without compiling anything: the portable-model folder it writes and the
errors it gives. (Building, installing and running the package: tests/test_kim.py.)"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from eipnn_calc.kim import exporter
from eipnn_calc.kim.driver_build import DRIVER_NAME, build_key, stage_driver_sources
from eipnn_calc.kim.errors import KIMExportError
from eipnn_calc.kim.portable_model import write_portable_model


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    from eipnn_training.export import export_model
    from eipnn_training.models.build import ModelSpec, build_potential

    torch.manual_seed(0)
    spec = ModelSpec("schnet", ["Si", "C"], 4.5, {"num_features": 8, "num_interactions": 3, "num_rbf": 8})
    path = tmp_path_factory.mktemp("model") / "sic.pt"
    export_model(build_potential(spec), spec, path)
    return path


def parameters(folder: Path, name: str) -> dict[str, str]:
    lines = (folder / f"{name}.params").read_text().splitlines()
    pairs = [line.split("#")[0].split("=", 1) for line in lines if "=" in line.split("#")[0]]
    return {key.strip(): value.strip() for key, value in pairs}


def test_folder_holds_cmake_parameter_and_model_file(model_file, tmp_path):
    folder = write_portable_model(model_file, "SiC_test", tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == ["CMakeLists.txt", "SiC_test.params", "SiC_test.pt"]
    assert (folder / "SiC_test.pt").read_bytes() == model_file.read_bytes()
    cmake = (folder / "CMakeLists.txt").read_text()
    assert f'DRIVER_NAME "{DRIVER_NAME}"' in cmake
    assert re.search(r'PARAMETER_FILES "SiC_test.params" "SiC_test.pt"', cmake)
    assert "project(SiC_test)" in cmake
    assert parameters(folder, "SiC_test") == {"model_file": "SiC_test.pt", "device": "cpu", "periodic_images": "fold"}
    # The comment states the receptive field read from the metadata: 4.5 Å x 3 layers.
    assert "influence distance 13.5 A" in (folder / "SiC_test.params").read_text()


def test_reference_mode_points_at_the_model_file(model_file, tmp_path):
    folder = write_portable_model(model_file, "SiC_ref", tmp_path, embed=False, device="cuda:1",
                                  periodic_images="evaluate")
    assert not (folder / "SiC_ref.pt").exists()
    assert parameters(folder, "SiC_ref") == {"model_file": str(model_file.resolve()), "device": "cuda:1",
                                             "periodic_images": "evaluate"}
    assert 'PARAMETER_FILES "SiC_ref.params"\n' in (folder / "CMakeLists.txt").read_text()


def test_an_unknown_periodic_images_mode_is_refused(model_file, tmp_path):
    with pytest.raises(KIMExportError, match="periodic_images must be one of fold, evaluate, not 'skip'"):
        write_portable_model(model_file, "SiC_bad", tmp_path, periodic_images="skip")


@pytest.mark.parametrize("name", ["1Si", "Si-schnet", "Si schnet", ""])
def test_names_that_are_not_c_identifiers_are_refused(model_file, tmp_path, name):
    with pytest.raises(KIMExportError, match="not a valid KIM item name"):
        write_portable_model(model_file, name, tmp_path)


def test_a_file_that_is_not_an_eipnn_model_is_refused(tmp_path):
    plain = tmp_path / "plain.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(plain))
    with pytest.raises(KIMExportError, match="not an eipnn model"):
        write_portable_model(plain, "plain", tmp_path)


def test_cli_reports_errors_without_a_traceback(tmp_path, capsys):
    assert exporter.main([str(tmp_path / "missing.pt"), "Si_test", "--output-dir", str(tmp_path)]) == 1
    assert "model file not found" in capsys.readouterr().err
    assert not (tmp_path / "Si_test").exists()


def test_cli_writes_the_folder(model_file, tmp_path, capsys):
    assert exporter.main([str(model_file), "SiC_cli", "--output-dir", str(tmp_path)]) == 0
    assert (tmp_path / "SiC_cli" / "SiC_cli.pt").exists()
    assert "SiC_cli" in capsys.readouterr().out


def test_staged_driver_sources_carry_the_torch_location_and_build_key(tmp_path):
    staged = stage_driver_sources(tmp_path / "driver")
    torch_dir = Path(torch.utils.cmake_prefix_path) / "Torch"
    assert f'set(Torch_DIR "{torch_dir}")' in (staged / "torch-location.cmake").read_text()
    assert build_key() in (staged / "eipnn-driver-build.txt").read_text()
    assert (staged / "CMakeLists.txt").exists() and (staged / "kim_driver.cpp").exists()


def test_build_key_changes_with_the_sources(tmp_path, monkeypatch):
    import eipnn_calc.kim.driver_build as driver_build

    before = build_key()
    copy = stage_driver_sources(tmp_path / "copy")
    (copy / "kim_driver.cpp").write_text((copy / "kim_driver.cpp").read_text() + "\n// changed\n")
    monkeypatch.setattr(driver_build, "SOURCE_DIR", copy)
    assert build_key() != before
