"""GemNet-T (training/models/gemnet.py): the registry entry, and the physics checks every
model passes (finite-difference forces and stress, invariances, extensivity, both cutoffs,
NVE, export equality, batch equals single); KIM equality is in test_kim.py."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from physics import (assert_extensive, assert_forces_and_stress_are_derivatives, assert_invariant,
                     assert_smooth_through_the_cutoff, strained_rattled_si, nve_energy_drift)

from eipnn_calc import EIPNNCalculator, load_model
from eipnn_calc.neighbors import build_edges
from eipnn_training.export import export_model
from eipnn_training.models.build import ModelSpec, build_potential
from eipnn_training.models.gemnet import GemNet
from eipnn_training.models.layers import scatter_sum

from models import batched, fit_energies_and_forces, sw_configurations

CUTOFF, TRIPLET_CUTOFF = 5.0, 4.0
SMALL = {"num_blocks": 2, "atom_features": 16, "edge_features": 16, "triplet_features": 8, "rbf_features": 8,
         "cbf_features": 8, "bilinear_features": 8, "num_spherical": 4, "num_radial": 4,
         "num_atom_layers": 1, "triplet_cutoff_angstrom": TRIPLET_CUTOFF}
# "full": triplets over the whole cutoff; "chunked": a budget of a few triplets per chunk.
VARIANTS = {"triplet_cutoff": dict(SMALL), "full": dict(SMALL, triplet_cutoff_angstrom=None),
            "chunked": dict(SMALL, triplet_memory_mb=1e-3)}


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_the_paper_sizes_from_the_registry():
    gemnet = build_potential(ModelSpec("gemnet", ["Al"], CUTOFF)).representation
    assert isinstance(gemnet, GemNet)
    assert (len(gemnet.blocks), gemnet.num_features, gemnet.num_layers, gemnet.triplet_cutoff) == (4, 128, 5, 4.0)
    triplets = gemnet.blocks[0].triplets
    assert (triplets.triplet_features, triplets.num_spherical, gemnet.rbf.n.numel()) == (64, 7, 6)


def test_settings_are_checked():
    with pytest.raises(ValueError, match=r"triplet_cutoff_angstrom must be in \(0, cutoff = 5.0 Å\], got 6"):
        GemNet(1, 5.0, triplet_cutoff_angstrom=6.0)
    with pytest.raises(ValueError, match="num_blocks must be at least 1"):
        GemNet(1, num_blocks=0)
    with pytest.raises(ValueError, match="triplet_memory_mb must be positive"):
        GemNet(1, triplet_memory_mb=0)


def random_gemnet(hyperparameters: dict, seed: int = 3, scale: float = 200.0):
    torch.manual_seed(seed)
    spec = ModelSpec("gemnet", ["Si"], CUTOFF, dict(hyperparameters), 16)
    potential = build_potential(spec).double()
    potential.atom_ref.fill_(-5.4)
    potential.scale.fill_(scale)  # forces of a few tenths of eV/Å
    return spec, potential


@pytest.fixture(scope="module", params=list(VARIANTS))
def variant(request, tmp_path_factory):
    """(exported file, eager potential) of a random GemNet."""
    spec, potential = random_gemnet(VARIANTS[request.param])
    path = tmp_path_factory.mktemp("gemnet") / "gemnet.pt"
    export_model(potential, spec, path)
    return path, potential


def test_forces_and_stress_are_derivatives(variant):
    path, _ = variant
    atoms = strained_rattled_si(0)
    atoms.calc = EIPNNCalculator(path, skin=0.0)
    assert_forces_and_stress_are_derivatives(atoms)


def test_rotation_translation_and_permutation_invariance(variant):
    path, _ = variant
    assert_invariant(strained_rattled_si(1), EIPNNCalculator(path, skin=0.0), seed=5)


def test_supercell_is_extensive(variant):
    path, _ = variant
    assert_extensive(strained_rattled_si(2), lambda: EIPNNCalculator(path))


def test_energy_and_force_go_smoothly_to_zero_at_the_cutoff(variant):
    path, _ = variant
    assert_smooth_through_the_cutoff(EIPNNCalculator(path, skin=0.0), CUTOFF)


def trimer_energy_and_force(calc, r: float) -> tuple[float, float]:
    """Atom 2 pulled along a line from atom 0, 110° from the bond 0-1 (2.35 Å): the pair
    0-2 crosses the triplet cutoff at r = 4 Å while 1-2 stays inside the cutoff."""
    theta = np.radians(110.0)
    atoms = Atoms("Si3", positions=[[0, 0, 0], [2.35, 0, 0], [r * np.cos(theta), r * np.sin(theta), 0]])
    atoms.calc = calc
    forces = atoms.get_forces()
    direction = np.array([np.cos(theta), np.sin(theta), 0.0])
    return atoms.get_potential_energy(), float(forces[2] @ direction)


def test_energy_and_force_are_continuous_where_a_pair_leaves_the_triplet_cutoff(tmp_path):
    """The triplet terms switch off at 4 Å with their value and slope. The triplet part of
    the energy is that of the model less that of the same weights with the bilinear layers
    zeroed (no triplet message at all); without the triplet envelope it would jump at 4 Å."""
    calcs = []
    for amplitude in (30.0, 0.0):
        spec, potential = random_gemnet(SMALL, scale=800.0)
        with torch.no_grad():
            for block in potential.representation.blocks:
                block.triplets.bilinear.mul_(amplitude)
        export_model(potential, spec, tmp_path / f"gemnet{amplitude}.pt")
        calcs.append(EIPNNCalculator(tmp_path / f"gemnet{amplitude}.pt", skin=0.0))

    def triplet_part(r: float) -> np.ndarray:
        (energy, force), (pair_energy, pair_force) = (trimer_energy_and_force(calc, r) for calc in calcs)
        return np.array([energy - pair_energy, force - pair_force])

    far_inside, inside, outside = (triplet_part(r) for r in (TRIPLET_CUTOFF - 0.6, TRIPLET_CUTOFF - 1e-4,
                                                               TRIPLET_CUTOFF + 1e-4))
    assert abs(far_inside[0]) > 1e-5 and abs(far_inside[1]) > 1e-5  # a test of something
    assert abs(inside[0] - outside[0]) < 1e-3 * abs(far_inside[0])
    assert abs(inside[1] - outside[1]) < 1e-2 * abs(far_inside[1])


def _inputs(atoms: Atoms):
    edge_index, shifts = build_edges(atoms, CUTOFF)
    return (torch.tensor(atoms.positions), torch.zeros(len(atoms), dtype=torch.int64), torch.tensor(edge_index),
            torch.tensor(shifts), torch.ones(len(atoms), dtype=torch.bool))


def test_the_exported_file_is_the_eager_model(variant):
    path, potential = variant
    module, _ = load_model(path, torch.device("cpu"))
    inputs = _inputs(strained_rattled_si(3))
    reference = potential(*inputs)
    scripted = module(*inputs)
    for key in ("energy", "forces", "virial"):
        torch.testing.assert_close(scripted[key], reference[key], rtol=1e-12, atol=1e-12)


def test_the_memory_budget_changes_nothing_but_the_chunks():
    """Energies, forces and the weight gradient of a force loss (a double backward) are the
    same with one triplet per chunk, with one chunk, and through plain autograd."""
    _, potential = random_gemnet(SMALL)
    data = batched(sw_configurations(2, 0), CUTOFF)
    species = torch.zeros_like(data["batch"])

    def step() -> tuple[torch.Tensor, list[torch.Tensor]]:
        atomic = potential.atomic_energies(data["positions"], species, data["edge_index"], data["edge_shift"])
        energy = scatter_sum(atomic[:, 0], data["batch"], 2)
        forces = -torch.autograd.grad(energy.sum(), data["positions"], create_graph=True)[0]
        loss = ((energy - data["energy"]) ** 2).mean() + ((forces - data["forces"]) ** 2).mean()
        return torch.cat([energy, forces.flatten()]).detach(), torch.autograd.grad(loss, list(potential.parameters()))

    results = []
    for memory_mb, bounded in ((1e-6, True), (1e4, True), (1e4, False)):
        for block in potential.representation.blocks:
            block.triplets.memory_mb, block.triplets.bounded = memory_mb, bounded
        results.append(step())
    assert potential.representation.blocks[0].triplets.chunk(torch.zeros(1, dtype=torch.float64)) > 1000
    for values, gradients in results[1:]:
        torch.testing.assert_close(values, results[0][0], rtol=1e-12, atol=1e-12)
        for a, b in zip(gradients, results[0][1]):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_a_batch_is_its_configurations_one_by_one():
    _, potential = random_gemnet(SMALL)
    configurations = [strained_rattled_si(4), strained_rattled_si(5).repeat((1, 1, 2))]
    for atoms in configurations:  # ``batched`` reads labels
        atoms.calc = SinglePointCalculator(atoms, energy=0.0, forces=np.zeros((len(atoms), 3)))
    data = batched(configurations, CUTOFF)
    atomic = potential.atomic_energies(data["positions"], torch.zeros_like(data["batch"]), data["edge_index"],
                                       data["edge_shift"])
    together = scatter_sum(atomic[:, 0], data["batch"], 2)
    for k, atoms in enumerate(configurations):
        alone = potential(*_inputs(atoms))["energy"]
        torch.testing.assert_close(together[k].detach(), alone, rtol=1e-12, atol=1e-12)


def test_a_gemnet_learns_sw_forces():
    """Force training (the bounded double backward) brings the force error down."""
    torch.manual_seed(2)
    spec = ModelSpec("gemnet", ["Si"], CUTOFF, dict(SMALL), 16)
    potential = build_potential(spec).double()
    data = batched(sw_configurations(8, 3), CUTOFF)

    def force_rmse() -> float:
        atomic = potential.atomic_energies(data["positions"], torch.zeros_like(data["batch"]), data["edge_index"],
                                           data["edge_shift"])
        forces = -torch.autograd.grad(atomic.sum(), data["positions"])[0]
        return float(((forces - data["forces"]) ** 2).mean().sqrt())

    before = force_rmse()
    fit_energies_and_forces(potential, data, steps=60)
    assert force_rmse() < 0.5 * before


def test_nve_conserves_energy_through_cutoff_crossings(tmp_path):
    """A random GemNet at 1,000 K, where pairs keep crossing both cutoffs: the total energy
    stays within 1e-4 eV/atom over 200 steps."""
    spec, potential = random_gemnet(SMALL)
    export_model(potential, spec, tmp_path / "random.pt")
    assert nve_energy_drift(EIPNNCalculator(tmp_path / "random.pt", skin=1.0), 1000, 200) < 1e-4
