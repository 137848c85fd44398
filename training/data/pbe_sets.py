"""The protocol of the DFT data sets this project makes itself (``data/al-pbe``,
``data/agau-pbe``; docs/dft.md): a geometry-only pool sampled with the EIPs and the part of
it labelled with GPAW-PBE, in committed chunks that grow from session to session.

A set is a folder with ``pool.extxyz.xz`` and ``labelled/chunk-*.extxyz.xz``. Its
configurations are the labelled ones (chunk order) followed by the rest of the pool
(geometry only). A split seed puts each labelled configuration into one of

- ``train`` / ``val`` / ``test`` (48 / 16 / 16 % of the labelled ones: the paper's
  12 : 4 : 4), and
- ``graded`` (20 %): pool configurations whose DFT label stays sealed like si-pbe's
  unlabeled split, read only after training to grade LA's selections;

by a draw that depends on (seed, ``pool_index``) alone, so a configuration keeps its split
when more labels land. ``unlabeled`` is the graded ones plus every unlabelled pool
configuration: the EIP-only pool that LA selects from and MP pretrains on.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import DatasetFileError

POOL_FILE = "pool.extxyz.xz"
LABELLED_DIR = "labelled"
# Of the labelled configurations: (split, share).
LABELLED_SHARES = (("graded", 0.20), ("train", 0.48), ("val", 0.16), ("test", 0.16))


def is_pbe_set(path: str | os.PathLike) -> bool:
    """True for a folder that holds a pool and its labelled chunks."""
    path = Path(path)
    return path.is_dir() and (path / POOL_FILE).exists() and (path / LABELLED_DIR).is_dir()


def load_pbe_set(path: str | os.PathLike) -> tuple[list, int]:
    """(configurations, number labelled): the labelled configurations with their DFT
    energies and forces, then the pool's others without any label."""
    from ..dft.chunks import read_chunks
    from ..sampling.pool import read_pool

    path = Path(path)
    if not is_pbe_set(path):
        raise DatasetFileError(f"'{path}' is not a DFT data set folder (it needs {POOL_FILE} and {LABELLED_DIR}/)")
    labelled = read_chunks(path / LABELLED_DIR)
    pool = read_pool(path / POOL_FILE)
    taken = [int(atoms.info["pool_index"]) for atoms in labelled]
    if len(set(taken)) != len(taken):
        raise DatasetFileError(f"'{path / LABELLED_DIR}' labels some pool configuration twice")
    labelled_indices = set(taken)
    rest = [atoms for atoms in pool if int(atoms.info["pool_index"]) not in labelled_indices]
    for atoms in rest:
        atoms.calc = None
    return labelled + rest, len(labelled)


def labelled_splits(configurations: list, labelled: int, seed: int) -> dict[str, np.ndarray]:
    """``pbe_set_split`` of what ``load_pbe_set`` returned (its first ``labelled``
    configurations are the labelled ones, with their ``pool_index``)."""
    pool_indices = np.array([atoms.info["pool_index"] for atoms in configurations[:labelled]], dtype=np.int64)
    return pbe_set_split(pool_indices, len(configurations), seed)


def split_shares(pool_indices: np.ndarray, seed: int) -> np.ndarray:
    """A number in [0, 1) per configuration, a function of (seed, its pool index) alone."""
    return np.array([np.random.default_rng([seed, int(index)]).random() for index in pool_indices])


def pbe_set_split(pool_indices: np.ndarray, num_total: int, seed: int) -> dict[str, np.ndarray]:
    """The four protocol splits (unlabeled, train, val, test) of a set whose first
    ``len(pool_indices)`` configurations are labelled (``pool_indices``: their
    ``pool_index``) out of ``num_total``."""
    draws = split_shares(np.asarray(pool_indices), seed)
    edges = np.cumsum([0.0] + [share for _, share in LABELLED_SHARES])
    edges[-1] = 1.0
    named = {name: np.flatnonzero((draws >= low) & (draws < high))
             for (name, _), low, high in zip(LABELLED_SHARES, edges[:-1], edges[1:])}
    unlabelled = np.arange(len(draws), num_total)
    return {"unlabeled": np.sort(np.concatenate([named["graded"], unlabelled])),
            "train": named["train"], "val": named["val"], "test": named["test"]}
