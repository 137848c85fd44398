"""The mixing energy of a binary fcc alloy (AgAu): the ordered decorations of the 4-atom
cubic cell, A, A3B (L1_2), AB (L1_0), AB3 and B, each at its own lattice constant,

    E_mix(x) = E(A_{1-x} B_x) - (1 - x) E(A) - x E(B)   (meV/atom),

with any ASE calculator: a model, an EIP, or GPAW at the labels' settings
(``benchmarks/mixing_energies.py`` compares them). The volume of each is relaxed by a
Birch-Murnaghan fit over an isotropic scan around Vegard's lattice constant; L1_0's c/a and
the positions are not relaxed (the ideal fcc sites, which symmetry keeps for L1_2 and the
pure metals; L1_0 would lower its energy a little by a tetragonal strain).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

from .equation_of_state import fit_birch_murnaghan, lattice_scan
from .errors import ValidationError

FCC_SITES = np.array([[0.0, 0.0, 0.0], [0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]])
# Sites of element B in the 4-atom cell, by the fraction x of B.
ORDERINGS: dict[float, tuple[int, ...]] = {0.0: (), 0.25: (0,), 0.5: (0, 3), 0.75: (0, 1, 2), 1.0: (0, 1, 2, 3)}


@dataclass(frozen=True)
class MixingCurve:
    fractions: np.ndarray  # [P] fraction x of element B
    lattice_angstrom: np.ndarray  # [P] relaxed cubic lattice constant of each
    energy_ev_per_atom: np.ndarray  # [P] at that lattice constant
    mixing_mev_per_atom: np.ndarray  # [P]; 0 at x = 0 and 1


def ordered_cell(a: str, b: str, fraction_b: float, lattice_angstrom: float) -> Atoms:
    """The 4-atom cubic fcc cell with element ``b`` on the sites of ``ORDERINGS[fraction_b]``."""
    if fraction_b not in ORDERINGS:
        raise ValidationError(f"no ordered 4-atom fcc cell with x = {fraction_b}; known: {sorted(ORDERINGS)}")
    symbols = [b if site in ORDERINGS[fraction_b] else a for site in range(4)]
    return Atoms(symbols, scaled_positions=FCC_SITES, cell=np.eye(3) * lattice_angstrom, pbc=True)


def relaxed_energy(calculator: Calculator, atoms: Atoms, points: int, span: float) -> tuple[float, float]:
    """(lattice constant Å, energy eV/atom) at the minimum of an isotropic scan of
    ``points`` lattice constants over ± ``span`` (fraction) of ``atoms``'s."""
    a_guess = float(atoms.cell.lengths()[0])
    curve = lattice_scan(calculator, atoms, np.linspace(1 - span, 1 + span, points) * a_guess)
    fit = fit_birch_murnaghan(curve, span)
    if fit.a0_angstrom is None:
        raise ValidationError(f"{atoms.get_chemical_formula()}: no energy minimum within ± {100 * span:g} % of "
                              f"a = {a_guess:.3f} Å ({fit.note})")
    return fit.a0_angstrom, fit.e0_ev_per_atom


def mixing_curve(calculator: Calculator, a: str, b: str, lattice_a: float, lattice_b: float,
                 points: int = 9, span: float = 0.05) -> MixingCurve:
    """The mixing energies of the five ordered cells of ``a`` and ``b`` (lattice constants of
    the pure metals ``lattice_a``, ``lattice_b`` as the start of Vegard's law)."""
    fractions = np.array(sorted(ORDERINGS))
    lattice, energies = np.empty(len(fractions)), np.empty(len(fractions))
    for k, x in enumerate(fractions):
        cell = ordered_cell(a, b, float(x), (1 - x) * lattice_a + x * lattice_b)
        lattice[k], energies[k] = relaxed_energy(calculator, cell, points, span)
    linear = (1 - fractions) * energies[0] + fractions * energies[-1]
    return MixingCurve(fractions, lattice, energies, 1000 * (energies - linear))
