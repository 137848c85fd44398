"""Pretrained checkpoints on disk, one folder per distinct pretraining.

A pretraining is identified by everything that changes its weights: the dataset geometry,
the split seed and validation subset, the model spec, the EIPs (store keys), the pretrain
settings, the seed and the dtype. Its folder ``<root>/mp-<sha256 of that, 16 hex>/`` holds:

    key.yaml          that identity (checked on reuse)
    config.yaml       the run configuration that made it
    checkpoints/      last.pt (resumable) and best.pt
    metrics.csv       one row per pretraining epoch
    pretrained.pt     the result: best weights, spec, EIPs, timings (written last)

A run asking for the same pretraining loads ``pretrained.pt`` instead of training again,
continues an interrupted one from ``last.pt``, and waits on a file lock while another
process is pretraining it.
"""
from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterator

import torch
import yaml

from ...config import RunConfig, save_config
from ...models.build import ModelSpec
from ...train.checkpoint import save_atomic

# Settings that change where or how fast, not what, is pretrained.
_NOT_IN_KEY = ("label_workers", "checkpoint_dir")


class PretrainCacheError(RuntimeError):
    """A pretrained-checkpoint folder does not belong to the pretraining asked for."""


def pretrain_key(config: RunConfig, spec: ModelSpec, geometry_hash: str, eip_ids: list[str]) -> dict[str, Any]:
    settings = {k: v for k, v in asdict(config.pretrain).items() if k not in _NOT_IN_KEY}
    settings.pop("eips")
    return {
        "dataset_geometry": geometry_hash,
        "split_seed": config.data.split_seed,
        "max_val": config.data.max_val,  # the validation subset picks the best epoch
        "model": asdict(spec),
        "eip_ids": list(eip_ids),
        "pretrain": settings,
        "seed": config.seed,
        "dtype": config.train.dtype,
    }


def key_digest(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def pretrain_root(config: RunConfig) -> Path:
    return Path(config.pretrain.checkpoint_dir or Path(config.runs_dir) / "pretrained")


class PretrainFolder:
    def __init__(self, root: Path, key: dict[str, Any]) -> None:
        self.key = key
        self.path = Path(root) / f"mp-{key_digest(key)}"

    checkpoints = property(lambda self: self.path / "checkpoints")
    result = property(lambda self: self.path / "pretrained.pt")
    metrics = property(lambda self: self.path / "metrics.csv")

    @property
    def done(self) -> bool:
        return self.result.exists()

    @property
    def started(self) -> bool:
        return (self.checkpoints / "last.pt").exists()

    @contextlib.contextmanager
    def locked(self) -> Iterator["PretrainFolder"]:
        """Hold the folder's lock: a second process with the same pretraining waits here,
        then finds ``pretrained.pt`` and reuses it."""
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        with open(self.path / ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                self._check_key()
                yield self
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _check_key(self) -> None:
        stored = self.path / "key.yaml"
        if not stored.exists():
            stored.write_text(yaml.safe_dump(self.key, sort_keys=True))
            return
        if yaml.safe_load(stored.read_text()) != json.loads(json.dumps(self.key)):
            raise PretrainCacheError(
                f"'{self.path}' holds a different pretraining than its name says (key.yaml "
                "differs): delete that folder or set pretrain.checkpoint_dir elsewhere"
            )

    def write_config(self, config: RunConfig) -> None:
        save_config(config, self.path / "config.yaml")

    def write_metrics(self, history: list[dict[str, Any]]) -> None:
        if history:
            with open(self.metrics, "w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=list(history[0]))
                writer.writeheader()
                writer.writerows(history)

    def save(self, payload: dict[str, Any]) -> None:
        save_atomic(payload, self.result)

    def load(self) -> dict[str, Any]:
        return torch.load(self.result, map_location="cpu", weights_only=False)
