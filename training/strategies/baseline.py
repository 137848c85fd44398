"""Baseline: fit the potential to the DFT energies of ``train`` (METHOD.md)."""
from __future__ import annotations

import platform
import time
from typing import Any, Callable, Optional

import torch

from ..config import RunConfig, save_config
from ..distributed import barrier, world
from ..export import export_model
from ..models.committee import Committee
from ..models.potential import Potential
from ..plots import learning_curves, parity_plot
from ..runs import RunFolder, write_history
from ..train.ensemble import fit_ensemble, member_folder
from ..train.loop import FitSettings, fit
from ..train.losses import LOSSES
from ..train.reference import set_reference
from ..train.metrics import EnergyForceMetrics, energy_metrics, force_mae, predict
from ..train.schedules import SCHEDULES
from ..train.session import (DTYPES, fit_reference, model_spec, prepare_data, resolve_force_weight,
                             seeded_potential)


def fit_settings(config: RunConfig) -> FitSettings:
    """The loop's settings from ``train.*`` (``train.force_weight`` already resolved).
    With forces the best epoch is the one of the lowest ``val_combined_mae``
    (configuration MAE + sqrt(w) x force MAE, eV); without, of ``val_config_mae``."""
    t = config.train
    settings = FitSettings(
        epochs=t.epochs, lr=t.lr, lr_final=t.lr_final, grad_clip=t.grad_clip,
        force_weight=t.force_weight, device=config.device, dtype=DTYPES[t.dtype],
        progress=config.progress, loss=LOSSES[t.loss], schedule=SCHEDULES[t.schedule], compile=t.compile,
        max_atoms_per_pass=t.max_atoms_per_pass, descriptor_cache_mb=t.descriptor_cache_mb,
    )
    if t.force_weight > 0:
        metrics = EnergyForceMetrics(t.force_weight, energy_metrics)
        settings.evaluate, settings.monitor = metrics, metrics.monitor
    return settings


def best_row(history: list[dict], best_epoch: int) -> dict[str, Any]:
    """The history row (metrics) of the best epoch."""
    return next(row for row in history if row["epoch"] == best_epoch)


def force_results(potential: Potential, test, config: RunConfig, history: list[dict], best_epoch: int) -> dict[str, Any]:
    """results.json keys of a run trained on forces: test and best-epoch val force MAE."""
    best = best_row(history, best_epoch)
    return {
        "test_force_mae_ev_per_angstrom": force_mae(potential, test, torch.device(config.device),
                                                    DTYPES[config.train.dtype]),
        "best_val_force_mae_ev_per_angstrom": best["val_force_mae"],
        "best_val_combined_mae_ev": best["val_combined_mae"],
    }


def _fit_committee(members: list[Potential], train, val, settings: FitSettings, run: RunFolder,
                   resume: bool, **hooks: Any) -> list:
    """The members trained together (``training.train.ensemble``), each with its metrics.csv
    in ``checkpoints/member_<k>/``; the run folder's metrics.csv is member 0's."""
    def history(k: int, rows: list) -> None:
        if world().main:
            write_history(rows, member_folder(run.checkpoints, k) / "metrics.csv")
        if k == 0:
            run.write_metrics(rows)
    return fit_ensemble(members, train, val, [settings] * len(members), run.checkpoints, resume=resume,
                        on_epoch_end=history, **hooks)


def committee_results(members: list[Potential], member_results: list, test, config: RunConfig) -> dict[str, Any]:
    """results.json's ``committee``: size, each member's best epoch and test MAE."""
    device, dtype = torch.device(config.device), DTYPES[config.train.dtype]
    return {
        "members": len(members),
        "seeds": [config.seed + k for k in range(len(members))],
        "best_epochs": [r.best_epoch for r in member_results],
        "member_test_config_mae_ev": [predict(m, test, device, dtype).config_mae_ev() for m in members],
    }


def run_baseline(
    config: RunConfig,
    run: RunFolder,
    resume: bool = False,
    initialize: Optional[Callable[[Potential], None]] = None,
    **hooks: Any,
) -> dict[str, Any]:
    """Train, pick the best validation epoch, test, export, plot; returns results.json.

    ``initialize(potential)`` changes the fresh seeded potential before its reference
    energies are fitted (MP fine-tuning loads pretrained representation weights there).
    """
    started = time.perf_counter()
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    data = prepare_data(config)
    config.model.species = list(data.species)  # resolved: saved so the run can be re-exported
    forces = resolve_force_weight(config, data) > 0
    if world().main:
        save_config(config, run.config)
    spec = model_spec(config, data.species)
    t = config.train
    members = [seeded_potential(spec, config.seed + k) for k in range(t.committee)]
    train_rows = data.dft_rows("train", with_forces=forces)
    if initialize is not None:
        for member in members:
            initialize(member)
    reference, scale = fit_reference(members[0], data, train_rows)  # the same fit for every member
    for member in members[1:]:
        set_reference(member, reference, scale)
    train = data.loader(train_rows, t.batch_size, shuffle=True, seed=config.seed)
    val = data.loader(data.dft_rows("val", with_forces=forces), t.eval_batch_size)
    test = data.loader(data.dft_rows("test", with_forces=forces), t.eval_batch_size)
    settings = fit_settings(config)
    if t.committee == 1:
        potential = members[0]
        result = fit(potential, train, val, settings, run.checkpoints, resume=resume,
                     on_epoch_end=run.write_metrics, **hooks)
        member_results = [result]
    else:
        member_results = _fit_committee(members, train, val, settings, run, resume, **hooks)
        potential, result = Committee(members), member_results[0]
    run.write_metrics(result.history)
    predictions = predict(potential, test, torch.device(config.device), settings.dtype)
    provenance = {
        "strategy": config.strategy, "seed": config.seed, "split_seed": config.data.split_seed,
        "dataset": data.split.dataset.name, "geometry_hash": data.split.dataset.geometry_hash(),
        "best_epoch": result.best_epoch,
    }
    if t.committee > 1:
        provenance["committee_best_epochs"] = [r.best_epoch for r in member_results]
    run.write_predictions(predictions.rows, predictions.num_atoms, predictions.target_ev,
                          predictions.predicted_ev)
    if world().main:
        parity_plot(predictions.target_ev, predictions.predicted_ev, predictions.num_atoms, run.parity_plot)
        learning_curves(result.history, run.learning_curves)
    epoch_seconds = [row["seconds"] for row in result.history]
    results = {
        "test_config_mae_ev": predictions.config_mae_ev(),
        "test_atom_mae_ev_per_atom": predictions.atom_mae_ev(),
        "best_epoch": result.best_epoch,
        "best_val_config_mae_ev": (best_row(result.history, result.best_epoch)["val_config_mae"] if forces
                                   else result.best_metric),
        "force_weight": t.force_weight,
        **(force_results(potential, test, config, result.history, result.best_epoch) if forces else {}),
        "num_train": len(train_rows), "num_val": len(val.rows), "num_test": len(test.rows),
        "num_unlabeled": len(data.split.splits["unlabeled"]),
        "reference_energy_ev": dict(zip(data.species, map(float, reference))),
        "scale_ev_per_atom": scale,
        "seconds_per_epoch_mean": sum(epoch_seconds) / len(epoch_seconds),
        "seconds_total": time.perf_counter() - started,
        "device": config.device, "torch_threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "model_path": str(run.model),
    }
    if t.committee > 1:
        results["committee"] = committee_results(members, member_results, test, config)
    run.write_results(results)
    # Exported last: if scripting fails (say, a model source edited under a long run), the
    # metrics and checkpoints are already on disk and `--resume` redoes only this tail.
    if world().main:
        export_model(members if t.committee > 1 else potential, spec, run.model, provenance,
                     dtype=config.export_dtype)
    barrier()  # the model file exists for every rank
    return results

