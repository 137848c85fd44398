"""Fine-tuning from a pretraining: the pretrained representation weights, a fresh
single-output head, nothing frozen, then the baseline trainer on DFT energies (``mp``) or
the label-augmentation trainer (``mp+la``)."""
from __future__ import annotations

import hashlib
from typing import Any, Callable

import torch

from eipnn_calc.errors import EIPNNError

from ...config import RunConfig
from ...models.potential import Potential
from ...runs import RunFolder
from ..baseline import run_baseline
from ..label_augmentation import run_label_augmentation
from .pretrain import Pretrained, pretrain


class PretrainMismatch(EIPNNError, ValueError):
    """The pretrained weights do not fit the model being fine-tuned."""


def representation_hash(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 (16 hex) of a representation's weights, in key order: identical weights,
    identical hash. Recorded in results.json to prove where fine-tuning started."""
    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def load_representation(potential: Potential, pretrained: Pretrained) -> None:
    """Copy the pretrained representation into ``potential``; its head, reference energies
    and scale stay as they are (fresh), and every parameter stays trainable."""
    try:
        potential.representation.load_state_dict(pretrained.representation_state(), strict=True)
    except RuntimeError as error:
        spec = pretrained.spec
        raise PretrainMismatch(
            f"the pretrained representation ({spec.kind}, {spec.hyperparameters}) does not fit "
            f"this {type(potential.representation).__name__}: fine-tune with the model settings "
            f"of the pretraining in '{pretrained.folder}' ({str(error).splitlines()[0]})"
        ) from error


def initializer(pretrained: Pretrained, record: dict[str, Any] | None = None) -> Callable[[Potential], None]:
    """The ``initialize`` hook of the trainers: load the representation, and note its hash
    in ``record['finetune_start_hash']``."""

    def initialize(potential: Potential) -> None:
        load_representation(potential, pretrained)
        if record is not None:
            record["finetune_start_hash"] = representation_hash(potential.representation.state_dict())

    return initialize


def _mp_results(pretrained: Pretrained, record: dict[str, Any]) -> dict[str, Any]:
    r = pretrained.results
    return {
        "pretrained_dir": str(pretrained.folder), "pretrain_reused": pretrained.reused,
        "pretrain_best_epoch": r["best_epoch"], "pretrain_best_val_eip_mae_ev": r["best_val_eip_mae_ev"],
        "pretrain_seconds": r["seconds_labels"] + r["seconds_fit"],
        "pretrain_num_pool": r["num_pool"], "pretrain_eips": pretrained.eip_names,
        "pretrained_representation_hash": representation_hash(pretrained.representation_state()),
        **record,
    }


def _finish(run: RunFolder, results: dict[str, Any], pretrained: Pretrained, record: dict) -> dict[str, Any]:
    results.update(_mp_results(pretrained, record))
    run.write_results(results)
    return results


def run_mp(config: RunConfig, run: RunFolder, resume: bool = False, **hooks: Any) -> dict[str, Any]:
    """Strategy ``mp``: pretrain (or reuse the stored pretraining), then the baseline trainer
    from the pretrained representation."""
    pretrained = pretrain(config)
    record: dict[str, Any] = {}
    results = run_baseline(config, run, resume=resume, initialize=initializer(pretrained, record), **hooks)
    return _finish(run, results, pretrained, record)


def run_mp_la(config: RunConfig, run: RunFolder, resume: bool = False, **hooks: Any) -> dict[str, Any]:
    """Strategy ``mp+la``: pretrain (or reuse), then LA's trainer on the augmented training
    set from the pretrained representation (the LA classifier itself starts from scratch)."""
    pretrained = pretrain(config)
    record: dict[str, Any] = {}
    results = run_label_augmentation(config, run, resume=resume,
                                     initialize=initializer(pretrained, record), **hooks)
    return _finish(run, results, pretrained, record)
