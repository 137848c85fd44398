"""Figures of a run, written as PNG with matplotlib's non-interactive backend."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display needed (CI, servers)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def parity_plot(target_ev: np.ndarray, predicted_ev: np.ndarray, num_atoms: np.ndarray, path: Path, title: str = "test") -> None:
    """Predicted vs DFT energy per atom (eV/atom), with the diagonal."""
    x, y = target_ev / num_atoms, predicted_ev / num_atoms
    figure, axis = plt.subplots(figsize=(4.5, 4.5))
    axis.scatter(x, y, s=8, alpha=0.7)
    low, high = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
    axis.plot([low, high], [low, high], "k--", lw=1)
    mae = np.mean(np.abs(x - y))
    axis.set(xlabel="DFT energy (eV/atom)", ylabel="predicted energy (eV/atom)",
             title=f"{title}: atom MAE {mae:.4f} eV/atom")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def learning_curves(history: list[dict], path: Path) -> None:
    """Training loss (eV²) and validation configuration MAE (eV) per epoch, log scale."""
    epochs = [row["epoch"] for row in history]
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    left.semilogy(epochs, [row["train_loss"] for row in history])
    left.set(xlabel="epoch", ylabel="train loss (eV²)")
    right.semilogy(epochs, [row["val_config_mae"] for row in history])
    right.set(xlabel="epoch", ylabel="validation MAE (eV)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
