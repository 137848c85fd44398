"""From the ``data`` section of a run config to a sealed dataset and its four splits."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .dataset import Dataset, dataset_from_atoms, read_dataset
from .errors import DatasetFileError, EmptySplitError
from .pbe_sets import is_pbe_set, labelled_splits, load_pbe_set
from .si_pbe import SPLIT_NAMES, load_si_pbe, protocol_split


@dataclass
class SplitDataset:
    """A dataset whose ``unlabeled`` split is sealed, with the split indices."""

    dataset: Dataset
    splits: dict[str, np.ndarray]


def check_splits(splits: dict[str, np.ndarray], required: tuple[str, ...] = ("train", "val", "test")) -> None:
    """Splits must be disjoint and the ones a run needs non-empty."""
    seen: set[int] = set()
    for name, indices in splits.items():
        overlap = seen.intersection(indices.tolist())
        if overlap:
            raise ValueError(f"split '{name}' shares {len(overlap)} configuration(s) with another split")
        seen.update(indices.tolist())
    for name in required:
        if len(splits.get(name, ())) == 0:
            raise EmptySplitError(
                f"split '{name}' is empty: the dataset has too few configurations "
                f"({sum(len(v) for v in splits.values())}) or data.max_{name} is too small"
            )


def split_dataset(
    dataset: Dataset,
    split_seed: int,
    limits: dict[str, int | None] | None = None,
    splits: dict[str, np.ndarray] | None = None,
) -> SplitDataset:
    """The protocol split of ``dataset`` (or the given ``splits``); ``unlabeled`` is sealed;
    splits truncated to ``limits[name]`` (the first n after the seeded shuffle) where given."""
    if splits is None:
        if len(dataset) < len(SPLIT_NAMES):
            raise EmptySplitError(
                f"dataset '{dataset.name}' has {len(dataset)} configuration(s); the protocol "
                f"split needs at least {len(SPLIT_NAMES)}"
            )
        splits = protocol_split(len(dataset), split_seed)
    for name, limit in (limits or {}).items():
        if limit is not None:
            # Truncate in shuffled order, so a subset is a random sample, then sort.
            shuffled = np.random.default_rng([split_seed, 7]).permutation(splits[name])
            splits[name] = np.sort(shuffled[:limit])
    dataset.seal(splits["unlabeled"])
    check_splits(splits)
    return SplitDataset(dataset, splits)


def with_extra_pool(split: SplitDataset, paths: list[str]) -> SplitDataset:
    """``split`` with the configurations of ``paths`` appended to its ``unlabeled`` pool.

    They are sealed like the pool and any DFT label they carry is dropped: they widen the
    EIP-only pool (what LA selects from and MP pretrains on) and nothing else, so train,
    val and test, and the indices of every configuration already there, do not change.
    Their elements must be among the dataset's (a model has no embedding for others)."""
    from ..sampling.pool import read_pool

    extra = []
    for path in paths:
        if not Path(path).exists():
            raise DatasetFileError(f"data.extra_pool: file not found: '{path}'")
        try:
            extra.extend(read_pool(path))
        except Exception as err:  # ase raises many kinds; say which file, keep the cause
            raise DatasetFileError(f"data.extra_pool: could not read '{path}': {err}") from err
    old = split.dataset
    known = set(np.concatenate(old.numbers).tolist())
    foreign = sorted({int(z) for atoms in extra for z in atoms.numbers} - known)
    if foreign:
        from ase.data import chemical_symbols

        raise DatasetFileError(
            f"data.extra_pool holds elements the dataset does not "
            f"({', '.join(chemical_symbols[z] for z in foreign)}): the pool must be of the same chemistry"
        )
    added = dataset_from_atoms(extra)
    dataset = Dataset(
        positions=old.positions + added.positions,
        numbers=old.numbers + added.numbers,
        cells=np.concatenate([old.cells, added.cells]),
        pbc=np.concatenate([old.pbc, added.pbc]),
        _energies_ev=np.concatenate([old._energies_ev, np.full(len(added), np.nan)]),
        _forces=old._forces + [None] * len(added),
        name=f"{old.name}+{len(added)} extra pool",
        _sealed=np.concatenate([old._sealed, np.ones(len(added), dtype=bool)]),
        unseal_log=old.unseal_log,
    )
    splits = dict(split.splits)
    splits["unlabeled"] = np.concatenate([splits["unlabeled"], len(old) + np.arange(len(added))])
    check_splits(splits)
    return SplitDataset(dataset, splits)


def load_split_dataset(
    path: str | None,
    si_pbe_dir: str | None,
    split_seed: int,
    limits: dict[str, int | None] | None = None,
    extra_pool: list[str] | None = None,
) -> SplitDataset:
    """si-pbe (``path`` None), one of this project's DFT sets (a folder with a pool and
    its labelled chunks, ``pbe_sets``) or a file, split by its protocol with ``split_seed``;
    the files of ``extra_pool`` widen the unlabeled pool (``with_extra_pool``)."""
    splits = None
    if path is None:
        dataset = dataset_from_atoms(load_si_pbe(si_pbe_dir), name="si-pbe")
    elif is_pbe_set(path):
        configurations, labelled = load_pbe_set(path)
        dataset = dataset_from_atoms(configurations, name=Path(path).name)
        splits = labelled_splits(configurations, labelled, split_seed)
    else:
        dataset = read_dataset(path, require_energies=False)
    result = split_dataset(dataset, split_seed, limits, splits)
    if extra_pool:
        result = with_extra_pool(result, list(extra_pool))
    for name in ("train", "val", "test"):
        dataset.energies_ev(result.splits[name])  # MissingEnergyError before any training
    return result
