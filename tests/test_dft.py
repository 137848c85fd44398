"""The DFT labeller: settings and their key, a tiny GPAW calculation into the store, SCF
failures and their retry, chunks, and kill -9 of a labelling run."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import ase.io
import numpy as np
import pytest
from ase.build import bulk

from eipnn_training.dft import (
    ChunkWriter,
    DFTError,
    DFTSettings,
    DFTSettingsError,
    DFTStore,
    convergence_check,
    label_dft,
    read_chunks,
)
from eipnn_training.dft.settings import cost_estimate
from eipnn_training.eip.store import StoredLabel
from eipnn_training.eip.structure import Structure
from processes import alive, children

gpaw = pytest.importorskip("gpaw", reason="GPAW is installed by scripts/setup_env.sh")

# Seconds, not minutes: 1-atom fcc Al, 150 eV, 3x3x3 k-points (density 1 per Å⁻¹).
TINY = DFTSettings(ecut_ev=150.0, kpoint_density_per_inverse_angstrom=1.0)


def _aluminium(count: int, start: float = 3.95):
    return [bulk("Al", "fcc", a=start + 0.02 * i) for i in range(count)]


def test_gpaw_is_built_with_fftw():
    """scripts/setup_env.sh builds GPAW with FFTW (scripts/gpaw_siteconfig.py): without it a
    label costs 1.2-1.4x the CPU (docs/dft.md)."""
    from gpaw.fftw import have_fftw

    assert have_fftw(), "GPAW lacks FFTW: run bash scripts/setup_env.sh, which rebuilds it"


def test_settings_key_changes_with_every_setting_and_is_recorded():
    ids = {
        TINY.settings_id,
        TINY.replace(ecut_ev=151.0).settings_id,
        TINY.replace(kpoint_density_per_inverse_angstrom=1.1).settings_id,
        TINY.replace(smearing_width_ev=0.2).settings_id,
        TINY.replace(setups=()).settings_id,
        TINY.replace(scf_density=1e-4).settings_id,
    }
    assert len(ids) == 6
    assert TINY.settings_id == DFTSettings(ecut_ev=150.0, kpoint_density_per_inverse_angstrom=1.0).settings_id
    payload = TINY.as_dict()
    assert payload["gpaw"] == gpaw.__version__ and payload["setups"] == {"Ag": "11"}
    assert payload["xc"] == "PBE" and payload["smearing"] == "fermi-dirac"


def test_kpoint_density_gives_the_same_sampling_to_a_supercell():
    settings = DFTSettings(kpoint_density_per_inverse_angstrom=3.5)
    cell = bulk("Al", "fcc", a=4.04, cubic=True)
    assert settings.kpoint_grid(cell) == (6, 6, 6)
    assert settings.kpoint_grid(cell.repeat((2, 2, 1))) == (3, 3, 6)
    slab = cell.repeat((1, 1, 2))
    slab.pbc = (True, True, False)
    assert settings.kpoint_grid(slab) == (6, 6, 1)
    assert cost_estimate(cell.repeat(2), settings) > cost_estimate(cell, settings)


@pytest.mark.parametrize(
    "changes, match",
    [({"ecut_ev": 0}, "ecut_ev must be positive"),
     ({"kpoint_density_per_inverse_angstrom": -1}, "must be positive"),
     ({"smearing": "cold"}, "unknown smearing 'cold'")],
)
def test_bad_settings_are_refused_with_what_to_use(changes, match):
    with pytest.raises(DFTSettingsError, match=match):
        DFTSettings(**changes)


def test_a_tiny_gpaw_calculation_lands_in_the_store(tmp_path):
    atoms = bulk("Al", "fcc", a=4.05)
    labels = label_dft([atoms], TINY, store=tmp_path, progress=False)
    assert labels.n_computed == 1 and labels.reasons == [""]
    assert np.isfinite(labels.energies[0]) and labels.forces[0].shape == (1, 3)
    assert np.abs(labels.forces[0]).max() < 1e-3  # one atom: no net force
    record = labels.records[0]
    assert record["mixing"] == "default" and record["kpoint_grid"] == [3, 3, 3]
    assert record["seconds"] > 0 and record["failed_attempts"] == []
    again = label_dft([atoms.copy()], TINY, store=tmp_path, progress=False)
    assert again.n_computed == 0 and again.energies[0] == labels.energies[0]
    with DFTStore(tmp_path) as store:
        assert store.count(TINY.settings_id) == 1
        assert store.settings_payload(TINY.settings_id)["ecut_ev"] == 150.0


def test_an_scf_that_fails_is_retried_with_safer_mixing_then_recorded(tmp_path):
    hopeless = TINY.replace(maxiter=1)
    labels = label_dft([bulk("Al", "fcc", a=4.05)], hopeless, store=tmp_path, progress=False)
    reason = labels.reasons[0]
    assert reason.startswith("scf-not-converged: KohnShamConvergenceError")
    assert "default mixing" in reason and "safe mixing" in reason
    assert labels.records[0]["mixing"] is None and len(labels.records[0]["failed_attempts"]) == 2
    cached = label_dft([bulk("Al", "fcc", a=4.05)], hopeless, store=tmp_path, progress=False)
    assert cached.n_computed == 0 and cached.reasons == [reason]
    retried = label_dft([bulk("Al", "fcc", a=4.05)], hopeless, store=tmp_path, progress=False,
                        retry_failed=True)
    assert retried.n_computed == 1


def test_convergence_check_compares_with_the_reference(tmp_path):
    rows = convergence_check({"al": bulk("Al", "fcc", a=4.05)}, [TINY],
                             TINY.replace(ecut_ev=200.0), store=tmp_path)
    (row,) = rows
    assert row.n_atoms == 1 and row.kpoint_grid == (3, 3, 3)
    assert 0 < row.energy_error_mev_per_atom < 1000 and row.force_error_ev_per_angstrom < 1e-3


def _fake_label(n_atoms: int, energy: float) -> StoredLabel:
    return StoredLabel(n_atoms, energy, np.full((n_atoms, 3), energy / 100), None)


def test_chunks_take_stored_labels_no_chunk_holds_and_write_whole_files(tmp_path):
    pool = _aluminium(5)
    hashes = [Structure.from_atoms(a).content_hash() for a in pool]
    with DFTStore(tmp_path / "store") as store:
        settings_id = store.register(TINY)
        for i in (0, 1, 2):
            store.put(settings_id, hashes[i], _fake_label(1, -3.0 - i), {"seconds": 1.0})
        store.put(settings_id, hashes[3], StoredLabel(1, None, None, "gpaw-error: x"), {})
        writer = ChunkWriter(tmp_path / "chunks", pool, settings_id, TINY.as_dict(), chunk_size=2)
        assert writer.add_stored(store) == 3  # the failed one is not a label
        with pytest.raises(DFTError, match="another labelling run"):
            ChunkWriter(tmp_path / "chunks", pool, settings_id, TINY.as_dict())
        writer.close()
        assert writer.n_written == 2  # one whole chunk; the third label waits
        writer = ChunkWriter(tmp_path / "chunks", pool, settings_id, TINY.as_dict(), chunk_size=2)
        assert writer.add_stored(store) == 1
        writer.flush()
        writer.close()
    frames = read_chunks(tmp_path / "chunks")
    assert [f.info["config_hash"] for f in frames] == hashes[:3]
    assert [f.get_potential_energy() for f in frames] == [-3.0, -4.0, -5.0]
    np.testing.assert_array_equal(frames[1].get_forces(), np.full((1, 3), -0.04))
    assert sorted(p.name for p in (tmp_path / "chunks").iterdir()) == [
        "chunk-0000.extxyz.xz", "chunk-0001.extxyz.xz", "settings.json"]  # nothing else to commit
    assert json.loads((tmp_path / "chunks" / "settings.json").read_text())[settings_id]["ecut_ev"] == 150.0


@pytest.mark.parametrize("workers", [1, 2])
def test_kill_dash_nine_loses_no_finished_calculation(tmp_path, workers):
    count = 8
    pool = _aluminium(count)
    ase.io.write(tmp_path / "pool.extxyz", pool)
    pool = ase.io.read(tmp_path / "pool.extxyz", ":")  # what the child reads and hashes
    store_dir, chunks = tmp_path / "store", tmp_path / "chunks"
    command = [sys.executable, "-m", "eipnn_training.cli.dft_label", str(tmp_path / "pool.extxyz"),
               "--store", str(store_dir), "--chunks", str(chunks), "--chunk-size", "2",
               "--ecut", "150", "--kpoint-density", "1", "--workers", str(workers)]
    environment = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    process = subprocess.Popen(command, env=environment, preexec_fn=lambda: os.nice(19),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    settings_id = TINY.settings_id
    workers_seen: set[int] = set()
    try:
        deadline = time.monotonic() + 600  # at nice 19 on a loaded machine a child may wait long
        stored = 0
        while stored < 3:
            assert process.poll() is None, "labelling finished before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
            workers_seen |= children(process.pid)
            if (store_dir / "labels.sqlite").exists():
                with DFTStore(store_dir) as reader:
                    stored = reader.count(settings_id)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    if workers > 1:
        assert len(workers_seen) == workers
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in workers_seen) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(alive(pid) for pid in workers_seen)

    with sqlite3.connect(store_dir / "labels.sqlite") as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    hashes = [Structure.from_atoms(a).content_hash() for a in pool]
    with DFTStore(store_dir) as store:
        stored = store.get(hashes, settings_id)
        records = store.records(settings_id)
    survived = len(stored)
    assert 3 <= survived < count and set(stored) <= set(records)  # every label has its record
    in_chunks = {f.info["config_hash"] for f in read_chunks(chunks)}
    assert len(in_chunks) % 2 == 0 and len(in_chunks) <= survived  # whole chunks only

    # rerunning the command computes only what is missing and puts every label in a chunk, once
    subprocess.run(command, env=environment, check=True, stdout=subprocess.DEVNULL)
    with DFTStore(store_dir) as store:
        after = store.records(settings_id)
        labels = store.get(hashes, settings_id)
    assert len(labels) == count and all(label.reason is None for label in labels.values())
    assert all(after[h]["finished_unix"] == records[h]["finished_unix"] for h in stored)
    frames = read_chunks(chunks)
    assert sorted(f.info["config_hash"] for f in frames) == sorted(hashes)
    assert all(f.get_potential_energy() == labels[f.info["config_hash"]].energy_ev for f in frames)


def test_status_reports_progress_and_seconds_without_computing(tmp_path, capsys):
    from eipnn_training.cli import dft_label

    pool = _aluminium(3)
    ase.io.write(tmp_path / "pool.extxyz.xz", pool)
    pool = ase.io.read(tmp_path / "pool.extxyz.xz", ":")
    hashes = [Structure.from_atoms(a).content_hash() for a in pool]
    with DFTStore(tmp_path / "store") as store:
        settings_id = store.register(TINY)
        store.put(settings_id, hashes[0], _fake_label(1, -3.0), {"seconds": 12.0})
        store.put(settings_id, hashes[1], StoredLabel(1, None, None, "gpaw-error: boom"), {"seconds": 1.0})
    arguments = [str(tmp_path / "pool.extxyz.xz"), "--store", str(tmp_path / "store"),
                 "--ecut", "150", "--kpoint-density", "1", "--status"]
    assert dft_label.main(arguments) == 0
    out = capsys.readouterr().out
    assert f"{settings_id}: 1 labelled (0 in {tmp_path / 'labelled'}/, 1 only in the store), 1 failed, 1 to do, of 3" in out
    assert "mean 12.0" in out and "gpaw-error: boom" in out
    assert dft_label.main([str(tmp_path / "missing.extxyz")]) == 1
    assert "eipnn-dft-label: error: no configuration file" in capsys.readouterr().err


def test_a_new_machine_does_not_recompute_what_the_committed_chunks_hold(tmp_path, capsys):
    """The store lives in a cache a fresh clone lacks; the chunks are in the repository."""
    from eipnn_training.cli import dft_label

    ase.io.write(tmp_path / "pool.extxyz.xz", _aluminium(2))
    pool = ase.io.read(tmp_path / "pool.extxyz.xz", ":")
    hashes = [Structure.from_atoms(a).content_hash() for a in pool]
    with DFTStore(tmp_path / "old-store") as store:  # the earlier machine's store
        settings_id = store.register(TINY)
        store.put(settings_id, hashes[0], _fake_label(1, -3.0), {"seconds": 1.0})
        writer = ChunkWriter(tmp_path / "labelled", pool, settings_id, TINY.as_dict(), chunk_size=1)
        writer.add_stored(store)
        writer.close()
    arguments = [str(tmp_path / "pool.extxyz.xz"), "--store", str(tmp_path / "new-store"),
                 "--ecut", "150", "--kpoint-density", "1", "--chunk-size", "1"]
    assert dft_label.main(arguments + ["--status"]) == 0  # what the chunks hold counts as labelled
    assert f"1 labelled (1 in {tmp_path / 'labelled'}/, 0 only in the store), 0 failed, 1 to do, of 2" in capsys.readouterr().out
    assert dft_label.main(arguments) == 0
    with DFTStore(tmp_path / "new-store") as store:
        assert list(store.get(hashes, settings_id)) == [hashes[1]]  # only the missing one computed
    frames = read_chunks(tmp_path / "labelled")
    assert [f.info["config_hash"] for f in frames] == hashes
    assert frames[0].get_potential_energy() == -3.0  # the committed label, kept


def test_the_card_calculator_keeps_one_kpoint_grid_per_cell_size():
    """GPAW as the property card's calculator (benchmarks/dft_references.py): a strained
    cell keeps the grid of its size at the reference lattice constant (a smooth E-V scan),
    a vacancy cell its perfect cell's, and each result is plain GPAW's on that grid."""
    from gpaw import GPAW

    from eipnn_training.dft.crystal_calculator import CrystalGPAW
    from eipnn_training.validation.structures import conventional_cell, cubic_supercell

    settings = TINY.replace(kpoint_density_per_inverse_angstrom=1.5)
    calculator = CrystalGPAW(settings, "Al", "fcc", atoms_per_cell=4, reference_a_angstrom=4.05)
    stretched = conventional_cell("Al", "fcc", 4.8)
    assert settings.kpoint_grid(stretched) == (2, 2, 2)  # its own grid; at 4.05 Å it is 3x3x3
    stretched.calc = calculator
    energy = stretched.get_potential_energy()
    assert stretched.get_stress().shape == (6,) and np.abs(stretched.get_forces()).max() < 1e-6
    assert calculator.grids == {1: (3, 3, 3)} and len(calculator.calculators) == 1
    direct = conventional_cell("Al", "fcc", 4.8)
    direct.calc = GPAW(**{**settings.gpaw_parameters(direct), "kpts": {"size": (3, 3, 3), "gamma": True}})
    assert energy == pytest.approx(direct.get_potential_energy(), abs=1e-5)
    perfect = cubic_supercell("Al", "fcc", 4.05, 32)
    assert calculator.grid(len(perfect)) == calculator.grid(len(perfect) - 1) == settings.kpoint_grid(perfect)
