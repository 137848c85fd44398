"""Pretraining: the representation + a K-output head fitted to the EIP energies of the
``unlabeled`` pool, best epoch chosen on the EIP energies of ``val`` (METHOD.md)."""
from __future__ import annotations

import contextlib

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ...config import RunConfig
from ...eip import eip_ids
from ...models.build import ModelSpec
from ...data.batching import KIND_EIP
from ...train.loop import FitSettings, fit
from ...train.losses import ForceMSE
from ...train.metrics import EnergyForceMetrics
from ...train.schedules import slanted_triangular
from ...train.session import DTYPES, TrainingData, model_spec, prepare_data, seeded_potential
from .cache import PretrainFolder, pretrain_key, pretrain_root
from .objective import FORCE_MONITOR, MONITOR, eip_metrics, multitask_mse
from ...distributed import barrier, broadcast_object, main_first, world
from .targets import eip_rows, fit_multitask_reference, subsample


@dataclass
class Pretrained:
    """A finished pretraining: ``state`` holds the whole K-output model's best weights."""

    folder: Path
    spec: ModelSpec
    eip_names: list[str]
    state: dict[str, torch.Tensor]
    results: dict[str, Any]
    reused: bool  # True when this call loaded it instead of training

    def representation_state(self) -> dict[str, torch.Tensor]:
        prefix = "representation."
        return {k[len(prefix):]: v for k, v in self.state.items() if k.startswith(prefix)}


def pretrain_settings(config: RunConfig) -> FitSettings:
    """METHOD.md's pretraining; with ``pretrain.force_weight`` > 0 also the K heads' forces."""
    p = config.pretrain
    settings = FitSettings(
        epochs=p.epochs, lr=p.lr, lr_final=p.lr / p.lr_ratio, grad_clip=p.grad_clip,
        device=config.device, dtype=DTYPES[config.train.dtype], monitor=MONITOR,
        progress=config.progress, loss=multitask_mse, schedule=slanted_triangular,
        evaluate=eip_metrics, compile=config.train.compile, max_atoms_per_pass=config.train.max_atoms_per_pass,
        descriptor_cache_mb=config.train.descriptor_cache_mb,
    )
    if p.force_weight > 0:
        metrics = EnergyForceMetrics(p.force_weight, eip_metrics, MONITOR, "val_eip_")
        settings.force_loss = ForceMSE(p.force_weight, kind=KIND_EIP)
        settings.evaluate, settings.monitor = metrics, metrics.monitor
    return settings


def _train(config: RunConfig, data: TrainingData, spec: ModelSpec, folder: PretrainFolder, **hooks: Any) -> dict[str, Any]:
    """Label, fit, and return the payload of ``pretrained.pt``."""
    started = time.perf_counter()
    p = config.pretrain
    pool = subsample(data.split.splits["unlabeled"], p.max_unlabeled, config.seed)
    forces = p.force_weight > 0
    # Rank 0 labels (the label store is shared); the other ranks then read the store.
    progress = config.progress and world().main
    pool_rows, labels = main_first(lambda: eip_rows(data, pool, p.eips, p.label_workers, progress, forces))
    val_rows, _ = main_first(lambda: eip_rows(data, data.split.splits["val"], p.eips, p.label_workers, progress, forces))
    labelled_at = time.perf_counter()
    potential = seeded_potential(spec, config.seed, num_outputs=len(labels.names))
    fit_multitask_reference(potential, data, pool_rows)
    train = data.loader(pool_rows, p.batch_size, shuffle=True, seed=config.seed)
    val = data.loader(val_rows, config.train.eval_batch_size)
    write_metrics = folder.write_metrics if world().main else (lambda history: None)
    result = fit(potential, train, val, pretrain_settings(config), folder.checkpoints,
                 resume=folder.started, on_epoch_end=write_metrics, **hooks)
    write_metrics(result.history)
    epoch_seconds = [row["seconds"] for row in result.history]
    best = next(row for row in result.history if row["epoch"] == result.best_epoch)
    results = {
        "best_epoch": result.best_epoch, "best_val_eip_mae_ev": best[MONITOR],
        "force_weight": p.force_weight,
        **({"best_val_eip_force_mae_ev_per_angstrom": best["val_eip_force_mae"],
            "best_val_eip_combined_mae_ev": best[FORCE_MONITOR]} if forces else {}),
        "num_pool": len(pool_rows), "num_val": len(val_rows),
        "present_entries": int(labels.present.sum()), "missing_entries": int((~labels.present).sum()),
        "eip_names": list(labels.names), "eip_ids": list(labels.eip_ids),
        "seconds_labels": labelled_at - started,
        "seconds_fit": float(sum(epoch_seconds)),  # over every session, if resumed
        "seconds_per_epoch_mean": float(sum(epoch_seconds) / max(len(epoch_seconds), 1)),
        "seconds_total_last_session": time.perf_counter() - started,
        "device": config.device, "torch_threads": torch.get_num_threads(),
    }
    state = {k: v.detach().cpu() for k, v in potential.state_dict().items()}
    return {"spec": asdict(spec), "eip_names": list(labels.names), "state": state,
            "results": results, "key": folder.key}


def pretrain(config: RunConfig, data: TrainingData | None = None, **hooks: Any) -> Pretrained:
    """The pretraining ``config`` asks for: loaded when it was done before (same key),
    otherwise trained (or continued after a kill) and stored. ``hooks`` go to the loop."""
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    data = data or prepare_data(config)
    spec = model_spec(config, data.species)
    key = pretrain_key(config, spec, data.split.dataset.geometry_hash(), eip_ids(config.pretrain.eips))
    folder = PretrainFolder(pretrain_root(config), key)
    # Under torchrun every rank trains, rank 0 holds the lock and writes the folder.
    with folder.locked() if world().main else contextlib.nullcontext():
        reused = broadcast_object(folder.done)
        if not reused:
            if world().main:
                folder.write_config(config)
            payload = _train(config, data, spec, folder, **hooks)
            if world().main:
                folder.save(payload)
        barrier()
        payload = folder.load()
    return Pretrained(folder.path, ModelSpec(**payload["spec"]), payload["eip_names"],
                      payload["state"], payload["results"], reused)
