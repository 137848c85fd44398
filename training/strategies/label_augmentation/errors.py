"""Exception classes of label augmentation. Each message says what to do."""
from __future__ import annotations

from eipnn_calc.errors import EIPNNError


class LabelAugmentationError(EIPNNError, ValueError):
    """Label augmentation cannot go on with these data or settings."""


class UnknownEIPSelection(LabelAugmentationError):
    """``la.select_eips`` names an EIP that is not among ``la.eips``."""


class NothingSelected(LabelAugmentationError):
    """No configuration of the pool was selected, so there is nothing to augment with."""


class PoolLabelsReadEarly(RuntimeError):
    """The pool's sealed DFT energies were read before the after-training report."""
