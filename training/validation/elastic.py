"""Cubic elastic constants by finite strain: C11 and C12 from a uniaxial strain along x,
C44 from a yz shear with the atoms relaxed in the strained cell (the internal relaxation
of diamond under shear), all from the calculator's stress by central differences."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator

from .relax import relax_positions
from .structures import conventional_cell

XX, YY, ZZ, YZ = 0, 1, 2, 3  # ASE's Voigt order: xx yy zz yz xz xy


@dataclass(frozen=True)
class ElasticConstants:
    c11_gpa: float
    c12_gpa: float
    c44_gpa: float  # internal coordinates relaxed
    c44_unrelaxed_gpa: float  # atoms moved with the cell (Kleinman zeta = 0)
    relaxations_converged: bool

    @property
    def bulk_modulus_gpa(self) -> float:
        return (self.c11_gpa + 2 * self.c12_gpa) / 3


def _strained(cell: Atoms, deformation: np.ndarray) -> Atoms:
    atoms = cell.copy()
    atoms.set_cell(cell.cell.array @ deformation.T, scale_atoms=True)
    return atoms


def _stress_gpa(atoms: Atoms, calculator: Calculator) -> np.ndarray:
    atoms.calc = calculator
    return atoms.get_stress(voigt=True) / units.GPa  # [6], ASE sign: tension > 0


def cubic_elastic_constants(calculator: Calculator, symbol: str, structure: str, a0_angstrom: float,
                            strain: float, fmax_ev_per_angstrom: float, max_steps: int,
                            progress: bool = False) -> ElasticConstants:
    """C11, C12, C44 (GPa) of the cubic crystal at lattice constant ``a0_angstrom``.

    Uniaxial: F = 1 + e (x x^T), e = ±strain: C11 = dσxx/de, C12 = (dσyy/de + dσzz/de)/2.
    Shear: engineering strain γ = ±strain in yz (F = 1 + γ/2 (y z^T + z y^T)):
    C44 = dσyz/dγ, once with the atoms moved with the cell and once relaxed at fixed cell
    to ``fmax_ev_per_angstrom`` (at most ``max_steps`` BFGS steps each).
    """
    cell = conventional_cell(symbol, structure, a0_angstrom)
    uniaxial, shear = np.zeros((3, 3)), np.zeros((3, 3))
    uniaxial[0, 0] = 1.0
    shear[1, 2] = shear[2, 1] = 0.5
    sigma_uniaxial, sigma_shear, sigma_shear_relaxed = [], [], []
    converged = True
    for sign in (1.0, -1.0):
        e = sign * strain
        sigma_uniaxial.append(_stress_gpa(_strained(cell, np.eye(3) + e * uniaxial), calculator))
        sheared = _strained(cell, np.eye(3) + e * shear)
        sigma_shear.append(_stress_gpa(sheared, calculator))
        converged &= relax_positions(sheared, fmax_ev_per_angstrom, max_steps, progress,
                                     f"{symbol} C44 relax {e:+g}")[0]
        sigma_shear_relaxed.append(_stress_gpa(sheared, calculator))
    d_uniaxial = (sigma_uniaxial[0] - sigma_uniaxial[1]) / (2 * strain)
    c44 = (sigma_shear_relaxed[0][YZ] - sigma_shear_relaxed[1][YZ]) / (2 * strain)
    c44_unrelaxed = (sigma_shear[0][YZ] - sigma_shear[1][YZ]) / (2 * strain)
    return ElasticConstants(float(d_uniaxial[XX]), float((d_uniaxial[YY] + d_uniaxial[ZZ]) / 2),
                            float(c44), float(c44_unrelaxed), bool(converged))
