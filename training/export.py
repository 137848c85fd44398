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
from .models.rematerialized import RematerializedPotential
from .models.tabulated import table_of, tabulated


def export_model(
    potential: Potential | list[Potential],
    spec: ModelSpec,
    path: str | os.PathLike,
    provenance: dict[str, Any] | None = None,
    dtype: str = "float64",
    exact: bool = False,
    filter_spacing_angstrom: float | None = None,
) -> ModelMetadata:
    """Script a copy of ``potential`` on the CPU in ``dtype`` and write it to ``path``; a
    list of potentials (of ``spec``) is written as one committee (``models.committee``).

    A SchNet's filters and SOAPNet's radial functions are written as tables
    (``models.tabulated``: the same function to ~1e-8 eV/atom and ~1e-7 eV/Å, a SchNet MD
    step several times faster) with knots
    ``filter_spacing_angstrom`` apart, or by default on the coarsest grid within
    ``tabulated.TOLERANCE``; ``exact`` writes the filter networks as trained."""
    members = potential if isinstance(potential, list) else [potential]
    if any(p.head.num_outputs != 1 for p in members):
        raise ValueError("only single-output potentials are exported (fine-tune MP heads first)")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, not '{dtype}'")
    copies = [_inference_copy(p, exact, filter_spacing_angstrom).to(device="cpu", dtype=DTYPES[dtype]).eval()
              for p in members]
    model = copies[0] if len(copies) == 1 else Committee(copies)
    scripted = torch.jit.script(model)
    description: dict[str, Any] = {"kind": spec.kind, "spec": asdict(spec)}
    if len(copies) > 1:
        description["committee"] = len(copies)
    table = table_of(copies[0].representation)
    if table is not None:  # SchNet: "filter_table" (eipnn_calc.memory reads it); SOAPNet: "radial_table"
        key = "filter_table" if spec.kind == "schnet" else "radial_table"
        description[key] = {"spacing_angstrom": table.spacing, "knots": table.num_knots}
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


def _inference_copy(potential: Potential, exact: bool, spacing_angstrom: float | None) -> Potential:
    """A copy of ``potential`` to script: its representation tabulated unless ``exact``."""
    inference = copy.deepcopy(potential).to(torch.float64)  # tables from float64 weights, cast once after
    if not exact:
        inference.representation = tabulated(inference.representation, inference.cutoff, spacing_angstrom)
    if hasattr(inference.representation, "edge_gradients"):  # GemNet: one block's graph at a time
        inference = RematerializedPotential.of(inference)
    return inference
