"""The card at the end of a training run: ``<run>/property_card/`` and its headline
numbers for results.json."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .card import headline, property_card
from .settings import CardSettings

CARD_FOLDER = "property_card"


def run_card(model_path: str | Path, run_dir: str | Path, quick: bool, element: str | None,
             progress: bool, device: str = "cpu") -> dict[str, Any]:
    """Make the card of the run's exported model; returns the ``property_card`` entry of
    results.json."""
    settings = CardSettings.quick(progress=progress) if quick else CardSettings(progress=progress)
    out_dir = Path(run_dir) / CARD_FOLDER
    card = property_card(model_path, element=element, out_dir=out_dir, settings=settings, device=device)
    return headline(card, out_dir)
