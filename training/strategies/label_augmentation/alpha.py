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
from .tukey import AugmentedLoss


@dataclass
class AugmentedTraining:
    """Everything one alpha needs: a fresh-potential factory, loaders, settings."""

    new_potential: Callable[[], Potential]  # seeded, with reference energies fitted on DFT train
    train: BatchLoader  # DFT train rows followed by the selected EIP rows, shuffled
    val: BatchLoader  # DFT val rows
    settings: FitSettings
    balance: float  # N_train / N_added
    eip_loss: str = "tukey"


@dataclass
class AlphaResult:
    alpha: float
    best_val_config_mae_ev: float
    best_epoch: int
    history: list[dict]
    checkpoint_dir: Path


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
                           summary["history"], folder)
    folder.mkdir(parents=True, exist_ok=True)
    settings = replace(job.settings, loss=AugmentedLoss(alpha, job.balance, job.eip_loss))
    started = resume and (folder / "last.pt").exists()
    result = fit(job.new_potential(), job.train, job.val, settings, folder, resume=started,
                 on_epoch_end=lambda history: write_history(history, folder / "metrics.csv"), **hooks)
    done.write_text(json.dumps({"alpha": alpha, "best_val_config_mae_ev": result.best_metric,
                                "best_epoch": result.best_epoch, "history": result.history}))
    return AlphaResult(alpha, result.best_metric, result.best_epoch, result.history, folder)


def search_alpha(grid: list[float], job: AugmentedTraining, checkpoints: Path, resume: bool = False,
                 **hooks: Any) -> tuple[AlphaResult, list[AlphaResult]]:
    """Train every alpha of ``grid``; the chosen one has the lowest validation MAE (the
    smaller alpha among equals)."""
    results = [train_alpha(float(a), job, checkpoints, resume, **hooks) for a in sorted(grid)]
    chosen = results[int(np.argmin([r.best_val_config_mae_ev for r in results]))]
    return chosen, results


def load_best(job: AugmentedTraining, result: AlphaResult, device: str) -> Potential:
    """A potential holding the best validation weights of ``result``'s alpha."""
    potential = job.new_potential().to(device=torch.device(device), dtype=job.settings.dtype)
    potential.load_state_dict(load_state(result.checkpoint_dir / "best.pt", device)["model"])
    return potential
