"""A tiny silicon data set and run configuration for the MP tests (seconds to train).

The "DFT" energies are EDIP energies shifted by -4.2 eV/atom plus noise: a real labelled
set as far as the pipeline is concerned; the pretraining EIPs are two others.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from ase.build import bulk

from eipnn_training.config import RunConfig, config_from_dict
from eipnn_training.eip import label

PRETRAIN_EIPS = ["si/sw-bht", "si/tersoff-t3"]


def write_tiny_dataset(path: Path, n: int = 60, seed: int = 0) -> Path:
    """``n`` strained and rattled diamond Si cells (2 or 8 atoms) as extxyz with energies."""
    rng = np.random.default_rng(seed)
    configurations = []
    for i in range(n):
        atoms = bulk("Si", "diamond", a=5.43, cubic=bool(i % 3 == 0))
        atoms.set_cell(atoms.cell.array @ (np.eye(3) + rng.normal(0, 0.03, (3, 3))), scale_atoms=True)
        atoms.positions += rng.normal(0, 0.08, atoms.positions.shape)
        configurations.append(atoms)
    edip = label(configurations, ["si/edip"], store=False, progress=False).energies[:, 0]
    import ase.io

    for atoms, energy in zip(configurations, edip):
        atoms.info["energy"] = float(energy - 4.2 * len(atoms) + rng.normal(0, 0.01))
    ase.io.write(path, configurations, format="extxyz")
    return path


def tiny_config(data_path: Path, runs_dir: Path, **sections) -> RunConfig:
    values = {
        "name": "mp_tiny", "strategy": "mp", "seed": 3, "runs_dir": str(runs_dir), "progress": False,
        "data": {"path": str(data_path), "split_seed": 1},
        "model": {"kind": "schnet", "cutoff_angstrom": 4.0, "head_hidden": 8,
                  "hyperparameters": {"num_features": 8, "num_interactions": 1, "num_rbf": 8}},
        "pretrain": {"eips": PRETRAIN_EIPS, "epochs": 2, "batch_size": 16},
        "train": {"epochs": 2, "batch_size": 8},
        "validation": {"enabled": False},  # the card at the end of a run: tests/test_train.py
    }
    for section, entries in sections.items():
        if isinstance(entries, dict):
            values[section] = {**values.get(section, {}), **entries}
        else:
            values[section] = entries
    return config_from_dict(values)
