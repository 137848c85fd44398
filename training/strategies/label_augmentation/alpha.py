"""Training on the augmented set for one alpha, and the search over a grid of alphas,
picked by the best validation configuration MAE (METHOD.md "Label augmentation", 4).

Each alpha trains a fresh potential (same seed, so the same initial weights) in its own
checkpoint folder ``checkpoints/alpha_<a>/``; an alpha that finished is not retrained on
``--resume``, one that was cut short continues from its last epoch.
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
from ...runs import write_history
from ...train.checkpoint import load_state
from ...train.loop import FitSettings, fit
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


def train_alpha(alpha: float, job: AugmentedTraining, checkpoints: Path, resume: bool = False,
                **hooks: Any) -> AlphaResult:
    """Train (or, when it already finished, load) the potential of one alpha."""
    folder = alpha_folder(checkpoints, alpha)
    done = folder / "done.json"
    if resume and done.exists():
        summary = json.loads(done.read_text())
        return AlphaResult(alpha, summary["best_val_config_mae_ev"], summary["best_epoch"],
                           summary["history"], folder, summary.get("best_val_metric"))
    folder.mkdir(parents=True, exist_ok=True)
    settings = job.settings_for(alpha)
    started = resume and (folder / "last.pt").exists()
    result = fit(job.new_potential(), job.train, job.val, settings, folder, resume=started,
                 on_epoch_end=lambda history: write_history(history, folder / "metrics.csv"), **hooks)
    best = next(row for row in result.history if row["epoch"] == result.best_epoch)
    config_mae = result.best_metric if settings.monitor == "val_config_mae" else best["val_config_mae"]
    metric = None if settings.monitor == "val_config_mae" else result.best_metric
    done.write_text(json.dumps({"alpha": alpha, "best_val_config_mae_ev": config_mae, "best_val_metric": metric,
                                "best_epoch": result.best_epoch, "history": result.history}))
    return AlphaResult(alpha, config_mae, result.best_epoch, result.history, folder, metric)


def search_alpha(grid: list[float], job: AugmentedTraining, checkpoints: Path, resume: bool = False,
                 **hooks: Any) -> tuple[AlphaResult, list[AlphaResult]]:
    """Train every alpha of ``grid``; the chosen one has the lowest validation MAE (the
    combined energy + force one when DFT forces are trained; the smaller alpha among equals)."""
    results = [train_alpha(float(a), job, checkpoints, resume, **hooks) for a in sorted(grid)]
    chosen = results[int(np.argmin([r.score for r in results]))]
    return chosen, results


def load_best(job: AugmentedTraining, result: AlphaResult, device: str) -> Potential:
    """A potential holding the best validation weights of ``result``'s alpha."""
    potential = job.new_potential().to(device=torch.device(device), dtype=job.settings.dtype)
    potential.load_state_dict(load_state(result.checkpoint_dir / "best.pt", device)["model"])
    return potential
