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

from dataclasses import asdict
from pathlib import Path
from typing import Any

from ...config import RunConfig
from ...keyed_folder import KeyedFolder, KeyMismatch
from ...models.build import ModelSpec
from ...runs import write_history

# Settings that change where or how fast, not what, is pretrained.
_NOT_IN_KEY = ("label_workers", "checkpoint_dir")


class PretrainCacheError(KeyMismatch):
    """A pretrained-checkpoint folder does not belong to the pretraining asked for."""


def pretrain_key(config: RunConfig, spec: ModelSpec, geometry_hash: str, eip_ids: list[str]) -> dict[str, Any]:
    settings = {k: v for k, v in asdict(config.pretrain).items() if k not in _NOT_IN_KEY}
    settings.pop("eips")
    if not settings["force_weight"]:  # energies only: the key (and folder) of before forces existed
        settings.pop("force_weight")
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


def pretrain_root(config: RunConfig) -> Path:
    return Path(config.pretrain.checkpoint_dir or Path(config.runs_dir) / "pretrained")


class PretrainFolder(KeyedFolder):
    result_name = "pretrained.pt"
    mismatch = PretrainCacheError

    def __init__(self, root: Path, key: dict[str, Any]) -> None:
        super().__init__(root, "mp", key, "pretraining", "pretrain.checkpoint_dir")

    checkpoints = property(lambda self: self.path / "checkpoints")
    metrics = property(lambda self: self.path / "metrics.csv")

    def make_dirs(self) -> None:
        self.checkpoints.mkdir(parents=True, exist_ok=True)

    @property
    def started(self) -> bool:
        return (self.checkpoints / "last.pt").exists()

    def write_metrics(self, history: list[dict[str, Any]]) -> None:
        write_history(history, self.metrics)
