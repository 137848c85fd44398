"""Exception classes of the runtime. Each message says what was wrong and what to do."""
from ase.calculators.calculator import CalculatorError, CalculatorSetupError


class EIPNNError(Exception):
    """Base of every error eipnn raises for a problem it can name (a user's mistake, a bad
    file, a missing tool). The console scripts print these as one line; anything else is a
    bug and keeps its traceback."""


class ModelFileError(EIPNNError, CalculatorSetupError):
    """The model file is missing, unreadable, or not a valid eipnn model."""


class ModelFormatVersionError(ModelFileError):
    """The model file was written by a newer eipnn than this one can read."""


class UnknownSpeciesError(EIPNNError, CalculatorError, ValueError):
    """The configuration holds a chemical species the model was not trained on."""


class InvalidConfigurationError(EIPNNError, CalculatorError, ValueError):
    """The configuration cannot be evaluated (NaN positions, degenerate cell, ...)."""


class StressUnavailableError(EIPNNError, CalculatorError):
    """Stress was asked of a system without any periodic direction."""


class MemoryLimitError(EIPNNError, CalculatorError):
    """The configuration would need more memory than the calculator's limit allows."""


class DeviceUnavailableError(EIPNNError, CalculatorSetupError):
    """The device asked for (e.g. CUDA) is not available in this process."""
