"""The mixing energy of a binary fcc alloy (validation/mixing.py), with ASE's EMT: zero at
the pure metals by construction, each cell at its own relaxed lattice constant."""
import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.eos import EquationOfState

from eipnn_training.validation.errors import ValidationError
from eipnn_training.validation.mixing import mixing_curve, ordered_cell, relaxed_energy


def test_the_ordered_cells_have_their_composition_and_fcc_sites():
    for x, formula in ((0.0, "Ag4"), (0.25, "Ag3Au"), (0.5, "Ag2Au2"), (0.75, "AgAu3"), (1.0, "Au4")):
        cell = ordered_cell("Ag", "Au", x, 4.1)
        assert cell.get_chemical_formula() == formula
        reference = bulk("Ag", "fcc", 4.1, cubic=True)
        np.testing.assert_allclose(np.sort(cell.positions, axis=0), np.sort(reference.positions, axis=0), atol=1e-12)
    with pytest.raises(ValidationError, match="x = 0.3"):
        ordered_cell("Ag", "Au", 0.3, 4.1)


def test_mixing_energies_of_emt_at_relaxed_volumes():
    curve = mixing_curve(EMT(), "Ag", "Au", 4.09, 4.08)
    assert curve.mixing_mev_per_atom[0] == 0.0 and curve.mixing_mev_per_atom[-1] == 0.0
    assert (curve.mixing_mev_per_atom[1:-1] < -5.0).all()  # EMT's Ag-Au bond is favoured
    # Pure Au's energy and lattice constant: those of a separate equation of state.
    scan = np.linspace(3.9, 4.25, 15)
    energies = []
    for a in scan:
        atoms = bulk("Au", "fcc", a, cubic=True)
        atoms.calc = EMT()
        energies.append(atoms.get_potential_energy())
    v0, e0, _ = EquationOfState(scan ** 3, energies, eos="birchmurnaghan").fit()
    assert curve.lattice_angstrom[-1] == pytest.approx(v0 ** (1 / 3), abs=2e-3)
    assert curve.energy_ev_per_atom[-1] == pytest.approx(e0 / 4, abs=1e-4)
    # The 50:50 cell from its own scan, by hand: E(AuAg) - (E(Ag) + E(Au)) / 2.
    _, e_half = relaxed_energy(EMT(), ordered_cell("Ag", "Au", 0.5, 4.085), 9, 0.05)
    expected = 1000 * (e_half - 0.5 * (curve.energy_ev_per_atom[0] + curve.energy_ev_per_atom[-1]))
    assert curve.mixing_mev_per_atom[2] == pytest.approx(expected, abs=1e-9)


def test_a_cell_without_a_minimum_in_the_scan_is_refused():
    with pytest.raises(ValidationError, match="no energy minimum"):
        relaxed_energy(EMT(), ordered_cell("Ag", "Au", 0.0, 3.3), 5, 0.02)
