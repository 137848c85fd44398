"""Per-species reference energies, fitted before training so the network learns the rest."""
from __future__ import annotations

import numpy as np
import torch

from ..data.graphs import GraphSet
from ..models.potential import Potential


def species_counts(graphs: GraphSet, species_index: np.ndarray, configs: np.ndarray, num_species: int) -> np.ndarray:
    """[R, S] number of atoms of each species in each configuration of ``configs``."""
    counts = np.zeros((len(configs), num_species), dtype=np.float64)
    for row, c in enumerate(configs):
        atoms = species_index[graphs.atom_offsets[c]:graphs.atom_offsets[c + 1]]
        counts[row] = np.bincount(atoms, minlength=num_species)
    return counts


def fit_reference_energies(counts: np.ndarray, energies_ev: np.ndarray) -> tuple[np.ndarray, float]:
    """Least squares of total energies on species counts: (ref [S] eV/atom, scale eV/atom).

    ``scale`` is the standard deviation of the per-atom residual, the size of what the
    network must learn, so its output starts at the right order of magnitude. A species
    absent from ``counts`` gets the minimum-norm reference, 0.
    """
    reference, *_ = np.linalg.lstsq(counts, energies_ev, rcond=None)
    residual_per_atom = (energies_ev - counts @ reference) / counts.sum(axis=1)
    scale = float(np.std(residual_per_atom)) if len(energies_ev) > 1 else 1.0
    return reference, (scale if scale > 1e-6 else 1.0)


def set_reference(potential: Potential, reference_ev: np.ndarray, scale_ev: float, output: int = 0) -> None:
    """Write a fitted reference into ``potential`` (column ``output`` of its buffers)."""
    with torch.no_grad():
        potential.atom_ref[:, output] = torch.as_tensor(reference_ev, dtype=potential.atom_ref.dtype)
        potential.scale[output] = scale_ev
