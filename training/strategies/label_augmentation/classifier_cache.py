"""The LA classifier on disk, one folder per distinct classifier, reused across runs.

METHOD.md trains the classifier from scratch and independently of alpha, the EIP-loss
switch, the confidence third and the EIP subset, so LA, its ablations and MP+LA on the same
split share one. It is identified by everything that changes its weights: the dataset
geometry, the split (seed and subsets), the model spec, the EIPs (store keys), alignment
and threshold (the class targets), the classifier schedule, batch size, gradient clip,
seed and dtype. Folder ``<root>/classifier-<digest>/`` (``KeyedFolder``) holds
``classifier.pt``: weights, validation summary and per-epoch history.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from ...config import RunConfig
from ...keyed_folder import KeyedFolder
from ...models.build import ModelSpec


def classifier_key(config: RunConfig, spec: ModelSpec, geometry_hash: str, eip_ids: list[str]) -> dict[str, Any]:
    la, d, t = config.la, config.data, config.train
    return {
        "dataset_geometry": geometry_hash,
        "split": {"split_seed": d.split_seed, "max_train": d.max_train, "max_val": d.max_val},
        "model": asdict(spec),
        "eip_ids": list(eip_ids),
        "classes": {"aligned": la.aligned, "threshold_ev_per_atom": la.threshold_ev_per_atom},
        "schedule": {"epochs": la.classifier_epochs, "lr": la.classifier_lr, "lr_ratio": la.lr_ratio,
                     "batch_size": t.batch_size, "grad_clip": t.grad_clip},
        "seed": config.seed,
        "dtype": t.dtype,
    }


class ClassifierFolder(KeyedFolder):
    result_name = "classifier.pt"

    def __init__(self, config: RunConfig, key: dict[str, Any]) -> None:
        root = Path(config.la.classifier_dir or Path(config.runs_dir) / "classifiers")
        super().__init__(root, "classifier", key, "classifier", "la.classifier_dir")
