"""The label store: cache hit and miss, kill -9 and resume, concurrent readers."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import textwrap

import numpy as np
import pytest
from ase.build import bulk

from eipnn_training.eip import LabelStore, LabelStoreError, label
from eipnn_training.eip.store import StoredLabel
from eipnn_training.eip.structure import Structure
from processes import alive, children


def _frames(count: int, seed: int = 0, repeat=(1, 1, 1)):
    frames = []
    for i in range(count):
        atoms = bulk("Si", "diamond", a=5.43, cubic=True) * repeat
        atoms.rattle(0.05, seed=seed * 100_000 + i)
        frames.append(atoms)
    return frames


def test_rerun_computes_only_what_is_missing(tmp_path):
    frames = _frames(10)
    first = label(frames[:6], "si/sw-bht,si/tersoff-t3", store=tmp_path, progress=False)
    assert first.n_computed.tolist() == [6, 6]
    again = label(frames[:6], "si/sw-bht,si/tersoff-t3", store=tmp_path, progress=False)
    assert again.n_computed.tolist() == [0, 0]
    np.testing.assert_array_equal(again.energies, first.energies)
    more = label(frames, "si/sw-bht,si/tersoff-t3,si/edip", store=tmp_path, progress=False)
    assert more.n_computed.tolist() == [4, 4, 10]
    np.testing.assert_array_equal(more.energies[:6, :2], first.energies)


def test_forces_asked_later_are_computed_then_cached(tmp_path):
    frames = _frames(3, seed=1)
    label(frames, "si/tersoff-t2", store=tmp_path, progress=False)
    with_forces = label(frames, "si/tersoff-t2", store=tmp_path, progress=False, with_forces=True)
    assert with_forces.n_computed.tolist() == [3]
    cached = label(frames, "si/tersoff-t2", store=tmp_path, progress=False, with_forces=True)
    assert cached.n_computed.tolist() == [0]
    np.testing.assert_array_equal(cached.forces[0][1], with_forces.forces[0][1])


def test_failed_entries_are_cached_with_their_reason_unless_retried(tmp_path):
    bad = bulk("Cu", "fcc", a=3.6)
    first = label([bad], "si/sw-bht", store=tmp_path, progress=False)
    cached = label([bad], "si/sw-bht", store=tmp_path, progress=False)
    retried = label([bad], "si/sw-bht", store=tmp_path, progress=False, retry_missing=True)
    assert [first.n_computed[0], cached.n_computed[0], retried.n_computed[0]] == [1, 0, 1]
    assert cached.reasons[0, 0] == first.reasons[0, 0] != ""


def test_key_is_the_configuration_content_not_its_object():
    atoms = _frames(1)[0]
    moved = atoms.copy()
    moved.positions[0, 0] += 1e-9
    key = Structure.from_atoms(atoms).content_hash()
    assert key == Structure.from_atoms(atoms.copy()).content_hash()
    assert key != Structure.from_atoms(moved).content_hash()


def test_a_free_cluster_has_one_key_in_any_box():
    cluster = bulk("Si", "diamond", a=5.43) * (2, 1, 1)
    cluster.pbc = False
    boxed = cluster.copy()
    boxed.cell = [[-20.0, 0.0, 0.0], [0.0, 15.0, 0.0], [0.0, 0.0, 12.0]]
    periodic = cluster.copy()
    periodic.pbc = True
    keys = [Structure.from_atoms(a).content_hash() for a in (cluster, boxed, periodic)]
    assert keys[0] == keys[1] != keys[2]


def test_store_of_another_format_is_refused_not_misread(tmp_path):
    with sqlite3.connect(tmp_path / "labels.sqlite") as connection:
        connection.execute("PRAGMA user_version = 99")
        connection.execute("CREATE TABLE labels (x)")
    with pytest.raises(LabelStoreError, match="has format 99"):
        LabelStore(tmp_path)


_FORMAT_1 = """
CREATE TABLE eips (id INTEGER PRIMARY KEY, eip_id TEXT NOT NULL UNIQUE);
CREATE TABLE labels (eip INTEGER NOT NULL REFERENCES eips(id), config_hash BLOB NOT NULL,
    n_atoms INTEGER NOT NULL, energy_ev REAL, forces BLOB, reason TEXT,
    PRIMARY KEY (eip, config_hash)) WITHOUT ROWID;
CREATE TABLE alignments (name TEXT PRIMARY KEY, payload TEXT NOT NULL);
PRAGMA user_version = 1;
"""


def test_a_store_of_format_1_is_upgraded_without_losing_a_label(tmp_path):
    forces = np.arange(6.0).reshape(2, 3)
    with sqlite3.connect(tmp_path / "labels.sqlite") as connection:
        connection.executescript(_FORMAT_1)
        connection.execute("INSERT INTO eips VALUES (1, 'SW_X'), (2, 'Tersoff_Y')")
        connection.executemany(
            "INSERT INTO labels VALUES (?, ?, ?, ?, ?, ?)",
            [(1, bytes([1] * 16), 2, -8.5, forces.tobytes(), None),
             (1, bytes([2] * 16), 1, -4.0, None, None),
             (1, bytes([3] * 16), 1, None, None, "kim-error: bad"),
             (2, bytes([1] * 16), 2, -9.0, None, None)])
        connection.execute("INSERT INTO alignments VALUES ('a', '{\"x\": 1}')")
    with LabelStore(tmp_path) as store:
        sw = store.get(["01" * 16, "02" * 16, "03" * 16, "04" * 16], "SW_X")
        assert store.count() == 4
        assert store.load_alignment("a") == {"x": 1}
    assert sorted(sw) == ["01" * 16, "02" * 16, "03" * 16]
    np.testing.assert_array_equal(sw["01" * 16].forces, forces)
    assert (sw["01" * 16].energy_ev, sw["02" * 16].energy_ev, sw["02" * 16].forces) == (-8.5, -4.0, None)
    assert (sw["03" * 16].energy_ev, sw["03" * 16].reason) == (None, "kim-error: bad")
    with sqlite3.connect(tmp_path / "labels.sqlite") as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == 2
        assert connection.execute("SELECT COUNT(*) FROM chunks").fetchone()[0] == 3


def test_a_reader_sees_later_chunks_of_another_writer_and_the_latest_wins(tmp_path):
    key = "ab" * 16
    reader, writer = LabelStore(tmp_path), LabelStore(tmp_path)
    writer.put("SW_X", [(key, StoredLabel(1, None, None, "kim-error: first try"))])
    assert reader.get([key], "SW_X")[key].reason == "kim-error: first try"
    writer.put("SW_X", [(key, StoredLabel(1, -4.25, None, None)), ("cd" * 16, StoredLabel(1, -1.0, None, None))])
    reader.put("SW_X", [("ef" * 16, StoredLabel(1, -2.0, None, None))])
    assert reader.get([key], "SW_X")[key] == StoredLabel(1, -4.25, None, None)
    assert reader.count("SW_X") == writer.count("SW_X") == 3
    reader.close()
    writer.close()


def test_a_chunk_with_forces_for_some_labelled_entries_only_is_refused(tmp_path):
    with LabelStore(tmp_path) as store, pytest.raises(LabelStoreError, match="forces"):
        store.put("SW_X", [("01" * 16, StoredLabel(1, -1.0, np.zeros((1, 3)), None)),
                           ("02" * 16, StoredLabel(1, -1.0, None, None))])


def test_unwritable_store_location_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(LabelStoreError, match="writable directory"):
        LabelStore(blocker / "labels")


_LABELLING_SCRIPT = textwrap.dedent(
    """
    import sys
    from ase.build import bulk
    from eipnn_training.eip import label
    frames = []
    for i in range({count}):
        atoms = bulk("Si", "diamond", a=5.43, cubic=True) * (2, 1, 1)
        atoms.rattle(0.05, seed=i)
        frames.append(atoms)
    label(frames, "si/tersoff-tmod", store=sys.argv[1], chunk_size=4, progress=False,
          workers=int(sys.argv[2]))
    """
)


@pytest.mark.parametrize("workers", [1, 2])
def test_kill_dash_nine_keeps_the_store_readable_and_a_rerun_resumes(tmp_path, workers):
    count = 200
    script = tmp_path / "run.py"
    script.write_text(_LABELLING_SCRIPT.format(count=count))
    store_dir = tmp_path / "store"
    # Lowest priority: on a busy machine the watcher must win the CPU, so that it sees the
    # first commits and kills long before the run could finish.
    process = subprocess.Popen(
        [sys.executable, str(script), str(store_dir), str(workers)],
        preexec_fn=lambda: os.nice(19),
    )
    workers_seen: set[int] = set()
    reader = None
    try:
        # Generous: at nice 19 beside two busy trainings on 2 cores the child got no CPU
        # for over a minute; on a quiet machine 20 labels are stored within seconds.
        deadline = time.monotonic() + 300
        stored = 0
        while stored < 20:  # a reader works while the writer writes
            assert process.poll() is None, "labelling finished before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.02)
            if reader is None and (store_dir / "labels.sqlite").exists():
                reader = LabelStore(store_dir)
            stored = reader.count() if reader is not None else 0
            workers_seen |= children(process.pid)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    reader.close()
    if workers > 1:  # the worker processes die with their parent, none is left running
        assert len(workers_seen) == workers
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in workers_seen) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(alive(pid) for pid in workers_seen)

    survived = LabelStore(store_dir).count()
    assert 20 <= survived < count and survived % 4 == 0  # whole chunks only
    with sqlite3.connect(store_dir / "labels.sqlite") as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    frames = []
    for i in range(count):
        atoms = bulk("Si", "diamond", a=5.43, cubic=True) * (2, 1, 1)
        atoms.rattle(0.05, seed=i)
        frames.append(atoms)
    resumed = label(frames, "si/tersoff-tmod", store=store_dir, progress=False)
    assert resumed.n_computed.tolist() == [count - survived]
    sample = np.r_[0:10, count - 10 : count]  # stored before the kill, and computed after
    fresh = label([frames[i] for i in sample], "si/tersoff-tmod", store=False, progress=False)
    np.testing.assert_array_equal(resumed.energies[sample], fresh.energies)


def test_alignment_is_saved_with_the_labels(tmp_path):
    with LabelStore(tmp_path) as store:
        store.save_alignment("demo", {"offsets_ev": [[1.5]]})
    with LabelStore(tmp_path) as store:
        assert store.load_alignment("demo") == {"offsets_ev": [[1.5]]}
        with pytest.raises(LabelStoreError, match="stored ones: \\['demo'\\]"):
            store.load_alignment("other")


def test_shards_label_disjoint_slices_that_merge_into_the_one_process_store(tmp_path, capsys):
    """``eipnn-label --shard i/n`` for cluster jobs, then ``--merge``: the merged store
    holds what one labelling of the whole source holds, and merging again adds nothing."""
    import ase.io

    from eipnn_training.cli.label import main as label_main

    ase.io.write(tmp_path / "frames.extxyz", _frames(7, seed=3))
    frames = ase.io.read(tmp_path / "frames.extxyz", ":")  # as the command reads them
    eips = "si/sw-bht,si/tersoff-t3"
    for i in range(3):
        assert label_main([str(tmp_path / "frames.extxyz"), "--eips", eips, "--forces", "--shard", f"{i}/3",
                           "--store", str(tmp_path / f"shard{i}")]) == 0
    hashes = [Structure.from_atoms(atoms).content_hash() for atoms in frames]
    held = []
    for i in range(3):
        with LabelStore(tmp_path / f"shard{i}") as store:
            held.append(set(store.get(hashes, store.eip_ids()[0])))
            assert store.count() == 2 * len(frames[i::3])
    assert set.union(*held) == set(hashes) and sum(map(len, held)) == len(hashes)  # disjoint, complete
    sources = [str(tmp_path / f"shard{i}") for i in range(3)]
    assert label_main(["--merge", *sources, "--store", str(tmp_path / "merged")]) == 0
    assert "entries taken" in capsys.readouterr().out
    assert label_main(["--merge", *sources, "--store", str(tmp_path / "merged")]) == 0
    assert capsys.readouterr().out.count(": 0 entries taken") == 3  # nothing twice
    whole = label(frames, eips, store=tmp_path / "whole", with_forces=True, progress=False)
    merged = label(frames, eips, store=tmp_path / "merged", with_forces=True, progress=False)
    assert merged.n_computed.tolist() == [0, 0]  # all of it came from the shards
    np.testing.assert_array_equal(merged.energies, whole.energies)
    for a, b in zip(merged.forces, whole.forces):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    with pytest.raises(SystemExit):
        label_main([str(tmp_path / "frames.extxyz"), "--eips", eips, "--shard", "3/3"])
    assert "need 0 <= I < N" in capsys.readouterr().err
