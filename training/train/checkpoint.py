"""Training state on disk: ``last.pt`` after every epoch (resumable), ``best.pt`` with the
weights of the best validation epoch. Both are written atomically."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from eipnn_calc.errors import EIPNNError


class ResumeError(EIPNNError, RuntimeError):
    """A run cannot be resumed from its folder."""


def save_atomic(state: dict[str, Any], path: Path) -> None:
    partial = path.with_name(f"{path.name}.tmp{os.getpid()}")
    torch.save(state, partial)
    os.replace(partial, path)  # a kill mid-write leaves the previous file intact


def load_state(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    if not path.exists():
        raise ResumeError(f"no checkpoint at '{path}': nothing to resume; start the run without --resume")
    return torch.load(path, map_location=device, weights_only=False)
