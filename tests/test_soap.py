"""The torch SOAP descriptor: agreement with dscribe, derivatives, smooth cutoff, scripting."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from dscribe.descriptors import SOAP as DscribeSOAP

from eipnn_calc.neighbors import build_edges
from eipnn_training.models.soap import (
    SOAP,
    SOAPSettingsError,
    dscribe_cutoff_angstrom,
    gto_basis,
    power_spectrum_size,
)

PAPER = {"r_cut": 5.0, "n_max": 8, "l_max": 6, "sigma": 1.0}


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Two spinning intra-op threads on a shared 2-core machine make these small tensors
    many times slower than one; restore the setting afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def edges_of(atoms: Atoms, species: list[str], cutoff: float, dtype=torch.float64):
    edge_index, shifts = build_edges(atoms, cutoff)
    positions = torch.tensor(atoms.positions, dtype=dtype)
    edge_index = torch.tensor(edge_index)
    shifts = torch.tensor(shifts, dtype=dtype)
    vectors = positions[edge_index[1]] - positions[edge_index[0]] + shifts
    kinds = torch.tensor([species.index(s) for s in atoms.get_chemical_symbols()])
    return kinds, edge_index, vectors


def ours_like_dscribe(atoms: Atoms, species: list[str]) -> np.ndarray:
    cutoff = dscribe_cutoff_angstrom(PAPER["r_cut"], PAPER["sigma"])
    soap = SOAP(len(species), PAPER["r_cut"], PAPER["n_max"], PAPER["l_max"], PAPER["sigma"],
                cutoff_angstrom=cutoff, smooth_cutoff=False)
    kinds, edge_index, vectors = edges_of(atoms, species, cutoff)
    return soap(kinds, edge_index, vectors, vectors.norm(dim=1)).numpy()


def dscribe_features(atoms: Atoms, species: list[str]) -> np.ndarray:
    reference = DscribeSOAP(
        species=species, r_cut=PAPER["r_cut"], n_max=PAPER["n_max"], l_max=PAPER["l_max"],
        sigma=PAPER["sigma"], periodic=bool(atoms.pbc.any()),
    )
    return reference.create(atoms)


def random_si_cell(seed: int) -> Atoms:
    rng = np.random.default_rng(seed)
    atoms = bulk("Si", "diamond", 5.431, cubic=True).repeat((2, 1, 1))
    atoms.set_cell(atoms.cell.array @ (np.eye(3) + rng.normal(0, 0.05, (3, 3))), scale_atoms=True)
    atoms.positions += rng.normal(0, 0.3, atoms.positions.shape)
    return atoms


def random_si_cluster(seed: int) -> Atoms:
    rng = np.random.default_rng(seed)
    positions = rng.uniform(0, 7.0, (12, 3))
    return Atoms("Si12", positions=positions + 40.0)  # far from the origin on purpose


def random_agau(seed: int) -> Atoms:
    rng = np.random.default_rng(seed)
    atoms = bulk("Ag", "fcc", 4.11, cubic=True).repeat((2, 1, 1))
    atoms.symbols[rng.permutation(len(atoms))[:3]] = "Au"
    atoms.positions += rng.normal(0, 0.15, atoms.positions.shape)
    return atoms


def relative_error(ours: np.ndarray, reference: np.ndarray) -> float:
    # Relative to each atom's largest feature: many features are legitimately ~0.
    scale = np.abs(reference).max(axis=1, keepdims=True)
    return float(np.max(np.abs(ours - reference) / scale))


@pytest.mark.parametrize(
    "atoms, species",
    [
        (random_si_cell(1), ["Si"]),
        (random_si_cell(2), ["Si"]),
        (bulk("Si", "diamond", 5.431), ["Si"]),  # 2-atom primitive cell, far below the cutoff
        (random_si_cluster(3), ["Si"]),
        (random_agau(4), ["Ag", "Au"]),
    ],
    ids=["si-periodic-1", "si-periodic-2", "si-primitive", "si-open", "agau-periodic"],
)
def test_features_equal_dscribe(atoms, species):
    ours, reference = ours_like_dscribe(atoms, species), dscribe_features(atoms, species)
    assert ours.shape == reference.shape == (len(atoms), power_spectrum_size(len(species), 8, 6))
    assert relative_error(ours, reference) < 1e-5


def test_paper_settings_give_252_features():
    assert SOAP(1, 5.0).num_features == 252
    reference = DscribeSOAP(species=["Ag", "Au"], r_cut=5.0, n_max=8, l_max=6)
    assert SOAP(2, 5.0).num_features == reference.get_number_of_features()


def test_gto_basis_is_orthonormal():
    alphas, betas = gto_basis(5.0, 8, 6)
    r = np.linspace(0.0, 30.0, 60001)
    for l in (0, 3, 6):
        primitives = r[None, :] ** l * np.exp(-alphas[l][:, None] * r[None, :] ** 2)
        basis = betas[l] @ primitives
        overlap = np.trapezoid(basis[:, None, :] * basis[None, :, :] * r**2, r, axis=2)
        np.testing.assert_allclose(overlap, np.eye(8), atol=1e-6)


def test_species_order_is_the_models():
    # The model's species order defines the channels: swapping it permutes feature blocks.
    atoms = random_agau(5)
    soap = SOAP(2, 5.0, smooth_cutoff=False, cutoff_angstrom=6.0)
    kinds, edge_index, vectors = edges_of(atoms, ["Ag", "Au"], 6.0)
    forward = soap(kinds, edge_index, vectors, vectors.norm(dim=1))
    swapped = soap(1 - kinds, edge_index, vectors, vectors.norm(dim=1))
    block = 8 * 9 // 2 * 7
    np.testing.assert_allclose(forward[:, :block], swapped[:, -block:])
    assert not torch.allclose(forward[:, :block], swapped[:, :block])


def test_gradients_match_finite_differences():
    atoms = random_si_cluster(6)[:5]
    atoms.positions -= atoms.positions.mean(axis=0)
    soap = SOAP(1, 4.0, n_max=4, l_max=4, cutoff_angstrom=5.0).double()
    edge_index, _ = build_edges(atoms, 5.0)
    edge_index = torch.tensor(edge_index)
    kinds = torch.zeros(len(atoms), dtype=torch.int64)

    # Two random projections of all features: gradcheck's cost grows with the outputs.
    generator = torch.Generator().manual_seed(0)
    projection = torch.randn(soap.num_features, 2, generator=generator, dtype=torch.float64)

    def features(positions: torch.Tensor) -> torch.Tensor:
        vectors = positions[edge_index[1]] - positions[edge_index[0]]
        return soap(kinds, edge_index, vectors, vectors.norm(dim=1)) @ projection

    positions = torch.tensor(atoms.positions, requires_grad=True)
    assert torch.autograd.gradcheck(features, (positions,), eps=1e-6, atol=1e-5, rtol=1e-4)


def test_rotation_invariance():
    atoms = random_si_cell(7)
    generator = torch.Generator().manual_seed(0)
    rotation = torch.linalg.qr(torch.randn(3, 3, generator=generator, dtype=torch.float64))[0]
    soap = SOAP(1, 5.0).double()
    kinds, edge_index, vectors = edges_of(atoms, ["Si"], 5.0)
    turned = vectors @ rotation.T
    before = soap(kinds, edge_index, vectors, vectors.norm(dim=1))
    after = soap(kinds, edge_index, turned, turned.norm(dim=1))
    torch.testing.assert_close(after, before, rtol=1e-9, atol=1e-9 * float(before.abs().max()))


def dimer_features(soap: SOAP, distance: torch.Tensor) -> torch.Tensor:
    vectors = torch.stack([distance * torch.tensor([0.6, 0.0, 0.8], dtype=torch.float64)])
    vectors = torch.cat([vectors, -vectors])
    edge_index = torch.tensor([[0, 1], [1, 0]])
    return soap(torch.zeros(2, dtype=torch.int64), edge_index, vectors, vectors.norm(dim=1))


def test_smooth_cutoff_takes_features_and_derivatives_to_zero():
    soap = SOAP(1, 5.0).double()
    alone = dimer_features(soap, torch.tensor(9.0, dtype=torch.float64))  # no edge inside
    for gap in (1e-2, 1e-3):
        distance = torch.tensor(5.0 - gap, dtype=torch.float64, requires_grad=True)
        features = dimer_features(soap, distance)
        (slope,) = torch.autograd.grad(features.sum(), distance)
        features = features.detach()
        # Quintic switch: contribution ~ gap^3, slope ~ gap^2, relative to the features.
        assert float((features - alone).abs().max()) < 20 * gap**3 * float(alone.abs().max())
        assert abs(float(slope)) < 100 * gap**2 * float(alone.abs().max())


def test_dscribe_mode_is_not_smooth_at_its_cutoff():
    # The reason for smooth_cutoff: dscribe's features jump where a neighbour leaves.
    cutoff = dscribe_cutoff_angstrom(5.0, 1.0)
    soap = SOAP(1, 5.0, cutoff_angstrom=cutoff, smooth_cutoff=False).double()
    inside = dimer_features(soap, torch.tensor(cutoff - 1e-6, dtype=torch.float64))
    outside = dimer_features(soap, torch.tensor(cutoff + 1e-6, dtype=torch.float64))
    assert float((inside - outside).abs().max()) > 1e-6 * float(outside.abs().max())


def test_edge_order_and_batching_do_not_matter():
    # Training batches concatenate graphs and the KIM path may list edges in any order.
    first, second = random_si_cell(10), random_si_cluster(11)
    soap = SOAP(1, 5.0, n_max=4, l_max=3).double()
    single = [
        soap(*edges_of(atoms, ["Si"], 5.0)[:2], *_vectors_and_lengths(atoms))
        for atoms in (first, second)
    ]
    kinds_a, edges_a, vectors_a = edges_of(first, ["Si"], 5.0)
    kinds_b, edges_b, vectors_b = edges_of(second, ["Si"], 5.0)
    kinds = torch.cat([kinds_a, kinds_b])
    edge_index = torch.cat([edges_a, edges_b + len(first)], dim=1)
    vectors = torch.cat([vectors_a, vectors_b])
    shuffle = torch.randperm(edge_index.shape[1], generator=torch.Generator().manual_seed(0))
    batched = soap(kinds, edge_index[:, shuffle], vectors[shuffle], vectors[shuffle].norm(dim=1))
    torch.testing.assert_close(batched, torch.cat(single))


def _vectors_and_lengths(atoms: Atoms) -> tuple[torch.Tensor, torch.Tensor]:
    vectors = edges_of(atoms, ["Si"], 5.0)[2]
    return vectors, vectors.norm(dim=1)


def test_torchscript_equals_eager():
    atoms = random_agau(8)
    soap = SOAP(2, 5.0).double()
    kinds, edge_index, vectors = edges_of(atoms, ["Ag", "Au"], 5.5)  # some edges past the cutoff
    eager = soap(kinds, edge_index, vectors, vectors.norm(dim=1))
    scripted = torch.jit.script(soap)(kinds, edge_index, vectors, vectors.norm(dim=1))
    torch.testing.assert_close(scripted, eager)


def test_its_state_dict_is_the_one_checkpoints_before_the_diagonal_gather_hold():
    """The index of the l = l' blocks is derived from l_max: not in the state dict, so a
    SOAPNet checkpoint written before it loads as it is; a scripted copy still has it."""
    soap = SOAP(2, 5.0, n_max=4, l_max=3)
    assert not any("diagonal_index" in key for key in soap.state_dict())
    SOAP(2, 5.0, n_max=4, l_max=3).load_state_dict(soap.state_dict())  # strict
    atoms = random_agau(8)
    kinds, edge_index, vectors = edges_of(atoms, ["Ag", "Au"], 5.0)
    scripted = torch.jit.script(soap.double())
    torch.testing.assert_close(scripted(kinds, edge_index, vectors, vectors.norm(dim=1)),
                               soap(kinds, edge_index, vectors, vectors.norm(dim=1)))


def test_float32_close_to_float64():
    atoms = random_si_cell(9)
    soap = SOAP(1, 5.0)
    kinds, edge_index, vectors = edges_of(atoms, ["Si"], 5.0)
    exact = soap.double()(kinds, edge_index, vectors, vectors.norm(dim=1))
    vectors32 = vectors.float()
    single = soap.float()(kinds, edge_index, vectors32, vectors32.norm(dim=1))
    assert relative_error(single.double().numpy(), exact.numpy()) < 1e-3


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"n_max": 0}, "n_max must be at least 1, got 0"),
        ({"l_max": 21}, r"l_max must be in 0\.\.20"),
        ({"sigma_angstrom": 0.0}, "sigma_angstrom must be positive"),
        ({"r_cut_angstrom": 0.8}, "r_cut_angstrom must exceed 1 Å"),
        ({"smooth_width_angstrom": 0.0}, r"smooth_width_angstrom must be in \(0, cutoff=5.0\]"),
        ({"n_max": 30}, "not positive definite.*lower n_max or raise r_cut"),
    ],
)
def test_bad_settings_are_named(settings, message):
    arguments = {"num_species": 1, "r_cut_angstrom": 5.0} | settings
    with pytest.raises(SOAPSettingsError, match=message):
        SOAP(**arguments)
