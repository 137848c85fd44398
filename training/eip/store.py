"""The on-disk label store: one SQLite file of labels keyed by (EIP ID, configuration hash).

Each batch the engine finishes is written as one row (a chunk: its keys and values packed
in arrays), in one transaction; the label of a key is the one in the latest chunk that
holds it. Per-label rows cost 2–4 µs each to insert, a fifth of a small KIM call; a chunk
row costs under 0.5 µs per label. SQLite in write-ahead-log mode gives the rest without a
server: a process killed with SIGKILL loses only the chunk it had not committed and never
leaves a half-written one; any number of readers can read while one writer writes. Each
reader keeps an index of the chunks it has read and reads only newer ones on a lookup.
Alignments fitted on these labels are kept beside them.
"""
from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .errors import LabelStoreError

STORE_FILE = "labels.sqlite"
SCHEMA_VERSION = 2
_HASH_BYTES = 16  # BLAKE2b-128, Structure.content_hash
# AUTOINCREMENT: chunk ids only grow, so "the latest chunk" is the one with the largest id
# and a reader finds what is new since its last look by id.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS eips (
    id INTEGER PRIMARY KEY,
    eip_id TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    eip INTEGER NOT NULL REFERENCES eips(id),
    hashes BLOB NOT NULL,
    n_atoms BLOB NOT NULL,
    energies BLOB NOT NULL,
    reasons TEXT,
    forces BLOB
);
CREATE INDEX IF NOT EXISTS chunks_of_eip ON chunks (eip, id);
CREATE TABLE IF NOT EXISTS alignments (
    name TEXT PRIMARY KEY,
    payload TEXT NOT NULL
);
"""


class StoredLabel(NamedTuple):
    """One (configuration, EIP) entry: energy in eV or None with a reason.

    A NamedTuple rather than a dataclass: one is made per label on the hot path."""

    n_atoms: int
    energy_ev: float | None
    forces: np.ndarray | None
    reason: str | None


def _better(candidate: StoredLabel, held: StoredLabel) -> bool:
    """``candidate`` is worth storing over ``held``: it has an energy where ``held`` failed,
    or forces where ``held`` has none."""
    if held.reason is not None:
        return candidate.reason is None
    return candidate.reason is None and candidate.forces is not None and held.forces is None


def default_store_path() -> Path:
    from ..data.si_pbe import cache_dir

    return cache_dir() / "labels"


class _Chunk(NamedTuple):
    """The columns of a chunk row, packed: what ``put`` writes and ``_entries`` reads."""

    hashes: bytes  # n x 16 bytes
    n_atoms: bytes  # n int32
    energies: bytes  # n float64, NaN where the entry failed
    reasons: str | None  # JSON {position: reason} of the failed entries
    forces: bytes | None  # float64 (n_atoms, 3) of every entry that has forces, in order


def _pack(entries: list[tuple[str, StoredLabel]]) -> _Chunk:
    n_atoms = np.fromiter((e.n_atoms for _, e in entries), np.int32, len(entries))
    energies = np.fromiter(
        (np.nan if e.energy_ev is None else e.energy_ev for _, e in entries),
        np.float64,
        len(entries),
    )
    reasons = {i: e.reason for i, (_, e) in enumerate(entries) if e.reason is not None}
    with_forces = [e.forces for _, e in entries if e.forces is not None]
    if with_forces and len(with_forces) != len(entries) - len(reasons):
        raise LabelStoreError("a chunk must have forces for all its labelled entries or none")
    return _Chunk(
        hashes=bytes.fromhex("".join(h for h, _ in entries)),
        n_atoms=n_atoms.tobytes(),
        energies=energies.tobytes(),
        reasons=json.dumps(reasons) if reasons else None,
        forces=np.concatenate([np.asarray(f, np.float64).ravel() for f in with_forces]).tobytes()
        if with_forces
        else None,
    )


def _unpack(chunk: _Chunk) -> list[tuple[str, StoredLabel]]:
    raw = chunk.hashes.hex()
    width = 2 * _HASH_BYTES
    n_atoms = np.frombuffer(chunk.n_atoms, np.int32).tolist()
    energies = np.frombuffer(chunk.energies, np.float64).tolist()
    reasons = {int(i): r for i, r in json.loads(chunk.reasons).items()} if chunk.reasons else {}
    forces = np.frombuffer(chunk.forces, np.float64) if chunk.forces is not None else None
    entries, offset = [], 0
    for i, (count, energy) in enumerate(zip(n_atoms, energies)):
        reason = reasons.get(i)
        array = None
        if reason is None and forces is not None:
            array = forces[offset : offset + 3 * count].reshape(count, 3).copy()
            offset += 3 * count
        label = StoredLabel(count, None if reason is not None else energy, array, reason)
        entries.append((raw[i * width : (i + 1) * width], label))
    return entries


class LabelStore:
    """Labels of EIPs on configurations, persistent across runs and processes."""

    @staticmethod
    def resolve_directory(directory: str | os.PathLike | None) -> Path:
        return (Path(directory) if directory is not None else default_store_path()).resolve()

    def __init__(self, directory: str | os.PathLike | None = None):
        self.directory = self.resolve_directory(directory)
        self.path = self.directory / STORE_FILE
        self._eip_keys: dict[str, int] = {}
        # per EIP key: {hash: (chunk id, label)} and the largest chunk id read for it
        self._index: dict[int, dict[str, tuple[int, StoredLabel]]] = {}
        self._read_up_to: dict[int, int] = {}
        self._written: set[int] = set()  # chunk ids this object wrote (and indexed)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._connection = sqlite3.connect(self.path, timeout=120.0)
            self._connection.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a killed process never corrupts the file; only a power
            # cut could lose the last commits, which a rerun recomputes.
            self._connection.execute("PRAGMA synchronous=NORMAL")
            self._check_version()
            self._connection.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as error:
            raise LabelStoreError(
                f"cannot open the label store at '{self.path}': {error} (check the path is "
                "a writable directory, or pass another one with --store / store=...)"
            ) from error

    def _check_version(self) -> None:
        # Read the format and the tables, and stamp a new file, under one write lock: a
        # process opening the store while another creates it read "format 0" and the other's
        # fresh tables between two separate reads, and refused the file (a test saw it).
        self._connection.execute("BEGIN IMMEDIATE")
        try:
            version = self._connection.execute("PRAGMA user_version").fetchone()[0]
            tables = self._connection.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]
            if version == 0 and tables == 0:
                self._connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                version = SCHEMA_VERSION
        finally:
            self._connection.execute("COMMIT")
        if version == SCHEMA_VERSION:
            return
        if version == 1:
            self._upgrade_from_rows()
        elif version != SCHEMA_VERSION:
            raise LabelStoreError(
                f"label store '{self.path}' has format {version}, this code reads format "
                f"{SCHEMA_VERSION}: move it away (labels are recomputed) or use another "
                "--store directory"
            )

    def _upgrade_from_rows(self) -> None:
        """Format 1 kept one row per label: repack each EIP's rows into chunks (one with
        the entries that have forces, one with the rest) in one transaction, so that no
        label computed before is lost."""
        self._connection.executescript(_SCHEMA)  # harmless if the move below is cut short
        with self._connection:
            self._connection.execute("BEGIN")
            for (eip,) in self._connection.execute("SELECT id FROM eips").fetchall():
                rows = self._connection.execute(
                    "SELECT config_hash, n_atoms, energy_ev, forces, reason FROM labels "
                    "WHERE eip = ?",
                    (eip,),
                ).fetchall()
                entries = [
                    (
                        key.hex(),
                        StoredLabel(
                            n,
                            energy,
                            None if forces is None else np.frombuffer(forces).reshape(n, 3),
                            reason,
                        ),
                    )
                    for key, n, energy, forces, reason in rows
                ]
                for group in (
                    [e for e in entries if e[1].forces is not None],
                    [e for e in entries if e[1].forces is None],
                ):
                    if group:
                        self._insert(eip, group)
            self._connection.execute("DROP TABLE labels")
            self._connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _eip_key(self, eip_id: str, create: bool) -> int | None:
        key = self._eip_keys.get(eip_id)
        if key is None:
            select = "SELECT id FROM eips WHERE eip_id = ?"
            row = self._connection.execute(select, (eip_id,)).fetchone()
            if row is None and create:
                with self._connection:
                    self._connection.execute(
                        "INSERT OR IGNORE INTO eips (eip_id) VALUES (?)", (eip_id,)
                    )
                row = self._connection.execute(select, (eip_id,)).fetchone()
            if row is None:
                return None
            key = self._eip_keys[eip_id] = row[0]
        return key

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> "LabelStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _merge(self, eip: int, chunk_id: int, entries: list[tuple[str, StoredLabel]]) -> None:
        """Take a chunk's entries into the index where it is newer than what is there."""
        index = self._index.setdefault(eip, {})
        for config_hash, entry in entries:
            held = index.get(config_hash)
            if held is None or held[0] < chunk_id:
                index[config_hash] = (chunk_id, entry)

    def _entries(self, eip: int) -> dict[str, tuple[int, StoredLabel]]:
        """The index of one EIP, after reading the chunks written since the last look (by
        any process; the chunks this one wrote are in the index already)."""
        start = self._read_up_to.get(eip, 0)
        rows = self._connection.execute(
            "SELECT id, hashes, n_atoms, energies, reasons, forces FROM chunks "
            "WHERE eip = ? AND id > ? ORDER BY id",
            (eip, start),
        ).fetchall()
        for chunk_id, *columns in rows:
            if chunk_id not in self._written:
                self._merge(eip, chunk_id, _unpack(_Chunk(*columns)))
            start = chunk_id
        self._read_up_to[eip] = start
        return self._index.setdefault(eip, {})

    def get(self, hashes: list[str], eip_id: str) -> dict[str, StoredLabel]:
        """The stored entries among ``hashes`` (hex) for one EIP; absent keys are left out."""
        eip = self._eip_key(eip_id, create=False)
        if eip is None:
            return {}
        index = self._entries(eip)
        return {h: index[h][1] for h in hashes if h in index}

    def _insert(self, eip: int, entries: list[tuple[str, StoredLabel]]) -> int:
        cursor = self._connection.execute(
            "INSERT INTO chunks (eip, hashes, n_atoms, energies, reasons, forces) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (eip, *_pack(entries)),
        )
        return cursor.lastrowid

    def put(self, eip_id: str, entries: list[tuple[str, StoredLabel]]) -> None:
        """Write a batch of entries as one chunk in one transaction; for each key it
        replaces what older chunks hold."""
        if not entries:
            return
        eip = self._eip_key(eip_id, create=True)
        with self._connection:  # one transaction: all of the chunk or none
            chunk_id = self._insert(eip, entries)
        self._written.add(chunk_id)
        self._merge(eip, chunk_id, entries)

    def eip_ids(self) -> list[str]:
        return [row[0] for row in self._connection.execute("SELECT eip_id FROM eips ORDER BY id")]

    def merge_from(self, other: "LabelStore", chunk_entries: int = 5000) -> int:
        """Take into this store every entry of ``other`` that it lacks or holds worse (a
        failure where ``other`` has an energy, no forces where ``other`` has them), in
        chunks of ``chunk_entries``, each one transaction; returns how many were taken.
        Entries are keyed by configuration content, so merging twice adds nothing."""
        taken = 0
        for eip_id in other.eip_ids():
            theirs = {h: entry for h, (_, entry) in other._entries(other._eip_key(eip_id, create=False)).items()}
            mine = self.get(list(theirs), eip_id)
            better = [(h, entry) for h, entry in theirs.items()
                      if h not in mine or _better(entry, mine[h])]
            for start in range(0, len(better), chunk_entries):
                self.put(eip_id, better[start:start + chunk_entries])
            taken += len(better)
        return taken

    def count(self, eip_id: str | None = None) -> int:
        """How many (configuration, EIP) entries are stored (failed ones included)."""
        if eip_id is not None:
            eip = self._eip_key(eip_id, create=False)
            return 0 if eip is None else len(self._entries(eip))
        eips = [row[0] for row in self._connection.execute("SELECT id FROM eips")]
        return sum(len(self._entries(eip)) for eip in eips)

    def save_alignment(self, name: str, payload: dict) -> None:
        with self._connection:
            self._connection.execute(
                "INSERT OR REPLACE INTO alignments VALUES (?, ?)", (name, json.dumps(payload))
            )

    def load_alignment(self, name: str) -> dict:
        row = self._connection.execute(
            "SELECT payload FROM alignments WHERE name = ?", (name,)
        ).fetchone()
        if row is None:
            names = [r[0] for r in self._connection.execute("SELECT name FROM alignments")]
            raise LabelStoreError(
                f"no alignment named '{name}' in {self.path}; stored ones: {names or 'none'}"
            )
        return json.loads(row[0])
