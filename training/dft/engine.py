"""The DFT labeller: configurations -> GPAW energies and forces, kept in the DFT store.

What the store lacks under the settings is computed smallest first (k-points × atoms²,
``settings.cost_estimate``), one configuration per task, in ``workers`` processes or this
one; every finished calculation is stored at once in its own transaction, so a killed run
loses only the calculations in flight and a rerun computes only what is missing. The
progress bar counts estimated cost, not configurations, so its time left holds although
the cheap cells come first.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..eip.sources import load_configurations
from ..eip.store import StoredLabel
from ..eip.structure import Structure
from .settings import PRODUCTION, DFTSettings, cost_estimate, require_gpaw
from .store import DFTStore
from .workers import DFTTask, execute

__all__ = ["DFTLabels", "label_dft", "open_dft_store"]


@dataclass
class DFTLabels:
    """DFT labels of ``n`` configurations under one settings ID.

    ``energies`` [n] eV (NaN where missing); ``forces[i]`` [N_i, 3] eV/Å or None;
    ``reasons[i]`` "" or "<category>: <detail>" (``scf-not-converged``, ``gpaw-error``,
    ``non-finite``); ``records[i]`` how the calculation went ({} where none is stored);
    ``n_computed`` how many this call computed (the rest came from the store).
    """

    settings_id: str
    hashes: list[str]
    n_atoms: np.ndarray
    energies: np.ndarray
    forces: list[np.ndarray | None]
    reasons: list[str]
    records: list[dict]
    n_computed: int = 0

    @property
    def present(self) -> np.ndarray:
        return np.isfinite(self.energies)

    def summary_text(self) -> str:
        failed = Counter(reason.split(":", 1)[0] for reason in self.reasons if reason)
        details = ", ".join(f"{key} {value}" for key, value in sorted(failed.items()))
        return (
            f"{self.settings_id}: labelled {int(self.present.sum())} of {len(self.hashes)}"
            + (f", failed {sum(failed.values())} ({details})" if failed else "")
            + f"; {self.n_computed} computed now"
        )


def open_dft_store(store) -> DFTStore:
    """A :class:`DFTStore` as given, or opened on a directory (None: ``cache_dir()/dft``)."""
    return store if isinstance(store, DFTStore) else DFTStore(store)


def label_dft(
    configurations,
    settings: DFTSettings | None = None,
    *,
    workers: int = 1,
    store=None,
    retry_failed: bool = False,
    progress: bool = True,
    limit: int | None = None,
    on_result: Callable[[str, StoredLabel, dict], None] | None = None,
) -> DFTLabels:
    """GPAW energies (eV) and forces (eV/Å) of the configurations (ASE Atoms, or a file
    ``ase.io`` reads) under ``settings`` (default: ``PRODUCTION``).

    ``store``: a :class:`DFTStore` or its directory (None: ``cache_dir()/dft``). Stored
    labels are reused (failed ones too, unless ``retry_failed``). ``limit``: compute at
    most this many (the cheapest) now. ``on_result(hash, label, record)`` is called after
    each calculation is stored (``chunks.ChunkWriter.add``).
    """
    settings = settings or PRODUCTION
    require_gpaw()
    configurations = load_configurations(configurations)
    structures = [Structure.from_atoms(atoms) for atoms in configurations]
    hashes = [structure.content_hash() for structure in structures]
    dft_store = open_dft_store(store)
    settings_id = dft_store.register(settings)
    stored = dft_store.get(hashes, settings_id)

    costs: dict[str, float] = {}
    for config_hash, atoms in zip(hashes, configurations):
        entry = stored.get(config_hash)
        if config_hash in costs or (entry is not None and (entry.reason is None or not retry_failed)):
            continue
        costs[config_hash] = cost_estimate(atoms, settings)
    by_hash = dict(zip(hashes, structures))
    pending = sorted(costs, key=costs.__getitem__)[:limit]  # stable: ties keep file order
    tasks = [DFTTask(h, by_hash[h], settings) for h in pending]

    bar = _progress_bar(sum(costs[h] for h in pending), len(pending), progress)
    done = failed = 0
    for config_hash, outcome in execute(tasks, workers):
        record = outcome.record()
        dft_store.put(settings_id, config_hash, outcome.label, record)
        stored[config_hash] = outcome.label
        done += 1
        failed += outcome.label.reason is not None
        if on_result is not None:
            on_result(config_hash, outcome.label, record)
        bar.set_postfix_str(f"{done}/{len(pending)} done, {failed} failed", refresh=False)
        bar.update(costs[config_hash])
    bar.close()

    records = dft_store.records(settings_id, hashes)
    labels = _assemble(settings_id, hashes, structures, stored, records)
    labels.n_computed = len(pending)
    if not isinstance(store, DFTStore):
        dft_store.close()
    return labels


def _progress_bar(total_cost: float, count: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(
        total=total_cost,
        desc="DFT labels",
        disable=not enabled or count == 0,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}] {postfix}",
    )


def _assemble(settings_id, hashes, structures, stored, records) -> DFTLabels:
    n = len(hashes)
    energies = np.full(n, np.nan)
    forces: list[np.ndarray | None] = [None] * n
    reasons = ["not-computed: left for a later run (limit)"] * n
    for i, config_hash in enumerate(hashes):
        entry = stored.get(config_hash)
        if entry is None:
            continue
        if entry.reason is None:
            energies[i], forces[i], reasons[i] = entry.energy_ev, entry.forces, ""
        else:
            reasons[i] = entry.reason
    return DFTLabels(
        settings_id=settings_id,
        hashes=list(hashes),
        n_atoms=np.array([len(s.numbers) for s in structures], dtype=np.int64),
        energies=energies,
        forces=forces,
        reasons=reasons,
        records=[records.get(h, {}) for h in hashes],
    )
