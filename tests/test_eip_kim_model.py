"""The kimpy driver against published values, finite differences, and ASE's KIM calculator."""
from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import parameters as emt_parameters
from ase.calculators.calculator import PropertyNotImplementedError
from ase.calculators.kim import KIM

from eipnn_training.eip import EIPCalculator, UnsupportedSpecies
from eipnn_training.eip.catalogue import KIM_CATALOGUE
from physics import numerical_forces


@pytest.fixture(autouse=True)
def _kim_log_in_tmp(tmp_path, monkeypatch):
    """The KIM API appends its error log to ./kim.log: keep it out of the checkout."""
    monkeypatch.chdir(tmp_path)

SW_1985 = "SW_StillingerWeber_1985_Si__MO_405512056662_005"


def _fcc_minimum_ev_per_atom(calculator, lattice_angstrom: np.ndarray) -> tuple[float, float]:
    """(lowest energy per atom, its lattice constant) of fcc Al over a scan."""
    energies = []
    for a in lattice_angstrom:
        atoms = bulk("Al", "fcc", a=a)
        atoms.calc = calculator
        energies.append(atoms.get_potential_energy() / len(atoms))
    best = int(np.argmin(energies))
    return energies[best], lattice_angstrom[best]


def test_stillinger_weber_1985_diamond_cohesive_energy():
    atoms = bulk("Si", "diamond", a=5.431)
    atoms.calc = EIPCalculator(SW_1985)
    # Published: -2ε = -4.3366 eV/atom; the KIM parameter set gives -4.33640.
    assert atoms.get_potential_energy() / len(atoms) == pytest.approx(-4.3366, abs=3e-4)


@pytest.mark.parametrize(
    "name, cohesive_ev, lattice_angstrom",
    [
        # Ercolessi & Adams, Europhys. Lett. 26, 583 (1994): E_c 3.36 eV, a0 4.032 Å.
        ("al/eam-ercolessi-adams", 3.36, 4.032),
        # Zope & Mishin, PRB 68, 024102 (2003): E_c 3.36 eV, a0 4.05 Å.
        ("al/eam-zope-mishin", 3.36, 4.05),
    ],
)
def test_al_eam_fcc_cohesive_energy_matches_publication(name, cohesive_ev, lattice_angstrom):
    energy, lattice = _fcc_minimum_ev_per_atom(
        EIPCalculator(name), np.arange(3.98, 4.10, 0.002)
    )
    assert energy == pytest.approx(-cohesive_ev, abs=5e-3)
    assert lattice == pytest.approx(lattice_angstrom, abs=4e-3)


def test_al_emt_fcc_cohesive_energy_matches_its_e0_parameter():
    # Jacobsen, Stoltze, Nørskov, Surf. Sci. 366, 394 (1996): E0(Al) = -3.28 eV, as typed
    # in ASE's own EMT parameter table; ASAP's cutoff smoothing moves it by < 0.01 eV.
    energy, _ = _fcc_minimum_ev_per_atom(
        EIPCalculator("al/emt"), np.arange(3.95, 4.10, 0.0025)
    )
    assert energy == pytest.approx(emt_parameters["Al"][0], abs=0.01)


def test_tersoff_tmod_diamond_cohesive_energy():
    # Kumagai et al., Comput. Mater. Sci. 39, 457 (2007): E_c 4.63 eV, a0 5.429 Å.
    atoms = bulk("Si", "diamond", a=5.429)
    atoms.calc = EIPCalculator("si/tersoff-tmod")
    assert atoms.get_potential_energy() / len(atoms) == pytest.approx(-4.63, abs=2e-3)


@pytest.mark.parametrize(
    "name", ["si/sw-bht", "si/tersoff-t3", "si/meam-lenosky", "si/edip", "si/tersoff-tmod"]
)
def test_forces_match_finite_differences(name):
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    atoms.rattle(0.08, seed=3)
    atoms.calc = EIPCalculator(name)
    analytic = atoms.get_forces()
    assert np.abs(analytic).max() > 0.1  # the rattle gives real forces to compare
    np.testing.assert_allclose(analytic, numerical_forces(atoms, delta=1e-5), atol=2e-4)


def test_free_cluster_forces_match_finite_differences():
    atoms = bulk("Al", "fcc", a=4.05, cubic=True)
    atoms.pbc = False
    atoms.rattle(0.05, seed=1)
    atoms.calc = EIPCalculator("al/eam-zope-mishin")
    np.testing.assert_allclose(atoms.get_forces(), numerical_forces(atoms, delta=1e-5), atol=2e-4)


@pytest.mark.parametrize("name", ["si/sw-silicene1", "si/tersoff-erhart-albe"])
def test_direct_kimpy_equals_ase_kim_calculator(name):
    atoms = bulk("Si", "diamond", a=5.43) * (2, 1, 1)
    atoms.rattle(0.1, seed=7)
    ours = atoms.copy()
    ours.calc = EIPCalculator(name)
    atoms.calc = KIM(KIM_CATALOGUE[name])
    assert ours.get_potential_energy() == pytest.approx(atoms.get_potential_energy(), abs=1e-9)
    np.testing.assert_allclose(ours.get_forces(), atoms.get_forces(), atol=1e-9)


def test_unsupported_species_is_a_specific_error():
    atoms = bulk("Cu", "fcc", a=3.6)
    atoms.calc = EIPCalculator("si/sw-bht")
    with pytest.raises(UnsupportedSpecies, match="no parameters for Cu"):
        atoms.get_potential_energy()


def test_reused_model_buffers_give_what_a_fresh_model_gives():
    """The driver keeps its per-particle buffers and KIM pointers across calls: growing
    them, shrinking the configuration, switching forces on and off, a free cluster after a
    periodic cell, and a failed call in between must not change any result."""
    from ase import Atoms

    from eipnn_training.eip.errors import EIPComputeError
    from eipnn_training.eip.kim_model import KIMPortableModel
    from eipnn_training.eip.structure import Structure

    kim_id = KIM_CATALOGUE["si/tersoff-t3"]
    small = bulk("Si", "diamond", a=5.43)
    large = bulk("Si", "diamond", a=5.43, cubic=True) * (2, 2, 2)  # 64 atoms, > 64 buffers
    cluster = Atoms("Si3", positions=[[0, 0, 0], [2.3, 0, 0], [0.1, 2.4, 0]])
    overlapping = small.copy()
    overlapping.positions[1] = overlapping.positions[0]
    for atoms in (small, large):
        atoms.rattle(0.05, seed=len(atoms))
    sequence = [(small, True), (large, False), (overlapping, False), (cluster, True),
                (small, False), (large, True), (cluster, False)]
    reused = KIMPortableModel(kim_id)
    for atoms, with_forces in sequence:
        structure = Structure.from_atoms(atoms)
        try:
            got = reused.compute(structure, with_forces)
        except EIPComputeError:
            assert atoms is overlapping
            continue
        energy, forces = KIMPortableModel(kim_id).compute(structure, with_forces)
        assert got[0] == energy
        if with_forces:
            np.testing.assert_array_equal(got[1], forces)
        else:
            assert got[1] is None


def test_eip_stress_is_ases_kim_virial_and_refused_without_a_cell():
    atoms = bulk("Si", "diamond", a=5.3).repeat(2)
    atoms.rattle(0.05, seed=1)
    shear = np.array([[0.01, 0.02, 0.0], [0.02, -0.01, 0.005], [0.0, 0.005, 0.0]])
    atoms.set_cell(atoms.cell.array @ (np.eye(3) + shear), scale_atoms=True)
    atoms.calc = EIPCalculator(SW_1985)
    stress = atoms.get_stress()
    reference = atoms.copy()
    reference.calc = KIM(SW_1985)  # the SW driver's own virial
    assert np.abs(stress).max() > 1e-3
    assert np.allclose(stress, reference.get_stress(), atol=1e-7, rtol=1e-6)
    slab = atoms.copy()
    slab.pbc = (True, True, False)
    slab.calc = EIPCalculator(SW_1985)
    with pytest.raises(PropertyNotImplementedError, match="periodic in all three"):
        slab.get_stress()


def test_a_model_that_fixes_its_elements_at_its_first_call_still_gives_each_cell_its_own():
    """Asap's EMT (agau/emt) computes every later configuration with the elements of its
    first: after pure Ag, Au and Ag3Au came out as Ag. Each cell must get what a fresh
    model gives (ASE's KIM calculator, a new one per cell)."""
    def cells():
        ag, au, ag3au = (bulk(el, "fcc", 4.08, cubic=True) for el in ("Ag", "Au", "Ag"))
        ag3au[0].symbol = "Au"
        return [ag, au, ag3au, bulk("Au", "fcc", 4.1, cubic=True)]

    ours = []
    for atoms in cells():
        atoms.calc = EIPCalculator("agau/emt")
        ours.append(atoms.get_potential_energy())
    fresh = []
    for atoms in cells():
        atoms.calc = KIM(KIM_CATALOGUE["agau/emt"])
        fresh.append(atoms.get_potential_energy())
    np.testing.assert_allclose(ours, fresh, rtol=0, atol=1e-9)
    assert len({round(e, 6) for e in ours}) == 4  # Ag, Au and Ag3Au differ
