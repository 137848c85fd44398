"""Trained potential -> one TorchScript model file (the contract read by ``eipnn_calc``)."""
from __future__ import annotations

import copy
import os
from dataclasses import asdict
from typing import Any

import torch

from eipnn_calc.model_file import DTYPES, ModelMetadata, save_model

from .models.build import ModelSpec
from .models.potential import Potential



def export_model(
    potential: Potential,
    spec: ModelSpec,
    path: str | os.PathLike,
    provenance: dict[str, Any] | None = None,
    dtype: str = "float64",
) -> ModelMetadata:
    """Script a copy of ``potential`` on the CPU in ``dtype`` and write it to ``path``."""
    if potential.head.num_outputs != 1:
        raise ValueError("only single-output potentials are exported (fine-tune MP heads first)")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, not '{dtype}'")
    model = copy.deepcopy(potential).to(device="cpu", dtype=DTYPES[dtype]).eval()
    scripted = torch.jit.script(model)
    metadata = ModelMetadata(
        species=list(spec.species),
        cutoff_angstrom=float(spec.cutoff_angstrom),
        num_layers=int(getattr(potential.representation, "num_layers", 1)),
        dtype=dtype,
        model={"kind": spec.kind, "spec": asdict(spec)},
        provenance=dict(provenance or {}),
    )
    save_model(scripted, path, metadata)
    return metadata
