"""The energy-volume curve of a cubic crystal: energies per atom on a grid of lattice
constants, a Birch-Murnaghan fit near the minimum (a0, bulk modulus), and how smooth the
curve is (local minima on the grid; largest deviation from a quartic in a)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
from ase import units
from ase.calculators.calculator import Calculator
from ase.eos import EquationOfState
from tqdm.auto import tqdm

from eipnn_calc.errors import EIPNNError

from .errors import ValidationError
from .structures import conventional_cell


@dataclass(frozen=True)
class EVCurve:
    lattice_angstrom: np.ndarray  # [P]
    energy_ev_per_atom: np.ndarray  # [P]
    atoms_per_cell: int
    note: Optional[str] = None  # where the grid was cut to what the calculator computes


@dataclass(frozen=True)
class EOSFit:
    """Birch-Murnaghan fit: ``a0_angstrom`` None when the grid's lowest point is at its
    edge (no minimum inside the range) or the fit failed; ``note`` says which."""

    a0_angstrom: Optional[float]
    bulk_modulus_gpa: Optional[float]
    e0_ev_per_atom: Optional[float]
    num_points: int
    note: Optional[str] = None


@dataclass(frozen=True)
class Smoothness:
    local_minima: int
    wiggle_mev_per_atom: float  # largest |E - quartic fit| over the whole range


def energy_volume_curve(calculator: Calculator, symbol: str, structure: str,
                        lattice_range_angstrom: tuple[float, float], points: int,
                        progress: bool = False) -> EVCurve:
    """Energy per atom (eV) of the conventional cell at ``points`` lattice constants
    evenly spaced over ``lattice_range_angstrom`` (atoms at their ideal positions). Where the
    calculator refuses a lattice constant (a KIM EAM whose tables end at short distances),
    the grid is cut to the longest run it computes, said in the curve's note."""
    lattice = np.linspace(*lattice_range_angstrom, points)
    scan = lattice_scan(calculator, conventional_cell(symbol, structure, float(lattice[0])), lattice,
                        progress, f"{symbol} E-V", skip_failures=True)
    return computed_part(scan)


def computed_part(curve: EVCurve) -> EVCurve:
    """The longest run of grid points with an energy (``lattice_scan(..., skip_failures=True)``
    leaves NaN where the calculator failed), with a note of the cut; ValidationError when that
    is under half the grid."""
    finite = np.isfinite(curve.energy_ev_per_atom)
    if finite.all():
        return curve
    best, start = (0, 0), None
    for k, ok in enumerate(np.append(finite, False)):
        if ok and start is None:
            start = k
        elif not ok and start is not None:
            best, start = max(best, (k - start, start)), None
    length, first = best
    a = curve.lattice_angstrom
    if 2 * length < len(a):
        raise ValidationError(f"the calculator computes only {int(finite.sum())} of the {len(a)} E-V grid points "
                              f"({a[0]:.3f}-{a[-1]:.3f} Å)")
    keep = slice(first, first + length)
    note = (f"the calculator fails at {len(a) - length} grid point(s) (e.g. a = {a[~finite][0]:.3f} Å): "
            f"E-V over {a[keep][0]:.3f}-{a[keep][-1]:.3f} Å")
    return EVCurve(a[keep], curve.energy_ev_per_atom[keep], curve.atoms_per_cell, note)


def lattice_scan(calculator: Calculator, atoms, lattice_angstrom: np.ndarray, progress: bool = False,
                 description: str = "E-V", skip_failures: bool = False) -> EVCurve:
    """Energy per atom (eV) of the cubic cell ``atoms`` scaled isotropically (fractional
    positions kept) to each lattice constant of ``lattice_angstrom``; with ``skip_failures``
    NaN where the calculator raises an EIPNNError (it cannot compute that cell)."""
    work = atoms.copy()
    work.calc = calculator
    reference_cell = work.cell.array / work.cell.lengths()[0]
    energies = np.empty(len(lattice_angstrom))
    for k, a in enumerate(tqdm(lattice_angstrom, desc=description, disable=not progress, leave=False)):
        work.set_cell(reference_cell * a, scale_atoms=True)
        try:
            energies[k] = work.get_potential_energy() / len(work)
        except EIPNNError:
            if not skip_failures:
                raise
            energies[k] = np.nan
    return EVCurve(np.asarray(lattice_angstrom), energies, len(work))


def fit_birch_murnaghan(curve: EVCurve, window: float) -> EOSFit:
    """Birch-Murnaghan E(V) on the grid points within ``window`` (fraction of a) of the
    lowest one; a0 = V0^(1/3) of the conventional cell, B in GPa."""
    a, e = curve.lattice_angstrom, curve.energy_ev_per_atom
    lowest = int(np.argmin(e))
    if lowest in (0, len(a) - 1):
        return EOSFit(None, None, None, 0, f"lowest energy at the edge of the range (a = {a[lowest]:.3f} Å)")
    near = np.abs(a - a[lowest]) <= window * a[lowest]
    if near.sum() < 5:  # a coarse grid: the five points around the lowest one
        near = np.zeros_like(near)
        near[max(0, lowest - 2):lowest + 3] = True
    volumes = a[near] ** 3  # Å³ per conventional cell
    energies = e[near] * curve.atoms_per_cell  # eV per conventional cell
    try:
        v0, e0, b = EquationOfState(volumes, energies, eos="birchmurnaghan").fit(warn=False)
    except (RuntimeError, ValueError) as error:
        return EOSFit(None, None, None, int(near.sum()), f"Birch-Murnaghan fit failed: {error}")
    if not (np.isfinite(v0) and volumes.min() <= v0 <= volumes.max()):
        return EOSFit(None, None, None, int(near.sum()), "Birch-Murnaghan V0 outside the fitted points")
    return EOSFit(float(v0 ** (1 / 3)), float(b / units.GPa), float(e0 / curve.atoms_per_cell), int(near.sum()))


def count_local_minima(energy: np.ndarray) -> int:
    """Interior grid points lower than both neighbours."""
    e = np.asarray(energy)
    return int(np.sum((e[1:-1] < e[:-2]) & (e[1:-1] < e[2:])))


def smoothness(curve: EVCurve) -> Smoothness:
    """Local minima of E(a) on the grid, and the largest deviation (meV/atom) of E(a) from
    a least-squares quartic in a over the whole range (a physical curve: ~0.5 meV/atom)."""
    a, e = curve.lattice_angstrom, curve.energy_ev_per_atom
    x = (a - a.mean()) / (a.max() - a.min())  # centred and scaled: a well-conditioned fit
    residual = e - np.polyval(np.polyfit(x, e, 4), x)
    return Smoothness(count_local_minima(e), float(1000 * np.abs(residual).max()))
