"""K models trained together in one pass over the same batches: the alpha search of label
augmentation (K alphas, one initial model) and committees (K seeds, one loss).

Each member keeps everything a run of its own has: its loss (``FitSettings``), Adam state,
learning-rate schedule, best-validation checkpoint and history, so member k ends exactly as
``fit(potential_k, train, val, settings_k)`` would (a test). What the members share is the
pass over the data: each batch is collated once and every member takes its step on it, and
one checkpoint holds all of them, so a run killed at any point resumes where it was.

SOAPNet members with their descriptor cached (``descriptors.py``) step as one
(``stacked.py``): their weights stacked, their MLPs vmapped, all members' forces from one
product with the descriptor's Jacobians (an 8-member alpha search with forces 0.12x the wall
time of eight separate runs, a 5-member committee 2.3x one member: docs/training.md). Other
models step one after another on each batch: stacking SchNet's parameters under
``torch.func.vmap`` made it 1.5x (energies) to 3x (forces) slower than the members one by one
(batched gathers and scatters cost more than K plain ones, and SchNet loses its
distinct-length paths inside vmap; ``benchmarks/bench_training_step.py --part ensemble``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch
from tqdm import tqdm

from ..data.batching import BatchLoader
from ..models.potential import Potential
from .checkpoint import ResumeError, load_state
from .optimizer import adam
from .stacked import StackedMembers, stackable
from ..distributed import barrier
from .loop import (FitResult, FitSettings, _step_backward, descriptor_energies, evaluate, filled_cache,
                   EpochLoss, save_on_main, step_energies)

# Settings every member must share: they shape the one pass over the data.
SHARED_SETTINGS = ("epochs", "device", "dtype", "progress")


@dataclass
class _Member:
    potential: Potential
    settings: FitSettings
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    result: FitResult
    folder: Path
    energies: Optional[Callable] = None  # its DDP wrapper under torchrun, or the shared descriptor cache


def member_folder(checkpoint_dir: Path, k: int) -> Path:
    return checkpoint_dir / f"member_{k}"


def _check_shared(settings: list[FitSettings]) -> None:
    for name in SHARED_SETTINGS:
        values = {repr(getattr(s, name)) for s in settings}
        if len(values) > 1:
            raise ValueError(f"ensemble members must share '{name}'; got {', '.join(sorted(values))}")


def _member(potential: Potential, settings: FitSettings, steps: int, folder: Path) -> _Member:
    potential.to(device=torch.device(settings.device), dtype=settings.dtype)
    optimizer = adam(potential.parameters(), settings.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, settings.schedule(settings.lr, settings.lr_final, steps))
    folder.mkdir(parents=True, exist_ok=True)
    return _Member(potential, settings, optimizer, scheduler, FitResult(), folder,
                   step_energies(potential, torch.device(settings.device)))


def _state(members: list[_Member], epoch: int) -> dict:
    return {"epoch": epoch, "members": [{
        "model": m.potential.state_dict(), "optimizer": m.optimizer.state_dict(),
        "scheduler": m.scheduler.state_dict(), "history": m.result.history,
        "best_epoch": m.result.best_epoch, "best_metric": m.result.best_metric,
    } for m in members]}


def _restore(members: list[_Member], state: dict) -> int:
    if len(state["members"]) != len(members):
        raise ResumeError(f"the checkpoint holds {len(state['members'])} ensemble members, this run "
                          f"has {len(members)}: resume with the configuration it was started with")
    for m, saved in zip(members, state["members"]):
        m.potential.load_state_dict(saved["model"])
        m.optimizer.load_state_dict(saved["optimizer"])
        m.scheduler.load_state_dict(saved["scheduler"])
        m.result = FitResult(saved["history"], saved["best_epoch"], saved["best_metric"])
    return state["epoch"] + 1


def _step_one_by_one(members: list[_Member], batch, global_rows: int, losses: list[EpochLoss]) -> None:
    """Every member's step on ``batch``, one after another."""
    for m, epoch_loss in zip(members, losses):
        loss = _step_backward(m.potential, batch, m.settings, m.energies)
        torch.nn.utils.clip_grad_norm_(m.potential.parameters(), m.settings.grad_clip)
        m.optimizer.step()
        m.scheduler.step()
        epoch_loss.add(loss.detach(), global_rows)


def fit_ensemble(
    potentials: list[Potential],
    train: BatchLoader,
    val: BatchLoader,
    settings: list[FitSettings],
    checkpoint_dir: Path,
    resume: bool = False,
    member_dirs: Optional[list[Path]] = None,
    on_epoch_end: Optional[Callable[[int, list], None]] = None,
    on_batch_end: Optional[Callable[[int, int], None]] = None,
) -> list[FitResult]:
    """Train every potential in place on the same batches, member k with ``settings[k]``;
    at the end each holds its own best validation weights, also in ``member_dirs[k]/best.pt``
    (default ``checkpoint_dir/member_<k>``); ``checkpoint_dir/last.pt`` holds them all.
    ``on_epoch_end(k, history)`` is called for each member after every epoch."""
    if len(potentials) != len(settings) or not potentials:
        raise ValueError(f"{len(potentials)} potentials and {len(settings)} settings: one of each per member")
    _check_shared(settings)
    if any(s.compile for s in settings):
        raise ValueError("train.compile is for single runs; ensembles train in eager mode")
    first = settings[0]
    device, steps = torch.device(first.device), first.epochs * len(train)
    folders = member_dirs or [member_folder(checkpoint_dir, k) for k in range(len(potentials))]
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    members = [_member(p, s, steps, folder) for p, s, folder in zip(potentials, settings, folders)]
    cache = filled_cache(potentials, settings, (train, val), device)  # one for all: the descriptor has no weights
    for m in members:
        m.energies = m.energies or descriptor_energies(m.potential, cache)
    last, start_epoch = checkpoint_dir / "last.pt", 0
    if resume:
        start_epoch = _restore(members, load_state(last, device))
    stacked = StackedMembers(members, cache) if stackable(potentials, settings, cache) else None
    bar = tqdm(total=steps, initial=start_epoch * len(train), desc=f"train x{len(members)}",
               disable=not first.progress, dynamic_ncols=True)
    for epoch in range(start_epoch, first.epochs):
        started = time.perf_counter()
        epoch_losses = [EpochLoss() for _ in members]
        for m in members:
            m.potential.train()
        if stacked is not None:
            stacked.from_members()
        for step, batch in enumerate(train.epoch(epoch)):
            batch, rows = batch.to(device, first.dtype), train.global_rows(step)
            losses = stacked.step(batch) if stacked is not None else None
            if losses is not None:
                for loss_value, epoch_loss in zip(losses, epoch_losses):
                    epoch_loss.add(loss_value, rows)
            else:
                if stacked is not None:  # a batch the descriptor cache could not hold
                    stacked.to_members()
                _step_one_by_one(members, batch, rows, epoch_losses)
                if stacked is not None:
                    stacked.from_members()
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, best_val=f"{min(m.result.best_metric for m in members):.4g}",
                            refresh=False)
            if on_batch_end is not None:
                on_batch_end(epoch, step)
        if stacked is not None:
            stacked.to_members()
        seconds = time.perf_counter() - started
        for m, epoch_loss in zip(members, epoch_losses):
            metrics = evaluate(m.settings, m.potential, val, device, m.energies if cache is not None else None)
            m.result.history.append({"epoch": epoch + 1, "lr": m.optimizer.param_groups[0]["lr"],
                                     "train_loss": epoch_loss.mean(), **metrics,
                                     "seconds": seconds / len(members)})
            if metrics[m.settings.monitor] < m.result.best_metric:
                m.result.best_metric, m.result.best_epoch = metrics[m.settings.monitor], epoch + 1
                save_on_main({"model": m.potential.state_dict(), "epoch": epoch + 1, **metrics},
                             m.folder / "best.pt")
        save_on_main(_state(members, epoch), last)  # the one checkpoint a resume reads
        for m in members:  # each member's last weights, for ``eipnn-export --checkpoint last``
            save_on_main({"model": m.potential.state_dict(), "epoch": epoch}, m.folder / "last.pt")
        if on_epoch_end is not None:
            for k, m in enumerate(members):
                on_epoch_end(k, m.result.history)
    bar.close()
    barrier()  # rank 0 has written every best.pt
    for m in members:
        m.potential.load_state_dict(load_state(m.folder / "best.pt", device)["model"])
    return [m.result for m in members]
