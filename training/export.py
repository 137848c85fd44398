"""Trained potential -> one TorchScript model file (the contract read by ``eipnn_calc``)."""
from __future__ import annotations

import copy
import os
from dataclasses import asdict
from typing import Any

import torch

from eipnn_calc.model_file import DTYPES, ModelMetadata, save_model

from .models.build import ModelSpec
from .models.committee import Committee
from .models.potential import Potential



def export_model(
    potential: Potential | list[Potential],
    spec: ModelSpec,
    path: str | os.PathLike,
    provenance: dict[str, Any] | None = None,
    dtype: str = "float64",
) -> ModelMetadata:
    """Script a copy of ``potential`` on the CPU in ``dtype`` and write it to ``path``; a
    list of potentials (of ``spec``) is written as one committee (``models.committee``)."""
    members = potential if isinstance(potential, list) else [potential]
    if any(p.head.num_outputs != 1 for p in members):
        raise ValueError("only single-output potentials are exported (fine-tune MP heads first)")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, not '{dtype}'")
    copies = [copy.deepcopy(p).to(device="cpu", dtype=DTYPES[dtype]).eval() for p in members]
    model = copies[0] if len(copies) == 1 else Committee(copies)
    scripted = torch.jit.script(model)
    description: dict[str, Any] = {"kind": spec.kind, "spec": asdict(spec)}
    if len(copies) > 1:
        description["committee"] = len(copies)
    metadata = ModelMetadata(
        species=list(spec.species),
        cutoff_angstrom=float(spec.cutoff_angstrom),
        num_layers=int(getattr(members[0].representation, "num_layers", 1)),
        dtype=dtype,
        model=description,
        provenance=dict(provenance or {}),
    )
    save_model(scripted, path, metadata)
    return metadata
