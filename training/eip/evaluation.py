"""One EIP on one configuration: the per-process EIP objects and the failure rules."""
from __future__ import annotations

import math

import numpy as np

from .catalogue import EIP
from .errors import EIPError, UnsupportedSpecies
from .store import StoredLabel
from .structure import Structure

MAX_ENERGY_PER_ATOM_EV = 200.0  # METHOD.md: above this an EIP energy is treated as missing

_MODELS: dict[str, object] = {}  # per-process cache: KIM objects cannot be pickled


def model_for(eip: EIP):
    """The (per-process cached) object that computes this EIP: KIM or ASE calculator."""
    model = _MODELS.get(eip.eip_id)
    if model is None:
        if eip.kind == "kim":
            from .kim_model import KIMModelPerElements

            model = KIMModelPerElements(eip.kim_id)
        else:
            from .ase_model import ASECalculatorModel

            model = ASECalculatorModel(eip.calculator)
        _MODELS[eip.eip_id] = model
    return model


def evaluate(model, structure: Structure, with_forces: bool) -> StoredLabel:
    """One (configuration, EIP) entry; failures become a missing entry with its reason."""
    n_atoms = len(structure.numbers)
    try:
        energy, forces = model.compute(structure, with_forces)
    except UnsupportedSpecies as error:
        return StoredLabel(n_atoms, None, None, f"unsupported-species: {error}")
    except EIPError as error:
        return StoredLabel(n_atoms, None, None, f"eip-error: {error}")
    if not math.isfinite(energy) or (forces is not None and not np.isfinite(forces).all()):
        return StoredLabel(n_atoms, None, None, f"non-finite: energy {energy} eV")
    if energy / n_atoms > MAX_ENERGY_PER_ATOM_EV:
        return StoredLabel(
            n_atoms,
            None,
            None,
            f"energy-too-high: {energy / n_atoms:.4g} eV/atom > {MAX_ENERGY_PER_ATOM_EV:g}",
        )
    return StoredLabel(n_atoms, energy, forces, None)
