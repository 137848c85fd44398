"""SchNet: its radial bases (the paper's Gaussians at the DGL width, the old narrow width,
Bessel functions) and envelopes; the physics checks for each basis; old weights that keep
their width; and the energy-only path (filters once per distinct edge length) against the
general path (filters per edge)."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from physics import (assert_by_length_equals_per_edge, assert_extensive, assert_forces_and_stress_are_derivatives,
                     assert_invariant, assert_smooth_through_the_cutoff, diamond_graph, strained_rattled_si)

from eipnn_calc import EIPNNCalculator, load_model
from eipnn_calc.neighbors import build_edges
from eipnn_training.cli.export import export_run
from eipnn_training.config import config_from_dict, save_config
from eipnn_training.export import export_model
from eipnn_training.models.build import ModelSpec, build_potential
from eipnn_training.models.layers import BesselRBF, CosineCutoff, GaussianRBF, PolynomialCutoff
from eipnn_training.models.schnet import SchNet

CUTOFF = 4.0
SMALL = {"num_features": 16, "num_interactions": 3, "num_rbf": 16}
SPEC = ModelSpec("schnet", ["Si"], CUTOFF, SMALL, 16)
# The radial bases every physics check runs with: the paper's default, the old narrow
# width, and the smooth basis (its own default of 16 functions and polynomial envelope).
BASES = {
    "gaussian_dgl": {"num_features": 16, "num_interactions": 2, "num_rbf": 32},
    "gaussian_spacing": {"num_features": 16, "num_interactions": 2, "num_rbf": 32, "rbf_width": "spacing"},
    "bessel": {"num_features": 16, "num_interactions": 2, "radial_basis": "bessel"},
}


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Small models on a shared machine: one intra-op thread; restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _energy(potential, atoms: Atoms, cutoff: float = 5.0) -> float:
    """The energy (eV) of ``atoms`` from a one-species potential, energy-only path."""
    edge_index, shifts = build_edges(atoms, cutoff)
    with torch.no_grad():
        atomic = potential.atomic_energies(torch.tensor(atoms.positions), torch.zeros(len(atoms), dtype=torch.long),
                                           torch.tensor(edge_index), torch.tensor(shifts))
    return float(atomic.sum())


# --- the bases themselves -------------------------------------------------------------


def test_the_default_gaussian_width_is_dgl_lifescis_rbf_expansion():
    """exp(-(1/gap)(d - mu)^2) with mu = linspace(0, r_c, K) and gap = mu_1 - mu_0, as
    DGL-LifeSci's RBFExpansion computes it (numpy, float64)."""
    rbf = SchNet(1, 5.0).rbf
    assert isinstance(rbf, GaussianRBF) and rbf.width == "dgl" and rbf.centers.shape == (128,)
    mu = np.linspace(0.0, 5.0, 128)
    gap = mu[1] - mu[0]
    d = np.array([0.0, 0.37, 2.35, 3.84, 4.4, 4.999])
    reference = np.exp(-(1.0 / gap) * (d[:, None] - mu) ** 2)
    ours = rbf.double()(torch.tensor(d)).numpy()
    # The buffers are float32 (the model's default dtype when built): -1/gap and mu to
    # float32 rounding, and the formula exactly with those constants ...
    assert rbf.coefficient.item() == pytest.approx(-1.0 / gap, rel=1e-7)
    np.testing.assert_allclose(rbf.centers.numpy(), mu, rtol=0, atol=1e-6)
    exact = np.exp(rbf.coefficient.item() * (d[:, None] - rbf.centers.numpy()) ** 2)
    exact[exact < math.exp(-80.0)] = 0.0  # no subnormal floats (GaussianRBF.forward)
    np.testing.assert_allclose(ours, exact, rtol=1e-12, atol=0)
    # ... so DGL's float64 values to within what float32 constants allow.
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-12)
    # A Gaussian is 1 at its centre and exp(-gap) = 0.9613 at the next one (DGL's sigma =
    # sqrt(gap/2) = 0.14 Å); at the old width exp(-1/2) there (sigma = gap = 0.039 Å).
    at_centres = rbf(torch.tensor([float(mu[60]), float(mu[61])], dtype=torch.float64))
    assert at_centres[0, 60].item() == pytest.approx(1.0, abs=1e-6)
    assert at_centres[1, 60].item() == pytest.approx(math.exp(-gap), rel=1e-6)
    narrow = GaussianRBF(128, 5.0, "spacing").double()
    assert narrow(torch.tensor([float(mu[61])], dtype=torch.float64))[0, 60].item() == pytest.approx(math.exp(-0.5), rel=1e-5)
    assert not np.allclose(narrow(torch.tensor(d)).numpy(), reference, rtol=1e-2)


def test_width_and_basis_names_are_checked():
    with pytest.raises(ValueError, match="unknown Gaussian width 'wide'; known: dgl, spacing"):
        SchNet(1, 5.0, rbf_width="wide")
    with pytest.raises(ValueError, match="unknown radial_basis 'sine'; known: bessel, gaussian"):
        SchNet(1, 5.0, radial_basis="sine")
    with pytest.raises(ValueError, match="unknown envelope 'hard'; known: cosine, polynomial"):
        SchNet(1, 5.0, envelope="hard")
    with pytest.raises(ValueError, match="rbf_width 'spacing' is a width of the gaussian basis"):
        SchNet(1, 5.0, radial_basis="bessel", rbf_width="spacing")


def test_each_basis_brings_its_defaults():
    gaussian, bessel = SchNet(1, 5.0), SchNet(1, 5.0, radial_basis="bessel")
    assert isinstance(gaussian.envelope, CosineCutoff) and gaussian.interactions[0].filter_net[0].in_features == 128
    assert isinstance(bessel.rbf, BesselRBF) and isinstance(bessel.envelope, PolynomialCutoff)
    assert bessel.interactions[0].filter_net[0].in_features == 16
    mixed = SchNet(1, 5.0, num_rbf=8, radial_basis="bessel", envelope="cosine")
    assert isinstance(mixed.envelope, CosineCutoff) and mixed.rbf.n.shape == (8,)


def test_bessel_functions_are_sin_over_r():
    r = torch.tensor([1e-8, 0.5, 2.35, 3.9, 5.0], dtype=torch.float64)
    values = BesselRBF(8, 5.0).double()(r)
    n = torch.arange(1, 9, dtype=torch.float64)
    x = r[:, None] / 5.0
    expected = torch.sin(n * math.pi * x) / x  # sin(n pi r / r_c) / r in units of r_c
    torch.testing.assert_close(values[1:], expected[1:], rtol=1e-12, atol=1e-12)
    # The r -> 0 limit, n pi, not 0/0.
    torch.testing.assert_close(values[0], n * math.pi, rtol=1e-12, atol=0.0)
    assert values[-1].abs().max().item() < 1e-13  # every function is 0 at r_c
    assert BesselRBF(8, 4.0).double()(torch.tensor([4.0], dtype=torch.float64)).abs().max().item() < 1e-13


def _derivatives(function, r: float, order: int) -> list[float]:
    """function(r) and its first ``order`` derivatives by autograd, summed over outputs."""
    x = torch.tensor([r], dtype=torch.float64, requires_grad=True)
    value = function(x).sum()
    out = [value.item()]
    for _ in range(order):
        (value,) = torch.autograd.grad(value, x, create_graph=True)
        value = value.sum()
        out.append(value.item())
    return out


def test_bessel_basis_times_its_envelope_vanishes_with_slope_and_curvature_at_the_cutoff():
    cutoff = 5.0
    bessel, polynomial, cosine = BesselRBF(16, cutoff).double(), PolynomialCutoff(cutoff).double(), CosineCutoff(cutoff).double()
    enveloped = lambda r: bessel(r) * polynomial(r).unsqueeze(-1)  # noqa: E731
    inside = _derivatives(enveloped, 3.0, 2)
    assert min(abs(v) for v in inside) > 1e-2  # not zero where it should not be
    for epsilon in (1e-2, 1e-3):
        near = _derivatives(enveloped, cutoff - epsilon, 2)
        # value ~ eps^4, slope ~ eps^3, curvature ~ eps^2 (times the basis' size)
        bounds = [100 * epsilon**4, 100 * epsilon**3, 100 * epsilon**2]
        assert all(abs(v) < bound for v, bound in zip(near, bounds)), (epsilon, near)
    # The polynomial envelope alone: 1 with no slope at r = 0; at r_c - eps its value,
    # slope and curvature go as eps^3, eps^2 and eps.
    assert _derivatives(polynomial, 0.0, 1) == pytest.approx([1.0, 0.0], abs=1e-12)
    value, slope, curvature = _derivatives(polynomial, cutoff - 1e-4, 2)
    assert abs(value) < 1e-9 and abs(slope) < 1e-6 and abs(curvature) < 1e-2
    # The checks can fail: the cosine envelope keeps a curvature of pi^2 / (2 r_c^2) there,
    # and the bare Bessel functions a slope.
    assert _derivatives(cosine, cutoff - 1e-4, 2)[2] == pytest.approx(math.pi**2 / (2 * cutoff**2), rel=1e-6)
    assert abs(_derivatives(bessel, cutoff - 1e-2, 1)[1]) > 100 * 100 * 1e-2**3


def test_polynomial_envelope_falls_monotonically_from_one_to_zero():
    r = torch.linspace(0.0, 5.0, 501, dtype=torch.float64)
    u = PolynomialCutoff(5.0).double()(r)
    assert u[0].item() == 1.0 and u[-1].item() == 0.0
    assert bool((u.diff() <= 1e-15).all())
    assert u[250].item() == pytest.approx(1 - 28 / 2**6 + 48 / 2**7 - 21 / 2**8, rel=1e-12)


@pytest.mark.parametrize("basis", BASES)
def test_filters_and_their_slope_vanish_at_the_cutoff(basis):
    """W(r) = filter_net(basis(r)) * envelope(r), what a neighbour contributes: 0 with its
    slope at r_c for every basis (the filter network has biases, so the envelope of the
    filters, not the basis, is what makes the energy smooth)."""
    torch.manual_seed(0)
    schnet = SchNet(1, 5.0, **BASES[basis]).double()

    def filters(r: torch.Tensor) -> torch.Tensor:
        return schnet.interactions[0].filter_net(schnet.rbf(r)) * schnet.envelope(r).unsqueeze(-1)

    assert abs(_derivatives(filters, 4.0, 1)[0]) > 1e-3
    value, slope = _derivatives(filters, 5.0 - 1e-5, 1)
    assert abs(value) < 1e-6 and abs(slope) < 1e-3


# --- the physics checks, for every basis -------------------------------------------------


@pytest.fixture(scope="module", params=list(BASES))
def basis_model(request, tmp_path_factory):
    """(name, exported float64 model file, eager potential) of a random SchNet of a basis,
    scaled so that forces are a few tenths of eV/Å."""
    torch.manual_seed(1)
    spec = ModelSpec("schnet", ["Si"], 5.0, dict(BASES[request.param]), 16)
    potential = build_potential(spec).double()
    potential.atom_ref.fill_(-5.4)
    potential.scale.fill_(20.0)
    folder = tmp_path_factory.mktemp("bases")
    path = folder / f"{request.param}.pt"
    export_model(potential, spec, path)  # the filters tabulated: what users run
    export_model(potential, spec, folder / f"{request.param}-exact.pt", exact=True)
    return request.param, path, potential


def test_forces_and_stress_are_derivatives(basis_model):
    _, path, _ = basis_model
    atoms = strained_rattled_si(0)
    atoms.calc = EIPNNCalculator(path, skin=0.0)
    assert_forces_and_stress_are_derivatives(atoms)


def test_rotation_translation_and_permutation_invariance(basis_model):
    _, path, _ = basis_model
    assert_invariant(strained_rattled_si(1), EIPNNCalculator(path, skin=0.0), seed=5)


def test_supercell_is_extensive(basis_model):
    _, path, _ = basis_model
    assert_extensive(strained_rattled_si(2), lambda: EIPNNCalculator(path))


def test_energy_and_force_go_smoothly_to_zero_at_the_cutoff(basis_model):
    _, path, _ = basis_model
    assert_smooth_through_the_cutoff(EIPNNCalculator(path, skin=0.0), 5.0)


def test_scripted_file_equals_eager_model(basis_model):
    """The exact export (``--exact``) is the eager network; the tabulated one is compared
    with it in test_tabulated.py."""
    _, path, potential = basis_model
    module, metadata = load_model(path.with_name(path.stem + "-exact.pt"), torch.device("cpu"))
    eager = build_potential(ModelSpec(**metadata.model["spec"])).double()
    eager.load_state_dict(module.state_dict())
    atoms = strained_rattled_si(3)
    edge_index, shifts = build_edges(atoms, 5.0)
    arguments = (torch.zeros(8, dtype=torch.int64), torch.tensor(edge_index), torch.tensor(shifts),
                 torch.ones(8, dtype=torch.bool))
    scripted = module(torch.tensor(atoms.positions), *arguments)
    for reference in (eager(torch.tensor(atoms.positions), *arguments),
                      potential(torch.tensor(atoms.positions), *arguments)):
        for key in ("energy", "forces", "virial"):
            torch.testing.assert_close(scripted[key], reference[key], rtol=1e-12, atol=1e-12)


# --- E(a) of diamond: the narrow Gaussians wiggle ------------------------------------------

LATTICE = np.linspace(5.0, 6.0, 101)  # Å


def _roughness(energies: np.ndarray) -> tuple[int, float]:
    """(local minima, max deviation from a quartic fit / the energy range) of E(a)."""
    steps = np.diff(energies)
    minima = int(np.sum((steps[:-1] < 0) & (steps[1:] > 0)))
    fit = np.polyval(np.polyfit(LATTICE, energies, 4), LATTICE)
    return minima, float(np.abs(energies - fit).max() / np.ptp(energies))


def _lattice_roughness(hyperparameters: dict, seeds: range) -> tuple[int, float]:
    """Local minima summed, and the median relative deviation, over randomly initialised
    SchNets (one per seed) of E(a) of diamond Si from 5.0 to 6.0 Å on 101 points."""
    cells = [bulk("Si", "diamond", a) for a in LATTICE]
    minima, deviations = 0, []
    for seed in seeds:
        torch.manual_seed(seed)
        spec = ModelSpec("schnet", ["Si"], 5.0, {"num_features": 16, "num_interactions": 2, **hyperparameters}, 16)
        potential = build_potential(spec).double()
        m, deviation = _roughness(np.array([_energy(potential, cell) for cell in cells]))
        minima += m
        deviations.append(deviation)
    return minima, float(np.median(deviations))


def test_wide_gaussians_and_bessel_functions_give_a_smoother_lattice_curve():
    """The paper's 128 Gaussians at the old narrow width (sigma = gap = 0.039 Å) make E(a)
    of a random SchNet wiggle (24 minima in 10 models, 18 % of the range off a quartic); at
    the DGL width (sigma 0.14 Å: 5 minima, 4 %) or in 16 Bessel functions (8, 6 %) much less."""
    seeds = range(10)
    narrow = _lattice_roughness({"num_rbf": 128, "rbf_width": "spacing"}, seeds)
    for wide in ({"num_rbf": 128}, {"radial_basis": "bessel"}):
        smooth = _lattice_roughness(wide, seeds)
        assert narrow[0] >= 2.5 * smooth[0] and narrow[1] > 2.5 * smooth[1], (narrow, smooth, wide)


# --- old weights keep their width ----------------------------------------------------------

OLD_HYPERPARAMETERS = {"num_features": 16, "num_interactions": 2, "num_rbf": 32}  # no width key


def _old_potential(seed: int):
    """A potential as eipnn built it before the DGL default: the narrow width."""
    torch.manual_seed(seed)
    return build_potential(ModelSpec("schnet", ["Si"], 5.0, dict(OLD_HYPERPARAMETERS, rbf_width="spacing"), 16))


def test_old_weights_keep_their_width_when_loaded_into_the_new_default():
    old = _old_potential(0).double()
    old.atom_ref.fill_(-5.4)
    state = old.state_dict()
    # The names an old checkpoint holds: the loader below needs nothing else.
    assert {k for k in state if ".rbf." in k or ".envelope." in k} == {
        "representation.rbf.centers", "representation.rbf.coefficient", "representation.envelope.cutoff"}
    atoms = strained_rattled_si(4)
    new = build_potential(ModelSpec("schnet", ["Si"], 5.0, dict(OLD_HYPERPARAMETERS), 16)).double()
    with pytest.warns(UserWarning, match="set rbf_width: spacing in their config"):
        new.load_state_dict(state)
    assert new.representation.rbf.coefficient.item() == pytest.approx(-0.5 * (31 / 5.0) ** 2, rel=1e-6)
    assert _energy(new, atoms) == pytest.approx(_energy(old, atoms), rel=1e-14)
    # The check can fail: the same weights at the DGL width give another energy.
    state["representation.rbf.coefficient"] = new.representation.rbf.coefficient.new_tensor(-31 / 5.0)
    new.load_state_dict(state)
    assert abs(_energy(new, atoms) - _energy(old, atoms)) > 1e-3
    # Weights of the width the model is built with load without a warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        new.load_state_dict(new.state_dict())


def test_an_old_run_folder_re_exports_to_the_same_network(tmp_path):
    """A run folder written before the DGL default (its config has no rbf_width, its
    checkpoint the narrow coefficient) re-exports, by eipnn-export's code, to the network it
    trained: the state dict restores the width; the warning says what happened."""
    old = _old_potential(7)
    old.atom_ref.fill_(-5.4)
    run = tmp_path / "runs" / "old"
    (run / "checkpoints").mkdir(parents=True)
    save_config(config_from_dict({"name": "old", "runs_dir": str(tmp_path / "runs"), "seed": 7, "model": {
        "species": ["Si"], "hyperparameters": dict(OLD_HYPERPARAMETERS), "head_hidden": 16}}), run / "config.yaml")
    torch.save({"model": old.state_dict()}, run / "checkpoints" / "best.pt")
    with pytest.warns(UserWarning, match="the loaded Gaussian width"):
        path = export_run(run, exact=True)
    atoms = strained_rattled_si(5)
    atoms.calc = EIPNNCalculator(path)
    # float32 weights run in float64: the same network to float64 precision.
    assert atoms.get_potential_energy() == pytest.approx(_energy(old.double(), atoms), rel=1e-12)


# --- the energy-only path ---------------------------------------------------------------


@pytest.mark.parametrize("basis", [{}, {"rbf_width": "spacing"}, {"radial_basis": "bessel", "num_rbf": 8}],
                         ids=["gaussian_dgl", "gaussian_spacing", "bessel"])
@pytest.mark.parametrize("rattle", [0.0, 0.05])
def test_filters_by_distinct_length_give_the_per_edge_model_and_gradients(rattle, basis):
    """Training computes the filters once per distinct length, with their slopes by
    forward-mode differentiation when forces are asked for (issue 16): energies, forces and
    the weight gradients of energy and force losses equal those of the filter network on
    every edge. rattle 0: many pairs of one length, each with its own derivative."""
    torch.manual_seed(0)
    potential = build_potential(ModelSpec("schnet", ["Si"], CUTOFF, dict(SMALL, **basis), 16)).double()
    potential.scale.fill_(20.0)
    positions, edge_index, edge_shift = diamond_graph(rattle, CUTOFF)
    _, _, lengths = potential.edge_geometry(positions, edge_index, edge_shift)
    # Every edge has a twin of the same length, so there is work to save.
    assert len(torch.unique(lengths)) <= lengths.shape[0] // 2
    assert_by_length_equals_per_edge(potential, positions, edge_index, edge_shift)


def test_a_wrong_length_table_would_be_seen():
    """The comparison above can fail: the table rows shuffled give another energy."""
    torch.manual_seed(0)
    potential = build_potential(SPEC).double()
    positions, edge_index, edge_shift = diamond_graph(0.05, CUTOFF)
    _, _, lengths = potential.edge_geometry(positions, edge_index, edge_shift)
    schnet = potential.representation
    x = schnet.embedding(torch.zeros(len(positions), dtype=torch.long))
    right = schnet._by_length(x, edge_index, lengths).sum().item()
    real_unique = torch.unique

    def shuffled_unique(values, return_inverse=False):
        distinct, ids = real_unique(values, return_inverse=True)
        return distinct, (ids + 1) % len(distinct)

    torch.unique = shuffled_unique
    try:
        wrong = schnet._by_length(x, edge_index, lengths).sum().item()
    finally:
        torch.unique = real_unique
    assert abs(wrong - right) > 1e-6


@pytest.mark.parametrize("basis", [{}, {"radial_basis": "bessel", "num_rbf": 8}], ids=["gaussian_dgl", "bessel"])
def test_exported_forces_match_finite_differences_on_a_crystal_with_equal_lengths(basis):
    """Equal lengths of different pairs must not share a derivative: the exported model
    (positions require a gradient there) gets forces from the per-edge path."""
    torch.manual_seed(0)
    potential = torch.jit.script(build_potential(ModelSpec("schnet", ["Si"], CUTOFF, dict(SMALL, **basis), 16)).double())
    positions, edge_index, edge_shift = diamond_graph(0.0, CUTOFF)
    positions[0, 0] += 0.03  # a nonzero force on atom 0 in an otherwise perfect crystal
    mask = torch.ones(len(positions), dtype=torch.bool)
    species = torch.zeros(len(positions), dtype=torch.long)
    forces = potential(positions.clone(), species, edge_index, edge_shift, mask)["forces"]
    assert forces[0].abs().max().item() > 1e-4
    step = 1e-5
    for axis in range(3):
        plus, minus = positions.clone(), positions.clone()
        plus[0, axis] += step
        minus[0, axis] -= step
        e_plus = potential(plus, species, edge_index, edge_shift, mask)["energy"].item()
        e_minus = potential(minus, species, edge_index, edge_shift, mask)["energy"].item()
        assert forces[0, axis].item() == pytest.approx(-(e_plus - e_minus) / (2 * step), abs=1e-7)


@pytest.mark.parametrize("width", ["dgl", "spacing"])
def test_the_gaussian_basis_has_no_subnormal_values(width):
    """Subnormal floats make every operation that touches them ~30x slower on x86 (issue 16):
    the basis gives zeros instead, and differs from the exact Gaussians by less than 1e-34."""
    from eipnn_training.models.layers import GaussianRBF

    basis = GaussianRBF(128, 5.0, width)
    distances = torch.linspace(0.0, 5.0, 20001)
    values = basis(distances)
    tiny = torch.finfo(torch.float32).tiny
    assert not bool(((values != 0) & (values.abs() < tiny)).any())
    exact = torch.exp(basis.coefficient.double() * (distances.double().unsqueeze(1) - basis.centers.double()) ** 2)
    computed = basis.double()(distances.double())
    zeroed = computed == 0
    assert float(exact[zeroed].max()) < 1.9e-35  # only what is below e^-80 became 0
    assert torch.allclose(computed[~zeroed], exact[~zeroed], rtol=1e-12, atol=0.0)
    assert bool((exact < tiny).any() & (exact > 0).any())  # the band is there to be zeroed
