"""Hostile configurations for EIPNNCalculator, and the verdict on one of them.

Shared by the property-based test (tests/test_calculator_fuzz.py, a few hundred examples)
and the benchmark that runs thousands (benchmarks/fuzz_calculator.py). A configuration has
0-60 atoms, a cell that may be fine, sheared, nearly degenerate, paper-thin, huge, zero or
non-finite, any periodicity, positions inside the cell, clustered, far from the origin,
coincident or non-finite, and sometimes species the model lacks or numbers that are no
element. The calculator must answer each within seconds with finite results, or refuse it
with one of eipnn's own errors; and its answer after an in-place change must equal a fresh
calculator's.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from ase import Atoms
from hypothesis import strategies as st

from eipnn_calc import EIPNNCalculator
from eipnn_calc.errors import EIPNNError

CELLS = ("cubic", "random", "sheared", "dense", "near_degenerate", "thin", "huge", "zero_vector", "non_finite")
POSITIONS = ("inside", "cluster", "far", "coincident", "non_finite")
SPECIES = ("Si",) * 6 + ("unknown", "not_an_element")
CHANGES = ("move_one", "move_all", "strain", "pbc", "species", "none")
SLOW_SECONDS = 10.0  # the bound for fewer than 100 atoms


def _cell(kind: str, rng: np.random.Generator) -> np.ndarray:
    if kind == "cubic":
        return np.eye(3) * rng.uniform(1.0, 20.0)
    if kind == "random":
        return np.diag(rng.uniform(2.0, 15.0, 3)) + rng.normal(0.0, 1.5, (3, 3))
    if kind == "dense":  # up to 60 atoms in a few Å^3: millions of pairs within the cutoff
        return np.eye(3) * rng.uniform(0.5, 3.0)
    if kind == "sheared":  # a valid lattice in a badly chosen basis
        cell = np.eye(3) * rng.uniform(3.0, 8.0)
        cell[1] += cell[0] * rng.integers(-200, 200)
        return cell
    if kind == "near_degenerate":  # one vector almost in the plane of the other two
        cell = np.eye(3) * 5.0
        cell[1] = cell[0] + rng.normal(0.0, 10.0 ** rng.uniform(-8, -1), 3)
        return cell
    if kind == "thin":
        return np.diag([10.0 ** rng.uniform(-7, 0.5), 5.0, 5.0])[rng.permutation(3)]
    if kind == "huge":
        return np.eye(3) * 10.0 ** rng.uniform(3, 7)
    if kind == "zero_vector":
        cell = np.eye(3) * rng.uniform(3.0, 10.0)
        cell[rng.integers(3)] = 0.0
        return cell
    cell = np.eye(3) * 5.0
    cell[rng.integers(3), rng.integers(3)] = rng.choice([np.nan, np.inf, -np.inf])
    return cell


def _positions(kind: str, n: int, cell: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    finite_cell = np.where(np.isfinite(cell), cell, 0.0)
    inside = rng.random((n, 3)) @ finite_cell
    if kind == "inside":
        return inside
    if kind == "cluster":
        return rng.normal(0.0, 2.0, (n, 3))
    if kind == "far":
        return rng.normal(0.0, 2.0, (n, 3)) + rng.choice([-1, 1], 3) * 10.0 ** rng.uniform(3, 13)
    if kind == "coincident":
        positions = inside
        if n >= 2:
            positions[rng.integers(1, n)] = positions[0] + rng.normal(0.0, 1e-3, 3) * rng.integers(0, 2)
        return positions
    if n:
        inside[rng.integers(n), rng.integers(3)] = rng.choice([np.nan, np.inf, -np.inf])
    return inside


def _numbers(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    numbers = np.full(n, 14)
    if n and kind == "unknown":
        numbers[rng.integers(n)] = rng.choice([1, 6, 79])
    if n and kind == "not_an_element":
        numbers[rng.integers(n)] = rng.choice([0, -1, 119, 200, 10**6])
    return numbers


@st.composite
def hostile_atoms(draw) -> Atoms:
    """One configuration (the arrays come from a drawn seed: cheap to draw and to shrink)."""
    cell_kind, position_kind = draw(st.sampled_from(CELLS)), draw(st.sampled_from(POSITIONS))
    species_kind = draw(st.sampled_from(SPECIES))
    pbc = draw(st.tuples(st.booleans(), st.booleans(), st.booleans()))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    # From the seed, not drawn: hypothesis would favour (and shrink to) the empty system.
    n = 0 if rng.random() < 0.03 else int(rng.integers(1, 61))
    cell = _cell(cell_kind, rng)
    atoms = Atoms(numbers=_numbers(species_kind, n, rng), positions=_positions(position_kind, n, cell, rng),
                  cell=cell, pbc=pbc)
    atoms.info["fuzz"] = f"{n} atoms, cell {cell_kind}, positions {position_kind}, species {species_kind}, pbc {pbc}"
    return atoms


@dataclass
class Verdict:
    """What the calculator did with one configuration: ``outcome`` is one of "answered"
    (finite results), "refused" (an eipnn error), "opaque" (any other exception),
    "non_finite", "slow", "wrong" (differs from the same configuration translated, or from a
    fresh calculator after an in-place change)."""

    outcome: str
    detail: str
    seconds: float


def _results(calc: EIPNNCalculator, atoms: Atoms) -> dict[str, np.ndarray] | str:
    """Energy, forces (and stress where the cell has a volume), or the error's class name."""
    atoms.calc = calc
    try:
        out = {"energy": np.array(atoms.get_potential_energy()), "forces": atoms.get_forces()}
        if atoms.pbc.any() and np.isfinite(atoms.cell.array).all() and abs(atoms.cell.volume) > 1e-12:
            # Compared as the virial: a slab's volume may be tiny along its open vector, and the
            # stress (virial / volume) magnifies what float64 positions resolve by as much.
            out["virial"] = atoms.get_stress() * abs(atoms.cell.volume)
        return out
    except EIPNNError as error:
        return type(error).__name__


def _same(a: dict[str, np.ndarray] | str, b: dict[str, np.ndarray] | str, magnitude: float) -> bool:
    """Equal answers (or the same refusal), to what float64 positions at ``magnitude`` Å from
    the origin resolve: a coordinate there is only known to np.spacing(magnitude)."""
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    atol = 1e-8 + 1e3 * np.spacing(max(magnitude, 1.0))
    return a.keys() == b.keys() and all(np.allclose(a[k], b[k], rtol=1e-7, atol=atol) for k in a)


def _magnitude(*configurations: Atoms) -> float:
    return max((float(np.abs(c.positions).max(initial=0.0)) for c in configurations), default=0.0)


def _translated(atoms: Atoms, rng: np.random.Generator) -> Atoms:
    """The same configuration moved: by lattice vectors along periodic axes, and near the
    origin (or somewhere else) along open ones. Its energy and forces must not change."""
    moved = atoms.copy()
    moved.calc = None
    steps = rng.integers(-3, 4, 3) * atoms.pbc
    shift = steps @ np.where(np.isfinite(atoms.cell.array), atoms.cell.array, 0.0)
    if not atoms.pbc.all() and len(atoms):
        open_axes = ~atoms.pbc
        centre = np.where(open_axes, -atoms.positions.mean(axis=0) + rng.normal(0.0, 3.0, 3), 0.0)
        shift = shift + centre
    moved.positions += shift
    return moved


def _changed_in_place(atoms: Atoms, change: str, rng: np.random.Generator) -> None:
    n = len(atoms)
    if change == "move_one" and n:
        atoms.positions[rng.integers(n)] += rng.normal(0.0, rng.choice([0.01, 0.3, 3.0]), 3)
    elif change == "move_all" and n:
        atoms.positions += rng.normal(0.0, 0.1, (n, 3))
    elif (change == "strain" and np.isfinite(atoms.cell.array).all() and abs(atoms.cell.volume) > 1e-9
          and np.isfinite(atoms.positions).all()):
        atoms.set_cell(atoms.cell.array * rng.uniform(0.95, 1.05), scale_atoms=True)
    elif change == "pbc":
        atoms.pbc = ~atoms.pbc
    elif change == "species" and n:
        atoms.numbers[rng.integers(n)] = rng.choice([14, 6])


def judge(make_calculator: Callable[[], EIPNNCalculator], atoms: Atoms, seed: int) -> Verdict:
    """Run ``atoms`` through a calculator, then check the answer against a translated copy and,
    after an in-place change, against a fresh calculator. ``seconds`` of the verdict is the
    slowest single call (energy, forces and stress of one configuration): what a user waits."""
    rng = np.random.default_rng(seed)
    calls: list[float] = []

    def timed(calc: EIPNNCalculator, configuration: Atoms) -> dict[str, np.ndarray] | str:
        start = time.perf_counter()
        try:
            return _results(calc, configuration)
        finally:
            calls.append(time.perf_counter() - start)

    def verdict(outcome: str, detail: str) -> Verdict:
        return Verdict(outcome, detail, max(calls, default=0.0))

    calc = make_calculator()
    try:
        first = timed(calc, atoms)
        if not isinstance(first, str):
            if not all(np.isfinite(v).all() for v in first.values()):
                return verdict("non_finite", atoms.info["fuzz"])
            translated = _translated(atoms, rng)
            if not _same(first, timed(make_calculator(), translated), _magnitude(atoms, translated)):
                return verdict("wrong", f"translated copy differs: {atoms.info['fuzz']}")
        change = CHANGES[rng.integers(len(CHANGES))]
        _changed_in_place(atoms, change, rng)
        again, fresh = timed(calc, atoms), timed(make_calculator(), atoms.copy())
        if not _same(again, fresh, _magnitude(atoms)):
            name = lambda r: r if isinstance(r, str) else "an answer"  # noqa: E731
            return verdict("wrong", f"after '{change}', {name(again)} where a fresh calculator gives "
                                    f"{name(fresh)}: {atoms.info['fuzz']}")
    except Exception as error:  # noqa: BLE001 - anything that is not eipnn's own error is the finding
        return verdict("opaque", f"{type(error).__name__}: {str(error)[:300]} ({atoms.info['fuzz']})")
    if max(calls) > SLOW_SECONDS:
        return verdict("slow", f"{max(calls):.1f} s: {atoms.info['fuzz']}")
    if isinstance(first, str):
        return verdict("refused", f"{first}: {atoms.info['fuzz']}")
    return verdict("answered", atoms.info["fuzz"])


def calculator_factory(model: Path, memory_limit_gb: float, skin: float = 0.5) -> Callable[[], EIPNNCalculator]:
    return lambda: EIPNNCalculator(model, skin=skin, memory_limit_gb=memory_limit_gb)
