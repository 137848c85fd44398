"""The si-pbe benchmark protocol (``shared/data/si-pbe/README.md``) as a function.

Every configuration of both files with a DFT energy of at most -4.0 eV/atom is kept
(5,534 in all), in file order: ``pyxtal_si.xyz.gz`` first, then
``defects_surfaces_md_si.xyz.gz``. A split seed shuffles those indices with
``numpy.random.default_rng(seed).permutation`` and cuts 80 / 12 / 4 / 4 % into
``unlabeled`` / ``train`` / ``val`` / ``test``.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import DatasetFileError, MissingEnergyError

SI_PBE_FILES = ("pyxtal_si.xyz.gz", "defects_surfaces_md_si.xyz.gz")
SI_PBE_MAX_ENERGY_PER_ATOM = -4.0
SPLIT_NAMES = ("unlabeled", "train", "val", "test")
SPLIT_FRACTIONS = (0.80, 0.12, 0.04, 0.04)


def default_si_pbe_dir() -> Path:
    """``$EIPNN_SI_PBE`` or ``shared/data/si-pbe`` beside the checkout."""
    env = os.environ.get("EIPNN_SI_PBE")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared" / "data" / "si-pbe"


def protocol_split(n_configurations: int, seed: int) -> dict[str, np.ndarray]:
    """Indices of the four splits for ``n_configurations`` shuffled with ``seed``.

    Cut points are rounded down for unlabeled/train/val; test takes the remainder, so the
    four splits are disjoint and cover every index.
    """
    if n_configurations < len(SPLIT_NAMES):
        raise ValueError(f"cannot split {n_configurations} configurations four ways")
    order = np.random.default_rng(seed).permutation(n_configurations)
    bounds = np.floor(np.cumsum(SPLIT_FRACTIONS[:-1]) * n_configurations).astype(int)
    parts = np.split(order, bounds)
    return {name: np.sort(part) for name, part in zip(SPLIT_NAMES, parts)}


def cache_dir() -> Path:
    """Where parsed datasets and labels are cached: ``$EIPNN_CACHE`` or ~/.cache/eipnn."""
    return Path(os.environ.get("EIPNN_CACHE", Path.home() / ".cache" / "eipnn"))


def _read_cached(path: Path) -> list:
    """``ase.io.read(path, ":")``, cached as a pickle keyed by the file's content hash
    (parsing the si-pbe extxyz files takes over a minute; the pickle loads in a second)."""
    import hashlib
    import pickle

    import ase.io

    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    cached = cache_dir() / f"{path.name}.{digest}.pkl"
    if cached.exists():
        with open(cached, "rb") as handle:
            return pickle.load(handle)
    try:
        configurations = ase.io.read(path, ":")
    except Exception as err:  # ase raises many kinds; say which file, keep the cause
        raise DatasetFileError(f"could not read si-pbe file '{path}': {err}") from err
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(f".tmp{os.getpid()}")
    with open(partial, "wb") as handle:
        pickle.dump(configurations, handle, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(partial, cached)  # atomic: readers never see half a file
    return configurations


def load_si_pbe(data_dir: str | os.PathLike | None = None) -> list:
    """The 5,534 protocol configurations (ASE Atoms with DFT energy/forces), in file order."""
    data_dir = Path(data_dir) if data_dir is not None else default_si_pbe_dir()
    configurations = []
    for name in SI_PBE_FILES:
        path = data_dir / name
        if not path.exists():
            raise DatasetFileError(
                f"si-pbe file not found: '{path}' (set EIPNN_SI_PBE or data.si_pbe_dir to the "
                "si-pbe folder)"
            )
        for index, atoms in enumerate(_read_cached(path)):
            if atoms.calc is None or "energy" not in atoms.calc.results:
                raise MissingEnergyError(
                    f"configuration {index} of si-pbe file '{path}' has no DFT energy: "
                    "the file is not the si-pbe data set"
                )
            if atoms.get_potential_energy() / len(atoms) <= SI_PBE_MAX_ENERGY_PER_ATOM:
                configurations.append(atoms)
    return configurations
