"""The run folder: everything one training run leaves behind.

    runs/<name>/
      config.yaml       the resolved configuration
      metrics.csv       one row per epoch (rewritten whole, so a resumed run stays clean)
      checkpoints/      last.pt (resumable) and best.pt (best validation weights)
      model.pt          the exported TorchScript model (EIPNNCalculator loads it)
      parity.png, learning_curves.png
      results.json      test configuration MAE (eV), atom MAE (eV/atom), force MAE (eV/Å)
                        when forces are trained, timings, the property card's headline numbers
      test_predictions.csv   index in the dataset, atoms, DFT and predicted energy (eV)
      property_card/    property_card.md / .json and its plots (eipnn_training.validation)
"""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

from eipnn_calc.errors import EIPNNError

from .config import RunConfig, save_config
from .distributed import barrier, world


def write_history(history: list[dict[str, Any]], path: Path) -> None:
    """Per-epoch rows as CSV, rewritten whole (nothing written for no rows)."""
    if history:
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(history[0]))
            writer.writeheader()
            writer.writerows(history)


class RunFolderError(EIPNNError, RuntimeError):
    """The run folder exists (or is missing) when the command needs the opposite."""


class RunFolder:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    config = property(lambda self: self.path / "config.yaml")
    metrics = property(lambda self: self.path / "metrics.csv")
    checkpoints = property(lambda self: self.path / "checkpoints")
    model = property(lambda self: self.path / "model.pt")
    results = property(lambda self: self.path / "results.json")
    parity_plot = property(lambda self: self.path / "parity.png")
    learning_curves = property(lambda self: self.path / "learning_curves.png")
    test_predictions = property(lambda self: self.path / "test_predictions.csv")

    def create(self, config: RunConfig, resume: bool = False, overwrite: bool = False) -> None:
        """Make the folder and write the config; refuse to clobber a run by accident.
        Under torchrun rank 0 does it (the others check and wait for it): the run folder is
        rank 0's to write, and must be on a file system every rank sees."""
        self._check(resume, overwrite)
        barrier()  # every rank has looked before rank 0 changes anything
        if world().main:
            if not resume and self.path.exists():
                shutil.rmtree(self.path)
            self.checkpoints.mkdir(parents=True, exist_ok=True)
            save_config(config, self.config)
        barrier()

    def _check(self, resume: bool, overwrite: bool) -> None:
        # Any checkpoint counts (strategies with stages keep theirs in sub-folders).
        started = any(self.checkpoints.rglob("*.pt")) if self.checkpoints.exists() else False
        if resume and not started:
            raise RunFolderError(
                f"--resume: '{self.path}' has no checkpoint to resume; run without --resume"
            )
        if not resume and self.path.exists():
            # A folder without a checkpoint holds no training (a start that failed on
            # bad input): it is replaced without asking.
            if started and not overwrite:
                raise RunFolderError(
                    f"run folder '{self.path}' already exists: pass --resume to continue it, "
                    "--overwrite to start it again, or set name=... for a new run"
                )

    def write_metrics(self, history: list[dict[str, Any]]) -> None:
        if world().main:
            write_history(history, self.metrics)

    def write_predictions(self, indices, num_atoms, target_ev, predicted_ev) -> None:
        if not world().main:
            return
        with open(self.test_predictions, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["index", "num_atoms", "dft_ev", "predicted_ev"])
            for row in zip(indices, num_atoms, target_ev, predicted_ev):
                writer.writerow([int(row[0]), int(row[1]), repr(float(row[2])), repr(float(row[3]))])

    def write_results(self, results: dict[str, Any]) -> None:
        if world().main:
            self.results.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
