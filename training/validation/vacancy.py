"""Vacancy formation energy at fixed volume: E_f = E(N-1) - (N-1)/N E(N), the defect
cell relaxed at the perfect crystal's cell (the model's own a0)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase.calculators.calculator import Calculator

from .relax import relax_positions
from .structures import cubic_supercell


@dataclass(frozen=True)
class Vacancy:
    formation_ev: float  # relaxed
    unrelaxed_formation_ev: float
    num_atoms: int  # N, atoms of the perfect cell
    converged: bool
    relax_steps: int


def vacancy_formation_energy(calculator: Calculator, symbol: str, structure: str, a0_angstrom: float,
                             min_atoms: int, fmax_ev_per_angstrom: float, max_steps: int,
                             rattle_angstrom: float = 0.01, seed: int = 0,
                             progress: bool = False) -> Vacancy:
    """Remove one atom of the smallest cubic supercell with >= ``min_atoms`` atoms, then
    relax the others (BFGS, fixed cell) to ``fmax_ev_per_angstrom`` from a seeded rattle
    of ``rattle_angstrom`` (so that a symmetry-lowering relaxation can be found)."""
    perfect = cubic_supercell(symbol, structure, a0_angstrom, min_atoms)
    perfect.calc = calculator
    n = len(perfect)
    e_perfect = perfect.get_potential_energy()
    defect = perfect.copy()
    del defect[0]
    defect.calc = calculator
    e_unrelaxed = defect.get_potential_energy()
    rng = np.random.default_rng(seed)
    defect.positions += rng.normal(0.0, rattle_angstrom, defect.positions.shape)
    converged, steps = relax_positions(defect, fmax_ev_per_angstrom, max_steps, progress,
                                       f"{symbol} vacancy relax ({n - 1} atoms)")
    e_relaxed = defect.get_potential_energy()
    reference = (n - 1) / n * e_perfect
    return Vacancy(float(e_relaxed - reference), float(e_unrelaxed - reference), n, converged, steps)
