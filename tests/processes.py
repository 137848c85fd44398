"""Watching child processes from a test (the kill -9 tests of the label stores)."""
from __future__ import annotations

import os


def children(pid: int) -> set[int]:
    """Process ids of the direct children of ``pid`` (Linux /proc)."""
    path = f"/proc/{pid}/task/{pid}/children"
    return {int(child) for child in open(path).read().split()} if os.path.exists(path) else set()


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split()[2] != "Z"
    except FileNotFoundError:
        return False
