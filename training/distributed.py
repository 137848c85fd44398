"""Training in several processes with PyTorch's own engine: ``torchrun`` starts the ranks,
``torch.distributed`` connects them (NCCL on CUDA, gloo on the CPU), and
``DistributedDataParallel`` averages the gradients.

    torchrun --nproc-per-node 2 -m eipnn_training.cli.train CONFIG.yaml [key=value ...]

What is shared and what is split (docs/training.md):

- Every rank builds the same seeded model; DDP broadcasts rank 0's weights and buffers
  (reference energies, scale) when it wraps it, so they are rank 0's everywhere.
- Each global batch (the batch a one-process run would take, same seed and order) is cut
  into one contiguous share per rank (``BatchLoader.shard``). Loss terms are means over the
  whole global batch (``batch_mean``: local sum times ranks over the global count, which
  DDP's average turns back into the global mean), so a step on N ranks is the step of one
  process on the global batch, to float round-off.
- Validation and test predictions are gathered from every rank (``gather_in_order``), each
  configuration once, and the metrics computed from them as in one process.
- Rank 0 alone writes the run folder (checkpoints, metrics, plots, the model file); the
  others wait at a barrier before they read a checkpoint it wrote.

One process without ``torchrun`` is the world of one rank: every helper here is then the
identity, and nothing imports ``torch.distributed`` state.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any, Callable, Optional, TypeVar

import numpy as np
import torch
import torch.distributed as dist

# How long a rank waits for the others in a collective before it gives up. Long: the other
# ranks wait at a barrier while rank 0 builds the graphs or computes the EIP labels of a large
# pool (main_first), which can take hours. A rank that dies is caught sooner: torchrun stops
# every rank when one exits, and gloo and NCCL raise at once when a peer's connection closes.
TIMEOUT = datetime.timedelta(hours=24)
T = TypeVar("T")


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


_world = World()


def world() -> World:
    """This process's place among the ranks (rank 0 of 1 without torchrun)."""
    return _world


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def start(device: str) -> tuple[World, str]:
    """Join the ranks torchrun started (its RANK / WORLD_SIZE / LOCAL_RANK / MASTER_*
    variables) and return the world and this rank's device: ``cuda`` becomes
    ``cuda:<local rank>``. Without torchrun: one rank, ``device`` unchanged."""
    global _world
    if not launched_by_torchrun():
        return _world, device
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        if device.startswith("cuda"):
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        dist.init_process_group(backend=backend, timeout=TIMEOUT)
    _world = World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    if device.startswith("cuda"):
        device = f"cuda:{_world.local_rank}"
    return _world, device


def backend() -> str:
    """The process group's backend ("gloo", "nccl"), or "none" in one process."""
    return str(dist.get_backend()) if dist.is_initialized() else "none"


def stop() -> None:
    global _world
    if dist.is_initialized():
        dist.destroy_process_group()
    _world = World()


def barrier() -> None:
    if _world.distributed:
        dist.barrier()


def main_first(task: Callable[[], T]) -> T:
    """``task()`` on rank 0, then on the others: for work that fills a cache on disk (graphs,
    EIP labels) which the other ranks then only read."""
    if not _world.distributed:
        return task()
    if _world.main:
        value = task()
        barrier()
    else:
        barrier()
        value = task()
    return value


def share(costs: np.ndarray, world: Optional[World] = None) -> slice:
    """The contiguous part of a global batch that this rank takes, given each item's cost
    (its edges and atoms): the cut points are where the running cost crosses r / N of the
    total, so every rank gets about the same work and a step waits for no straggler."""
    w = world or _world
    cumulative = np.cumsum(np.asarray(costs, dtype=np.float64))
    total = cumulative[-1] if len(cumulative) else 0.0
    # Item i goes to the rank whose interval holds the middle of its cost.
    middles = cumulative - 0.5 * np.asarray(costs, dtype=np.float64)
    cuts = np.searchsorted(middles, total * np.arange(w.size + 1) / w.size, side="left")
    cuts[-1] = len(cumulative)
    return slice(int(cuts[w.rank]), int(cuts[w.rank + 1]))


def batch_mean(values: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over the global batch, differentiable in this rank's values.

    One rank: ``values.mean()`` (0 for no values). N ranks: this rank's sum times N over the
    count summed over ranks; DDP divides gradients by N, so the step is the global mean's.
    Every rank must call it the same number of times (it is a collective)."""
    if not _world.distributed:
        return values.mean() if values.numel() else values.sum() * 0.0
    count = torch.tensor(float(values.numel()), dtype=torch.float64, device=values.device)
    dist.all_reduce(count)
    if float(count) == 0.0:
        return values.sum() * 0.0
    return values.sum() * (_world.size / float(count))


def global_sum(*values: float) -> tuple[float, ...] | float:
    """``values`` summed over ranks, in one all-reduce (the plain values on one rank); one
    value gives a float, several a tuple."""
    if _world.distributed:
        total = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(total)
        values = tuple(float(v) for v in total)
    return values[0] if len(values) == 1 else tuple(values)


def gather_objects(value: Any) -> list[Any]:
    """Every rank's ``value``, in rank order (``[value]`` on one rank)."""
    if not _world.distributed:
        return [value]
    gathered: list[Any] = [None] * _world.size
    dist.all_gather_object(gathered, value)
    return gathered


def gather_in_order(positions: np.ndarray, values: np.ndarray, total: int) -> np.ndarray:
    """Per-item ``values`` [n, ...] of the items at ``positions`` (this rank's share) put
    together from every rank into one array of ``total`` items in loader order."""
    if not _world.distributed:
        return values
    parts = gather_objects((positions, values))
    out = np.empty((total, *values.shape[1:]), dtype=values.dtype)
    seen = np.zeros(total, dtype=bool)
    for where, part in parts:
        out[where] = part
        seen[where] = True
    if not seen.all():
        raise RuntimeError(f"gathered {int(seen.sum())} of {total} items from the ranks")
    return out


def broadcast_object(value: Any) -> Any:
    """Rank 0's ``value`` on every rank."""
    if not _world.distributed:
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


class EnergiesOf(torch.nn.Module):
    """A potential's per-atom energies as the module's forward, so that DDP (whose
    bookkeeping runs in forward) can wrap what training calls."""

    def __init__(self, potential: torch.nn.Module) -> None:
        super().__init__()
        self.potential = potential

    def forward(self, positions: torch.Tensor, species: torch.Tensor, edge_index: torch.Tensor,
                edge_shift: torch.Tensor) -> torch.Tensor:
        return self.potential.atomic_energies(positions, species, edge_index, edge_shift)


def data_parallel(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``module`` in DistributedDataParallel (its weights and buffers become rank 0's).
    Every parameter is in every step's graph, also for an empty share (a global batch
    smaller than the world: its index_select of no atoms still reaches each weight), so DDP
    need not search for unused ones."""
    ids = [device.index] if device.type == "cuda" else None
    # Buffers (reference energies, scale, basis constants) are broadcast once, here; they do
    # not change in training, so no broadcast before every forward. The gradients live in
    # DDP's buckets (no copy in and out of them each step). On the CPU one bucket holds them
    # all: an early bucket's all-reduce overlaps nothing there (gloo takes the core the
    # backward runs on), it only adds a collective.
    cap = None if device.type == "cuda" else 1.0 + sum(
        p.numel() * p.element_size() for p in module.parameters()) / 2**20
    return torch.nn.parallel.DistributedDataParallel(
        module, device_ids=ids, find_unused_parameters=False, broadcast_buffers=False,
        gradient_as_bucket_view=True, **({} if cap is None else {"bucket_cap_mb": cap}))
