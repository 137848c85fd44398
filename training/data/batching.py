"""Configurations of different sizes batched into one graph, with per-row targets.

A batch carries, per configuration row: ``targets`` [B, K] (eV, total energies),
``target_mask`` [B, K] (False where a target is missing), ``weight`` [B] and ``kind`` [B]
(``KIND_DFT`` or ``KIND_EIP``), so a strategy can mix DFT rows with EIP-labelled rows and
a loss can treat them apart. Shuffling is drawn from (seed, epoch) alone, so an epoch's
batches are the same whether or not the run was resumed.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Iterator

import numpy as np
import torch

from ..distributed import share, world
from .graphs import GraphSet

KIND_DFT = 0
KIND_EIP = 1


@dataclass
class Batch:
    positions: torch.Tensor  # [N, 3] Å
    species: torch.Tensor  # [N] int64 index into the model's species
    edge_index: torch.Tensor  # [2, E] int64, offset into the batch
    edge_shift: torch.Tensor  # [E, 3] Å
    batch: torch.Tensor  # [N] int64 row of each atom
    num_atoms: torch.Tensor  # [B] int64
    targets: torch.Tensor  # [B, K] eV
    target_mask: torch.Tensor  # [B, K] bool
    weight: torch.Tensor  # [B]
    kind: torch.Tensor  # [B] int64
    rows: torch.Tensor  # [B] int64 configuration indices in the dataset
    forces: torch.Tensor | None = None  # [N, K, 3] eV/Å (0 where missing), when force training asks for it
    force_mask: torch.Tensor | None = None  # [N, K] bool: atom n has a force label for output k

    @property
    def num_rows(self) -> int:
        return int(self.num_atoms.shape[0])

    def to(self, device: torch.device | str, dtype: torch.dtype) -> "Batch":
        """Move to ``device``; float tensors are cast to ``dtype`` (the model's)."""
        moved = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                value = value.to(device=device, dtype=dtype if value.is_floating_point() else None)
            moved[f.name] = value
        return Batch(**moved)


def select_rows(batch: Batch, keep: torch.Tensor) -> Batch:
    """The rows ``keep`` [B] bool of ``batch``, in their order, with atoms, edges and rows
    numbered from 0."""
    atoms = keep[batch.batch]  # [N]
    new_atom = torch.cumsum(atoms, 0) - 1  # an old atom's index among the kept ones
    edges = atoms[batch.edge_index[0]]
    new_row = torch.cumsum(keep, 0) - 1
    return replace(
        batch,
        positions=batch.positions[atoms], species=batch.species[atoms],
        edge_index=new_atom[batch.edge_index[:, edges]], edge_shift=batch.edge_shift[edges],
        batch=new_row[batch.batch[atoms]], num_atoms=batch.num_atoms[keep],
        targets=batch.targets[keep], target_mask=batch.target_mask[keep],
        weight=batch.weight[keep], kind=batch.kind[keep], rows=batch.rows[keep],
        forces=None if batch.forces is None else batch.forces[atoms],
        force_mask=None if batch.force_mask is None else batch.force_mask[atoms],
    )


@dataclass
class Rows:
    """What a batch's rows are: configuration indices and their targets.

    ``targets`` [R, K] eV (NaN = missing), ``weight`` [R], ``kind`` [R]; ``forces`` holds
    per-configuration forces when force training is on: [N_i, 3] (one output) or
    [N_i, K, 3] eV/Å, NaN where an entry is missing, None for a row without forces.
    """

    indices: np.ndarray
    targets: np.ndarray
    weight: np.ndarray
    kind: np.ndarray
    forces: list[np.ndarray | None] | None = None

    def __post_init__(self) -> None:
        self.targets = np.asarray(self.targets, dtype=np.float64).reshape(len(self.indices), -1)

    def __len__(self) -> int:
        return len(self.indices)

    def concat(self, other: "Rows") -> "Rows":
        """These rows followed by ``other`` (the augmented training set of LA)."""
        forces = None
        if self.forces is not None or other.forces is not None:
            forces = (self.forces or [None] * len(self)) + (other.forces or [None] * len(other))
        return Rows(
            np.concatenate([self.indices, other.indices]),
            np.concatenate([self.targets, other.targets]),
            np.concatenate([self.weight, other.weight]),
            np.concatenate([self.kind, other.kind]),
            forces,
        )


def collate(graphs: GraphSet, species_index: np.ndarray, rows: Rows, select: np.ndarray) -> Batch:
    """One batch of the rows ``select`` (positions into ``rows``)."""
    configs = rows.indices[select]
    a0, a1 = graphs.atom_offsets[configs], graphs.atom_offsets[configs + 1]
    e0, e1 = graphs.edge_offsets[configs], graphs.edge_offsets[configs + 1]
    counts = a1 - a0
    # (An empty selection, a rank's share of a global batch smaller than the world, gives an
    # empty batch.)
    atom_ids = np.concatenate([np.zeros(0, dtype=np.int64)] + [np.arange(s, t) for s, t in zip(a0, a1)])
    edge_ids = np.concatenate([np.zeros(0, dtype=np.int64)] + [np.arange(s, t) for s, t in zip(e0, e1)])
    # Local edge indices + where each configuration starts inside the batch.
    starts = (np.cumsum(counts) - counts).astype(np.int64)
    edge_offset = np.repeat(starts, e1 - e0)
    targets = rows.targets[select]
    forces = force_mask = None
    if rows.forces is not None:
        forces_np = _batch_forces([rows.forces[s] for s in select], counts, rows.targets.shape[1])
        present = ~np.isnan(forces_np).any(axis=2)  # [N, K]
        forces, force_mask = torch.from_numpy(np.nan_to_num(forces_np)), torch.from_numpy(present)
    return Batch(
        positions=torch.from_numpy(graphs.positions[atom_ids]),
        species=torch.from_numpy(species_index[atom_ids]),
        edge_index=torch.from_numpy(graphs.edge_index[:, edge_ids] + edge_offset),
        edge_shift=torch.from_numpy(graphs.edge_shift[edge_ids]),
        batch=torch.from_numpy(np.repeat(np.arange(len(configs)), counts)),
        num_atoms=torch.from_numpy(counts.astype(np.int64)),
        targets=torch.from_numpy(np.nan_to_num(targets)),
        target_mask=torch.from_numpy(~np.isnan(targets)),
        weight=torch.from_numpy(rows.weight[select].astype(np.float64)),
        kind=torch.from_numpy(rows.kind[select].astype(np.int64)),
        rows=torch.from_numpy(configs.astype(np.int64)),
        forces=forces,
        force_mask=force_mask,
    )


def _batch_forces(per_row: list[np.ndarray | None], counts: np.ndarray, outputs: int) -> np.ndarray:
    """[N, K, 3] eV/Å of a batch's rows, NaN for a row without forces (K from the others,
    else ``outputs``)."""
    shaped = [None if f is None else np.asarray(f, dtype=np.float64).reshape(int(n), -1, 3)
              for f, n in zip(per_row, counts)]
    num_outputs = next((f.shape[1] for f in shaped if f is not None), outputs)
    return np.concatenate([np.zeros((0, num_outputs, 3))]
                          + [np.full((int(n), num_outputs, 3), np.nan) if f is None else f
                             for f, n in zip(shaped, counts)])


class BatchLoader:
    """Batches of ``rows``; with ``shuffle`` the order of epoch ``e`` comes from
    ``numpy.random.default_rng([seed, e])``, independent of any earlier epoch.

    With ``shard`` and several ranks (``eipnn_training.distributed``) each rank takes its
    contiguous share of every global batch, cut so that the shares have about equal work
    (edges + atoms): the global batches, and so the steps, are those of one process,
    whatever the number of ranks (the epoch seed plays DistributedSampler's ``set_epoch``)."""

    def __init__(
        self,
        graphs: GraphSet,
        species_index: np.ndarray,
        rows: Rows,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        shard: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.graphs, self.species_index, self.rows = graphs, species_index, rows
        self.batch_size, self.shuffle, self.seed, self.shard = batch_size, shuffle, seed, shard
        self._costs: np.ndarray | None = None

    def __len__(self) -> int:
        return -(-len(self.rows) // self.batch_size)

    @property
    def sharded(self) -> bool:
        """True when this rank sees only its share of each batch (gather to get them all)."""
        return self.shard and world().distributed

    def selections(self, epoch: int = 0) -> Iterator[np.ndarray]:
        """Positions into ``rows`` of each batch this rank takes in ``epoch``."""
        order = np.arange(len(self.rows))
        if self.shuffle:
            order = np.random.default_rng([self.seed, epoch]).permutation(len(self.rows))
        sharded = self.sharded
        for start in range(0, len(order), self.batch_size):
            select = order[start:start + self.batch_size]
            yield select[share(self.costs()[select])] if sharded else select

    def costs(self) -> np.ndarray:
        """Work of each row, for balanced shares: its edges plus its atoms (all 1 without
        graphs)."""
        if self._costs is None:
            if self.graphs is None:
                self._costs = np.ones(len(self.rows))
            else:
                configs = self.rows.indices
                edges = self.graphs.edge_offsets[configs + 1] - self.graphs.edge_offsets[configs]
                atoms = self.graphs.atom_offsets[configs + 1] - self.graphs.atom_offsets[configs]
                self._costs = (edges + atoms).astype(np.float64)
        return self._costs

    def global_rows(self, step: int) -> int:
        """Rows of global batch ``step`` of an epoch (all ranks' shares together)."""
        return max(0, min(self.batch_size, len(self.rows) - step * self.batch_size))

    def epoch(self, epoch: int = 0) -> Iterator[Batch]:
        for select in self.selections(epoch):
            yield collate(self.graphs, self.species_index, self.rows, select)

    def __iter__(self) -> Iterator[Batch]:
        return self.epoch(0)
