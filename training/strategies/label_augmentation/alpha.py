"""Training on the augmented set for one alpha, and the search over a grid of alphas,
picked by the best validation configuration MAE (METHOD.md "Label augmentation", 4).

Each alpha trains a fresh potential (same seed, so the same initial weights); the alphas
train together in one pass over the batches (``training.train.ensemble``, checkpoint
``checkpoints/alpha_search/last.pt``), each with its own folder ``checkpoints/alpha_<a>/``
(best.pt, metrics.csv, done.json). An alpha that finished is not retrained on ``--resume``;
a search cut short continues from its last epoch.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ...data.batching import BatchLoader
from ...models.potential import Potential
from ...distributed import world
from ...runs import write_history
from ...train.checkpoint import load_state
from ...train.ensemble import fit_ensemble
from ...train.loop import FitResult, FitSettings
from .tukey import AugmentedForceLoss, AugmentedLoss


@dataclass
class AugmentedTraining:
    """Everything one alpha needs: a fresh-potential factory, loaders, settings."""

    new_potential: Callable[[], Potential]  # seeded, with reference energies fitted on DFT train
    train: BatchLoader  # DFT train rows followed by the selected EIP rows, shuffled
    val: BatchLoader  # DFT val rows
    settings: FitSettings
    balance: float  # N_train / N_added
    eip_loss: str = "tukey"
    eip_force_weight: float = 0.0  # la.force_weight: > 0 fits the EIP rows' forces too

    def settings_for(self, alpha: float) -> FitSettings:
        """The loop's settings with this alpha's loss (and force term when forces are on)."""
        settings = replace(self.settings, loss=AugmentedLoss(alpha, self.balance, self.eip_loss))
        if self.eip_force_weight > 0:
            settings.force_loss = AugmentedForceLoss(self.settings.force_weight, alpha, self.balance,
                                                     self.eip_force_weight, self.eip_loss)
        return settings


@dataclass
class AlphaResult:
    alpha: float
    best_val_config_mae_ev: float  # at the best epoch
    best_epoch: int
    history: list[dict]
    checkpoint_dir: Path
    best_val_metric: float | None = None  # the monitor (val_combined_mae with DFT forces), None = the above

    @property
    def score(self) -> float:
        """What the search minimises: the loop's monitor at the best epoch."""
        return self.best_val_config_mae_ev if self.best_val_metric is None else self.best_val_metric


def alpha_folder(checkpoints: Path, alpha: float) -> Path:
    return checkpoints / f"alpha_{alpha:g}"


def _done(alpha: float, folder: Path) -> AlphaResult:
    summary = json.loads((folder / "done.json").read_text())
    return AlphaResult(alpha, summary["best_val_config_mae_ev"], summary["best_epoch"],
                       summary["history"], folder, summary.get("best_val_metric"))


def _finish(alpha: float, result: FitResult, settings: FitSettings, folder: Path) -> AlphaResult:
    best = next(row for row in result.history if row["epoch"] == result.best_epoch)
    config_mae = result.best_metric if settings.monitor == "val_config_mae" else best["val_config_mae"]
    metric = None if settings.monitor == "val_config_mae" else result.best_metric
    if world().main:
        (folder / "done.json").write_text(json.dumps({
            "alpha": alpha, "best_val_config_mae_ev": config_mae, "best_val_metric": metric,
            "best_epoch": result.best_epoch, "history": result.history}))
    return AlphaResult(alpha, config_mae, result.best_epoch, result.history, folder, metric)


def train_alphas(alphas: list[float], job: AugmentedTraining, checkpoints: Path, resume: bool = False,
                 **hooks: Any) -> list[AlphaResult]:
    """Train (or, where one already finished, load) the potentials of ``alphas``: those to
    train go together, one ensemble member per alpha (``training.train.ensemble``), each as
    its own run would (same initial weights, its own loss, optimiser and best epoch)."""
    folders = {alpha: alpha_folder(checkpoints, alpha) for alpha in alphas}
    finished = {a: _done(a, f) for a, f in folders.items() if resume and (f / "done.json").exists()}
    todo = [a for a in alphas if a not in finished]
    if todo:
        settings = [job.settings_for(a) for a in todo]
        together = checkpoints / "alpha_search"
        started = resume and (together / "last.pt").exists()

        def history(k: int, rows: list) -> None:
            if world().main:
                write_history(rows, folders[todo[k]] / "metrics.csv")

        results = fit_ensemble([job.new_potential() for _ in todo], job.train, job.val, settings, together,
                               resume=started, member_dirs=[folders[a] for a in todo],
                               on_epoch_end=history, **hooks)
        finished.update({a: _finish(a, r, s, folders[a]) for a, r, s in zip(todo, results, settings)})
    return [finished[a] for a in alphas]


def search_alpha(grid: list[float], job: AugmentedTraining, checkpoints: Path, resume: bool = False,
                 **hooks: Any) -> tuple[AlphaResult, list[AlphaResult]]:
    """Train every alpha of ``grid``; the chosen one has the lowest validation MAE (the
    combined energy + force one when DFT forces are trained; the smaller alpha among equals)."""
    results = train_alphas(sorted(float(a) for a in grid), job, checkpoints, resume, **hooks)
    chosen = results[int(np.argmin([r.score for r in results]))]
    return chosen, results


def load_best(job: AugmentedTraining, result: AlphaResult, device: str) -> Potential:
    """A potential holding the best validation weights of ``result``'s alpha."""
    potential = job.new_potential().to(device=torch.device(device), dtype=job.settings.dtype)
    potential.load_state_dict(load_state(result.checkpoint_dir / "best.pt", device)["model"])
    return potential
