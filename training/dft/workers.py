"""Running DFT calculations in this process or in forked worker processes.

A task is one configuration: each finished calculation comes back to the parent, which
stores it in its own transaction, so a kill loses only the calculations in flight. The
pool is the EIP labeller's (``eipnn_training.eip.workers.run_in_workers``); the parent
never imports GPAW (which would initialise MPI before the fork), only the workers do.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from ..eip.structure import Structure
from ..eip.workers import run_in_workers
from .calculation import Outcome, run_calculation
from .errors import DFTWorkerCrashed
from .settings import DFTSettings


@dataclass(frozen=True)
class DFTTask:
    config_hash: str
    structure: Structure
    settings: DFTSettings


def run_task(task: DFTTask) -> tuple[str, Outcome]:
    return task.config_hash, run_calculation(task.structure, task.settings)


def execute(tasks: list[DFTTask], workers: int) -> Iterable[tuple[str, Outcome]]:
    """(hash, outcome) of each task as it finishes; in this process when ``workers`` ≤ 1.
    Tasks start in the order given."""
    return run_in_workers(run_task, tasks, workers, lambda: DFTWorkerCrashed(
        "a DFT worker died (killed, out of memory, or a crash inside GPAW); "
        "finished calculations are stored, so rerunning the same command resumes"))
