"""Neighbour lists as (edge_index, edge_shift), with Verlet-skin reuse.

The search runs on a prepared copy of the geometry: periodic cell vectors Minkowski-reduced
(a sheared but valid cell costs what the reduced one costs), atoms wrapped into the cell
along periodic axes, and non-periodic directions given a bounding box of their own, so an
open molecule far from the origin (or a slab with a zero third cell vector) costs the same
as one at the origin. Dense systems go to matscipy; sparse ones (a few atoms in a huge cell
or spread over a huge open box), where matscipy's bin grid would need gigabytes, go to a
k-d tree over the periodic images.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.geometry import minkowski_reduce
from matscipy.neighbours import neighbour_list
from scipy.spatial import cKDTree

from .errors import InvalidConfigurationError

# Periodic images closer than this are no material: such a cell is (nearly) degenerate, and
# searching it would take minutes (thousands of images per atom).
MIN_CELL_HEIGHT_ANGSTROM = 0.5
# Beyond this, float64 positions resolve less than 2e-6 Å: distances (and so the energy near
# the cutoff) would be decided by rounding.
MAX_COORDINATE_ANGSTROM = 1.0e10
# matscipy allocates one bin per cutoff-sized cube of the search cell: above this many bins
# per atom the k-d tree is both faster and bounded in memory.
SPARSE_BINS_PER_ATOM = 16
SPARSE_MIN_BINS = 100_000


@dataclass
class SearchGeometry:
    """The geometry the search runs on: ``positions`` = input positions + ``offset`` (lattice
    translations along periodic axes, one rigid translation along open ones), inside
    ``cell`` (reduced periodic vectors, bounding-box vectors along open axes)."""

    positions: np.ndarray  # [N, 3] Å
    offset: np.ndarray  # [N, 3] Å
    cell: np.ndarray  # [3, 3] Å
    pbc: np.ndarray  # [3] bool

    @property
    def heights(self) -> np.ndarray:
        """Perpendicular widths of the cell along each of its vectors (Å)."""
        return cell_heights(self.cell)


def cell_heights(cell: np.ndarray) -> np.ndarray:
    """Distance between opposite faces of the cell, per cell vector (Å)."""
    volume = abs(np.linalg.det(cell))
    areas = np.linalg.norm(np.cross(np.roll(cell, -1, axis=0), np.roll(cell, -2, axis=0)), axis=1)
    return volume / np.where(areas > 0, areas, np.inf)


def check_geometry(atoms: Atoms) -> None:
    """Positions and cell finite and within what float64 resolves; raises
    InvalidConfigurationError naming what is wrong."""
    positions = atoms.positions
    if not np.isfinite(positions).all():
        bad = np.flatnonzero(~np.isfinite(positions).all(axis=1))
        raise InvalidConfigurationError(f"positions contain NaN or inf (atoms {_first(bad)})")
    if not np.isfinite(atoms.cell.array).all():
        raise InvalidConfigurationError(
            f"the cell contains NaN or inf: {atoms.cell.array.tolist()}; set every cell vector "
            "(a zero vector is fine along a non-periodic direction)"
        )
    largest = float(np.abs(positions).max(initial=0.0))
    if largest > MAX_COORDINATE_ANGSTROM:
        raise InvalidConfigurationError(
            f"a coordinate is {largest:.3g} Å from the origin, where float64 resolves only "
            f"{np.spacing(largest):.2g} Å; move the atoms near the origin (atoms.wrap() for "
            f"periodic ones, atoms.center() or a translation for open ones); limit "
            f"{MAX_COORDINATE_ANGSTROM:.0e} Å"
        )


def search_geometry(atoms: Atoms, cutoff: float) -> SearchGeometry:
    """The prepared geometry for a search within ``cutoff`` Å (see the module docstring)."""
    pbc = np.asarray(atoms.pbc, dtype=bool)
    cell = np.array(atoms.cell.array, dtype=float)
    if pbc.any():
        periodic = cell[pbc]
        if np.linalg.matrix_rank(periodic, tol=1e-8 * max(1.0, np.abs(periodic).max())) < pbc.sum():
            raise InvalidConfigurationError(
                f"the periodic cell vectors are degenerate (zero volume/area); cell = "
                f"{cell.tolist()}, pbc = {pbc.tolist()}"
            )
        cell = np.array(minkowski_reduce(cell, pbc=pbc)[0], dtype=float)
    positions = atoms.positions
    cell = _with_open_box(positions, cell, pbc, cutoff)
    heights = cell_heights(cell)[pbc]
    if len(heights) and heights.min() < MIN_CELL_HEIGHT_ANGSTROM:
        raise InvalidConfigurationError(
            f"the periodic cell is only {heights.min():.3g} Å thick (smallest perpendicular width "
            f"of its reduced form): periodic images of an atom would lie closer than "
            f"{MIN_CELL_HEIGHT_ANGSTROM} Å, which no material has; cell = "
            f"{atoms.cell.array.tolist()}, pbc = {pbc.tolist()}"
        )
    fractional = np.linalg.solve(cell.T, positions.T).T
    fractional[:, pbc] -= np.floor(fractional[:, pbc])
    # Open axes: one rigid translation puts every atom inside the box (a margin of 1e-6).
    if len(fractional):
        fractional[:, ~pbc] -= fractional[:, ~pbc].min(axis=0) - 1e-6
    wrapped = fractional @ cell
    return SearchGeometry(wrapped, wrapped - positions, cell, pbc)


def _with_open_box(positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, cutoff: float) -> np.ndarray:
    """Open cell vectors replaced by a box enclosing every atom (plus a margin),
    orthogonal to the periodic vectors."""
    box = cell.copy()
    open_dirs = _orthonormal_complement(cell[pbc])
    for axis, direction in zip(np.flatnonzero(~pbc), open_dirs):
        extent = positions @ direction
        box[axis] = direction * (extent.max() - extent.min() + cutoff + 1.0)
    return box


def _orthonormal_complement(vectors: np.ndarray) -> np.ndarray:
    """Unit vectors spanning the space orthogonal to the rows of ``vectors``."""
    if len(vectors) == 0:
        return np.eye(3)
    _, _, vt = np.linalg.svd(np.atleast_2d(vectors))
    return vt[len(vectors):]


def estimated_edges(geometry: SearchGeometry, cutoff: float) -> int:
    """Directed pairs within ``cutoff`` expected before searching: the number density of the
    search cell times the cutoff sphere per atom, at most every atom with every periodic
    image of every atom."""
    n = len(geometry.positions)
    volume = abs(np.linalg.det(geometry.cell))
    sphere = 4.0 / 3.0 * math.pi * cutoff**3
    images = np.prod(2 * _image_range(geometry, cutoff) + 1, dtype=float)
    return int(n * min(n * sphere / volume, n * images))


def _image_range(geometry: SearchGeometry, cutoff: float) -> np.ndarray:
    """Per cell vector, the largest image index a pair within ``cutoff`` can need (atoms
    wrapped into [0, 1) of the cell); 0 along open axes."""
    heights = geometry.heights
    return np.where(geometry.pbc, np.floor(cutoff / heights).astype(int) + 1, 0)


def _matscipy_bins(geometry: SearchGeometry, cutoff: float) -> float:
    return float(np.prod(np.maximum(1.0, np.floor(geometry.heights / cutoff))))


def search(geometry: SearchGeometry, cutoff: float) -> tuple[np.ndarray, np.ndarray]:
    """All directed pairs closer than ``cutoff`` in the prepared geometry: edge_index [2, E]
    and Cartesian shifts [E, 3] with geometry.positions[j] + shift - geometry.positions[i]
    the pair vector."""
    n = len(geometry.positions)
    if _matscipy_bins(geometry, cutoff) > max(SPARSE_MIN_BINS, SPARSE_BINS_PER_ATOM * n):
        return _kdtree_search(geometry, cutoff)
    try:
        i, j, S = neighbour_list("ijS", positions=geometry.positions, cell=geometry.cell,
                                 pbc=geometry.pbc, cutoff=cutoff)
    except (MemoryError, RuntimeError) as err:  # matscipy: "Failed to allocate ..."
        raise InvalidConfigurationError(
            f"the neighbour list of {n} atoms within {cutoff:.3g} Å could not be built ({err}); "
            "check the cell and the positions"
        ) from None
    return np.stack([i, j]).astype(np.int64), S @ geometry.cell


def _kdtree_search(geometry: SearchGeometry, cutoff: float) -> tuple[np.ndarray, np.ndarray]:
    """Pairs between the atoms and every periodic image that can be in range, through one
    k-d tree: memory and time grow with atoms x images, not with the cell's volume."""
    ranges = [np.arange(-m, m + 1) for m in _image_range(geometry, cutoff)]
    images = np.stack(np.meshgrid(*ranges, indexing="ij"), axis=-1).reshape(-1, 3)
    shifts = images @ geometry.cell  # [M, 3]
    n = len(geometry.positions)
    points = (geometry.positions[None, :, :] + shifts[:, None, :]).reshape(-1, 3)
    pairs = cKDTree(geometry.positions).sparse_distance_matrix(
        cKDTree(points), cutoff, output_type="ndarray")
    i, k = pairs["i"].astype(np.int64), pairs["j"].astype(np.int64)
    image, j = np.divmod(k, n)
    keep = ~((i == j) & ~images[image].any(axis=1))  # an atom is not its own neighbour
    order = np.lexsort((j[keep], i[keep]))
    return np.stack([i[keep][order], j[keep][order]]), shifts[image[keep][order]]


def build_edges(atoms: Atoms, cutoff: float) -> tuple[np.ndarray, np.ndarray]:
    """All directed pairs closer than ``cutoff``: edge_index [2, E] and Cartesian shifts [E, 3]
    such that r_j + shift - r_i is the pair vector (r = ``atoms.positions`` as given)."""
    check_geometry(atoms)
    geometry = search_geometry(atoms, cutoff)
    edge_index, shifts = search(geometry, cutoff)
    i, j = edge_index
    # Back from the wrapped positions to the given ones: r_w = r + offset.
    return edge_index, shifts + geometry.offset[j] - geometry.offset[i]


def _first(indices: np.ndarray, count: int = 5) -> str:
    shown = ", ".join(str(k) for k in indices[:count])
    return shown + (f" and {len(indices) - count} more" if len(indices) > count else "")


class NeighborList:
    """Edges within ``cutoff + skin``, rebuilt only when an atom has moved more than
    skin/2, or the cell, the periodicity, the number of atoms or the species changed.

    ``get`` returns the positions to evaluate with (the given ones plus the lattice and
    rigid translations of the last build: near the origin, so float32 keeps its precision)
    and the edges relative to them.
    """

    def __init__(self, cutoff: float, skin: float = 0.0) -> None:
        if not (isinstance(skin, (int, float)) and 0 <= skin < math.inf):
            raise ValueError(f"skin must be >= 0 Å and finite, got {skin!r}")
        self.cutoff = float(cutoff)
        self.skin = float(skin)
        self.builds = 0
        self._reference: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
        self._edges: tuple[np.ndarray, np.ndarray] | None = None
        self._offset: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the last list: the next ``get`` builds a new one."""
        self._reference = self._edges = self._offset = None

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

    def prepare(self, atoms: Atoms) -> SearchGeometry | None:
        """Check ``atoms`` and, when the list must be rebuilt, return the geometry the next
        ``get`` will search (so a caller can check its size first); None when it is reused."""
        check_geometry(atoms)
        if not self.needs_rebuild(atoms):
            return None
        return search_geometry(atoms, self.cutoff + self.skin)

    def get(self, atoms: Atoms, geometry: SearchGeometry | None = None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(positions [N, 3], edge_index [2, E], edge_shift [E, 3]) for ``atoms``."""
        if geometry is None:
            geometry = self.prepare(atoms)
        if geometry is not None:
            self._edges = search(geometry, self.cutoff + self.skin)
            self._offset = geometry.offset
            self._reference = (
                atoms.positions.copy(),
                atoms.numbers.copy(),
                atoms.cell.array.copy(),
                np.array(atoms.pbc, dtype=bool),
            )
            self.builds += 1
        assert self._edges is not None and self._offset is not None
        return (atoms.positions + self._offset, *self._edges)
