"""Training and use of the K+1 classifier: cross-entropy, Adam, slanted triangular rate
(METHOD.md), the weights of the best validation accuracy kept.

Class targets ride in ``Rows.targets[:, 0]`` (as floats), so the shared batching serves.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from ...data.batching import BatchLoader
from ...train.optimizer import adam
from ...train.schedules import slanted_triangular
from .classifier import EIPClassifier


@dataclass
class ClassifierSettings:
    epochs: int = 100
    lr: float = 1e-3
    lr_ratio: float = 32.0  # the rate starts and ends at lr / lr_ratio
    grad_clip: float = 5.0
    device: str = "cpu"
    dtype: torch.dtype = torch.float32
    progress: bool = True


@dataclass
class ClassifierResult:
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_accuracy: float = -1.0


def class_probabilities(model: EIPClassifier, loader: BatchLoader, device: torch.device,
                        dtype: torch.dtype) -> tuple[np.ndarray, np.ndarray]:
    """(rows [R] dataset indices, softmax probabilities [R, K+1]) in loader order."""
    was_training = model.training
    model.eval()  # BatchNorm with its running statistics
    rows, probabilities = [], []
    with torch.no_grad():
        for batch in loader.epoch(0):
            batch = batch.to(device, dtype)
            probabilities.append(torch.softmax(model(batch), dim=1).double().cpu())
            rows.append(batch.rows.cpu())
    model.train(was_training)
    return torch.cat(rows).numpy(), torch.cat(probabilities).numpy()


def confusion_matrix(true: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """[K+1, K+1] counts, row = true class, column = predicted class."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (true, predicted), 1)
    return matrix


def _accuracy(model: EIPClassifier, loader: BatchLoader, settings: ClassifierSettings) -> float:
    _, probabilities = class_probabilities(model, loader, torch.device(settings.device), settings.dtype)
    true = loader.rows.targets[:, 0].astype(np.int64)
    return float(np.mean(probabilities.argmax(axis=1) == true))


def fit_classifier(model: EIPClassifier, train: BatchLoader, val: BatchLoader,
                   settings: ClassifierSettings) -> ClassifierResult:
    """Train ``model`` in place; it ends with the weights of the best validation accuracy
    (the earliest epoch among equals)."""
    device = torch.device(settings.device)
    model.to(device=device, dtype=settings.dtype)
    optimizer = adam(model.parameters(), settings.lr)
    total_steps = settings.epochs * len(train)
    schedule = slanted_triangular(settings.lr, settings.lr / settings.lr_ratio, total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    result, best_state = ClassifierResult(), copy.deepcopy(model.state_dict())
    bar = tqdm(total=total_steps, desc="LA classifier", disable=not settings.progress, dynamic_ncols=True)
    for epoch in range(settings.epochs):
        started, loss_sum, rows = time.perf_counter(), 0.0, 0
        model.train()
        for batch in train.epoch(epoch):
            bar.update(1)
            if batch.num_rows < 2:
                continue  # BatchNorm cannot normalise a single row: a lone last row is skipped
            batch = batch.to(device, settings.dtype)
            loss = torch.nn.functional.cross_entropy(model(batch), batch.targets[:, 0].long())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
            optimizer.step()
            scheduler.step()
            loss_sum += float(loss.detach()) * batch.num_rows
            rows += batch.num_rows
        accuracy = _accuracy(model, val, settings)
        result.history.append({"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"],
                               "train_cross_entropy": loss_sum / max(rows, 1),
                               "val_accuracy": accuracy, "seconds": time.perf_counter() - started})
        if accuracy > result.best_accuracy:
            result.best_accuracy, result.best_epoch = accuracy, epoch + 1
            best_state = copy.deepcopy(model.state_dict())
        bar.set_postfix(epoch=epoch + 1, val_acc=f"{accuracy:.3f}", best=f"{result.best_accuracy:.3f}")
    bar.close()
    model.load_state_dict(best_state)
    return result
