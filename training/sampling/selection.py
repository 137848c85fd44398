"""Which configurations of a pool get DFT labels: a subset stratified by kind.

Labelling runs smallest first (so the most labels land early), but the subset it works
through is chosen here, without regard to size: every kind gets its share of the subset
(proportional to its share of the pool, at least one), drawn at random with ``seed``. So
a run that is stopped half-way has labelled the cheap part of a representative subset,
and one that finishes has labelled all of it.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np


def stratified_subset(pool: list, size: int, seed: int = 0) -> list[int]:
    """Indices (sorted) of ``size`` configurations of ``pool``, stratified by
    ``info["kind"]``; all of them when ``size`` ≥ the pool."""
    if size >= len(pool):
        return list(range(len(pool)))
    by_kind: dict[str, list[int]] = defaultdict(list)
    for index, atoms in enumerate(pool):
        by_kind[str(atoms.info.get("kind", ""))].append(index)
    kinds = sorted(by_kind)
    shares = {k: max(1, int(np.floor(size * len(by_kind[k]) / len(pool)))) for k in kinds}
    for kind in sorted(kinds, key=lambda k: -len(by_kind[k])):  # the rounding remainder
        if sum(shares.values()) >= size:
            break
        shares[kind] += 1
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for kind in kinds:
        members = by_kind[kind]
        picked = rng.permutation(len(members))[: min(shares[kind], len(members))]
        chosen.extend(members[i] for i in picked)
    return sorted(chosen)
