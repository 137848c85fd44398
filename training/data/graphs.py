"""Neighbour graphs of a whole dataset, built once per (dataset, cutoff) and cached.

The graphs are stored flat (CSR style): atoms and edges of every configuration
concatenated, with offsets, so a batch is a few slices. Building the 5,534 si-pbe graphs at
5 Å takes a few seconds with matscipy; the cache under ``cache_dir()/graphs`` loads in a
fraction of that, keyed by the geometry hash and the cutoff.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase.data import atomic_numbers
from tqdm import tqdm

from eipnn_calc.neighbors import build_edges

from .dataset import Dataset
from .errors import UnknownSpeciesError
from .si_pbe import cache_dir


@dataclass
class GraphSet:
    """Every configuration's atoms and edges, concatenated.

    ``atom_offsets[c]:atom_offsets[c+1]`` are the atoms of configuration ``c``; likewise
    ``edge_offsets`` for its edges, whose ``edge_index`` is local (0-based per configuration).
    """

    positions: np.ndarray  # [A, 3] Å
    numbers: np.ndarray  # [A] atomic numbers
    atom_offsets: np.ndarray  # [C + 1]
    edge_index: np.ndarray  # [2, E] local indices
    edge_shift: np.ndarray  # [E, 3] Å
    edge_offsets: np.ndarray  # [C + 1]
    cutoff_angstrom: float

    def __len__(self) -> int:
        return len(self.atom_offsets) - 1

    def species_index(self, species: list[str]) -> np.ndarray:
        """Per-atom index into ``species`` [A]; raises if an atom's species is not in it."""
        lookup = np.full(119, -1, dtype=np.int64)
        for k, symbol in enumerate(species):
            lookup[atomic_numbers[symbol]] = k
        index = lookup[self.numbers]
        if (index < 0).any():
            from ase.data import chemical_symbols

            unknown = sorted({chemical_symbols[z] for z in self.numbers[index < 0]})
            raise UnknownSpeciesError(
                f"the dataset holds species {unknown} that the model does not know "
                f"(model species: {species}); add them to model.species or drop those "
                "configurations"
            )
        return index


def build_graphs(dataset: Dataset, cutoff_angstrom: float, progress: bool = True) -> GraphSet:
    """Edges within ``cutoff_angstrom`` for every configuration (no cache)."""
    edges, shifts = [], []
    for c in tqdm(range(len(dataset)), desc="neighbour graphs", disable=not progress, leave=False):
        e, s = build_edges(dataset.atoms(c), cutoff_angstrom)
        edges.append(e)
        shifts.append(s)
    counts = [e.shape[1] for e in edges]
    return GraphSet(
        positions=np.concatenate(dataset.positions).astype(np.float64),
        numbers=np.concatenate(dataset.numbers).astype(np.int64),
        atom_offsets=np.concatenate([[0], np.cumsum(dataset.num_atoms)]).astype(np.int64),
        edge_index=np.concatenate(edges, axis=1).astype(np.int64),
        edge_shift=np.concatenate(shifts).astype(np.float64),
        edge_offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        cutoff_angstrom=float(cutoff_angstrom),
    )


def graph_cache_path(dataset: Dataset, cutoff_angstrom: float) -> Path:
    return cache_dir() / "graphs" / f"{dataset.geometry_hash()}_rc{cutoff_angstrom:.4f}.npz"


def cached_graphs(dataset: Dataset, cutoff_angstrom: float, progress: bool = True) -> GraphSet:
    """:func:`build_graphs` through the on-disk cache."""
    path = graph_cache_path(dataset, cutoff_angstrom)
    if path.exists():
        with np.load(path) as stored:
            return GraphSet(cutoff_angstrom=float(cutoff_angstrom), **{
                key: stored[key] for key in stored.files
            })
    graphs = build_graphs(dataset, cutoff_angstrom, progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.stem}.tmp{os.getpid()}.npz")
    arrays = {k: v for k, v in graphs.__dict__.items() if k != "cutoff_angstrom"}
    np.savez(partial, **arrays)
    os.replace(partial, path)  # atomic: a concurrent reader never sees half a file
    return graphs
