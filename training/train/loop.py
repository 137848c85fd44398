"""The training loop every strategy shares: epochs of optimiser steps, validation,
best-epoch checkpoint, resume from the last completed epoch.

Resuming is exact on the CPU: the model, the optimiser and the schedule come back from
``last.pt``, and each epoch's shuffle depends on (seed, epoch) only, so a run killed
mid-epoch and resumed ends with the metrics of an uninterrupted run.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch
from tqdm import tqdm

from ..data.batching import Batch, BatchLoader
from ..distributed import EnergiesOf, barrier, data_parallel, global_sum, world
from ..models.potential import Potential
from .checkpoint import load_state, save_atomic
from .descriptors import DescriptorCache, budget_bytes, cached_energies, has_fixed_descriptor
from .losses import ForceLoss, ForceMSE, LossFunction, energy_mse, rows_for_forces
from .passes import backward_in_passes, weights
from .metrics import AtomicEnergies, batch_energies, energies_and_forces_of_rows, energy_metrics
from .optimizer import adam
from .schedules import ScheduleBuilder, linear_decay

Evaluate = Callable[[Potential, BatchLoader, torch.device, torch.dtype], dict]
BatchHook = Callable[[int, int], None]


@dataclass
class FitSettings:
    epochs: int = 100
    lr: float = 1e-3
    lr_final: float = 1e-5
    grad_clip: float = 5.0
    force_weight: float = 0.0  # > 0: + force_weight * MSE of the DFT rows' forces (Å² x (eV/Å)²)
    force_loss: Optional[ForceLoss] = None  # a strategy's own force term (replaces the above)
    batched_force_gradients: bool = False  # K > 1 outputs: one vmapped autograd call, not K
    device: str = "cpu"
    dtype: torch.dtype = torch.float32
    monitor: str = "val_config_mae"  # lower is better
    progress: bool = True
    loss: LossFunction = energy_mse
    schedule: ScheduleBuilder = linear_decay
    evaluate: Evaluate = energy_metrics
    compile: bool = False  # torch.compile the training steps (energy-only)
    max_atoms_per_pass: Optional[int] = None  # a larger batch's step runs in passes (train/passes.py)
    descriptor_cache_mb: Optional[float] = None  # SOAPNet: descriptors once per configuration (None = auto, 0 = off)

    def force_term(self) -> Optional[ForceLoss]:
        """The force term of the loss, or None for energy-only training."""
        if self.force_loss is not None:
            return self.force_loss
        return ForceMSE(self.force_weight) if self.force_weight > 0 else None


@dataclass
class FitResult:
    history: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    best_metric: float = float("inf")


def _step_loss(potential: Potential, batch: Batch, settings: FitSettings,
               atomic_energies: AtomicEnergies | None = None) -> torch.Tensor:
    """Energy loss, plus the force term when there is one (``FitSettings.force_term``):
    the forces -dE_k/dx of every output, with the graph kept for the weight gradient."""
    force_term = settings.force_term()
    if force_term is None:  # the paper's energy-only step, unchanged
        return settings.loss(batch_energies(potential, batch, atomic_energies), batch)
    if batch.forces is None:
        raise ValueError("the loss has a force term but the batch has no force labels")
    energies, forces = energies_and_forces_of_rows(potential, batch, rows_for_forces(force_term, batch),
                                                   atomic_energies,
                                                   batched=settings.batched_force_gradients)  # [B, K], [N, K, 3]
    return settings.loss(energies, batch) + force_term(forces, batch)


def _step_backward(potential: Potential, batch: Batch, settings: FitSettings,
                   atomic_energies: AtomicEnergies | None = None) -> torch.Tensor:
    """The step's loss, its weight gradient in ``.grad`` (zeroed first): in one pass, or in
    passes of ``settings.max_atoms_per_pass`` atoms when the batch has more."""
    for parameter in potential.parameters():
        parameter.grad = None
    limit = settings.max_atoms_per_pass
    if limit is None or batch.positions.shape[0] <= limit:
        loss = _step_loss(potential, batch, settings, atomic_energies)
        loss.backward(inputs=weights(potential))
        return loss
    force_term = settings.force_term()
    if force_term is not None and batch.forces is None:
        raise ValueError("the loss has a force term but the batch has no force labels")

    def loss_of(energies: torch.Tensor, forces: Optional[torch.Tensor], whole: Batch) -> torch.Tensor:
        loss = settings.loss(energies, whole)
        return loss if force_term is None else loss + force_term(forces, whole)

    return backward_in_passes(potential, batch, loss_of, force_term, limit, atomic_energies,
                              settings.batched_force_gradients)


def compiled_atomic_energies(potential: Potential, settings: FitSettings) -> AtomicEnergies | None:
    """``potential.atomic_energies`` through ``torch.compile`` when asked (None otherwise).

    Worth it for SchNet: its training step is mostly memory-bound gathers, products and
    scatters over [edges, features] that the compiler fuses into loops without those
    temporaries. Shapes change every batch, hence ``dynamic``; ``torch.unique`` and the
    cutoff mask have data-dependent sizes and stay eager (graph breaks). The weights are the
    module's own, so the checkpoint, validation and export see the same model."""
    if not settings.compile:
        return None
    if world().distributed:
        raise ValueError("train.compile is for one process; under torchrun the steps run eagerly in DDP")
    if settings.force_term() is not None:
        raise ValueError("compile needs energy-only training (torch.compile has no double backward)")
    # Those graph breaks are by design; dynamo would warn of each on every new graph.
    logging.getLogger("torch._dynamo.variables.tensor").setLevel(logging.ERROR)
    compiled = torch.compile(potential.atomic_energies, dynamic=True)
    return lambda batch: compiled(batch.positions, batch.species, batch.edge_index, batch.edge_shift)


def fit(
    potential: Potential,
    train: BatchLoader,
    val: BatchLoader,
    settings: FitSettings,
    checkpoint_dir: Path,
    resume: bool = False,
    on_epoch_end: Optional[Callable[[list], None]] = None,
    on_batch_end: Optional[BatchHook] = None,
) -> FitResult:
    """Train ``potential`` in place; at the end it holds the best validation weights."""
    device = torch.device(settings.device)
    if settings.max_atoms_per_pass is not None and world().distributed:
        raise ValueError("train.max_atoms_per_pass is for one process; under torchrun each rank's batch is "
                         "already its share (lower train.batch_size or add ranks)")
    potential.to(device=device, dtype=settings.dtype)
    # The cache is filled only when its stand-in will be used (not under train.compile or DDP).
    other = compiled_atomic_energies(potential, settings) or step_energies(potential, device)
    cached = None if other is not None else descriptor_energies(
        potential, filled_cache([potential], [settings], (train, val), device))
    atomic_energies = other or cached
    optimizer = adam(potential.parameters(), settings.lr)
    total_steps = settings.epochs * len(train)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, settings.schedule(settings.lr, settings.lr_final, total_steps)
    )
    result, start_epoch = FitResult(), 0
    last, best = checkpoint_dir / "last.pt", checkpoint_dir / "best.pt"
    if resume:  # every rank reads rank 0's checkpoint (the run folder is shared)
        state = load_state(last, device)
        potential.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        result = FitResult(state["history"], state["best_epoch"], state["best_metric"])
        start_epoch = state["epoch"] + 1
    bar = tqdm(
        total=total_steps, initial=start_epoch * len(train), desc="train",
        disable=not settings.progress, dynamic_ncols=True,
    )
    for epoch in range(start_epoch, settings.epochs):
        started, epoch_loss = time.perf_counter(), EpochLoss()
        potential.train()
        for step, batch in enumerate(train.epoch(epoch)):
            batch = batch.to(device, settings.dtype)
            loss = _step_backward(potential, batch, settings, atomic_energies)
            torch.nn.utils.clip_grad_norm_(potential.parameters(), settings.grad_clip)
            optimizer.step()
            scheduler.step()
            epoch_loss.add(loss.detach(), train.global_rows(step))
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{epoch_loss.running():.4g}",
                            best_val=f"{result.best_metric:.4g}", refresh=False)
            if on_batch_end is not None:
                on_batch_end(epoch, step)
        metrics = evaluate(settings, potential, val, device, cached)
        row = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"],
               "train_loss": epoch_loss.mean(), **metrics,
               "seconds": time.perf_counter() - started}
        result.history.append(row)
        if metrics[settings.monitor] < result.best_metric:
            result.best_metric, result.best_epoch = metrics[settings.monitor], epoch + 1
            save_on_main({"model": potential.state_dict(), "epoch": epoch + 1, **metrics}, best)
        save_on_main({
            "model": potential.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "epoch": epoch, "history": result.history,
            "best_epoch": result.best_epoch, "best_metric": result.best_metric,
        }, last)
        bar.set_postfix(epoch=epoch + 1, loss=f"{row['train_loss']:.4g}",
                        val=f"{metrics[settings.monitor]:.4g}", best_val=f"{result.best_metric:.4g}")
        if on_epoch_end is not None:
            on_epoch_end(result.history)
    bar.close()
    barrier()  # rank 0 has written best.pt
    potential.load_state_dict(load_state(best, device)["model"])
    return result


def evaluate(settings: FitSettings, potential: Potential, val: BatchLoader, device: torch.device,
             energies: AtomicEnergies | None) -> dict:
    """``settings.evaluate`` on ``val``, through the descriptor cache when training uses one
    (validation rows join it: their descriptors do not change either)."""
    if energies is None:
        return settings.evaluate(potential, val, device, settings.dtype)
    return settings.evaluate(potential, val, device, settings.dtype, energies=energies)


def step_energies(potential: Potential, device: torch.device) -> AtomicEnergies | None:
    """Under torchrun, the potential's per-atom energies through DistributedDataParallel
    (which averages the gradients of the ranks); None in one process."""
    if not world().distributed:
        return None
    wrapped = data_parallel(EnergiesOf(potential), device)
    return lambda batch: wrapped(batch.positions, batch.species, batch.edge_index, batch.edge_shift)


def descriptor_cache(potentials: list[Potential], settings: list[FitSettings]) -> Optional[DescriptorCache]:
    """One cache of descriptors (and their Jacobians where a member trains on forces) for
    potentials with a weight-free descriptor (SOAPNet), in one process; None otherwise."""
    if (world().distributed or not all(has_fixed_descriptor(p) for p in potentials)
            or any(s.descriptor_cache_mb == 0 for s in settings)):
        return None
    jacobians = any(s.force_term() is not None for s in settings)
    return DescriptorCache(jacobians, budget_bytes(settings[0].descriptor_cache_mb))


def filled_cache(potentials: list[Potential], settings: list[FitSettings], loaders: tuple[BatchLoader, ...],
                 device: torch.device) -> Optional[DescriptorCache]:
    """``descriptor_cache``, filled with the rows of ``loaders`` (progress bar if asked)."""
    cache = descriptor_cache(potentials, settings)
    if cache is not None:
        for loader in loaders:
            cache.fill(potentials[0], loader, device, settings[0].dtype, progress=settings[0].progress)
    return cache


def descriptor_energies(potential: Potential, cache: Optional[DescriptorCache]) -> AtomicEnergies | None:
    return None if cache is None else cached_energies(potential, cache)


class EpochLoss:
    """The training loss of an epoch: the mean over its global batches, each weighted by its
    rows. Under DDP a rank's step loss is its share of the global batch's mean times the
    ranks (``distributed.batch_mean``), so the ranks' losses summed and divided by their
    number are the global batch's loss; they are summed once, in ``mean`` at the end of the
    epoch, not after every step (a collective per step is one more synchronisation)."""

    def __init__(self) -> None:
        self.weighted, self.rows = 0.0, 0

    def add(self, loss: torch.Tensor | float, global_rows: int) -> None:
        """A step's loss (this rank's part) and the rows of its global batch."""
        self.weighted += float(loss) * global_rows
        self.rows += global_rows

    def running(self) -> float:
        """The mean so far, for a progress bar: exact in one process, rank 0's estimate of
        it (its share of each global batch) under DDP."""
        return self.weighted / max(self.rows, 1)

    def mean(self) -> float:
        """The epoch's loss (every rank calls it under DDP: a collective)."""
        w = world()
        weighted = global_sum(self.weighted) / w.size if w.distributed else self.weighted
        return weighted / max(self.rows, 1)


def save_on_main(state: dict, path: Path) -> None:
    """Checkpoints are rank 0's to write (every rank holds the same weights)."""
    if world().main:
        save_atomic(state, path)
