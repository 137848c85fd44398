"""train/descriptors.py: SOAPNet trained on descriptors (and their Jacobians) computed once
per configuration has the ordinary step's loss, forces and weight gradient, and the same
training run."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from models import sw_configurations

from eipnn_training.data.batching import KIND_DFT, KIND_EIP, BatchLoader, Rows, collate
from eipnn_training.data.dataset import dataset_from_atoms
from eipnn_training.data.graphs import build_graphs
from eipnn_training.models.build import ModelSpec, build_potential
from eipnn_training.models.derivatives import predicted_forces
from eipnn_training.strategies.label_augmentation.tukey import AugmentedForceLoss, AugmentedLoss
from eipnn_training.train.descriptors import DescriptorCache, cached_energies
from eipnn_training.train.loop import FitSettings, _step_backward, fit
from eipnn_training.train.metrics import batch_energies, energies_and_forces

CUTOFF = 4.0
SMALL = {"n_max": 3, "l_max": 3, "num_features": 16, "num_dense": 2, "smooth_width_angstrom": 1.5}


@pytest.fixture(scope="module")
def data():
    """Six SW-labelled Si cells with forces, DFT and EIP rows, and their graphs."""
    configurations = sw_configurations(6, 7)
    energies = np.array([a.get_potential_energy() for a in configurations])[:, None]
    forces = [a.get_forces() for a in configurations]
    graphs = build_graphs(dataset_from_atoms(configurations), CUTOFF, progress=False)
    kinds = np.array([KIND_DFT, KIND_EIP, KIND_DFT, KIND_EIP, KIND_EIP, KIND_DFT])
    rows = Rows(np.arange(6), energies + np.linspace(-0.3, 0.3, 6)[:, None], np.ones(6), kinds, forces=forces)
    return graphs, rows


def soapnet(species: list[str], seed: int = 0):
    torch.manual_seed(seed)
    return build_potential(ModelSpec("soapnet", species, CUTOFF, SMALL, 16)).double()


def two_species(batch):
    """The batch with every third atom of a second species (a mixed descriptor)."""
    species = batch.species.clone()
    species[::3] = 1
    return replace(batch, species=species)


@pytest.mark.parametrize("species", [["Si"], ["Si", "Ge"]])
def test_the_jacobian_is_autograds(data, species):
    graphs, rows = data
    batch = collate(graphs, graphs.species_index(["Si"]), rows, np.arange(3)).to("cpu", torch.float64)
    if len(species) == 2:
        batch = two_species(batch)
    soap = soapnet(species).representation.soap
    vectors = batch.positions[batch.edge_index[1]] - batch.positions[batch.edge_index[0]] + batch.edge_shift
    vectors[0] = torch.tensor([CUTOFF + 0.1, 0.0, 0.0])  # one edge beyond the cutoff: no derivative
    descriptors, jacobians = soap.descriptors_and_jacobians(batch.species, batch.edge_index, vectors)
    leaf = vectors.clone().requires_grad_(True)
    reference = soap(batch.species, batch.edge_index, leaf, torch.linalg.vector_norm(leaf, dim=1))
    features = reference.shape[1]
    unit = torch.zeros(features, *reference.shape, dtype=reference.dtype)
    unit[torch.arange(features), :, torch.arange(features)] = 1.0
    (rows_of_jacobian,) = torch.autograd.grad(reference, leaf, unit, is_grads_batched=True)
    torch.testing.assert_close(descriptors, reference.detach(), rtol=0, atol=0)
    torch.testing.assert_close(jacobians, rows_of_jacobian.permute(1, 0, 2), rtol=1e-10, atol=1e-10)
    assert jacobians[0].abs().max() == 0.0 and jacobians.abs().max() > 1.0


LOSSES = {
    "energies": dict(),
    "energies and forces": dict(force_weight=10.0),
    "LA with Tukey on energies and forces": dict(loss=AugmentedLoss(0.5, 2.0), force_weight=10.0,
                                                 force_loss=AugmentedForceLoss(10.0, 0.5, 2.0, 1.0)),
}


@pytest.mark.parametrize("loss", list(LOSSES))
def test_a_cached_step_has_the_ordinary_loss_and_gradient(data, loss):
    graphs, rows = data
    batch = collate(graphs, graphs.species_index(["Si"]), rows, np.arange(6)).to("cpu", torch.float64)
    potential = soapnet(["Si"])
    settings = FitSettings(dtype=torch.float64, **LOSSES[loss])
    cache = DescriptorCache(jacobians=settings.force_term() is not None, budget=1 << 30)
    steps = {}
    for path, energies in (("ordinary", None), ("cached", cached_energies(potential, cache)),
                           ("from the store", cached_energies(potential, cache))):
        loss_value = _step_backward(potential, batch, settings, energies)
        steps[path] = (loss_value.detach(), [p.grad.clone() for p in potential.parameters()])
    assert len(cache.rows) == 6 and cache.used > 0
    for path in ("cached", "from the store"):
        torch.testing.assert_close(steps[path][0], steps["ordinary"][0], rtol=1e-12, atol=0)
        for cached, ordinary in zip(steps[path][1], steps["ordinary"][1]):
            torch.testing.assert_close(cached, ordinary, rtol=1e-9, atol=1e-12)
    assert max(float(g.abs().max()) for g in steps["ordinary"][1]) > 1e-3  # the comparison sees something


def test_a_cached_step_of_several_heads_with_eip_forces(data):
    """MP pretraining: three outputs, each with its own (EIP) forces, through the cache."""
    from eipnn_training.train.losses import ForceMSE

    graphs, rows = data
    batch = collate(graphs, graphs.species_index(["Si"]), rows, np.arange(6)).to("cpu", torch.float64)
    generator = torch.Generator().manual_seed(0)
    n = batch.positions.shape[0]
    batch = replace(batch, targets=batch.targets.repeat(1, 3), target_mask=batch.target_mask.repeat(1, 3),
                    kind=torch.full_like(batch.kind, KIND_EIP),
                    forces=torch.randn(n, 3, 3, generator=generator, dtype=torch.float64),
                    force_mask=torch.ones(n, 3, dtype=torch.bool))
    torch.manual_seed(0)
    potential = build_potential(ModelSpec("soapnet", ["Si"], CUTOFF, SMALL, 16), num_outputs=3).double()
    settings = FitSettings(dtype=torch.float64, force_loss=ForceMSE(10.0, kind=KIND_EIP))
    cache = DescriptorCache(jacobians=True, budget=1 << 30)
    steps = []
    for energies in (None, cached_energies(potential, cache)):
        loss_value = _step_backward(potential, batch, settings, energies)
        steps.append((loss_value.detach(), [p.grad.clone() for p in potential.parameters()]))
    torch.testing.assert_close(steps[1][0], steps[0][0], rtol=1e-12, atol=0)
    for cached, ordinary in zip(steps[1][1], steps[0][1]):
        torch.testing.assert_close(cached, ordinary, rtol=1e-9, atol=1e-12)


def test_cached_forces_are_the_models(data):
    graphs, rows = data
    batch = collate(graphs, graphs.species_index(["Si"]), rows, np.arange(4)).to("cpu", torch.float64)
    potential = soapnet(["Si"])
    cache = DescriptorCache(jacobians=True, budget=1 << 30)
    forces = []
    for energies in (None, cached_energies(potential, cache)):
        positions = batch.positions.clone().requires_grad_(True)
        total = batch_energies(potential, replace(batch, positions=positions), energies)
        forces.append(predicted_forces(total, positions, create_graph=False))
    # The direct path (gradients by the descriptor, one product with J for all outputs).
    energies, direct = energies_and_forces(potential, batch, cached_energies(potential, cache), create_graph=False)
    torch.testing.assert_close(energies, batch_energies(potential, batch), rtol=1e-12, atol=0)
    for other in forces[1], direct:
        torch.testing.assert_close(other, forces[0], rtol=1e-10, atol=1e-10)
    assert not direct.requires_grad and forces[0].abs().max() > 0.1


def test_a_full_budget_takes_the_ordinary_path(data):
    graphs, rows = data
    batch = collate(graphs, graphs.species_index(["Si"]), rows, np.arange(6)).to("cpu", torch.float64)
    potential = soapnet(["Si"])
    small = DescriptorCache(jacobians=True, budget=200_000)  # a few configurations' worth
    assert small.of(potential, batch) is None and small.full
    assert 0 < len(small.rows) < 6 and small.used <= 200_000
    assert DescriptorCache(jacobians=False, budget=0).of(potential, batch) is None


def test_filling_a_loader_at_once_gives_each_configurations_own_values(data):
    """``fill`` computes a loader's rows in groups of its batch size; each configuration's
    descriptors and grouped Jacobians are those it gets alone, and a step after the fill
    computes nothing more. A budget that runs out stops the fill."""
    graphs, rows = data
    species_index = graphs.species_index(["Si"])
    loader = BatchLoader(graphs, species_index, rows, 4, shuffle=True, seed=2)
    potential = soapnet(["Si"])
    filled = DescriptorCache(jacobians=True, budget=1 << 30)
    filled.fill(potential, loader, torch.device("cpu"), torch.float64)
    assert sorted(filled.rows) == list(range(6))
    alone = DescriptorCache(jacobians=True, budget=1 << 30)
    batch = collate(graphs, species_index, rows, np.arange(6)).to("cpu", torch.float64)
    alone.of(potential, batch)
    for row, values in alone.rows.items():
        group = filled.rows[row]
        torch.testing.assert_close(group.descriptors, values.descriptors, rtol=1e-12, atol=0)
        torch.testing.assert_close(group.jacobians, values.jacobians, rtol=1e-12, atol=1e-14)
        assert torch.equal(group.slots, values.slots)
    used = filled.used
    assert filled.of(potential, batch) is not None and filled.used == used
    small = DescriptorCache(jacobians=True, budget=used // 2)
    small.fill(potential, loader, torch.device("cpu"), torch.float64)
    assert small.full and 0 < len(small.rows) < 6 and small.used <= used // 2


def _runs_with_and_without_cache(graphs, train_rows: Rows, val_rows: Rows, folder, seed: int, **loss) -> None:
    """Three epochs with the descriptor cache and without (budget 0): the same validation
    MAEs, training losses and weights, and it trained."""
    species_index = graphs.species_index(["Si"])
    histories, weights = [], []
    for budget in (None, 0):
        train = BatchLoader(graphs, species_index, train_rows, 3, shuffle=True, seed=1)
        val = BatchLoader(graphs, species_index, val_rows, 6)
        potential = soapnet(["Si"], seed=seed)
        settings = FitSettings(epochs=3, lr=3e-3, force_weight=10.0, dtype=torch.float64, progress=False,
                               descriptor_cache_mb=budget, **loss)
        (folder / f"budget_{budget}").mkdir()
        result = fit(potential, train, val, settings, folder / f"budget_{budget}")
        histories.append([(row["val_config_mae"], row["train_loss"]) for row in result.history])
        weights.append(torch.cat([p.detach().flatten() for p in potential.parameters()]))
    np.testing.assert_allclose(histories[0], histories[1], rtol=1e-9)
    torch.testing.assert_close(weights[0], weights[1], rtol=1e-8, atol=1e-10)
    assert histories[0][0] != histories[0][-1]  # it trained


def test_a_run_with_the_cache_is_the_run_without(data, tmp_path, monkeypatch):
    graphs, rows = data
    served = []  # batches the cache gave descriptors for
    of = DescriptorCache.of
    monkeypatch.setattr(DescriptorCache, "of", lambda self, p, b: served.append(b.num_rows) or of(self, p, b))
    _runs_with_and_without_cache(graphs, rows, rows, tmp_path, seed=3)
    # 3 epochs of the 6 training rows and of the 6 validation rows' energies; none with budget 0
    assert sum(served) == 3 * (6 + 6)


def test_rows_without_force_labels_are_cached_without_jacobians_and_train_alike(data, tmp_path):
    """LA with DFT forces: its EIP rows have no force labels, so the cache keeps their
    descriptors alone; the run (the Tukey loss, forces of the DFT rows) is the run without
    the cache."""
    graphs, rows = data
    forces = [f if kind == KIND_DFT else None for f, kind in zip(rows.forces, rows.kind)]
    mixed = Rows(rows.indices, rows.targets, rows.weight, rows.kind, forces=forces)
    dft = np.flatnonzero(rows.kind == KIND_DFT)
    val_rows = Rows(rows.indices[dft], rows.targets[dft], rows.weight[dft], rows.kind[dft],
                    forces=[rows.forces[i] for i in dft])
    cache = DescriptorCache(jacobians=True, budget=1 << 30)
    cache.fill(soapnet(["Si"]), BatchLoader(graphs, graphs.species_index(["Si"]), mixed, 4), torch.device("cpu"),
               torch.float64)
    assert sorted(cache.rows) == list(range(6))
    assert sorted(row for row, values in cache.rows.items() if values.jacobians is not None) == dft.tolist()
    _runs_with_and_without_cache(graphs, mixed, val_rows, tmp_path, seed=4, loss=AugmentedLoss(0.5, 2.0),
                                 force_loss=AugmentedForceLoss(10.0, 0.5, 2.0, 0.0))


def test_validation_force_metrics_through_the_cache_are_the_ordinary_ones(data):
    from eipnn_training.train.metrics import EnergyForceMetrics

    graphs, rows = data
    val = BatchLoader(graphs, graphs.species_index(["Si"]), rows, 4)
    potential = soapnet(["Si"])
    metrics = EnergyForceMetrics(10.0)
    cache = DescriptorCache(jacobians=True, budget=1 << 30)
    ordinary = metrics(potential, val, torch.device("cpu"), torch.float64)
    cached = metrics(potential, val, torch.device("cpu"), torch.float64, energies=cached_energies(potential, cache))
    assert len(cache.rows) == 6 and ordinary["val_force_mae"] > 0
    assert cached == pytest.approx(ordinary, rel=1e-10)


def _ensemble_case(data, eip_force_weight: float = 1.0, eip_forces: bool = True):
    """Three SOAPNets (two seeds; one with LA's Tukey loss and forces, of the EIP rows too
    unless ``eip_force_weight`` is 0), their loaders (EIP rows without force labels in
    training unless ``eip_forces``)."""
    graphs, rows = data
    species_index = graphs.species_index(["Si"])
    train_rows = rows if eip_forces else Rows(
        rows.indices, rows.targets, rows.weight, rows.kind,
        forces=[f if kind == KIND_DFT else None for f, kind in zip(rows.forces, rows.kind)])
    train = BatchLoader(graphs, species_index, train_rows, 3, shuffle=True, seed=1)
    val = BatchLoader(graphs, species_index, rows, 6)
    base = FitSettings(epochs=3, lr=3e-3, grad_clip=1.0, force_weight=10.0, dtype=torch.float64, progress=False)
    settings = [base, replace(base, force_weight=0.0),
                replace(base, loss=AugmentedLoss(0.5, 2.0), force_loss=AugmentedForceLoss(10.0, 0.5, 2.0, eip_force_weight))]
    return train, val, settings


@pytest.mark.parametrize("eip_force_weight, eip_forces", [(1.0, True), (0.0, True), (0.0, False)],
                         ids=["forces of all rows", "forces of the DFT rows", "EIP rows without force labels"])
def test_stacked_members_end_as_their_own_runs(data, tmp_path, monkeypatch, eip_force_weight, eip_forces):
    """With forces of every row, with the forces of the rows some member's force term uses
    alone (the DFT rows: the stacked step then computes no others), and with EIP rows that
    have no force labels (cached without Jacobians), as LA with DFT forces trains."""
    from eipnn_training.train.ensemble import fit_ensemble
    from eipnn_training.train.stacked import StackedMembers

    train, val, settings = _ensemble_case(data, eip_force_weight, eip_forces)
    stacked_steps = []
    step = StackedMembers.step

    def counted(self, batch):
        losses = step(self, batch)
        stacked_steps.append(losses is not None)
        return losses

    monkeypatch.setattr(StackedMembers, "step", counted)
    together = [soapnet(["Si"], seed) for seed in (1, 2, 1)]
    results = fit_ensemble(together, train, val, settings, tmp_path / "together")
    assert stacked_steps == [True] * 3 * len(train)  # every step went through the stacked members
    for k, own in enumerate(settings):
        alone = soapnet(["Si"], (1, 2, 1)[k])
        (tmp_path / f"alone_{k}").mkdir()
        result = fit(alone, train, val, own, tmp_path / f"alone_{k}")
        for row, own_row in zip(results[k].history, result.history):
            assert row["val_config_mae"] == pytest.approx(own_row["val_config_mae"], rel=1e-9)
            assert row["train_loss"] == pytest.approx(own_row["train_loss"], rel=1e-9)
        for name, value in alone.state_dict().items():
            torch.testing.assert_close(together[k].state_dict()[name], value, rtol=1e-8, atol=1e-10)
    assert not torch.equal(together[0].head.net[0].weight, together[2].head.net[0].weight)


def test_a_stacked_ensemble_resumes_exactly(data, tmp_path):
    from eipnn_training.train.ensemble import fit_ensemble

    train, val, settings = _ensemble_case(data)
    whole = [soapnet(["Si"], seed) for seed in (1, 2, 1)]
    fit_ensemble(whole, train, val, settings, tmp_path / "whole")

    def stop(epoch: int, step: int) -> None:
        if epoch == 1 and step == 0:
            raise KeyboardInterrupt

    killed = [soapnet(["Si"], seed) for seed in (1, 2, 1)]
    with pytest.raises(KeyboardInterrupt):
        fit_ensemble(killed, train, val, settings, tmp_path / "killed", on_batch_end=stop)
    resumed = [soapnet(["Si"], seed) for seed in (1, 2, 1)]
    fit_ensemble(resumed, train, val, settings, tmp_path / "killed", resume=True)
    for a, b in zip(whole, resumed):
        for name, value in a.state_dict().items():
            torch.testing.assert_close(b.state_dict()[name], value, rtol=0, atol=0)
