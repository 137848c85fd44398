"""The labelling engine: configurations × EIPs -> energies (and forces), cached on disk.

What the store lacks is cut into chunks of configurations for one EIP; each chunk runs in
a worker process or in this one (``workers.py``); the parent writes every finished chunk to
the label store in one transaction, so a killed run loses at most the chunks in flight and
a rerun computes only what is missing.
"""
from __future__ import annotations

import atexit
import itertools
import math
import os

import numpy as np

from .catalogue import resolve
from .labels import Labels
from .sources import load_configurations
from .store import LabelStore, StoredLabel
from .structure import Structure
from .workers import Task, execute

__all__ = ["label", "open_store"]

MIN_CHUNK_SIZE, MAX_CHUNK_SIZE = 16, 512


def _usable(entry: StoredLabel, with_forces: bool, retry_missing: bool) -> bool:
    if entry.reason is not None:
        return not retry_missing
    return entry.forces is not None or not with_forces


class _MemoryStore:
    """Stands in for LabelStore when the caller wants no disk cache (``store=False``)."""

    def __init__(self):
        self._entries: dict[tuple[str, str], StoredLabel] = {}

    def get(self, hashes: list[str], eip_id: str) -> dict[str, StoredLabel]:
        return {h: self._entries[h, eip_id] for h in hashes if (h, eip_id) in self._entries}

    def put(self, eip_id: str, entries: list[tuple[str, StoredLabel]]) -> None:
        for config_hash, entry in entries:
            self._entries[config_hash, eip_id] = entry


_OPEN_STORES: dict[str, LabelStore] = {}
_PARENT_PID = os.getpid()


def open_store(store):
    """The store to use. Stores named by path stay open for the life of the process: the
    last close of an SQLite WAL database checkpoints it, which costs tens of ms per call."""
    if store is False:
        return _MemoryStore()
    if hasattr(store, "put"):
        return store
    directory = str(LabelStore.resolve_directory(store))
    if directory not in _OPEN_STORES or not _OPEN_STORES[directory].path.exists():
        if not _OPEN_STORES:
            atexit.register(_close_stores)
        _OPEN_STORES[directory] = LabelStore(directory)
    return _OPEN_STORES[directory]


def _close_stores() -> None:
    """At exit: a clean close folds the write-ahead log back into the store file."""
    if os.getpid() != _PARENT_PID:  # a forked worker must not close the parent's handles
        return
    for store in _OPEN_STORES.values():
        store.close()
    _OPEN_STORES.clear()


def label(
    configurations,
    eip_names: list[str] | tuple[str, ...] | str,
    *,
    workers: int = 1,
    store=None,
    with_forces: bool = False,
    chunk_size: int | None = None,
    retry_missing: bool = False,
    progress: bool = True,
) -> Labels:
    """EIP energies (eV) of every configuration under every EIP.

    ``configurations``: list of ASE Atoms, an extxyz path, or "si-pbe". ``eip_names``:
    catalogue short names, groups ("si"), or installed KIM model IDs. ``store``: a
    :class:`LabelStore`, a directory, None for ``cache_dir()/labels``, or False for no disk
    cache. Entries already stored are reused (failed ones too, unless ``retry_missing``);
    only the rest is computed, in ``workers`` processes, with a progress bar.
    ``chunk_size`` (configurations per task; default: automatic) bounds what a kill loses.
    """
    from .catalogue import expand

    names = expand(eip_names)
    eips = [resolve(name) for name in names]  # before loading: a typo fails at once
    configurations = load_configurations(configurations)
    structures = [Structure.from_atoms(atoms) for atoms in configurations]
    hashes = [structure.content_hash() for structure in structures]
    by_hash = dict(zip(hashes, structures))  # identical configurations are computed once

    label_store = open_store(store)
    known = {eip.eip_id: label_store.get(hashes, eip.eip_id) for eip in eips}
    per_eip = []
    for eip in eips:
        stored = known[eip.eip_id]
        pending = [
            h
            for h in by_hash
            if h not in stored or not _usable(stored[h], with_forces, retry_missing)
        ]
        size = chunk_size or _chunk_size(len(pending), workers)
        per_eip.append(
            [
                Task(eip, part, [by_hash[h] for h in part], with_forces)
                for part in (pending[i : i + size] for i in range(0, len(pending), size))
            ]
        )
    # Longest first: the ASE-calculator EIPs (matscipy's TMOD, ~30x a KIM model) go
    # before the KIM ones, so that the last tasks are short and no worker idles at the
    # end while another finishes a slow chunk; within each kind, round robin over EIPs.
    slow = [group for group, eip in zip(per_eip, eips) if eip.kind != "kim"]
    fast = [group for group, eip in zip(per_eip, eips) if eip.kind == "kim"]
    tasks = [
        task
        for groups in (slow, fast)
        for row in itertools.zip_longest(*groups)
        for task in row
        if task is not None
    ]
    total = sum(len(task.hashes) for task in tasks)
    bar = _progress_bar(total, progress)
    computed = dict.fromkeys(known, 0)
    for eip_id, results in execute(tasks, workers):
        label_store.put(eip_id, results)
        known[eip_id].update(results)
        computed[eip_id] += len(results)
        bar.update(len(results))
    bar.close()
    labels = _assemble(names, eips, hashes, structures, known, with_forces)
    labels.n_computed = np.array([computed[eip.eip_id] for eip in eips], dtype=np.int64)
    return labels


def _chunk_size(pending: int, workers: int) -> int:
    """Configurations per task. Each finished task is one store commit (~0.1 ms, as much as
    a small KIM call), so chunks are large: in-process, the largest allowed; with workers,
    about 8 tasks per worker per EIP so that the workers stay balanced."""
    if workers <= 1:
        return MAX_CHUNK_SIZE
    return int(np.clip(math.ceil(pending / (8 * workers)), MIN_CHUNK_SIZE, MAX_CHUNK_SIZE))


def _progress_bar(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc="EIP labels", unit="label", disable=not enabled or total == 0)


def _assemble(names, eips, hashes, structures, known, with_forces) -> Labels:
    n, k_count = len(hashes), len(eips)
    energies = np.full((n, k_count), np.nan)
    present = np.zeros((n, k_count), dtype=bool)
    reasons = np.full((n, k_count), "", dtype=object)
    forces = [[None] * n for _ in range(k_count)] if with_forces else None
    for k, eip in enumerate(eips):
        entries = known[eip.eip_id]
        for i, config_hash in enumerate(hashes):
            entry = entries[config_hash]
            if entry.reason is None:
                energies[i, k] = entry.energy_ev
                present[i, k] = True
                if forces is not None:
                    forces[k][i] = entry.forces
            else:
                reasons[i, k] = entry.reason
    n_atoms = np.array([len(s.numbers) for s in structures], dtype=np.int64)
    return Labels(
        names=list(names),
        eip_ids=[eip.eip_id for eip in eips],
        hashes=list(hashes),
        n_atoms=n_atoms,
        energies=energies,
        present=present,
        reasons=reasons,
        forces=forces,
    )
