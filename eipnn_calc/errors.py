"""Exception classes of the runtime. Each message says what was wrong and what to do."""
from ase.calculators.calculator import CalculatorError, CalculatorSetupError


class ModelFileError(CalculatorSetupError):
    """The model file is missing, unreadable, or not a valid eipnn model."""


class ModelFormatVersionError(ModelFileError):
    """The model file was written by a newer eipnn than this one can read."""


class UnknownSpeciesError(CalculatorError, ValueError):
    """The configuration holds a chemical species the model was not trained on."""


class InvalidConfigurationError(CalculatorError, ValueError):
    """The configuration cannot be evaluated (NaN positions, degenerate cell, ...)."""


class StressUnavailableError(CalculatorError):
    """Stress was asked of a system without any periodic direction."""
