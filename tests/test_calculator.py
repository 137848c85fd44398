"""EIPNNCalculator: derivatives, invariances, boundaries, dtypes, devices, MD and relaxation."""
import numpy as np
import pytest
import torch
from ase import Atoms, units
from ase.build import bulk, fcc111, molecule
from ase.filters import FrechetCellFilter
from ase.md.velocitydistribution import Stationary, thermalize_momenta
from ase.md.verlet import VelocityVerlet
from ase.optimize import FIRE
from ase.stress import voigt_6_to_full_3x3_stress

from eipnn_calc import EIPNNCalculator, InvalidConfigurationError, StressUnavailableError, UnknownSpeciesError
from physics import assert_extensive, assert_invariant, numerical_forces, numerical_stress


def _rattled_si(seed=0, repeat=1):
    atoms = bulk("Si", "diamond", 5.43, cubic=True).repeat(repeat)
    atoms.rattle(0.1, seed=seed)
    return atoms


def test_forces_are_minus_energy_gradient(sw_si_model):
    atoms = _rattled_si()
    atoms.calc = EIPNNCalculator(sw_si_model, skin=0.0)
    forces = atoms.get_forces()
    np.testing.assert_allclose(forces, numerical_forces(atoms), atol=1e-6)
    assert np.abs(forces).max() > 0.1  # the check is not about zeros


def test_stress_is_strain_derivative(sw_si_model):
    atoms = _rattled_si()
    atoms.set_cell(atoms.cell.array @ np.array([[1.02, 0.01, 0], [0, 0.99, 0.02], [0, 0, 1.01]]), scale_atoms=True)
    atoms.calc = EIPNNCalculator(sw_si_model, skin=0.0)
    stress = voigt_6_to_full_3x3_stress(atoms.get_stress())
    np.testing.assert_allclose(stress, numerical_stress(atoms), atol=1e-7)
    assert np.abs(stress).max() > 1e-3


def test_slab_forces_and_stress(random_si_model):
    slab = fcc111("Si", (2, 2, 3), a=5.43, vacuum=4.0)
    slab.rattle(0.05, seed=3)
    slab.calc = EIPNNCalculator(random_si_model, skin=0.0)
    checked = [0, 5]
    np.testing.assert_allclose(slab.get_forces()[checked], numerical_forces(slab, indices=checked)[checked], atol=1e-6)
    assert slab.get_stress().shape == (6,)


def test_invariance_rotation_translation_permutation(random_sic_model):
    atoms = _rattled_si(seed=4)
    atoms.numbers[[1, 4]] = 6
    assert_invariant(atoms, EIPNNCalculator(random_sic_model, skin=0.0), seed=7)


def test_supercell_is_extensive(random_si_model):
    assert_extensive(_rattled_si(seed=5), lambda: EIPNNCalculator(random_si_model), repeat=(2, 2, 2))


def test_primitive_cell_smaller_than_cutoff(random_si_model):
    primitive = bulk("Si", "diamond", 5.43)  # 2 atoms, cell vectors 3.84 Å < 5 Å cutoff
    cubic = bulk("Si", "diamond", 5.43, cubic=True)
    primitive.calc = EIPNNCalculator(random_si_model)
    cubic.calc = EIPNNCalculator(random_si_model)
    assert primitive.get_potential_energy() / 2 == pytest.approx(cubic.get_potential_energy() / 8, rel=1e-10)
    np.testing.assert_allclose(primitive.get_forces(), 0.0, atol=1e-10)


def test_per_atom_energies_sum_to_energy(random_si_model):
    atoms = _rattled_si(seed=6)
    atoms.calc = EIPNNCalculator(random_si_model)
    assert atoms.get_potential_energies().sum() == pytest.approx(atoms.get_potential_energy(), rel=1e-12)
    assert atoms.get_potential_energies().dtype == np.float64


def test_float32_agrees_with_float64(sw_si_model):
    atoms = _rattled_si(seed=8, repeat=2)
    atoms.calc = EIPNNCalculator(sw_si_model, dtype="float64")
    e64, f64 = atoms.get_potential_energy(), atoms.get_forces()
    atoms.calc = EIPNNCalculator(sw_si_model, dtype="float32")
    # float32 sums of 64 per-atom energies of ~5 eV: about 1e-7 relative.
    assert atoms.get_potential_energy() == pytest.approx(e64, rel=1e-6)
    np.testing.assert_allclose(atoms.get_forces(), f64, atol=1e-4)
    assert atoms.get_forces().dtype == np.float64


def test_skin_reuse_equals_rebuild_every_step(sw_si_model):
    def trajectory(skin):
        atoms = _rattled_si(seed=9)
        thermalize_momenta(atoms, temperature_K=500, rng=np.random.default_rng(1))
        calc = EIPNNCalculator(sw_si_model, skin=skin)
        atoms.calc = calc
        energies = []
        dyn = VelocityVerlet(atoms, timestep=2.0 * units.fs)
        dyn.attach(lambda: energies.append(atoms.get_potential_energy()))
        dyn.run(60)
        return np.array(energies), calc.neighbors.builds

    reused, reuse_builds = trajectory(skin=0.3)
    rebuilt, rebuild_builds = trajectory(skin=0.0)
    assert reuse_builds < rebuild_builds / 4
    np.testing.assert_allclose(reused, rebuilt, atol=1e-9)


def test_nve_energy_drift(sw_si_model):
    atoms = bulk("Si", "diamond", 5.431, cubic=True).repeat(2)  # 64 atoms
    thermalize_momenta(atoms, temperature_K=600, rng=np.random.default_rng(0))
    Stationary(atoms)  # equipartition brings 600 K of kinetic energy to about 300 K
    atoms.calc = EIPNNCalculator(sw_si_model, skin=1.0)
    totals, temperatures = [], []
    dyn = VelocityVerlet(atoms, timestep=1.0 * units.fs)
    dyn.attach(lambda: (totals.append(atoms.get_total_energy()), temperatures.append(atoms.get_temperature())), 10)
    dyn.run(1000)  # 1 ps
    totals = np.array(totals) / len(atoms)
    assert np.abs(totals - totals[0]).max() < 1e-3  # eV/atom
    assert 150 < np.mean(temperatures[50:]) < 450  # a crystal that vibrates, not one that explodes


def test_fire_relaxes_strained_cell(sw_si_model):
    atoms = bulk("Si", "diamond", 5.431, cubic=True)
    atoms.set_cell(atoms.cell.array @ np.diag([1.03, 0.98, 1.01]), scale_atoms=True)
    atoms.rattle(0.05, seed=2)
    atoms.calc = EIPNNCalculator(sw_si_model)
    start = atoms.get_stress().copy()
    cell_filter = FrechetCellFilter(atoms)
    assert FIRE(cell_filter, logfile=None).run(fmax=0.01, steps=2000)
    # The filter's generalised forces hold the atomic forces and the scaled virial.
    assert np.linalg.norm(cell_filter.get_forces(), axis=1).max() < 0.01
    assert np.abs(atoms.get_forces()).max() < 0.01
    assert np.abs(atoms.get_stress()).max() < 0.05 * np.abs(start).max()


def test_unknown_species_is_named(random_si_model):
    atoms = molecule("CH4")
    atoms.calc = EIPNNCalculator(random_si_model)
    with pytest.raises(UnknownSpeciesError, match="species C, H not in the model, which knows only Si"):
        atoms.get_potential_energy()


def test_nan_positions(random_si_model):
    atoms = _rattled_si()
    atoms.positions[2, 1] = np.nan
    atoms.calc = EIPNNCalculator(random_si_model)
    with pytest.raises(InvalidConfigurationError, match="NaN or inf"):
        atoms.get_potential_energy()


def test_zero_volume_periodic_cell(random_si_model):
    atoms = Atoms("Si2", positions=[[0, 0, 0], [1.2, 1.2, 1.2]], cell=np.zeros((3, 3)), pbc=True)
    atoms.calc = EIPNNCalculator(random_si_model)
    with pytest.raises(InvalidConfigurationError, match="degenerate"):
        atoms.get_potential_energy()


def test_stress_without_periodic_direction(random_si_model):
    cluster = Atoms("Si2", positions=[[0, 0, 0], [2.3, 0, 0]])
    cluster.calc = EIPNNCalculator(random_si_model)
    assert np.isfinite(cluster.get_potential_energy())
    with pytest.raises(StressUnavailableError, match="periodic direction"):
        cluster.get_stress()


def test_bad_arguments(random_si_model):
    with pytest.raises(ValueError, match="dtype must be"):
        EIPNNCalculator(random_si_model, dtype="float16")
    with pytest.raises(ValueError, match="skin must be >= 0"):
        EIPNNCalculator(random_si_model, skin=-1.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_matches_cpu(sw_si_model):
    atoms = _rattled_si(seed=11, repeat=2)
    atoms.calc = EIPNNCalculator(sw_si_model, device="cpu")
    energy, forces, stress = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
    atoms.calc = EIPNNCalculator(sw_si_model, device="cuda")
    assert atoms.get_potential_energy() == pytest.approx(energy, rel=1e-10)
    np.testing.assert_allclose(atoms.get_forces(), forces, atol=1e-8)
    np.testing.assert_allclose(atoms.get_stress(), stress, atol=1e-10)
    assert isinstance(atoms.get_forces(), np.ndarray)


def test_auto_device_resolves(random_si_model):
    calc = EIPNNCalculator(random_si_model, device="auto")
    assert calc.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
