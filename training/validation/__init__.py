"""The property card of a model: what a materials scientist checks first (E-V curve and
its smoothness, elastic constants, vacancy, phonons, hot NVE), computed through the public
calculator, against the cited references of ``references.yaml`` (docs/validation.md).

    from eipnn_training.validation import property_card, CardSettings
    card = property_card("model.pt", out_dir="card")                 # the full card
    card = property_card("model.pt", settings=CardSettings.quick())  # seconds, for tests

The property functions (``energy_volume_curve``, ``cubic_elastic_constants``, ...) take any
ASE calculator; ``calculator_card`` makes the card of one (a KIM potential, say).
"""
from .card import calculator_card, headline, property_card, select_elements
from .elastic import ElasticConstants, cubic_elastic_constants
from .equation_of_state import (count_local_minima, energy_volume_curve, fit_birch_murnaghan,
                                smoothness)
from .errors import ValidationError
from .nve import nve_stability
from .phonons import phonon_bands
from .properties import PARTS, element_properties
from .references import load_references
from .settings import CardSettings
from .vacancy import vacancy_formation_energy

__all__ = [
    "CardSettings", "ElasticConstants", "PARTS", "ValidationError", "calculator_card",
    "count_local_minima", "cubic_elastic_constants", "element_properties", "energy_volume_curve",
    "fit_birch_murnaghan", "headline", "load_references", "nve_stability", "phonon_bands",
    "property_card", "select_elements", "smoothness", "vacancy_formation_energy",
]
