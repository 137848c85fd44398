"""Configurations to label, sampled with the EIPs: strained fcc/hcp/bcc (and diamond) cells, vacancies,
surfaces, and hot-solid, liquid and solid–liquid MD (Langevin, KIM EAM), 4–32 atoms,
distinct, reproducible from a seed.

    from eipnn_training.sampling import sample_pool, write_pool
    pool = sample_pool("al", seed=0)             # the full plan (4,400 configurations)
    write_pool(pool, "data/al-pbe/pool.extxyz.xz")

See docs/dft.md ("Sampling"); the command line is ``eipnn-sample``.
"""
from .checks import fingerprint, min_distance_angstrom
from .pool import SamplingError, plan_counts, read_pool, sample_pool, system, write_pool
from .recipes import RECIPES, SYSTEMS, System
from .selection import stratified_subset

__all__ = [
    "RECIPES",
    "SYSTEMS",
    "SamplingError",
    "System",
    "fingerprint",
    "min_distance_angstrom",
    "plan_counts",
    "read_pool",
    "sample_pool",
    "stratified_subset",
    "system",
    "write_pool",
]
