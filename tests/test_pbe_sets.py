"""The protocol of the DFT sets this project makes (data/al-pbe, data/agau-pbe): splits that
keep their members as labels land, the graded pool configurations sealed like si-pbe's
unlabeled split, and the committed chunks consistent with their pools."""
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

from eipnn_training.data.errors import DatasetFileError, SealedLabelError
from eipnn_training.data.pbe_sets import LABELLED_SHARES, is_pbe_set, load_pbe_set, pbe_set_split
from eipnn_training.data.sources import load_split_dataset

REPO = Path(__file__).resolve().parents[1]


def make_set(folder: Path, pool_size: int, labelled: list[int]) -> list:
    """A pool of rattled Al cells and EMT 'DFT' labels of the pool indices ``labelled``,
    written as two chunks."""
    pool = []
    for index in range(pool_size):
        atoms = bulk("Al", "fcc", 4.05, cubic=True)
        atoms.rattle(0.05, seed=index)
        atoms.info.update(kind="bulk-fcc", pool_index=index)
        pool.append(atoms)
    folder.mkdir(parents=True)
    ase.io.write(folder / "pool.extxyz.xz", pool, format="extxyz")
    (folder / "labelled").mkdir()
    frames = []
    for index in labelled:
        atoms = pool[index].copy()
        atoms.calc = EMT()
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
        frames.append(atoms)
    half = len(frames) // 2
    for k, part in enumerate((frames[:half], frames[half:])):
        ase.io.write(folder / "labelled" / f"chunk-{k:04d}.extxyz.xz", part, format="extxyz")
    return frames


def test_a_configuration_keeps_its_split_when_more_labels_land_and_the_shares_are_the_protocols():
    indices = np.random.default_rng(0).permutation(20_000)
    few = pbe_set_split(indices[:300], 4_000, seed=2)
    many = pbe_set_split(indices[:6_000], 9_000, seed=2)
    for name in ("train", "val", "test"):
        assert set(indices[few[name]]) <= set(indices[many[name]]), name
    graded_few = [i for i in few["unlabeled"] if i < 300]
    assert set(indices[graded_few]) <= set(indices[[i for i in many["unlabeled"] if i < 6_000]])
    everything = np.concatenate([many[name] for name in ("unlabeled", "train", "val", "test")])
    assert np.array_equal(np.sort(everything), np.arange(9_000))  # disjoint, complete
    assert set(range(6_000, 9_000)) <= set(many["unlabeled"].tolist())  # the unlabelled pool
    for name, share in LABELLED_SHARES:
        count = (np.sum(many["unlabeled"] < 6_000) if name == "graded" else len(many[name]))
        assert abs(count / 6_000 - share) < 0.02, name
    other_seed = pbe_set_split(indices[:6_000], 9_000, seed=3)
    assert not np.array_equal(other_seed["train"], many["train"])


def test_a_set_folder_trains_on_its_labels_and_seals_the_graded_pool(tmp_path):
    folder = tmp_path / "al-emt"
    labelled = list(range(0, 60, 2))  # 30 labelled of a 60-configuration pool
    frames = make_set(folder, 60, labelled)
    assert is_pbe_set(folder) and not is_pbe_set(tmp_path)
    configurations, count = load_pbe_set(folder)
    assert count == 30 and len(configurations) == 60
    split = load_split_dataset(str(folder), None, 1)
    dataset, splits = split.dataset, split.splits
    by_index = {int(a.info["pool_index"]): a.get_potential_energy() for a in frames}
    for name in ("train", "val", "test"):
        assert len(splits[name]) > 0
        energies = dataset.energies_ev(splits[name])
        expected = [by_index[int(configurations[i].info["pool_index"])] for i in splits[name]]
        np.testing.assert_allclose(energies, expected)
        assert all(dataset.forces_ev_per_angstrom(int(i)) is not None for i in splits[name])
    graded = splits["unlabeled"][splits["unlabeled"] < count]
    assert len(graded) > 0 and len(splits["unlabeled"]) == len(graded) + 30
    with pytest.raises(SealedLabelError):
        dataset.energies_ev(graded)
    read = dataset.read_sealed_energies_ev(splits["unlabeled"], reason="test")
    assert np.isfinite(read[: len(graded)]).all() and np.isnan(read[len(graded):]).all()


def test_a_folder_that_labels_one_configuration_twice_is_refused(tmp_path):
    folder = tmp_path / "twice"
    make_set(folder, 10, [1, 2, 2, 3])
    with pytest.raises(DatasetFileError, match="twice"):
        load_pbe_set(folder)


@pytest.mark.parametrize("name", ["al-pbe", "agau-pbe"])
def test_the_committed_labels_are_their_pool_configurations(name):
    from eipnn_training.dft.chunks import read_chunks
    from eipnn_training.sampling.pool import read_pool

    pool = {int(a.info["pool_index"]): a for a in read_pool(REPO / "data" / name / "pool.extxyz.xz")}
    labelled = read_chunks(REPO / "data" / name / "labelled")
    assert len(labelled) > 0
    seen = set()
    for atoms in labelled:
        index = int(atoms.info["pool_index"])
        assert index not in seen
        seen.add(index)
        source = pool[index]
        assert atoms.get_chemical_formula() == source.get_chemical_formula()
        np.testing.assert_allclose(atoms.positions, source.positions, atol=1e-8)
        np.testing.assert_allclose(atoms.cell.array, source.cell.array, atol=1e-8)
        assert np.isfinite(atoms.get_potential_energy()) and atoms.get_forces().shape == (len(atoms), 3)
