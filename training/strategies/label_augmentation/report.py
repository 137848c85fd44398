"""What an LA run reports beyond the baseline's files (METHOD.md "Label augmentation", 5):
class balance, classifier accuracy and confusion matrix, the selection, the alpha curve,
and the outliers among the selected, graded against the pool's sealed DFT energies.

The pool's DFT energies are read here only, after training, through :class:`PoolSeal`,
which raises :class:`PoolLabelsReadEarly` if anything read them before.
"""
from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ...data.dataset import Dataset  # noqa: E402
from .errors import PoolLabelsReadEarly  # noqa: E402
from .selection import Selection  # noqa: E402

# Severity of an outlier: |E_chosen EIP - E_DFT| / N (eV/atom); the first edge is the
# class threshold, so every outlier falls in one bin.
SEVERITY_EDGES_EV_PER_ATOM = (0.1, 0.2, 0.5, 1.0, np.inf)
REPORT_REASON = "label augmentation: outliers among the selected, graded after training"


class PoolSeal:
    """Watches the dataset's seal log from the start of an LA run to its report."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self._entries_at_start = len(dataset.unseal_log)
        self.training_done = False

    def check_unread(self) -> None:
        """Raise unless no sealed DFT energy was read since the run started."""
        new = self.dataset.unseal_log[self._entries_at_start:]
        if new:
            raise PoolLabelsReadEarly(
                f"the pool's DFT energies were read before the LA report ({new}): selection "
                "and training must use EIP labels only"
            )

    def read_for_report(self, indices: np.ndarray) -> np.ndarray:
        """DFT energies (eV) of pool ``indices``: allowed once training is over."""
        if not self.training_done:
            raise PoolLabelsReadEarly(
                "the pool's DFT energies may be read only for the report after training: "
                "set training_done once the potential is trained"
            )
        self.check_unread()
        return self.dataset.read_sealed_energies_ev(indices, reason=REPORT_REASON)


def outlier_report(selection: Selection, dft_ev: np.ndarray, num_atoms: np.ndarray,
                   names: list[str], threshold_ev_per_atom: float) -> dict:
    """Selected configurations whose chosen EIP is > threshold from DFT, by severity and EIP.

    ``dft_ev`` [M] may be NaN where the pool has no DFT energy (then counted as unknown).
    """
    gap = np.abs(selection.energies_ev - dft_ev) / num_atoms  # [M] eV/atom
    known = np.isfinite(gap)
    outlier = known & (gap > threshold_ev_per_atom)
    edges = (threshold_ev_per_atom,) + tuple(e for e in SEVERITY_EDGES_EV_PER_ATOM if e > threshold_ev_per_atom)
    bins = {}
    for low, high in zip(edges[:-1], edges[1:]):
        label = f"({low:g}, {high:g}] eV/atom" if np.isfinite(high) else f"> {low:g} eV/atom"
        bins[label] = int((outlier & (gap > low) & (gap <= high)).sum())
    return {
        "num_selected": len(selection), "num_graded": int(known.sum()),
        "num_outliers": int(outlier.sum()),
        "outlier_fraction": float(outlier.sum() / known.sum()) if known.any() else None,
        "by_severity": bins,
        "by_eip": {names[k]: int((outlier & (selection.classes == k)).sum()) for k in range(len(names))},
        "selected_by_eip": {names[k]: int((selection.classes == k).sum()) for k in range(len(names))},
        "mean_gap_ev_per_atom": float(gap[known].mean()) if known.any() else None,
    }


def class_balance(classes: np.ndarray, names: list[str]) -> dict[str, int]:
    """Count of each class, "none" standing for class K."""
    counts = np.bincount(classes, minlength=len(names) + 1)
    return {name: int(c) for name, c in zip(names + ["none"], counts)}


def confusion_plot(matrix: np.ndarray, names: list[str], accuracy: float, path: Path) -> None:
    """Validation confusion matrix (rows true, columns predicted), counts written in."""
    labels = [n.split("/")[-1] for n in names] + ["none"]
    figure, axis = plt.subplots(figsize=(1.0 + 0.7 * len(labels), 0.8 + 0.7 * len(labels)))
    axis.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        axis.text(j, i, str(count), ha="center", va="center", fontsize=8,
                  color="white" if count > matrix.max() / 2 else "black")
    axis.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
    axis.set_yticks(range(len(labels)), labels, fontsize=8)
    axis.set(xlabel="predicted class", ylabel="true class", title=f"LA classifier, val accuracy {accuracy:.3f}")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def alpha_plot(alphas: list[float], val_mae_ev: list[float], chosen: float, path: Path) -> None:
    """Best validation configuration MAE (eV) against alpha (log scale)."""
    figure, axis = plt.subplots(figsize=(4.5, 3.5))
    axis.semilogx(alphas, val_mae_ev, "o-")
    axis.axvline(chosen, color="k", ls="--", lw=1)
    axis.set(xlabel="alpha", ylabel="best val config MAE (eV)", title=f"alpha search: chosen {chosen:g}")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_selection(selection: Selection, names: list[str], path: Path) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["index", "eip", "confidence", "label_ev"])
        for index, k, confidence, energy in zip(selection.indices, selection.classes,
                                                selection.confidence, selection.energies_ev):
            writer.writerow([int(index), names[k], f"{confidence:.6f}", repr(float(energy))])
