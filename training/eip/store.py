"""The on-disk label store: one SQLite file keyed by (EIP ID, configuration hash).

SQLite in write-ahead-log mode gives what the labelling engine needs without a server:
every batch of results is one transaction, so a process killed with SIGKILL loses only the
batch it had not committed and never leaves a half-written row; any number of readers
can read while one writer writes. Alignments fitted on these labels are kept beside them.
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
SCHEMA_VERSION = 1
# Compact keys (an integer per EIP, 16 raw bytes per configuration hash): inserts cost
# about a third less than with text keys, which matters next to ~60 µs KIM calls.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS eips (
    id INTEGER PRIMARY KEY,
    eip_id TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS labels (
    eip INTEGER NOT NULL REFERENCES eips(id),
    config_hash BLOB NOT NULL,
    n_atoms INTEGER NOT NULL,
    energy_ev REAL,
    forces BLOB,
    reason TEXT,
    PRIMARY KEY (eip, config_hash)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alignments (
    name TEXT PRIMARY KEY,
    payload TEXT NOT NULL
);
"""
_QUERY_CHUNK = 500  # keys per IN (...) query: well under SQLite's variable limit


class StoredLabel(NamedTuple):
    """One (configuration, EIP) entry: energy in eV or None with a reason.

    A NamedTuple rather than a dataclass: one is made per label on the hot path."""

    n_atoms: int
    energy_ev: float | None
    forces: np.ndarray | None
    reason: str | None


def default_store_path() -> Path:
    from ..data.si_pbe import cache_dir

    return cache_dir() / "labels"


class LabelStore:
    """Labels of EIPs on configurations, persistent across runs and processes."""

    @staticmethod
    def resolve_directory(directory: str | os.PathLike | None) -> Path:
        return (Path(directory) if directory is not None else default_store_path()).resolve()

    def __init__(self, directory: str | os.PathLike | None = None):
        self.directory = self.resolve_directory(directory)
        self.path = self.directory / STORE_FILE
        self._eip_keys: dict[str, int] = {}
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
        version = self._connection.execute("PRAGMA user_version").fetchone()[0]
        tables = self._connection.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]
        if version == 0 and tables == 0:
            self._connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        elif version != SCHEMA_VERSION:
            raise LabelStoreError(
                f"label store '{self.path}' has format {version}, this code reads format "
                f"{SCHEMA_VERSION}: move it away (labels are recomputed) or use another "
                "--store directory"
            )

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

    def get(self, hashes: list[str], eip_id: str) -> dict[str, StoredLabel]:
        """The stored entries among ``hashes`` (hex) for one EIP; absent keys are left out."""
        eip = self._eip_key(eip_id, create=False)
        if eip is None:
            return {}
        found: dict[str, StoredLabel] = {}
        unique = [bytes.fromhex(h) for h in dict.fromkeys(hashes)]
        for start in range(0, len(unique), _QUERY_CHUNK):
            part = unique[start : start + _QUERY_CHUNK]
            rows = self._connection.execute(
                "SELECT config_hash, n_atoms, energy_ev, forces, reason FROM labels "
                f"WHERE eip = ? AND config_hash IN ({','.join('?' * len(part))})",
                [eip, *part],
            )
            for config_hash, n_atoms, energy, forces, reason in rows:
                array = None
                if forces is not None:
                    array = np.frombuffer(forces, dtype=np.float64).reshape(n_atoms, 3).copy()
                found[config_hash.hex()] = StoredLabel(n_atoms, energy, array, reason)
        return found

    def put(self, eip_id: str, entries: list[tuple[str, StoredLabel]]) -> None:
        """Write a batch of entries in one transaction (replacing older ones)."""
        eip = self._eip_key(eip_id, create=True)
        rows = [
            (
                eip,
                bytes.fromhex(config_hash),
                entry.n_atoms,
                entry.energy_ev,
                None if entry.forces is None else np.asarray(entry.forces, np.float64).tobytes(),
                entry.reason,
            )
            for config_hash, entry in entries
        ]
        with self._connection:  # one transaction: all rows or none
            self._connection.executemany(
                "INSERT OR REPLACE INTO labels VALUES (?, ?, ?, ?, ?, ?)", rows
            )

    def count(self, eip_id: str | None = None) -> int:
        if eip_id is None:
            return self._connection.execute("SELECT COUNT(*) FROM labels").fetchone()[0]
        eip = self._eip_key(eip_id, create=False)
        if eip is None:
            return 0
        return self._connection.execute(
            "SELECT COUNT(*) FROM labels WHERE eip = ?", (eip,)
        ).fetchone()[0]

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
