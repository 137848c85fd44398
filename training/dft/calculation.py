"""One GPAW calculation on one configuration, with the retry rule of the labeller.

An SCF that does not converge (or any GPAW error) is retried once with safer mixing
(``DFTSettings.gpaw_parameters(mixing="safe")``); what failed, and why, is kept with the
result either way. This runs in the worker process: it is the only module that imports
GPAW, so the parent that forks workers never initialises MPI.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from ..eip.store import StoredLabel
from ..eip.structure import Structure
from .settings import DFTSettings

MIXINGS = ("default", "safe")


@dataclass
class Outcome:
    """A finished calculation: the label (energy eV, forces eV/Å, or a failure reason) and
    how it was reached: ``mixing`` that converged (None when both failed), ``attempts``
    (reasons of the failed tries, in order), ``scf_iterations``, ``seconds`` (wall, all
    tries), the k-point grid."""

    label: StoredLabel
    mixing: str | None
    attempts: list[str] = field(default_factory=list)
    scf_iterations: int | None = None
    seconds: float = 0.0
    kpoint_grid: tuple[int, int, int] = (1, 1, 1)

    def record(self) -> dict:
        """What the store keeps beside the label (JSON types)."""
        return {
            "mixing": self.mixing,
            "failed_attempts": self.attempts,
            "scf_iterations": self.scf_iterations,
            "seconds": round(self.seconds, 3),
            "kpoint_grid": list(self.kpoint_grid),
        }


def _failure_reason(error: BaseException) -> str:
    """``<category>: <detail>``, category ``scf-not-converged`` or ``gpaw-error``."""
    from gpaw import ConvergenceError

    category = "scf-not-converged" if isinstance(error, ConvergenceError) else "gpaw-error"
    detail = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{category}: {type(error).__name__}{': ' + detail if detail else ''}"


def _scf_iterations(calculator) -> int | None:
    try:
        return int(calculator.dft.scf_loop.niter)
    except AttributeError:  # old-style GPAW objects keep it elsewhere; not worth guessing
        return None


def _attempt(atoms, settings: DFTSettings, mixing: str):
    """One GPAW run. A direction that is not periodic is a vacuum direction: plane waves
    need a periodic cell, so it is made periodic with one k-point along it (the grid is
    taken from the configuration as given)."""
    from gpaw import GPAW

    calculator = GPAW(**settings.gpaw_parameters(atoms, mixing))
    atoms.pbc = True
    atoms.calc = calculator
    energy = float(atoms.get_potential_energy())
    forces = np.array(atoms.get_forces(), dtype=np.float64)
    return energy, forces, _scf_iterations(calculator)


def run_calculation(structure: Structure, settings: DFTSettings) -> Outcome:
    """Energy (eV, extrapolated to zero smearing, GPAW's ``get_potential_energy``) and
    forces (eV/Å) of one configuration; failures are returned, not raised."""
    atoms = structure.to_atoms()
    n_atoms = len(atoms)
    grid = settings.kpoint_grid(atoms)
    attempts: list[str] = []
    start = time.perf_counter()
    for mixing in MIXINGS:
        try:
            energy, forces, iterations = _attempt(atoms.copy(), settings, mixing)
        except Exception as error:  # noqa: BLE001 - every GPAW failure is recorded
            attempts.append(f"{mixing} mixing: {_failure_reason(error)}")
            continue
        if not math.isfinite(energy) or not np.isfinite(forces).all():
            attempts.append(f"{mixing} mixing: non-finite: energy {energy} eV")
            continue
        label = StoredLabel(n_atoms, energy, forces, None)
        return Outcome(label, mixing, attempts, iterations, time.perf_counter() - start, grid)
    reason = attempts[-1].split(": ", 1)[1]
    label = StoredLabel(n_atoms, None, None, f"{reason} (after: {'; '.join(attempts)})")
    return Outcome(label, None, attempts, None, time.perf_counter() - start, grid)
