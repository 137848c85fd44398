"""eipnn runtime: run exported eipnn models from ASE (and, through ``kim/``, from KIM)."""
__version__ = "0.1.0"

from .errors import (  # noqa: E402
    InvalidConfigurationError,
    ModelFileError,
    ModelFormatVersionError,
    StressUnavailableError,
    UnknownSpeciesError,
)
from .model_file import ModelMetadata, load_model, read_metadata, save_model  # noqa: E402


def __getattr__(name: str):
    # The calculator pulls in matscipy; import it lazily so `model_file` stays light.
    if name == "EIPNNCalculator":
        from .calculator import EIPNNCalculator

        return EIPNNCalculator
    raise AttributeError(name)


__all__ = [
    "EIPNNCalculator",
    "InvalidConfigurationError",
    "ModelFileError",
    "ModelFormatVersionError",
    "ModelMetadata",
    "StressUnavailableError",
    "UnknownSpeciesError",
    "load_model",
    "read_metadata",
    "save_model",
]
