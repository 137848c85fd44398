"""Data layer: reading, sealing, splits, graphs, batching."""
from __future__ import annotations

import ase.db
import ase.io
import numpy as np
import pytest
import torch
from ase.build import bulk, molecule
from ase.calculators.singlepoint import SinglePointCalculator

from eipnn_training.data.batching import KIND_DFT, BatchLoader, Rows, collate
from eipnn_training.data.dataset import dataset_from_atoms, read_dataset
from eipnn_training.data.errors import (
    DatasetFileError, EmptySplitError, MissingEnergyError, SealedLabelError, UnknownSpeciesError,
)
from eipnn_training.data.graphs import build_graphs, cached_graphs, graph_cache_path
from eipnn_training.data.si_pbe import default_si_pbe_dir, protocol_split
from eipnn_training.data.sources import check_splits, load_split_dataset, split_dataset
from eipnn_training.models.build import ModelSpec, build_potential
from eipnn_training.sampling import write_pool
from eipnn_training.train.metrics import batch_energies


def labelled(atoms, energy, with_forces=True):
    forces = np.random.default_rng(len(atoms)).normal(size=(len(atoms), 3)) if with_forces else None
    atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
    return atoms


def configurations(n=12):
    rng = np.random.default_rng(0)
    out = []
    for k in range(n):
        atoms = bulk("Si", "diamond", a=5.43).repeat((1, 1, 1 + k % 2))
        atoms.rattle(0.05, seed=k)
        out.append(labelled(atoms, -5.4 * len(atoms) + rng.normal()))
    return out


def test_extxyz_round_trip_keeps_energies_and_forces(tmp_path):
    path = tmp_path / "si.extxyz"
    ase.io.write(path, configurations(5))
    dataset = read_dataset(path)
    expected = [a.get_potential_energy() for a in configurations(5)]
    assert np.allclose(dataset.energies_ev(range(5)), expected)
    assert np.allclose(dataset.forces_ev_per_angstrom(2), configurations(5)[2].get_forces())
    assert dataset.symbols() == ["Si"]


def test_ase_database_is_read(tmp_path):
    path = tmp_path / "si.db"
    with ase.db.connect(path) as database:
        for atoms in configurations(4):
            database.write(atoms)
    dataset = read_dataset(path)
    assert len(dataset) == 4
    assert np.allclose(dataset.energies_ev(range(4)), [a.get_potential_energy() for a in configurations(4)])


def test_dataset_without_energies_is_refused(tmp_path):
    path = tmp_path / "bare.extxyz"
    ase.io.write(path, [bulk("Si", "diamond", a=5.43)] * 3)
    with pytest.raises(MissingEnergyError, match="have no DFT energy"):
        read_dataset(path)


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(DatasetFileError, match="dataset file not found"):
        read_dataset(tmp_path / "nowhere.extxyz")


def test_sealed_energies_raise_and_the_escape_hatch_is_logged():
    dataset = dataset_from_atoms(configurations(6))
    dataset.seal([1, 4])
    assert np.isfinite(dataset.energies_ev([0, 2, 3])).all()
    with pytest.raises(SealedLabelError, match="sealed configuration"):
        dataset.energies_ev([0, 4])
    with pytest.raises(SealedLabelError, match="DFT forces"):
        dataset.forces_ev_per_angstrom(1)
    with pytest.raises(ValueError, match="needs a reason"):
        dataset.read_sealed_energies_ev([1], reason=" ")
    energies = dataset.read_sealed_energies_ev([1, 4], reason="LA outlier report")
    assert np.allclose(energies, [configurations(6)[k].get_potential_energy() for k in (1, 4)])
    assert dataset.unseal_log == ["2 sealed energies read: LA outlier report"]


def test_protocol_split_is_reproducible_disjoint_and_complete():
    a, b, c = protocol_split(5534, 1), protocol_split(5534, 1), protocol_split(5534, 2)
    for name in a:
        assert np.array_equal(a[name], b[name])
    assert not np.array_equal(a["train"], c["train"])
    joined = np.concatenate(list(a.values()))
    assert len(joined) == 5534 and len(np.unique(joined)) == 5534
    assert [len(a[k]) for k in ("unlabeled", "train", "val", "test")] == [4427, 664, 221, 222]


def test_split_dataset_seals_the_pool_and_limits_splits():
    dataset = dataset_from_atoms(configurations(100))
    split = split_dataset(dataset, split_seed=3, limits={"train": 5, "val": None})
    assert len(split.splits["train"]) == 5 and len(split.splits["val"]) == 4
    assert set(split.splits["train"]) <= set(protocol_split(100, 3)["train"])
    assert dataset.is_sealed(split.splits["unlabeled"]).all()
    assert not dataset.is_sealed(split.splits["test"]).any()
    check_splits(split.splits)


def test_empty_or_overlapping_splits_are_refused():
    with pytest.raises(EmptySplitError, match="needs at least 4"):
        split_dataset(dataset_from_atoms(configurations(3)), 1)
    with pytest.raises(EmptySplitError, match="split 'val' is empty"):
        split_dataset(dataset_from_atoms(configurations(10)), 1)  # 10 * 4 % < 1
    with pytest.raises(ValueError, match="shares 1 configuration"):
        check_splits({"train": np.array([0, 1]), "val": np.array([1]), "test": np.array([2])})


def test_file_without_energies_on_train_fails_before_training(tmp_path):
    atoms = configurations(40)
    atoms[0].calc = None  # index 0: wherever it lands, one labelled split or the pool
    path = tmp_path / "partly.extxyz"
    ase.io.write(path, atoms)
    split_of_zero = [k for k, v in protocol_split(40, 1).items() if 0 in v][0]
    if split_of_zero == "unlabeled":
        load_split_dataset(str(path), None, 1)  # the pool needs no energies
    else:
        with pytest.raises(MissingEnergyError, match="no DFT energy"):
            load_split_dataset(str(path), None, 1)
    with pytest.raises(DatasetFileError, match="not found"):
        load_split_dataset(str(tmp_path / "x.xyz"), None, 1)


def test_an_extra_pool_widens_only_the_sealed_pool(tmp_path):
    path = tmp_path / "data.extxyz"
    ase.io.write(path, configurations(40))
    extra = [labelled(bulk("Si", "diamond", a=a), -10.0) for a in (5.2, 5.3, 5.6)]  # labels dropped
    pool_path = tmp_path / "pool.extxyz.xz"
    write_pool(extra, pool_path)
    plain = load_split_dataset(str(path), None, 2)
    widened = load_split_dataset(str(path), None, 2, extra_pool=[str(pool_path)])
    for name in ("train", "val", "test"):
        assert np.array_equal(widened.splits[name], plain.splits[name])
        assert np.array_equal(widened.dataset.energies_ev(widened.splits[name]),
                              plain.dataset.energies_ev(plain.splits[name]))
    added = widened.splits["unlabeled"][len(plain.splits["unlabeled"]):]
    assert np.array_equal(added, 40 + np.arange(3))
    assert np.array_equal(widened.splits["unlabeled"][:-3], plain.splits["unlabeled"])
    assert widened.dataset.is_sealed(widened.splits["unlabeled"]).all()
    assert np.allclose(widened.dataset.cells[added][:, 0, 1], [2.6, 2.65, 2.8])  # a / 2
    assert np.isnan(widened.dataset.read_sealed_energies_ev(added, reason="test")).all()
    assert widened.dataset.geometry_hash() != plain.dataset.geometry_hash()
    with pytest.raises(DatasetFileError, match="extra_pool: file not found"):
        load_split_dataset(str(path), None, 2, extra_pool=[str(tmp_path / "none.xyz")])
    write_pool([bulk("Cu", "fcc", a=3.6)], tmp_path / "cu.extxyz")
    with pytest.raises(DatasetFileError, match=r"elements the dataset does not \(Cu\)"):
        load_split_dataset(str(path), None, 2, extra_pool=[str(tmp_path / "cu.extxyz")])


@pytest.mark.skipif(not default_si_pbe_dir().exists(), reason="si-pbe data not present")
def test_si_pbe_protocol_sizes_and_seal():
    split = load_split_dataset(None, None, split_seed=1)
    assert len(split.dataset) == 5534
    assert [len(split.splits[k]) for k in ("unlabeled", "train", "val", "test")] == [4427, 664, 221, 222]
    with pytest.raises(SealedLabelError):
        split.dataset.energies_ev(split.splits["unlabeled"][:1])


def test_graph_cache_matches_a_fresh_build(tmp_path, monkeypatch):
    monkeypatch.setenv("EIPNN_CACHE", str(tmp_path))
    dataset = dataset_from_atoms(configurations(6))
    fresh = build_graphs(dataset, 4.0, progress=False)
    assert not graph_cache_path(dataset, 4.0).exists()
    first = cached_graphs(dataset, 4.0, progress=False)
    assert graph_cache_path(dataset, 4.0).exists()
    again = cached_graphs(dataset, 4.0, progress=False)
    for key in ("positions", "edge_index", "edge_shift", "edge_offsets", "atom_offsets"):
        assert np.array_equal(getattr(fresh, key), getattr(first, key))
        assert np.array_equal(getattr(fresh, key), getattr(again, key))
    assert not graph_cache_path(dataset, 4.5).exists()


def test_unknown_species_is_refused():
    dataset = dataset_from_atoms([labelled(molecule("H2O"), -14.0)] * 4)
    graphs = build_graphs(dataset, 3.0, progress=False)
    with pytest.raises(UnknownSpeciesError, match=r"species \['O'\] that the model does not know"):
        graphs.species_index(["H", "Si"])


def test_batch_of_mixed_sizes_equals_single_configurations():
    atoms = [configurations(3)[k] for k in range(3)] + [labelled(bulk("Si", "diamond", a=5.5, cubic=True), -40.0)]
    dataset = dataset_from_atoms(atoms)
    graphs = build_graphs(dataset, 4.0, progress=False)
    species_index = graphs.species_index(["Si"])
    spec = ModelSpec("schnet", ["Si"], 4.0, {"num_features": 16, "num_interactions": 2, "num_rbf": 16}, 16)
    torch.manual_seed(0)
    potential = build_potential(spec).double()
    rows = Rows(np.arange(4), dataset.energies_ev(range(4)), np.ones(4), np.full(4, KIND_DFT))
    batch = collate(graphs, species_index, rows, np.arange(4)).to("cpu", torch.float64)
    assert batch.num_atoms.tolist() == [len(a) for a in atoms]
    together = batch_energies(potential, batch)[:, 0]
    for k in range(4):
        single = collate(graphs, species_index, rows, np.array([k])).to("cpu", torch.float64)
        node_mask = torch.ones(len(atoms[k]), dtype=torch.bool)
        out = potential(single.positions, single.species, single.edge_index, single.edge_shift, node_mask)
        assert torch.allclose(together[k], out["energy"], atol=1e-10)
    assert torch.allclose(batch.targets[:, 0], torch.tensor(dataset.energies_ev(range(4))))


def test_loader_shuffle_depends_on_seed_and_epoch_only():
    dataset = dataset_from_atoms(configurations(10))
    graphs = build_graphs(dataset, 3.0, progress=False)
    rows = Rows(np.arange(10), dataset.energies_ev(range(10)), np.ones(10), np.zeros(10, int))
    loader = BatchLoader(graphs, graphs.species_index(["Si"]), rows, 4, shuffle=True, seed=5)
    order = lambda e: torch.cat([b.rows for b in loader.epoch(e)]).tolist()  # noqa: E731
    assert order(3) == order(3) and order(3) != order(4)
    assert sorted(order(3)) == list(range(10))
    assert len(loader) == 3
