"""The labelling engine: configurations × EIPs -> energies (and forces), cached on disk.

Work is cut into chunks of configurations for one EIP. Each chunk runs in a worker process
(or in this process when ``workers=1``) that keeps its EIP objects alive across chunks;
the parent writes every finished chunk to the label store in one transaction, so a killed
run loses at most the chunks in flight and a rerun computes only what is missing.
"""
from __future__ import annotations

import atexit
import math
import multiprocessing
import os
import signal
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from .catalogue import EIP, resolve
from .errors import EIPError, UnsupportedSpecies, WorkerCrashed
from .labels import Labels
from .sources import load_configurations
from .store import LabelStore, StoredLabel
from .structure import Structure

MAX_ENERGY_PER_ATOM_EV = 200.0  # METHOD.md: above this an EIP energy is treated as missing
MIN_CHUNK_SIZE, MAX_CHUNK_SIZE = 16, 512

_MODELS: dict[str, object] = {}  # per-process cache: KIM objects cannot be pickled


def model_for(eip: EIP):
    """The (per-process cached) object that computes this EIP: KIM or ASE calculator."""
    model = _MODELS.get(eip.eip_id)
    if model is None:
        if eip.kind == "kim":
            from .kim_model import KIMPortableModel

            model = KIMPortableModel(eip.kim_id)
        else:
            from .ase_model import ASECalculatorModel

            model = ASECalculatorModel(eip.calculator)
        _MODELS[eip.eip_id] = model
    return model


def evaluate(model, structure: Structure, with_forces: bool) -> StoredLabel:
    """One (configuration, EIP) entry; failures become a missing entry with its reason."""
    n_atoms = len(structure.numbers)
    try:
        energy, forces = model.compute(structure, with_forces)
    except UnsupportedSpecies as error:
        return StoredLabel(n_atoms, None, None, f"unsupported-species: {error}")
    except EIPError as error:
        return StoredLabel(n_atoms, None, None, f"eip-error: {error}")
    if not math.isfinite(energy) or (forces is not None and not np.isfinite(forces).all()):
        return StoredLabel(n_atoms, None, None, f"non-finite: energy {energy} eV")
    if energy / n_atoms > MAX_ENERGY_PER_ATOM_EV:
        return StoredLabel(
            n_atoms,
            None,
            None,
            f"energy-too-high: {energy / n_atoms:.4g} eV/atom > {MAX_ENERGY_PER_ATOM_EV:g}",
        )
    return StoredLabel(n_atoms, energy, forces, None)


@dataclass(frozen=True)
class _Task:
    eip: EIP
    hashes: list[str]
    structures: list[Structure]
    with_forces: bool


def _run_task(task: _Task) -> tuple[str, list[tuple[str, StoredLabel]]]:
    model = model_for(task.eip)
    results = [
        (config_hash, evaluate(model, structure, task.with_forces))
        for config_hash, structure in zip(task.hashes, task.structures)
    ]
    return task.eip.eip_id, results


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


def _die_with_parent(parent_pid: int) -> None:
    """Worker initializer: a parent killed with SIGKILL must not leave workers behind.
    Linux delivers SIGKILL to us when the parent dies; elsewhere we rely on the pool."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def _start_method() -> str:
    """fork where available: workers start in milliseconds and callers need no
    ``if __name__ == "__main__"`` guard. Workers run only KIM/numpy code, never torch, so
    OpenMP state a forking caller may hold is never used in the child."""
    return "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"


def _execute(tasks: list[_Task], workers: int) -> Iterable[tuple[str, list]]:
    """Results of the tasks as they finish, in-process or from ``workers`` processes."""
    if workers <= 1:
        for task in tasks:
            yield _run_task(task)
        return
    context = multiprocessing.get_context(_start_method())
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=_die_with_parent,
        initargs=(os.getpid(),),
    ) as pool:
        futures = [pool.submit(_run_task, task) for task in tasks]
        try:
            for future in as_completed(futures):
                yield future.result()
        except BrokenProcessPool as error:
            raise WorkerCrashed(
                "a labelling worker died (a crash inside an EIP); finished chunks are "
                "stored, so rerunning the same command resumes; run with workers=1 to see "
                "which configuration crashes"
            ) from error
        finally:
            for future in futures:
                future.cancel()


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
    tasks = []
    for eip in eips:
        pending = [
            h
            for h in by_hash
            if h not in known[eip.eip_id]
            or not _usable(known[eip.eip_id][h], with_forces, retry_missing)
        ]
        size = chunk_size or _chunk_size(len(pending), workers)
        for start in range(0, len(pending), size):
            part = pending[start : start + size]
            tasks.append(_Task(eip, part, [by_hash[h] for h in part], with_forces))
    total = sum(len(task.hashes) for task in tasks)
    bar = _progress_bar(total, progress)
    computed = dict.fromkeys(known, 0)
    for eip_id, results in _execute(tasks, workers):
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
