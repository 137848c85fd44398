"""SOAPNet: registry entry, export, EIPNNCalculator derivatives and NVE energy conservation."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms, units
from ase.build import bulk
from ase.calculators.kim import KIM
from ase.calculators.singlepoint import SinglePointCalculator
from ase.md.velocitydistribution import Stationary, thermalize_momenta
from ase.md.verlet import VelocityVerlet
from dscribe.descriptors import SOAP as DscribeSOAP
from models import SW_SI, batched, fit_energies_and_forces
from physics import assert_extensive, assert_forces_and_stress_are_derivatives, assert_invariant, nve_energy_drift

REPO = Path(__file__).resolve().parents[1]

from eipnn_calc.calculator import EIPNNCalculator
from eipnn_calc.kim import exporter
from eipnn_calc.kim.collections import isolated_collection_environment
from eipnn_calc.model_file import load_model, read_metadata
from eipnn_calc.neighbors import build_edges
from eipnn_training.export import export_model
from eipnn_training.models.build import ModelSpec, build_potential
from eipnn_training.models.soap import dscribe_cutoff_angstrom
from eipnn_training.models.soapnet import SOAPNet

# Small enough to fit in seconds; the paper's size is the default (tested for shape below).
SMALL_SOAPNET = {"n_max": 4, "l_max": 4, "num_features": 32}


def sw_labelled(count: int, seed: int) -> list[Atoms]:
    """8-atom diamond cells, strained and rattled from 0.05 to 0.35 Å (so the fit sees
    close contacts and stays repulsive in MD), with SW energies and forces from KIM."""
    rng = np.random.default_rng(seed)
    calculator = KIM(SW_SI)
    labelled = []
    for k in range(count):
        atoms = bulk("Si", "diamond", 5.431, cubic=True)
        strain = np.eye(3) + rng.normal(0, 0.03, (3, 3))
        atoms.set_cell(atoms.cell.array @ strain, scale_atoms=True)
        atoms.positions += rng.normal(0, 0.05 + 0.3 * k / (count - 1), atoms.positions.shape)
        atoms.calc = calculator
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
        labelled.append(atoms)
    return labelled


def standardize_on(potential, data: dict[str, torch.Tensor]) -> None:
    species = torch.zeros_like(data["batch"])
    edge_index, vectors, lengths = potential.edge_geometry(
        data["positions"], data["edge_index"], data["edge_shift"]
    )
    soapnet = potential.representation
    soapnet.fit_standardization(soapnet.soap(species, edge_index, vectors, lengths))


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """On a shared 2-core machine two spinning intra-op threads per process run these small
    models 10-20x slower than one thread; restore the setting afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def sw_soapnet(tmp_path_factory) -> Path:
    """A small smooth-cutoff SOAPNet fitted to SW energies and forces: sane for MD."""
    torch.manual_seed(0)
    spec = ModelSpec("soapnet", ["Si"], 5.0, dict(SMALL_SOAPNET))
    potential = build_potential(spec).double()
    data = batched(sw_labelled(24, seed=0), spec.cutoff_angstrom)
    standardize_on(potential, data)
    fit_energies_and_forces(potential, data, steps=300)
    path = tmp_path_factory.mktemp("soapnet") / "sw_soapnet.pt"
    export_model(potential, spec, path, provenance={"fitted_to": SW_SI, "steps": 300})  # radial table
    export_model(potential, spec, path.with_name("sw_soapnet-exact.pt"), exact=True)
    return path


def test_paper_architecture_from_the_registry():
    potential = build_potential(ModelSpec("soapnet", ["Si"], 5.0))
    soapnet = potential.representation
    assert isinstance(soapnet, SOAPNet)
    assert (soapnet.num_layers, soapnet.num_features, soapnet.soap.num_features) == (1, 128, 252)
    linear = [m for m in soapnet.dense if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == [(252, 128)] + [(128, 128)] * 4
    assert potential.head.net[0].in_features == 128


def test_standardization_whitens_training_descriptors():
    soapnet = SOAPNet(1, 5.0, **SMALL_SOAPNET).double()
    atoms = bulk("Si", "diamond", 5.431, cubic=True)
    atoms.rattle(0.2, seed=0)
    edge_index, shifts = build_edges(atoms, 5.0)
    positions, edge_index = torch.tensor(atoms.positions), torch.tensor(edge_index)
    vectors = positions[edge_index[1]] - positions[edge_index[0]] + torch.tensor(shifts)
    species = torch.zeros(8, dtype=torch.int64)
    descriptors = soapnet.soap(species, edge_index, vectors, vectors.norm(dim=1))
    soapnet.fit_standardization(descriptors)
    whitened = (descriptors - soapnet.feature_mean) / soapnet.feature_std
    varying = descriptors.std(dim=0) > 1e-3 * descriptors.abs().max()
    kept = whitened[:, varying]
    torch.testing.assert_close(kept.mean(dim=0), torch.zeros_like(kept[0]))
    torch.testing.assert_close(kept.std(dim=0, unbiased=False), torch.ones_like(kept[0]))


def test_standardization_rejects_wrong_width():
    with pytest.raises(ValueError, match=r"descriptors must be \[atoms, 50\], got \[5, 252\]"):
        SOAPNet(1, 5.0, **SMALL_SOAPNET).fit_standardization(torch.zeros(5, 252))
    with pytest.raises(ValueError, match="needs the descriptors of at least 2 atoms"):
        SOAPNet(1, 5.0, **SMALL_SOAPNET).fit_standardization(torch.zeros(1, 50))


def test_first_training_batch_standardizes_once():
    # Any trainer gets standardised inputs: the first call in training mode sets them.
    potential = build_potential(ModelSpec("soapnet", ["Si"], 5.0, dict(SMALL_SOAPNET))).double()
    soapnet = potential.representation
    first, second = (bulk("Si", "diamond", 5.431, cubic=True) for _ in range(2))
    first.rattle(0.2, seed=1)
    second.rattle(0.3, seed=2)

    def call(atoms: Atoms) -> None:
        edge_index, shifts = build_edges(atoms, 5.0)
        potential.atomic_energies(torch.tensor(atoms.positions), torch.zeros(8, dtype=torch.int64),
                                  torch.tensor(edge_index), torch.tensor(shifts))

    potential.eval()
    call(first)
    assert not bool(soapnet.standardized) and float(soapnet.feature_std.min()) == 1.0
    potential.train()
    call(first)
    mean, std = soapnet.feature_mean.clone(), soapnet.feature_std.clone()
    assert bool(soapnet.standardized) and not torch.equal(std, torch.ones_like(std))
    call(second)
    assert torch.equal(soapnet.feature_mean, mean) and torch.equal(soapnet.feature_std, std)
    assert bool(potential.state_dict()["representation.standardized"])


def test_dscribe_mode_potential_sees_dscribe_features():
    # With dscribe's neighbour radius and no taper, the features inside a built potential
    # are dscribe's: the paper's SOAPNet input, reproduced through the model file contract.
    cutoff = dscribe_cutoff_angstrom(5.0, 1.0)
    spec = ModelSpec("soapnet", ["Si"], cutoff, {"r_cut_angstrom": 5.0, "smooth_cutoff": False})
    potential = build_potential(spec).double()
    atoms = bulk("Si", "diamond", 5.431)
    atoms.rattle(0.1, seed=1)
    edge_index, shifts = build_edges(atoms, cutoff + 0.5)  # longer edges are dropped inside
    edges, vectors, lengths = potential.edge_geometry(
        torch.tensor(atoms.positions), torch.tensor(edge_index), torch.tensor(shifts)
    )
    ours = potential.representation.soap(torch.zeros(2, dtype=torch.int64), edges, vectors, lengths)
    dscribe = DscribeSOAP(species=["Si"], r_cut=5.0, n_max=8, l_max=6, sigma=1.0, periodic=True)
    reference = dscribe.create(atoms)
    atol = 1e-5 * np.abs(reference).max()
    np.testing.assert_allclose(ours.detach().numpy(), reference, rtol=1e-5, atol=atol)


def test_model_file_metadata(sw_soapnet):
    metadata = read_metadata(sw_soapnet)
    assert metadata.model["kind"] == "soapnet"
    assert (metadata.num_layers, metadata.cutoff_angstrom, metadata.species) == (1, 5.0, ["Si"])
    assert metadata.model["spec"]["hyperparameters"] == SMALL_SOAPNET


def test_calculator_forces_and_stress_are_derivatives(sw_soapnet):
    atoms = bulk("Si", "diamond", 5.431, cubic=True)
    atoms.set_cell(atoms.cell.array @ np.diag([1.02, 0.99, 1.01]), scale_atoms=True)
    atoms.rattle(0.1, seed=3)
    atoms.calc = EIPNNCalculator(sw_soapnet, skin=0.0)
    assert_forces_and_stress_are_derivatives(atoms, stress_atol=1e-6, smallest_force=0.1)


def test_rotation_translation_and_permutation_invariance_and_extensivity(sw_soapnet):
    atoms = bulk("Si", "diamond", 5.431, cubic=True)
    atoms.rattle(0.1, seed=4)
    assert_invariant(atoms, EIPNNCalculator(sw_soapnet, skin=0.0), seed=6)
    assert_extensive(atoms, lambda: EIPNNCalculator(sw_soapnet))


def test_scripted_file_equals_eager_model(sw_soapnet):
    """The exact export is the eager model; the tabulated one is compared with it in
    test_tabulated.py."""
    module, metadata = load_model(sw_soapnet.with_name("sw_soapnet-exact.pt"), torch.device("cpu"))
    eager = build_potential(ModelSpec(**metadata.model["spec"])).double()
    eager.load_state_dict(module.state_dict())
    atoms = bulk("Si", "diamond", 5.431, cubic=True)
    atoms.rattle(0.1, seed=4)
    edge_index, shifts = build_edges(atoms, 5.0)
    arguments = (torch.tensor(edge_index), torch.tensor(shifts), torch.ones(8, dtype=torch.bool))
    species = torch.zeros(8, dtype=torch.int64)
    scripted = module(torch.tensor(atoms.positions), species, *arguments)
    reference = eager(torch.tensor(atoms.positions), species, *arguments)
    for key in ("energy", "forces", "virial"):
        torch.testing.assert_close(scripted[key], reference[key])


def test_nve_energy_drift(sw_soapnet):
    atoms = bulk("Si", "diamond", 5.431, cubic=True).repeat(2)  # 64 atoms
    thermalize_momenta(atoms, temperature_K=600, rng=np.random.default_rng(0))
    Stationary(atoms)
    atoms.calc = EIPNNCalculator(sw_soapnet, skin=1.0)
    totals, temperatures = [], []
    dyn = VelocityVerlet(atoms, timestep=1.0 * units.fs)
    dyn.attach(lambda: totals.append(atoms.get_total_energy()), 10)
    dyn.attach(lambda: temperatures.append(atoms.get_temperature()), 10)
    dyn.run(1000)  # 1 ps
    totals = np.array(totals) / len(atoms)
    assert np.abs(totals - totals[0]).max() < 1e-3  # eV/atom
    assert 150 < np.mean(temperatures[50:]) < 450  # a crystal that vibrates, not one that explodes



def nve_drift_of_random_model(path: Path, smooth_cutoff: bool, steps: int) -> float:
    """Max |E_total - E_total(0)| (eV/atom) of 64 atoms in a random SOAPNet, where atoms
    wander and pairs keep crossing the cutoff (unlike a crystal at 300 K)."""
    torch.manual_seed(0)
    spec = ModelSpec("soapnet", ["Si"], 5.0, dict(SMALL_SOAPNET, smooth_cutoff=smooth_cutoff))
    potential = build_potential(spec).double()
    cell = bulk("Si", "diamond", 5.431, cubic=True)
    cell.rattle(0.2, seed=0)
    cell.calc = SinglePointCalculator(cell, energy=0.0, forces=np.zeros((8, 3)))
    standardize_on(potential, batched([cell], 5.0))
    potential.scale.fill_(5.0)  # forces of a few tenths of eV/Å
    export_model(potential, spec, path)
    return nve_energy_drift(EIPNNCalculator(path, skin=1.0), 1000, steps)


def test_smooth_cutoff_conserves_energy_where_a_hard_one_does_not(tmp_path):
    # dscribe-style features truncated at the cutoff jump when a pair crosses it.
    smooth = nve_drift_of_random_model(tmp_path / "smooth.pt", smooth_cutoff=True, steps=200)
    hard = nve_drift_of_random_model(tmp_path / "hard.pt", smooth_cutoff=False, steps=200)
    assert smooth < 1e-4  # eV/atom
    assert hard > 100 * smooth


def test_kim_portable_model_equals_eipnn_calculator(sw_soapnet, tmp_path, monkeypatch):
    # The same file through the KIM API (ghost atoms as particles, no shifts) and ASE.
    pytest.importorskip("kimpy")
    cache = os.environ.get("EIPNN_KIM_DRIVER_CACHE", REPO / "build" / "kim-driver")
    for name, value in isolated_collection_environment(tmp_path, cache).items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)  # kim.log
    name = "eipnn_test_soapnet_Si"
    arguments = [str(sw_soapnet), name, "--output-dir", str(tmp_path / "packages"), "--install"]
    assert exporter.main(arguments) == 0
    atoms = bulk("Si", "diamond", 5.431, cubic=True)
    atoms.set_cell(atoms.cell.array @ np.diag([1.02, 0.99, 1.0]), scale_atoms=True)
    atoms.rattle(0.1, seed=5)
    reference, through_kim = atoms.copy(), atoms.copy()
    reference.calc = EIPNNCalculator(sw_soapnet)
    through_kim.calc = KIM(name)
    energy = reference.get_potential_energy()
    assert through_kim.get_potential_energy() == pytest.approx(energy, rel=1e-6)
    forces = reference.get_forces()
    atol = 1e-6 * np.abs(forces).max()
    np.testing.assert_allclose(through_kim.get_forces(), forces, rtol=0, atol=atol)
    stress = reference.get_stress()
    atol = 1e-6 * np.abs(stress).max()
    np.testing.assert_allclose(through_kim.get_stress(), stress, rtol=0, atol=atol)
