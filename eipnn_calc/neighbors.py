"""Neighbour lists from matscipy as (edge_index, edge_shift), with Verlet-skin reuse.

Non-periodic directions get a bounding box of their own, so an open molecule far from the
origin (or a slab with a zero third cell vector) costs the same as one at the origin.
"""
from __future__ import annotations

import numpy as np
from ase import Atoms
from matscipy.neighbours import neighbour_list

from .errors import InvalidConfigurationError


def _orthonormal_complement(vectors: np.ndarray) -> np.ndarray:
    """Unit vectors spanning the space orthogonal to the rows of ``vectors``."""
    if len(vectors) == 0:
        return np.eye(3)
    _, _, vt = np.linalg.svd(np.atleast_2d(vectors))
    return vt[len(vectors):]


def search_cell(positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, cutoff: float) -> np.ndarray:
    """The cell matscipy searches in: periodic vectors kept, open ones replaced by a box
    that encloses every atom (plus a margin), orthogonal to the periodic vectors."""
    box = np.array(cell, dtype=float)
    periodic = box[pbc]
    open_dirs = _orthonormal_complement(periodic)
    for axis, direction in zip(np.flatnonzero(~pbc), open_dirs):
        extent = positions @ direction
        box[axis] = direction * (extent.max() - extent.min() + cutoff + 1.0)
    return box


def build_edges(atoms: Atoms, cutoff: float) -> tuple[np.ndarray, np.ndarray]:
    """All directed pairs closer than ``cutoff``: edge_index [2, E] and Cartesian shifts [E, 3]
    such that r_j + shift - r_i is the pair vector."""
    pbc = np.asarray(atoms.pbc, dtype=bool)
    positions = atoms.positions
    cell = search_cell(positions, atoms.cell.array, pbc, cutoff)
    # Open directions: move atoms inside the bounding box; periodic ones matscipy wraps.
    shifted = positions if pbc.all() else _into_open_box(positions, cell, pbc)
    i, j, S = neighbour_list("ijS", positions=shifted, cell=cell, pbc=pbc, cutoff=cutoff)
    # Shifts use the search cell: equal to the real cell along periodic axes, 0 elsewhere.
    shifts = S @ cell
    return np.stack([i, j]).astype(np.int64), shifts


def _into_open_box(positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray) -> np.ndarray:
    """Translate so every atom has a fractional coordinate in [0, 1) along open axes."""
    fractional = np.linalg.solve(cell.T, positions.T).T
    low = fractional[:, ~pbc].min(axis=0)
    offset = np.zeros(3)
    offset[~pbc] = low - 1e-6
    return positions - offset @ cell


class NeighborList:
    """Edges within ``cutoff + skin``, rebuilt only when an atom has moved more than
    skin/2, or the cell, the periodicity, the number of atoms or the species changed."""

    def __init__(self, cutoff: float, skin: float = 0.0) -> None:
        if skin < 0:
            raise ValueError(f"skin must be >= 0 Å, got {skin}")
        self.cutoff = float(cutoff)
        self.skin = float(skin)
        self.builds = 0
        self._reference: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
        self._edges: tuple[np.ndarray, np.ndarray] | None = None

    def needs_rebuild(self, atoms: Atoms) -> bool:
        if self._reference is None:
            return True
        positions, numbers, cell, pbc = self._reference
        if len(atoms) != len(positions) or not np.array_equal(atoms.numbers, numbers):
            return True
        if not np.array_equal(atoms.pbc, pbc) or not np.array_equal(atoms.cell.array, cell):
            return True
        displacement = np.linalg.norm(atoms.positions - positions, axis=1).max(initial=0.0)
        return bool(displacement > 0.5 * self.skin)

    def get(self, atoms: Atoms) -> tuple[np.ndarray, np.ndarray]:
        if self.needs_rebuild(atoms):
            if not np.isfinite(atoms.positions).all():
                raise InvalidConfigurationError("positions contain NaN or inf")
            self._edges = build_edges(atoms, self.cutoff + self.skin)
            self._reference = (
                atoms.positions.copy(),
                atoms.numbers.copy(),
                atoms.cell.array.copy(),
                np.array(atoms.pbc, dtype=bool),
            )
            self.builds += 1
        assert self._edges is not None
        return self._edges
