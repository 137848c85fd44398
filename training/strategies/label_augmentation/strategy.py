"""``strategy: la``: classify -> select -> fit(DFT + EIP rows with Tukey) -> report.

Stages, each leaving its files in the run folder (``la/``):
1. EIP energies of train, val and the pool (label store), aligned on train; class targets
   of train and val (``la/classes.json``).
2. The K+1 classifier (``checkpoints/classifier/best.pt``, ``la/classifier_metrics.csv``,
   ``la/confusion.png``), reused as is on ``--resume``; a run without one takes the shared
   classifier of the same key (``classifier_cache.py``) or trains and shares it.
3. Selection from the pool (``la/selection.csv``).
4. The potential for each alpha (one, or the grid), the chosen alpha's weights copied to
   ``checkpoints/best.pt``; test, export, plots as the baseline (``la/alpha_search.csv``,
   ``la/alpha_curve.png``).
5. After training only: outliers among the selected, graded with the pool's DFT energies.
"""
from __future__ import annotations

import json
import platform
import shutil
import time
from typing import Any, Callable

import numpy as np
import torch

from ...config import RunConfig, save_config
from ...distributed import barrier, broadcast_object, main_first, world
from ...data.batching import KIND_DFT, Rows
from ...eip import eip_ids, expand
from ...export import export_model
from ...models.potential import Potential
from ...plots import learning_curves, parity_plot
from ...runs import RunFolder, write_history
from ...train.checkpoint import save_atomic
from ...train.metrics import predict
from ...train.session import (DTYPES, TrainingData, fit_reference, model_spec, prepare_data, resolve_force_weight,
                              seeded_potential)
from ..baseline import fit_settings, force_results
from .alpha import AugmentedTraining, load_best, search_alpha
from .classifier import EIPClassifier, build_classifier
from .classifier_cache import ClassifierFolder, classifier_key
from .classifier_training import ClassifierSettings, class_probabilities, confusion_matrix, fit_classifier
from .errors import NothingSelected
from .report import (PoolSeal, alpha_plot, class_balance, confusion_plot, outlier_report,
                     write_selection)
from .selection import Selection, select
from .targets import EIPTable, eip_atom_mae, eip_classes, eip_table, resolve_eip_columns, selected_forces

Initialize = Callable[[Potential], None]


def pool_indices(data: TrainingData, max_unlabeled: int | None, seed: int) -> np.ndarray:
    """The ``unlabeled`` split, or a random ``max_unlabeled`` of it (sorted)."""
    pool = data.split.splits["unlabeled"]
    if max_unlabeled is not None and max_unlabeled < len(pool):
        pool = np.sort(np.random.default_rng([seed, 11]).permutation(pool)[:max_unlabeled])
    return pool


def class_rows(data: TrainingData, table: EIPTable, split: str, threshold: float) -> Rows:
    """Rows of ``split`` whose target is the class (as a float in column 0)."""
    indices = data.split.splits[split]
    dft = data.split.dataset.energies_ev(indices)
    num_atoms = data.split.dataset.num_atoms[indices]
    classes = eip_classes(table.energies_ev[indices], dft, num_atoms, threshold)
    return Rows(indices, classes.astype(np.float64)[:, None], np.ones(len(indices)), np.full(len(indices), KIND_DFT))


def fit_new_classifier(config: RunConfig, data: TrainingData, model: EIPClassifier, num_classes: int,
                       train: Rows, val: Rows) -> dict[str, Any]:
    """Train ``model`` from scratch; its weights, validation summary and history."""
    t, la = config.train, config.la
    dtype = DTYPES[t.dtype]
    settings = ClassifierSettings(la.classifier_epochs, la.classifier_lr, la.lr_ratio, t.grad_clip,
                                  config.device, dtype, config.progress)
    # Rank 0 alone trains it (train_classifier), on whole batches: BatchNorm's statistics
    # are those of one process.
    result = fit_classifier(model, data.loader(train, t.batch_size, shuffle=True, seed=config.seed, shard=False),
                            data.loader(val, t.eval_batch_size, shard=False), settings)
    _, probabilities = class_probabilities(model, data.loader(val, t.eval_batch_size, shard=False),
                                           torch.device(config.device), dtype)
    true = val.targets[:, 0].astype(np.int64)
    matrix = confusion_matrix(true, probabilities.argmax(axis=1), num_classes)
    summary = {"val_accuracy": result.best_accuracy, "best_epoch": result.best_epoch,
               "val_confusion": matrix.tolist(),
               "val_accuracy_of_majority_class": float(np.bincount(true).max() / len(true))}
    return {"model": model.state_dict(), "summary": summary, "history": result.history}


def train_classifier(config: RunConfig, data: TrainingData, table: EIPTable, run: RunFolder,
                     train: Rows, val: Rows, resume: bool) -> tuple[EIPClassifier, dict]:
    """Stage 2: the classifier and its report. On ``resume`` the run's own checkpoint;
    otherwise the shared one with the same key (``classifier_cache``), trained when new."""
    spec = model_spec(config, data.species)
    model = build_classifier(spec, table.num_classes, config.seed)
    stored = run.checkpoints / "classifier" / "best.pt"
    if resume and stored.exists():
        state = torch.load(stored, map_location="cpu", weights_only=False)
    else:
        key = classifier_key(config, spec, data.split.dataset.geometry_hash(), eip_ids(config.la.eips))
        folder = ClassifierFolder(config, key)

        def trained_or_stored() -> tuple[dict, bool]:
            with folder.locked():
                reused = folder.done
                if not reused:
                    folder.write_config(config)
                    folder.save(fit_new_classifier(config, data, model, table.num_classes, train, val))
                return folder.load(), reused

        # Under torchrun rank 0 trains it; the others then find it stored.
        state, reused = main_first(trained_or_stored)
        reused = broadcast_object(reused)
        state["summary"] = {**state["summary"], "shared_dir": str(folder.path), "reused": reused}
        if world().main:
            write_history(state["history"], run.path / "la" / "classifier_metrics.csv")
            stored.parent.mkdir(parents=True, exist_ok=True)
            save_atomic({"model": state["model"], "summary": state["summary"]}, stored)
    model.load_state_dict(state["model"])
    model.to(device=torch.device(config.device), dtype=DTYPES[config.train.dtype])
    summary = state["summary"]
    if world().main:
        confusion_plot(np.array(summary["val_confusion"]), table.names, summary["val_accuracy"],
                       run.path / "la" / "confusion.png")
    return model, summary


def select_from_pool(config: RunConfig, data: TrainingData, table: EIPTable, model: EIPClassifier,
                     train: Rows) -> Selection:
    """Stage 3: predict the pool, keep the EIP-class predictions (with the options)."""
    pool = pool_indices(data, config.la.max_unlabeled, config.seed)
    unlabelled = Rows(pool, np.full((len(pool), 1), np.nan), np.ones(len(pool)), np.full(len(pool), KIND_DFT))
    rows, probabilities = class_probabilities(model, data.loader(unlabelled, config.train.eval_batch_size, shard=False),
                                              torch.device(config.device), DTYPES[config.train.dtype])
    dft_train = data.split.dataset.energies_ev(train.indices)
    atom_mae = eip_atom_mae(table.energies_ev[train.indices], dft_train, data.split.dataset.num_atoms[train.indices])
    columns = resolve_eip_columns(table.names, config.la.select_eips, atom_mae)
    # Rank 0's selection on every rank: each must train on the same rows.
    selection = broadcast_object(select(rows, probabilities, table.energies_ev[rows], columns, config.la.confidence))
    if len(selection) == 0:
        raise NothingSelected(
            f"no configuration of the pool ({selection.num_pool}) was selected "
            f"({selection.num_predicted_none} predicted as 'no EIP is good'): loosen "
            "la.select_eips / la.confidence, or raise la.threshold_ev_per_atom"
        )
    return selection


def augmented_job(config: RunConfig, data: TrainingData, selection: Selection,
                  initialize: Initialize | None = None) -> tuple[AugmentedTraining, Rows]:
    """The training set (DFT train + selected EIP rows) and the potential factory;
    ``initialize`` (e.g. MP's pretrained representation) runs on each fresh potential.
    DFT rows carry DFT forces when ``train.force_weight`` > 0, the selected rows their EIP's
    forces when ``la.force_weight`` > 0."""
    spec = model_spec(config, data.species)
    dft_forces = config.train.force_weight > 0
    train_rows = data.dft_rows("train", with_forces=dft_forces)

    def new_potential():
        potential = seeded_potential(spec, config.seed)
        fit_reference(potential, data, train_rows)  # reference energies from DFT rows only
        if initialize is not None:
            initialize(potential)
        return potential

    t, la = config.train, config.la
    eip_forces = None
    if la.force_weight > 0:
        eip_forces = main_first(lambda: selected_forces(data, expand(la.eips), selection.indices, selection.classes,
                                                        la.label_workers, config.progress and world().main))
    rows = train_rows.concat(selection.rows(eip_forces))
    job = AugmentedTraining(
        new_potential=new_potential,
        train=data.loader(rows, t.batch_size, shuffle=True, seed=config.seed),
        val=data.loader(data.dft_rows("val", with_forces=dft_forces), t.eval_batch_size),
        settings=fit_settings(config), balance=len(train_rows) / len(selection),
        eip_loss=la.eip_loss, eip_force_weight=la.force_weight,
    )
    return job, train_rows


def run_label_augmentation(config: RunConfig, run: RunFolder, resume: bool = False,
                           initialize: Initialize | None = None, **hooks: Any) -> dict[str, Any]:
    """The LA strategy end to end; returns results.json (the baseline's keys + ``la``).
    ``initialize(potential)`` runs on every fresh potential (strategy ``mp+la``); the
    classifier always starts from scratch. ``hooks`` go to the training loop."""
    started = time.perf_counter()
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    data = prepare_data(config)
    config.model.species = list(data.species)
    dft_forces = resolve_force_weight(config, data) > 0
    main = world().main  # the run folder is rank 0's to write
    if main:
        save_config(config, run.config)
        (run.path / "la").mkdir(exist_ok=True)
    seal = PoolSeal(data.split.dataset)
    la = config.la

    # 1. EIP energies and class targets.
    pool = pool_indices(data, la.max_unlabeled, config.seed)
    labelled = np.concatenate([data.split.splits["train"], data.split.splits["val"], pool])
    table = main_first(lambda: eip_table(data, expand(la.eips), labelled, la.aligned, la.label_workers,
                                         config.progress and main))
    train_classes = class_rows(data, table, "train", la.threshold_ev_per_atom)
    val_classes = class_rows(data, table, "val", la.threshold_ev_per_atom)
    balance = {"train": class_balance(train_classes.targets[:, 0].astype(np.int64), table.names),
               "val": class_balance(val_classes.targets[:, 0].astype(np.int64), table.names)}
    if main:
        (run.path / "la" / "classes.json").write_text(json.dumps(balance, indent=2) + "\n")

    # 2-3. Classifier and selection.
    classifier, classifier_summary = train_classifier(config, data, table, run, train_classes, val_classes, resume)
    selection = select_from_pool(config, data, table, classifier, train_classes)
    if main:
        write_selection(selection, table.names, run.path / "la" / "selection.csv")
    seal.check_unread()

    # 4. The potential for each alpha; the best on validation is the run's model.
    job, train_rows = augmented_job(config, data, selection, initialize)
    grid = [la.alpha] if la.alpha is not None else list(la.alpha_grid)
    chosen, tried = search_alpha(grid, job, run.checkpoints, resume=resume, **hooks)
    run.write_metrics(chosen.history)
    if main:
        for name in ("best.pt", "last.pt"):
            shutil.copy(chosen.checkpoint_dir / name, run.checkpoints / name)  # eipnn-export reads these
        with open(run.path / "la" / "alpha_search.csv", "w") as handle:
            handle.write("alpha,best_val_config_mae_ev,best_epoch" + (",best_val_combined_mae_ev\n" if dft_forces else "\n"))
            handle.writelines(f"{r.alpha:g},{r.best_val_config_mae_ev!r},{r.best_epoch}"
                              + (f",{r.best_val_metric!r}\n" if dft_forces else "\n") for r in tried)
        alpha_plot([r.alpha for r in tried], [r.best_val_config_mae_ev for r in tried], chosen.alpha,
                   run.path / "la" / "alpha_curve.png")
    potential = load_best(job, chosen, config.device)
    seal.check_unread()
    seal.training_done = True

    # Test, export and plots as the baseline does.
    device, dtype = torch.device(config.device), DTYPES[config.train.dtype]
    test = data.loader(data.dft_rows("test", with_forces=dft_forces), config.train.eval_batch_size)
    predictions = predict(potential, test, device, dtype)
    spec = model_spec(config, data.species)
    provenance = {"strategy": config.strategy, "seed": config.seed, "split_seed": config.data.split_seed,
                  "dataset": data.split.dataset.name, "geometry_hash": data.split.dataset.geometry_hash(),
                  "best_epoch": chosen.best_epoch, "alpha": chosen.alpha}
    if main:
        export_model(potential, spec, run.model, provenance, dtype=config.export_dtype)
        parity_plot(predictions.target_ev, predictions.predicted_ev, predictions.num_atoms, run.parity_plot)
        learning_curves(chosen.history, run.learning_curves)
    run.write_predictions(predictions.rows, predictions.num_atoms, predictions.target_ev, predictions.predicted_ev)

    # 5. The report: only now may the pool's DFT energies be read.
    dft_selected = seal.read_for_report(selection.indices)
    outliers = outlier_report(selection, dft_selected, data.split.dataset.num_atoms[selection.indices],
                              table.names, la.threshold_ev_per_atom)
    if main:
        (run.path / "la" / "outliers.json").write_text(json.dumps(outliers, indent=2) + "\n")
    epoch_seconds = [row["seconds"] for row in chosen.history]
    results = {
        "test_config_mae_ev": predictions.config_mae_ev(),
        "test_atom_mae_ev_per_atom": predictions.atom_mae_ev(),
        "best_epoch": chosen.best_epoch, "best_val_config_mae_ev": chosen.best_val_config_mae_ev,
        "num_train": len(train_rows), "num_val": len(job.val.rows), "num_test": len(test.rows),
        "num_unlabeled": len(data.split.splits["unlabeled"]),
        "force_weight": config.train.force_weight,
        **(force_results(potential, test, config, chosen.history, chosen.best_epoch) if dft_forces else {}),
        "seconds_per_epoch_mean": float(np.mean(epoch_seconds)),
        "seconds_total": time.perf_counter() - started,
        "device": config.device, "torch_threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(), "model_path": str(run.model),
        "la": {
            "eips": table.names, "aligned": la.aligned, "threshold_ev_per_atom": la.threshold_ev_per_atom,
            "class_balance": balance, "classifier": classifier_summary,
            "num_pool": selection.num_pool, "num_selected": len(selection),
            "num_predicted_none": selection.num_predicted_none,
            "num_missing_label": selection.num_missing_label,
            "num_dropped_by_options": selection.num_dropped_by_options,
            "confidence": la.confidence, "select_eips": la.select_eips, "eip_loss": la.eip_loss,
            "force_weight": la.force_weight,
            "alpha": chosen.alpha, "balance_n_train_over_n_added": job.balance,
            "alpha_search": {f"{r.alpha:g}": r.best_val_config_mae_ev for r in tried},
            "outliers": outliers, "pool_dft_reads": list(data.split.dataset.unseal_log),
        },
    }
    run.write_results(results)
    barrier()  # the model file and report exist for every rank
    return results
