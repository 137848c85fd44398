"""Ready-made models, loadable by name: ``EIPNNCalculator("si-pbe-schnet")``.

A name is the stem of a model file in the shipped-models folder: ``models/`` at the top of
the eipnn checkout (what an editable install and a clone have), or the folder named by the
``EIPNN_MODELS`` environment variable. Each model there has its property card beside it
(``<name>.card/property_card.md``, as ``eipnn-validate`` writes it) and models/README.md
says how each was made.
"""
from __future__ import annotations

import os
from pathlib import Path

from .errors import ModelFileError

MODELS_ENV = "EIPNN_MODELS"


def models_dir() -> Path:
    """Where shipped models are looked up."""
    if os.environ.get(MODELS_ENV):
        return Path(os.environ[MODELS_ENV])
    return Path(__file__).resolve().parents[1] / "models"


def shipped_models() -> list[str]:
    """Names of the models in the shipped-models folder."""
    folder = models_dir()
    return sorted(p.stem for p in folder.glob("*.pt")) if folder.is_dir() else []


def resolve_model(model: str | os.PathLike) -> Path:
    """``model`` as a path: a file that exists, else the shipped model of that name.

    Raises ModelFileError naming the shipped models when it is neither."""
    path = Path(model)
    if path.exists() or path.suffix or len(path.parts) > 1:
        return path  # a path; read_metadata reports it if it is missing
    candidate = models_dir() / f"{path.name}.pt"
    if candidate.exists():
        return candidate
    names = shipped_models()
    raise ModelFileError(
        f"no model file '{model}' and no shipped model of that name; shipped models "
        f"({models_dir()}): {', '.join(names) if names else 'none'}"
    )
