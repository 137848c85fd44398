"""Errors of the EIP labelling engine. Each message says what was wrong and what to do."""
from __future__ import annotations

from eipnn_calc.errors import EIPNNError


class EIPError(EIPNNError):
    """Base class of every labelling error."""


class UnknownEIP(EIPError):
    """A name that is neither a catalogue short name nor an installed KIM model ID."""


class EIPNotInstalled(EIPError):
    """The KIM model (or the KIM API itself) is not installed on this machine."""


class UnsupportedSpecies(EIPError):
    """A configuration holds an element the EIP has no parameters for."""


class EIPComputeError(EIPError):
    """The EIP failed on one configuration (a KIM error, a non-finite energy)."""


class WorkerCrashed(EIPError):
    """A labelling worker process died (a crash inside an EIP's native code)."""


class LabelStoreError(EIPError):
    """The on-disk label store cannot be opened or read."""


class AlignmentError(EIPError):
    """A reference alignment cannot be fitted or applied to the given labels."""
