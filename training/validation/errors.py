"""The property card's exception class."""
from __future__ import annotations

from eipnn_calc.errors import EIPNNError


class ValidationError(EIPNNError, ValueError):
    """The card cannot be made as asked: an element the model does not know, a structure
    the card cannot build, a malformed references file."""
