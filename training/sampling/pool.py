"""A pool of configurations for a system: every kind of its plan, distinct, sane, seeded.

Each kind draws from its own generator, ``numpy.random.default_rng([seed, k])`` with k
the kind's position in ``recipes.RECIPES``, so the configurations of one kind do not
change when another kind's share does. A draw is kept when its size is within bounds,
no two atoms are closer than the system's minimum and its fingerprint is new (over the
whole pool); a kind that cannot fill its share in ``MAX_DRAWS_PER_CONFIG`` draws per
configuration raises :class:`SamplingError` instead of returning a short pool.
"""
from __future__ import annotations

import numpy as np
from ase import Atoms

from eipnn_calc.errors import EIPNNError

from .checks import fingerprint, min_distance_angstrom
from .lattices import MAX_ATOMS, MIN_ATOMS
from .recipes import RECIPES, SYSTEMS, System

MAX_DRAWS_PER_CONFIG = 20


class SamplingError(EIPNNError):
    """A pool cannot be sampled as asked (unknown system or kind, a kind it cannot fill)."""


def system(name: str) -> System:
    try:
        return SYSTEMS[name]
    except KeyError:
        raise SamplingError(
            f"unknown system '{name}': use one of {', '.join(SYSTEMS)}"
        ) from None


def plan_counts(spec: System, size: int | None) -> dict[str, int]:
    """Configurations per kind: the plan, or the plan scaled to ``size`` in all (each kind
    at least one, the rounding remainder on the largest kinds)."""
    plan = spec.plan
    if size is None:
        return dict(plan)
    if size < len(plan):
        raise SamplingError(f"a pool needs at least {len(plan)} configurations (one per kind)")
    total = sum(plan.values())
    counts = {kind: max(1, int(np.floor(n * size / total))) for kind, n in plan.items()}
    for kind in sorted(plan, key=lambda k: -plan[k]):
        if sum(counts.values()) >= size:
            break
        counts[kind] += 1
    return counts


def sample_pool(
    system_name: str,
    size: int | None = None,
    seed: int = 0,
    progress: bool = False,
    kinds: list[str] | None = None,
) -> list[Atoms]:
    """The configurations of a pool, in plan order (kind by kind), each with
    ``info["kind"]``, ``info["pool_index"]`` and what its recipe recorded (``lattice``,
    ``facet``, ``vacancies``, ``temperature_K``, ``md_eip``). ``kinds``: only these kinds
    of the plan (each the same configurations as in the whole pool)."""
    spec = system(system_name)
    counts = plan_counts(spec, size)
    if kinds is not None:
        unknown = sorted(set(kinds) - set(counts))
        if unknown:
            raise SamplingError(f"unknown kinds {unknown}: use some of {', '.join(counts)}")
        counts = {kind: n for kind, n in counts.items() if kind in kinds}
    seen: set[str] = set()
    pool: list[Atoms] = []
    streams = list(RECIPES)  # a kind's random stream is its position here
    from tqdm import tqdm

    bar = tqdm(total=sum(counts.values()), desc=f"sampling {spec.name}", disable=not progress)
    for kind, wanted in counts.items():
        rng = np.random.default_rng([seed, streams.index(kind)])
        kept, draws = 0, 0
        while kept < wanted:
            draws += 1
            if draws > MAX_DRAWS_PER_CONFIG * wanted:
                raise SamplingError(
                    f"{spec.name}/{kind}: only {kept} of {wanted} distinct sane configurations "
                    f"in {draws - 1} draws; lower the share of this kind"
                )
            for atoms in RECIPES[kind](spec, rng):
                if kept == wanted or not _acceptable(atoms, spec, seen):
                    continue
                atoms.info["kind"] = kind
                if kind.startswith("md-"):
                    atoms.info["md_eip"] = spec.md_eip
                atoms.info["pool_index"] = len(pool)
                pool.append(atoms)
                kept += 1
                bar.update(1)
    bar.close()
    return pool


def _acceptable(atoms: Atoms, spec: System, seen: set[str]) -> bool:
    if not MIN_ATOMS <= len(atoms) <= MAX_ATOMS:
        return False
    if min_distance_angstrom(atoms) < spec.min_distance_angstrom:
        return False
    key = fingerprint(atoms)
    if key in seen:
        return False
    seen.add(key)
    return True


def read_pool(path) -> list[Atoms]:
    """Every frame of an extxyz file, compressed (.xz, .gz, .bz2) or not.

    A compressed file is decompressed into memory first: ``ase.io.read(path, ":")`` seeks
    back to every frame it indexed, and each seek in a compressed stream decompresses it
    from the start again, so reading a 4,400-frame pool that way takes many minutes
    instead of seconds."""
    import bz2
    import gzip
    import io
    import lzma
    from pathlib import Path

    import ase.io

    path = Path(path)
    opener = {".xz": lzma.open, ".gz": gzip.open, ".bz2": bz2.open}.get(path.suffix)
    if opener is None:
        return ase.io.read(path, ":", format="extxyz")
    with opener(path, "rt") as handle:
        text = handle.read()
    return ase.io.read(io.StringIO(text), ":", format="extxyz")


def write_pool(pool: list[Atoms], path) -> None:
    """The pool as (compressed, by the file name's suffix) extxyz, geometry only."""
    import ase.io

    ase.io.write(path, pool, format="extxyz")
