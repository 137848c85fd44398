"""Shared fixtures: exported test models (built once per session in a temp folder)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from models import random_schnet, sw_fitted_schnet  # noqa: E402


@pytest.fixture(scope="session")
def random_si_model(tmp_path_factory) -> Path:
    """A randomly initialised small Si SchNet, exported in float64."""
    return random_schnet(tmp_path_factory.mktemp("models") / "random_si.pt")


@pytest.fixture(scope="session")
def random_sic_model(tmp_path_factory) -> Path:
    """A randomly initialised small two-species (Si, C) SchNet."""
    return random_schnet(tmp_path_factory.mktemp("models") / "random_sic.pt", species=("Si", "C"), seed=1)


@pytest.fixture(scope="session")
def sw_si_model(tmp_path_factory) -> Path:
    """A small SchNet fitted to Stillinger-Weber (KIM) near diamond: sane for MD/relaxation."""
    return sw_fitted_schnet(tmp_path_factory.mktemp("models") / "sw_si.pt")
