"""The model file: one TorchScript archive holding the network and its metadata.

This file is the one contract between ``eipnn_training`` (which writes it) and the runtime
(which reads it). The metadata travels as a JSON document in the archive's extra files.
"""
from __future__ import annotations

import json
import os
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from .errors import ModelFileError, ModelFormatVersionError

# 2: forward takes an optional sixth input, layer_edges (see training/models/potential.py);
# readers of format 2 still read format 1 files, and do not pass it to them.
FORMAT_VERSION = 2
METADATA_NAME = "eipnn_metadata.json"
REQUIRED_KEYS = (
    "format_version",
    "species",
    "cutoff_angstrom",
    "num_layers",
    "dtype",
    "units",
    "model",
    "versions",
    "provenance",
)


@dataclass
class ModelMetadata:
    """Everything a consumer needs to run a model file.

    ``species`` is ordered: the model's integer species index ``k`` means ``species[k]``.
    ``num_layers`` is the number of message-passing steps, so the receptive field of one
    atom reaches ``cutoff_angstrom * num_layers`` (the ghost region KIM/LAMMPS must supply).
    """

    species: list[str]
    cutoff_angstrom: float
    num_layers: int
    dtype: str
    model: dict[str, Any]
    provenance: dict[str, Any] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=lambda: {"energy": "eV", "length": "Angstrom"})
    versions: dict[str, str] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


def _current_versions() -> dict[str, str]:
    from . import __version__

    return {"torch": torch.__version__, "eipnn": __version__}


def save_model(module: torch.jit.ScriptModule, path: str | os.PathLike, metadata: ModelMetadata) -> None:
    """Write a scripted model and its metadata to ``path``."""
    if not isinstance(module, torch.jit.ScriptModule):
        raise TypeError("save_model needs a scripted module: pass torch.jit.script(model)")
    metadata.versions = {**_current_versions(), **metadata.versions}
    metadata.format_version = FORMAT_VERSION
    torch.jit.save(module, str(path), _extra_files={METADATA_NAME: metadata.to_json()})


def read_metadata(path: str | os.PathLike) -> ModelMetadata:
    """Read and validate the metadata of a model file without loading the network."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"model file not found: '{path}'")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(
            f"'{path}' is not a TorchScript file (not a zip archive); "
            "export a trained model with `eipnn-export` first"
        )
    with zipfile.ZipFile(path) as archive:
        names = [n for n in archive.namelist() if n.endswith("/extra/" + METADATA_NAME)]
        if not names:
            raise ModelFileError(
                f"'{path}' is a TorchScript/zip file but not an eipnn model: "
                f"it has no '{METADATA_NAME}' (was it written by eipnn's save_model?)"
            )
        raw = archive.read(names[0]).decode()
    return _parse_metadata(raw, path)


def _parse_metadata(raw: str, path: Path) -> ModelMetadata:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ModelFileError(f"the metadata of '{path}' is not valid JSON: {err}") from err
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise ModelFileError(f"the metadata of '{path}' lacks {', '.join(missing)}")
    version = data["format_version"]
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFormatVersionError(
            f"'{path}' has model format version {version}, newer than this eipnn reads "
            f"({FORMAT_VERSION}); upgrade eipnn"
        )
    if not data["species"] or not all(isinstance(s, str) for s in data["species"]):
        raise ModelFileError(f"the metadata of '{path}' has no valid species list")
    if not float(data["cutoff_angstrom"]) > 0:
        raise ModelFileError(f"the metadata of '{path}' has a non-positive cutoff")
    known = {key: data[key] for key in ModelMetadata.__dataclass_fields__ if key in data}
    return ModelMetadata(**known)


def load_model(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[torch.jit.ScriptModule, ModelMetadata]:
    """Load a model file: the scripted network (in eval mode) and its validated metadata."""
    metadata = read_metadata(path)
    try:
        module = torch.jit.load(str(path), map_location=device)
    except RuntimeError as err:
        raise ModelFileError(f"'{path}' could not be loaded as TorchScript: {err}") from err
    module.eval()
    return module, metadata
