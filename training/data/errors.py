"""Exception classes of the data layer. Each message says what was wrong and what to do."""

from eipnn_calc.errors import EIPNNError


class DataError(EIPNNError, ValueError):
    """A dataset or split cannot be used for training."""


class DatasetFileError(DataError, FileNotFoundError):
    """A dataset file is missing or cannot be read."""


class MissingEnergyError(DataError):
    """A configuration that must carry a DFT energy has none."""


class UnknownSpeciesError(DataError):
    """A configuration holds a species the model was not built for."""


class EmptySplitError(DataError):
    """A split the run needs has no configuration in it."""


class SealedLabelError(DataError):
    """Code asked for the DFT labels of a sealed (unlabelled-pool) configuration."""
