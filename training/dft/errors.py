"""Errors of the DFT labeller. Each message says what was wrong and what to do."""
from __future__ import annotations

from eipnn_calc.errors import EIPNNError


class DFTError(EIPNNError):
    """Base class of every DFT-labelling error."""


class GPAWNotInstalled(DFTError):
    """GPAW (or its PAW setups) cannot be imported in this interpreter."""


class DFTSettingsError(DFTError, ValueError):
    """DFT settings that cannot be used (a negative cut-off, an unknown smearing)."""


class DFTWorkerCrashed(DFTError):
    """A DFT worker process died (killed, or a crash inside GPAW's native code)."""
