"""Running labelling tasks in this process or in forked worker processes.

A task is a chunk of configurations for one EIP. Workers keep their EIP objects alive
across tasks (KIM objects cannot be pickled, so each process makes its own).
"""
from __future__ import annotations

import multiprocessing
import os
import signal
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, TypeVar

from .catalogue import EIP
from .errors import WorkerCrashed
from .evaluation import evaluate, model_for
from .store import StoredLabel
from .structure import Structure

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Task:
    eip: EIP
    hashes: list[str]
    structures: list[Structure]
    with_forces: bool


def run_task(task: Task) -> tuple[str, list[tuple[str, StoredLabel]]]:
    model = model_for(task.eip)
    results = [
        (config_hash, evaluate(model, structure, task.with_forces))
        for config_hash, structure in zip(task.hashes, task.structures)
    ]
    return task.eip.eip_id, results


def _die_with_parent(parent_pid: int) -> None:
    """Worker initializer: a parent killed with SIGKILL must not leave workers behind.
    Linux delivers SIGKILL to us when the parent dies; elsewhere we rely on the pool."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def _start_method() -> str:
    """fork where available: workers start in milliseconds and callers need no
    ``if __name__ == "__main__"`` guard. Workers run only KIM/numpy code, never torch, so
    OpenMP state a forking caller may hold is never used in the child."""
    return "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"


def run_in_workers(run: Callable[[T], R], tasks: list[T], workers: int,
                   crashed: Callable[[], Exception]) -> Iterator[R]:
    """``run(task)`` of each task as it finishes, in this process when ``workers`` <= 1, else
    in forked worker processes that die with the parent; a worker that dies raises
    ``crashed()`` (an error saying what to do). Shared by the EIP and the DFT labeller."""
    if workers <= 1:
        for task in tasks:
            yield run(task)
        return
    context = multiprocessing.get_context(_start_method())
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=_die_with_parent,
        initargs=(os.getpid(),),
    ) as pool:
        futures = [pool.submit(run, task) for task in tasks]
        try:
            for future in as_completed(futures):
                yield future.result()
        except BrokenProcessPool as error:
            raise crashed() from error
        finally:
            for future in futures:
                future.cancel()


def execute(tasks: list[Task], workers: int) -> Iterable[tuple[str, list]]:
    """Results of the tasks as they finish, in-process or from ``workers`` processes."""
    return run_in_workers(run_task, tasks, workers, lambda: WorkerCrashed(
        "a labelling worker died (a crash inside an EIP); finished chunks are "
        "stored, so rerunning the same command resumes; run with workers=1 to see "
        "which configuration crashes"))
