"""The DFT label store: the EIP :class:`~eipnn_training.eip.store.LabelStore`, keyed by
(settings ID, configuration content hash), plus what each calculation was run with.

The labels themselves (energy, forces, failure reason) are LabelStore chunks of one
entry each: one transaction per finished calculation, SQLite in write-ahead-log mode, so a
``kill -9`` loses only the calculation in flight and never leaves a broken file. Beside
them, in the same file, two tables this module adds:

- ``dft_settings``: settings ID -> the full settings JSON (functional, cut-off, k-point
  density, smearing, setups, SCF tolerances, GPAW and gpaw-data versions);
- ``dft_runs``: (settings ID, hash) -> how the calculation went (mixing that converged,
  failed attempts with their reasons, SCF iterations, seconds, k-point grid, when).

A run record is written (and committed) before its label, so every stored label has its
record; a record without a label (killed in between) is overwritten by the rerun.
"""
from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from ..eip.errors import LabelStoreError
from ..eip.store import STORE_FILE, LabelStore, StoredLabel
from .settings import DFTSettings

_SCHEMA = """
CREATE TABLE IF NOT EXISTS dft_settings (
    settings_id TEXT PRIMARY KEY,
    payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS dft_runs (
    settings_id TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    record TEXT NOT NULL,
    finished_unix REAL NOT NULL,
    PRIMARY KEY (settings_id, config_hash)
) WITHOUT ROWID;
"""


def default_dft_store_path() -> Path:
    """``cache_dir()/dft``: apart from the EIP labels, so that their counts stay theirs."""
    from ..data.si_pbe import cache_dir

    return cache_dir() / "dft"


class DFTStore:
    """DFT labels and their run records, persistent across runs and processes."""

    def __init__(self, directory=None):
        directory = Path(directory) if directory is not None else default_dft_store_path()
        self.labels = LabelStore(directory)  # creates the directory and the file
        self.path = self.labels.directory / STORE_FILE
        try:
            self._connection = sqlite3.connect(self.path, timeout=120.0)
            self._connection.execute("PRAGMA synchronous=NORMAL")
            self._connection.executescript(_SCHEMA)
        except sqlite3.Error as error:
            raise LabelStoreError(f"cannot open the DFT tables in '{self.path}': {error}") from error

    def close(self) -> None:
        self._connection.close()
        self.labels.close()

    def __enter__(self) -> "DFTStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def register(self, settings: DFTSettings) -> str:
        """Record the settings under their ID (once) and return the ID."""
        settings_id = settings.settings_id
        with self._connection:
            self._connection.execute(
                "INSERT OR IGNORE INTO dft_settings VALUES (?, ?)",
                (settings_id, json.dumps(settings.as_dict(), sort_keys=True)),
            )
        return settings_id

    def settings_payload(self, settings_id: str) -> dict:
        row = self._connection.execute(
            "SELECT payload FROM dft_settings WHERE settings_id = ?", (settings_id,)
        ).fetchone()
        if row is None:
            raise LabelStoreError(f"no DFT settings '{settings_id}' in {self.path}")
        return json.loads(row[0])

    def get(self, hashes: list[str], settings_id: str) -> dict[str, StoredLabel]:
        """The stored labels among ``hashes`` (failed ones too); absent keys left out."""
        return self.labels.get(hashes, settings_id)

    def put(self, settings_id: str, config_hash: str, label: StoredLabel, record: dict) -> None:
        """One finished calculation: its run record, then its label (each one commit)."""
        with self._connection:
            self._connection.execute(
                "INSERT OR REPLACE INTO dft_runs VALUES (?, ?, ?, ?)",
                (settings_id, config_hash, json.dumps(record), time.time()),
            )
        self.labels.put(settings_id, [(config_hash, label)])

    def records(self, settings_id: str, hashes: list[str] | None = None) -> dict[str, dict]:
        """Run records by configuration hash (all of the settings, or those of ``hashes``)."""
        rows = self._connection.execute(
            "SELECT config_hash, record, finished_unix FROM dft_runs WHERE settings_id = ?",
            (settings_id,),
        ).fetchall()
        wanted = None if hashes is None else set(hashes)
        return {
            key: {**json.loads(record), "finished_unix": finished}
            for key, record, finished in rows
            if wanted is None or key in wanted
        }

    def count(self, settings_id: str) -> int:
        """How many configurations have a stored label (failed ones included)."""
        return self.labels.count(settings_id)
