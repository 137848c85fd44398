"""DFT labels on GPAW (PBE, plane waves): settings, a kill-safe store, worker processes.

    from eipnn_training.dft import PRODUCTION, label_dft
    labels = label_dft("data/al-pbe/pool.extxyz.xz", PRODUCTION, workers=1)
    labels.energies, labels.forces, labels.reasons, labels.records

GPAW is an optional extra (``pip install -e '.[dft]'`` after the Debian packages, or
``EIPNN_DFT=1 bash scripts/setup_env.sh``). See docs/dft.md.
"""
from .chunks import ChunkWriter, read_chunks
from .convergence import (
    ENERGY_TARGET_MEV_PER_ATOM,
    FORCE_TARGET_EV_PER_A,
    ConvergenceRow,
    convergence_check,
    convergence_table,
)
from .engine import DFTLabels, label_dft, open_dft_store
from .errors import DFTError, DFTSettingsError, DFTWorkerCrashed, GPAWNotInstalled
from .settings import PRODUCTION, DFTSettings, code_versions
from .store import DFTStore

__all__ = [
    "ChunkWriter",
    "ConvergenceRow",
    "DFTError",
    "DFTLabels",
    "DFTSettings",
    "DFTSettingsError",
    "DFTStore",
    "DFTWorkerCrashed",
    "ENERGY_TARGET_MEV_PER_ATOM",
    "FORCE_TARGET_EV_PER_A",
    "GPAWNotInstalled",
    "PRODUCTION",
    "code_versions",
    "convergence_check",
    "convergence_table",
    "label_dft",
    "open_dft_store",
    "read_chunks",
]
