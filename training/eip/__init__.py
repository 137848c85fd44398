"""EIP labelling through the KIM API: catalogue, engine, label store, alignment.

    from eipnn_training.eip import label, fit_alignment, species_counts
    labels = label(configurations, "si", workers=2)          # Labels, cached on disk
    counts, species = species_counts(configurations)
    alignment = fit_alignment(labels, dft_energies, counts, train_indices, species)
    aligned = alignment.apply(labels, counts)                # [n, K] eV

See docs/labelling.md.
"""
from .alignment import Alignment, fit_alignment, species_counts
from .calculator import EIPCalculator
from .catalogue import GROUPS, eip_ids, expand, resolve
from .engine import label
from .evaluation import MAX_ENERGY_PER_ATOM_EV
from .errors import (
    AlignmentError,
    EIPComputeError,
    EIPError,
    EIPNotInstalled,
    LabelStoreError,
    UnknownEIP,
    UnsupportedSpecies,
    WorkerCrashed,
)
from .labels import Labels
from .store import LabelStore

__all__ = [
    "Alignment",
    "AlignmentError",
    "EIPCalculator",
    "EIPComputeError",
    "EIPError",
    "EIPNotInstalled",
    "GROUPS",
    "LabelStore",
    "LabelStoreError",
    "Labels",
    "MAX_ENERGY_PER_ATOM_EV",
    "UnknownEIP",
    "UnsupportedSpecies",
    "WorkerCrashed",
    "eip_ids",
    "expand",
    "fit_alignment",
    "label",
    "resolve",
    "species_counts",
]
