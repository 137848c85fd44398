"""CGCNN (training/models/cgcnn.py): the registry entry, and the physics checks every model
passes (finite-difference forces and stress, invariances, extensivity, the cutoff, NVE,
export equality, pruned layers); KIM equality is in test_kim.py."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from physics import (assert_by_length_equals_per_edge, assert_extensive, assert_forces_and_stress_are_derivatives,
                     assert_invariant, assert_smooth_through_the_cutoff, diamond_graph, strained_rattled_si,
                     nve_energy_drift)

from eipnn_calc import EIPNNCalculator, load_model, read_metadata
from eipnn_calc.neighbors import build_edges
from eipnn_training.export import export_model
from eipnn_training.models.build import ModelSpec, build_potential
from eipnn_training.models.cgcnn import CGCNN
from eipnn_training.models.tabulated import TabulatedCGCNN, tabulated

from models import batched, fit_energies_and_forces, sw_configurations

CUTOFF = 5.0
SMALL = {"num_features": 16, "num_layers": 3, "num_rbf": 16}
VARIANTS = {"gaussian": dict(SMALL), "layer_norm": dict(SMALL, norm="layer"),
            "bessel": dict(SMALL, radial_basis="bessel", num_rbf=8)}


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_the_paper_sizes_from_the_registry():
    cgcnn = build_potential(ModelSpec("cgcnn", ["Si"], CUTOFF)).representation
    assert isinstance(cgcnn, CGCNN)
    assert (cgcnn.num_features, cgcnn.num_layers, cgcnn.rbf.centers.numel()) == (128, 5, 128)
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in cgcnn.modules())


def test_settings_are_checked():
    with pytest.raises(ValueError, match="unknown norm 'batch'.*no BatchNorm"):
        CGCNN(1, norm="batch")
    with pytest.raises(ValueError, match="unknown radial_basis"):
        CGCNN(1, radial_basis="spline")
    with pytest.raises(ValueError, match="num_layers must be at least 1"):
        CGCNN(1, num_layers=0)


@pytest.mark.parametrize("name", list(VARIANTS))
@pytest.mark.parametrize("rattle", [0.0, 0.05])
def test_radial_terms_by_distinct_length_give_the_per_edge_model_and_gradients(rattle, name):
    """Training computes the envelope and every layer's radial term once per distinct edge
    length (with their slopes for forces): energies, forces and the weight gradients of
    energy and force losses are the per-edge model's."""
    torch.manual_seed(0)
    potential = build_potential(ModelSpec("cgcnn", ["Si"], CUTOFF, VARIANTS[name], 16)).double()
    potential.scale.fill_(20.0)
    assert_by_length_equals_per_edge(potential, *diamond_graph(rattle, CUTOFF))


@pytest.fixture(scope="module", params=list(VARIANTS))
def variant(request, tmp_path_factory):
    """(exported tabulated file, exported exact file, eager potential) of a random CGCNN,
    scaled so that forces are a few tenths of eV/Å."""
    torch.manual_seed(3)
    spec = ModelSpec("cgcnn", ["Si"], CUTOFF, VARIANTS[request.param], 16)
    potential = build_potential(spec).double()
    potential.atom_ref.fill_(-5.4)
    potential.scale.fill_(50.0)
    folder = tmp_path_factory.mktemp("cgcnn")
    export_model(potential, spec, folder / "tabulated.pt")
    export_model(potential, spec, folder / "exact.pt", exact=True)
    return folder / "tabulated.pt", folder / "exact.pt", potential


def test_forces_and_stress_are_derivatives(variant):
    path, _, _ = variant
    atoms = strained_rattled_si(0)
    atoms.calc = EIPNNCalculator(path, skin=0.0)
    assert_forces_and_stress_are_derivatives(atoms)


def test_rotation_translation_and_permutation_invariance(variant):
    path, _, _ = variant
    assert_invariant(strained_rattled_si(1), EIPNNCalculator(path, skin=0.0), seed=5)


def test_supercell_is_extensive(variant):
    path, _, _ = variant
    assert_extensive(strained_rattled_si(2), lambda: EIPNNCalculator(path))


def test_energy_and_force_go_smoothly_to_zero_at_the_cutoff(variant):
    """The hard Gaussian cut of the original CGCNN would leave a jump here."""
    path, _, _ = variant
    assert_smooth_through_the_cutoff(EIPNNCalculator(path, skin=0.0), CUTOFF)


def _inputs(atoms: Atoms):
    edge_index, shifts = build_edges(atoms, CUTOFF)
    return (torch.tensor(atoms.positions), torch.zeros(len(atoms), dtype=torch.int64), torch.tensor(edge_index),
            torch.tensor(shifts), torch.ones(len(atoms), dtype=torch.bool))


def test_the_exact_file_is_the_eager_model_and_the_tabulated_one_within_its_accuracy(variant):
    tabulated_path, exact_path, potential = variant
    module, metadata = load_model(exact_path, torch.device("cpu"))
    eager = build_potential(ModelSpec(**metadata.model["spec"])).double()
    eager.load_state_dict(module.state_dict())
    inputs = _inputs(strained_rattled_si(3))
    reference = potential(*inputs)
    for key in ("energy", "forces", "virial"):
        torch.testing.assert_close(module(*inputs)[key], reference[key], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(eager(*inputs)[key], reference[key], rtol=1e-12, atol=1e-12)
    assert "radial_table" in read_metadata(tabulated_path).model
    table, _ = load_model(tabulated_path, torch.device("cpu"))
    out = table(*inputs)
    assert abs(float(out["energy"] - reference["energy"])) / 8 < 1e-6
    assert float((out["forces"] - reference["forces"]).abs().max()) < 1e-5


@pytest.fixture(scope="module")
def sw_cgcnn():
    """A small CGCNN fitted to SW energies and forces near diamond: trained radial terms,
    and stable MD."""
    torch.manual_seed(2)
    spec = ModelSpec("cgcnn", ["Si"], CUTOFF, {"num_features": 32, "num_layers": 2, "num_rbf": 32}, 32)
    potential = build_potential(spec).double()
    fit_energies_and_forces(potential, batched(sw_configurations(24, 3), CUTOFF), steps=150)
    return spec, potential


def test_a_trained_cgcnn_is_tabulated_within_the_bound(sw_cgcnn):
    """The table within 1e-6 eV/atom and 1e-5 eV/Å of the network on rattled and strained cells."""
    _, potential = sw_cgcnn
    table = copy.deepcopy(potential)
    table.representation = tabulated(potential.representation, CUTOFF)
    assert isinstance(table.representation, TabulatedCGCNN)
    for seed in range(3):
        atoms = strained_rattled_si(seed).repeat((2, 1, 1))
        exact, tab = potential(*_inputs(atoms)), table(*_inputs(atoms))
        assert abs(float(tab["energy"] - exact["energy"])) / len(atoms) < 1e-6
        assert float((tab["forces"] - exact["forces"]).abs().max()) < 1e-5


def test_nve_of_a_trained_cgcnn_drifts_less_than_1_mev_per_atom(sw_cgcnn, tmp_path):
    """Issue 18's target on the SW-fitted model: 0.5 ps at 600 K, 64 atoms, tabulated file."""
    spec, potential = sw_cgcnn
    export_model(potential, spec, tmp_path / "sw_cgcnn.pt")
    assert nve_energy_drift(EIPNNCalculator(tmp_path / "sw_cgcnn.pt", skin=1.0), 600, 500) < 1e-3


def test_nve_conserves_energy_through_cutoff_crossings(tmp_path):
    """A random CGCNN at 1,000 K, where atoms wander and pairs keep crossing the cutoff: the
    total energy stays within 1e-4 eV/atom over 200 steps."""
    torch.manual_seed(3)
    spec = ModelSpec("cgcnn", ["Si"], CUTOFF, dict(SMALL), 16)
    potential = build_potential(spec).double()
    potential.scale.fill_(5.0)  # forces of a few tenths of eV/Å
    export_model(potential, spec, tmp_path / "random.pt")
    assert nve_energy_drift(EIPNNCalculator(tmp_path / "random.pt", skin=1.0), 1000, 200) < 1e-4
