"""Finished DFT labels as committable files: compressed extxyz chunks of a data set.

A :class:`ChunkWriter` collects the labels a run finishes and, every ``chunk_size`` of
them, writes ``chunk-NNNN.extxyz.xz`` (geometry, energy, forces, the settings ID and the
run record in each frame's info) to a temporary name and renames it into place, so a chunk
file is whole or absent. Labels finished after the last whole chunk are only in the store:
when the writer starts it first takes every stored label of the pool that no chunk holds
yet, so an interrupted run loses nothing that the store has. ``settings.json`` beside the
chunks holds the full settings of every settings ID used there.
"""
from __future__ import annotations

import fcntl
import io
import json
import lzma
import os
import re
from pathlib import Path

from ..eip.store import StoredLabel
from ..eip.structure import Structure
from .errors import DFTError

CHUNK_PATTERN = re.compile(r"chunk-(\d{4,})\.extxyz\.xz$")
SETTINGS_FILE = "settings.json"


def chunk_files(directory) -> list[Path]:
    """The chunk files of a directory, in index order."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := CHUNK_PATTERN.match(p.name))]
    return [path for _, path in sorted(found)]


def read_chunks(directory) -> list:
    """Every labelled frame of the chunk files (ASE Atoms with energy and forces)."""
    from ..sampling.pool import read_pool

    frames = []
    for path in chunk_files(directory):
        frames.extend(read_pool(path))
    return frames


def chunk_labels(directory, settings_id: str) -> dict:
    """config hash -> labelled frame of the chunks of ``directory`` made with ``settings_id``
    (labels of other settings do not count)."""
    return {frame.info["config_hash"]: frame for frame in read_chunks(directory)
            if frame.info.get("dft_settings_id") == settings_id}


class ChunkWriter:
    """Writes finished labels of ``pool`` (ASE Atoms, as read from the pool file) into
    ``directory`` in chunks of ``chunk_size``. One writer per directory at a time (a lock
    file in the temporary directory makes a second one fail at once)."""

    def __init__(self, directory, pool: list, settings_id: str, settings_payload: dict,
                 chunk_size: int = 25):
        if chunk_size < 1:
            raise DFTError(f"chunk_size must be at least 1, not {chunk_size}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = open(_lock_path(self.directory), "w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DFTError(
                f"another labelling run is writing chunks in '{self.directory}': wait for "
                "it to finish or stop it first"
            ) from None
        self.settings_id = settings_id
        self.chunk_size = chunk_size
        self._pool = {Structure.from_atoms(a).content_hash(): a for a in pool}
        self._written = set(chunk_labels(self.directory, settings_id))
        files = chunk_files(self.directory)
        self._next = int(CHUNK_PATTERN.match(files[-1].name).group(1)) + 1 if files else 0
        self._buffer: list[tuple[str, StoredLabel, dict]] = []
        self._record_settings(settings_payload)

    @property
    def n_written(self) -> int:
        return len(self._written)

    def holds(self, atoms) -> bool:
        """Whether a chunk already holds this configuration's label (of these settings)."""
        return Structure.from_atoms(atoms).content_hash() in self._written

    def _record_settings(self, payload: dict) -> None:
        path = self.directory / SETTINGS_FILE
        known = json.loads(path.read_text()) if path.exists() else {}
        if known.get(self.settings_id) != payload:
            known[self.settings_id] = payload
            _replace(path, (json.dumps(known, indent=2, sort_keys=True) + "\n").encode())

    def add(self, config_hash: str, label: StoredLabel, record: dict) -> bool:
        """Take one finished label (failed ones, those outside the pool and those already
        taken are skipped: False); write a chunk when ``chunk_size`` are waiting."""
        if label.reason is not None or config_hash not in self._pool:
            return False
        if config_hash in self._written or any(h == config_hash for h, _, _ in self._buffer):
            return False
        self._buffer.append((config_hash, label, record))
        if len(self._buffer) >= self.chunk_size:
            self._write(self._buffer[: self.chunk_size])
            self._buffer = self._buffer[self.chunk_size :]
        return True

    def add_stored(self, store) -> int:
        """Take the stored labels of the pool that no chunk holds yet; how many."""
        hashes = list(self._pool)
        stored = store.get(hashes, self.settings_id)
        records = store.records(self.settings_id, hashes)
        return sum(
            self.add(config_hash, stored[config_hash], records.get(config_hash, {}))
            for config_hash in hashes  # pool order
            if config_hash in stored
        )

    def flush(self) -> None:
        """Write what is waiting as a last, shorter chunk (at the end of a complete run)."""
        if self._buffer:
            self._write(self._buffer)
            self._buffer = []

    def close(self) -> None:
        self._lock.close()

    def _write(self, entries) -> None:
        import ase.io
        from ase.calculators.singlepoint import SinglePointCalculator

        frames = []
        for config_hash, label, record in entries:
            atoms = self._pool[config_hash].copy()
            atoms.info.update(
                config_hash=config_hash,
                dft_settings_id=self.settings_id,
                kpoint_grid=" ".join(map(str, record.get("kpoint_grid", []))),
                scf_mixing=str(record.get("mixing")),
                dft_seconds=float(record.get("seconds", float("nan"))),
            )
            atoms.calc = SinglePointCalculator(atoms, energy=label.energy_ev, forces=label.forces)
            frames.append(atoms)
        text = io.StringIO()
        ase.io.write(text, frames, format="extxyz")
        path = self.directory / f"chunk-{self._next:04d}.extxyz.xz"
        _replace(path, lzma.compress(text.getvalue().encode(), preset=9))
        self._next += 1
        self._written.update(h for h, _, _ in entries)


def _lock_path(directory: Path) -> Path:
    """The lock of a chunk directory: in the temporary directory, not beside the chunks,
    so that committing the chunk directory never picks it up."""
    import hashlib
    import tempfile

    key = hashlib.blake2b(str(directory.resolve()).encode(), digest_size=8).hexdigest()
    return Path(tempfile.gettempdir()) / f"eipnn-chunks-{key}.lock"


def _replace(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` atomically: a temporary file, fsync, rename."""
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "wb") as handle:
        handle.write(payload)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
