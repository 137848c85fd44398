"""Exception classes of the KIM packaging. Each message says what was wrong and what to do."""
from ..errors import EIPNNError, ModelFileError


class KIMToolError(EIPNNError, RuntimeError):
    """A KIM API command-line tool is missing or failed."""


class KIMBuildError(KIMToolError):
    """The eipnn KIM driver or a portable model did not build or install."""


class KIMExportError(ModelFileError, ValueError):
    """A model cannot be written as a KIM portable model (bad name, unreadable model file)."""
