"""Running DFT calculations in this process or in forked worker processes.

A task is one configuration: each finished calculation comes back to the parent, which
stores it in its own transaction, so a kill loses only the calculations in flight. The
pool's start method and the die-with-the-parent initializer are the EIP labeller's
(``eipnn_training.eip.workers``); the parent never imports GPAW (which would initialise
MPI before the fork), only the workers do.
"""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Iterable

from ..eip.structure import Structure
from ..eip.workers import _die_with_parent, _start_method
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
    if workers <= 1:
        for task in tasks:
            yield run_task(task)
        return
    context = multiprocessing.get_context(_start_method())
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=_die_with_parent,
        initargs=(os.getpid(),),
    ) as pool:
        futures = [pool.submit(run_task, task) for task in tasks]
        try:
            for future in as_completed(futures):
                yield future.result()
        except BrokenProcessPool as error:
            raise DFTWorkerCrashed(
                "a DFT worker died (killed, out of memory, or a crash inside GPAW); "
                "finished calculations are stored, so rerunning the same command resumes"
            ) from error
        finally:
            for future in futures:
                future.cancel()
