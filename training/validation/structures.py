"""The crystals the card builds for an element: the conventional cubic cell, the primitive
cell, and the smallest cubic supercell with at least n atoms."""
from __future__ import annotations

import math

from ase import Atoms
from ase.build import bulk

from .errors import ValidationError
from .references import STRUCTURES


def _check(structure: str) -> None:
    if structure not in STRUCTURES:
        raise ValidationError(f"structure '{structure}' is not one the card builds: {', '.join(STRUCTURES)}")


def conventional_cell(symbol: str, structure: str, a_angstrom: float) -> Atoms:
    """The cubic cell of lattice constant ``a_angstrom`` (8 atoms diamond, 4 fcc, 2 bcc)."""
    _check(structure)
    return bulk(symbol, structure, a=a_angstrom, cubic=True)


def primitive_cell(symbol: str, structure: str, a_angstrom: float) -> Atoms:
    _check(structure)
    return bulk(symbol, structure, a=a_angstrom)


def cubic_supercell(symbol: str, structure: str, a_angstrom: float, min_atoms: int) -> Atoms:
    """The conventional cell repeated n x n x n, n the smallest giving >= ``min_atoms``."""
    cell = conventional_cell(symbol, structure, a_angstrom)
    repeat = max(1, math.ceil((min_atoms / len(cell)) ** (1 / 3) - 1e-9))
    return cell.repeat(repeat)
