"""The labelling engine: inputs, workers, forces, and the failure path."""
from __future__ import annotations

import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from eipnn_training.eip import EIPCalculator, MAX_ENERGY_PER_ATOM_EV, label


@pytest.fixture(autouse=True)
def _kim_log_in_tmp(tmp_path, monkeypatch):
    """The KIM API appends its error log to ./kim.log: keep it out of the checkout."""
    monkeypatch.chdir(tmp_path)


def _rattled_si(count: int, seed: int = 0) -> list[Atoms]:
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(count):
        atoms = bulk("Si", "diamond", a=5.43 + 0.05 * rng.standard_normal()) * (1, 1, 1 + i % 2)
        atoms.rattle(0.05, seed=int(rng.integers(1 << 30)))
        frames.append(atoms)
    return frames


def test_energies_equal_the_calculator_of_each_eip():
    frames = _rattled_si(6)
    labels = label(frames, ["si/sw-bht", "si/tersoff-tmod"], store=False, progress=False)
    assert labels.energies.shape == (6, 2) and labels.present.all()
    for k, name in enumerate(labels.names):
        for i, atoms in enumerate(frames):
            atoms.calc = EIPCalculator(name)
            assert labels.energies[i, k] == pytest.approx(atoms.get_potential_energy(), abs=1e-10)


def test_two_workers_give_the_same_labels_as_one():
    frames = _rattled_si(24, seed=1)
    options = dict(store=False, progress=False, chunk_size=5)
    one = label(frames, "si/tersoff-t2,si/edip", **options)
    two = label(frames, "si/tersoff-t2,si/edip", workers=2, **options)
    np.testing.assert_array_equal(one.energies, two.energies)
    assert one.hashes == two.hashes


def test_forces_are_returned_on_request():
    frames = _rattled_si(3, seed=2)
    labels = label(frames, "si/sw-silicene1", store=False, progress=False, with_forces=True)
    atoms = frames[2]
    atoms.calc = EIPCalculator("si/sw-silicene1")
    np.testing.assert_allclose(labels.forces[0][2], atoms.get_forces(), atol=1e-12)


def test_extxyz_file_is_a_source(tmp_path):
    frames = _rattled_si(4, seed=3)
    path = tmp_path / "frames.extxyz"
    ase.io.write(path, frames)
    from_file = label(path, "si/tersoff-t3", store=False, progress=False)
    from_list = label(frames, "si/tersoff-t3", store=False, progress=False)
    np.testing.assert_allclose(from_file.energies, from_list.energies, rtol=0, atol=1e-8)


def test_missing_source_file_says_what_to_give(tmp_path):
    with pytest.raises(FileNotFoundError, match="extxyz path"):
        label(tmp_path / "absent.extxyz", "si/sw-bht", store=False, progress=False)


def test_bad_configurations_become_missing_entries_and_the_run_goes_on():
    good = bulk("Si", "diamond", a=5.43) * (2, 1, 1)
    overlapping = good.copy()
    overlapping.positions[1] = overlapping.positions[0]  # two atoms on one site
    squeezed = good.copy()
    squeezed.positions[1] = squeezed.positions[0] + [0.05, 0.0, 0.0]  # energy far too high
    carbon = good.copy()
    carbon.symbols[0] = "C"  # SW-BHT knows only Si; Erhart-Albe knows C too
    copper = Atoms("Cu2", positions=[[0, 0, 0], [2.5, 0, 0]])
    frames = [good, overlapping, squeezed, carbon, copper]
    names = ["si/sw-bht", "si/tersoff-erhart-albe", "si/tersoff-tmod"]
    labels = label(frames, names, store=False, progress=False)

    assert labels.present[0].all()
    assert not labels.present[[1, 2, 4]].any()
    assert np.isnan(labels.energies[~labels.present]).all()
    assert labels.present[3].tolist() == [False, True, False]
    sw = labels.column("si/sw-bht")
    assert labels.reasons[1, sw].startswith("eip-error:")
    assert labels.reasons[2, sw].startswith("energy-too-high:")
    assert str(int(MAX_ENERGY_PER_ATOM_EV)) in labels.reasons[2, sw]
    assert labels.reasons[3, sw].startswith("unsupported-species:")
    assert labels.reasons[4, labels.column("si/tersoff-tmod")].startswith("unsupported-species:")
    summary = labels.summary()
    assert summary["si/sw-bht"] == {
        "present": 1, "missing": 4, "eip-error": 1, "energy-too-high": 1, "unsupported-species": 2,
    }
    assert summary["si/tersoff-erhart-albe"]["present"] == 2
    assert "missing      4" in labels.summary_text()


def test_identical_configurations_are_computed_once():
    atoms = bulk("Si", "diamond", a=5.43)
    labels = label([atoms, atoms.copy(), atoms.copy()], "si/edip", store=False, progress=False)
    assert labels.n_computed.tolist() == [1]
    assert np.unique(labels.energies).size == 1
