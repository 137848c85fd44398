"""EIPNNCalculator under bad input: each case a user (or a fuzzer) met, as a regression test.
Nothing may hang, exhaust memory, answer silently wrong, or raise anything but eipnn's own
errors (eipnn_calc/errors.py), whose messages say what was wrong."""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk

from eipnn_calc import EIPNNCalculator, InvalidConfigurationError, UnknownSpeciesError
from eipnn_calc.errors import DeviceUnavailableError, MemoryLimitError
from eipnn_calc.neighbors import SPARSE_MIN_BINS, build_edges, search, search_geometry


def energy(model, atoms: Atoms, **kwargs) -> float:
    atoms = atoms.copy()
    atoms.calc = EIPNNCalculator(model, **kwargs)
    return atoms.get_potential_energy()


def refused(model, atoms: Atoms, error=InvalidConfigurationError, match: str = "", seconds: float = 2.0, **kw):
    start = time.perf_counter()
    with pytest.raises(error, match=match):
        energy(model, atoms, **kw)
    assert time.perf_counter() - start < seconds  # refused before any real work


@pytest.mark.parametrize("cell", [
    [[5, 0, 0], [4.999, 0.001, 0], [0, 0, 5]],  # passes a rank check; took > 60 s
    np.diag([1e-6, 5, 5]),  # took > 60 s
    np.diag([1e-4, 5, 5]),  # returned -5.4e7 eV after 48 s
])
def test_nearly_degenerate_cells_are_refused_at_once(random_si_model, cell):
    atoms = Atoms("Si", positions=[[0, 0, 0]], cell=cell, pbc=True)
    refused(random_si_model, atoms, match="periodic cell is only .* thick")


def test_a_sheared_basis_of_a_good_lattice_is_reduced_not_refused(random_si_model):
    # The same simple-cubic lattice in a basis with a 0.03 Å height: Minkowski reduction finds it.
    plain = Atoms("Si", positions=[[0.3, 0.2, 0.1]], cell=np.eye(3) * 3.0, pbc=True)
    sheared = plain.copy()
    sheared.set_cell([[3, 0, 0], [300, 3, 0], [0, 0, 3]], scale_atoms=False)
    start = time.perf_counter()
    np.testing.assert_allclose(energy(random_si_model, sheared), energy(random_si_model, plain), rtol=1e-12)
    assert time.perf_counter() - start < 5.0


def test_dense_matter_is_refused_by_the_memory_limit_before_building(random_si_model):
    # 60 atoms in a 1 Å cube: 31,000 pairs per atom; it allocated 6 GB before failing.
    atoms = Atoms("Si60", positions=np.random.default_rng(0).random((60, 3)), cell=np.eye(3), pbc=True)
    refused(random_si_model, atoms, MemoryLimitError, match=r"needs about .* GB: .* pairs .* expected .*"
            r"memory_limit_gb=", memory_limit_gb=4)


def test_the_memory_limit_is_checked_on_the_edges_found_too(random_si_model):
    # An open cluster: the density of its bounding box underestimates; the found count decides.
    atoms = Atoms("Si60", positions=np.random.default_rng(0).normal(0, 0.6, (60, 3)) + [0, 0, 0])
    atoms.positions[0] = [40.0, 0, 0]  # stretch the box: the density estimate drops 100-fold
    calc = EIPNNCalculator(random_si_model, memory_limit_gb=0.635)  # 0.6306 GB expected, 0.6388 GB found
    atoms.calc = calc
    with pytest.raises(MemoryLimitError, match="found"):
        atoms.get_potential_energy()
    with pytest.raises(MemoryLimitError):  # the refused list is not kept for the next call
        calc.calculate(atoms, ["energy"])


@pytest.mark.parametrize("atoms", [
    Atoms("Si2", positions=[[0, 0, 0], [2.3, 0, 0]], cell=np.eye(3) * 1e5, pbc=True),  # peaked at 6 GB
    Atoms("Si2", positions=[[0, 0, 0], [1e4, 1e4, 1e4]]),  # 3.2 GB
    Atoms("Si2", positions=[[0, 0, 0], [2.3, 0, 0]], cell=[1e5, 1e5, 0], pbc=[True, True, False]),
], ids=["huge-periodic", "open-far-apart", "huge-slab"])
def test_sparse_systems_take_the_k_d_tree_and_agree_with_a_small_cell(random_si_model, atoms):
    geometry = search_geometry(atoms, 5.5)
    assert np.prod(np.floor(geometry.heights / 5.5).clip(1)) > SPARSE_MIN_BINS  # the sparse path
    reference = atoms.copy()
    reference.pbc = False  # the same two atoms, isolated
    start = time.perf_counter()
    np.testing.assert_allclose(energy(random_si_model, atoms), energy(random_si_model, reference), rtol=1e-12)
    assert time.perf_counter() - start < 5.0


def test_the_k_d_tree_finds_what_matscipy_finds():
    atoms = bulk("Si", "diamond", 5.43, cubic=True).repeat((2, 1, 1))
    atoms.rattle(0.1, seed=1)
    geometry = search_geometry(atoms, 5.0)
    from eipnn_calc.neighbors import _kdtree_search  # the fallback, on a case matscipy also handles

    pairs = lambda e, s: sorted(zip(e[0], e[1], *np.round(s, 6).T))  # noqa: E731
    assert pairs(*_kdtree_search(geometry, 5.0)) == pairs(*search(geometry, 5.0))
    assert len(pairs(*search(geometry, 5.0))) > 400


def test_far_away_open_atoms_are_translated_not_rounded(random_si_model):
    # Two atoms 2.3 Å apart at 1e9 Å: float32 positions there are 64 Å apart; moved near the
    # origin before the model sees them, they interact as at the origin.
    near = Atoms("Si2", positions=[[0, 0, 0], [2.3, 0, 0]])
    far = near.copy()
    far.positions += 1e9
    for dtype in ("float64", "float32"):
        np.testing.assert_allclose(energy(random_si_model, far, dtype=dtype),
                                   energy(random_si_model, near, dtype=dtype), rtol=1e-6)
    isolated = 2 * energy(random_si_model, Atoms("Si"))
    assert abs(energy(random_si_model, near) - isolated) > 1e-3  # the pair does interact


def test_coordinates_beyond_float64_precision_are_refused(random_si_model):
    far = Atoms("Si2", positions=[[1e12, 1e12, 1e12], [1e12 + 2.3, 1e12, 1e12]])
    refused(random_si_model, far, match=r"1e\+12 Å from the origin, where float64 resolves only")
    periodic = far.copy()
    periodic.set_cell(np.eye(3) * 10.0)
    periodic.pbc = True
    refused(random_si_model, periodic, match="atoms.wrap()")


def test_periodic_atoms_far_outside_the_cell_are_wrapped(random_si_model):
    atoms = bulk("Si", "diamond", 5.43, cubic=True)
    atoms.rattle(0.05, seed=2)
    outside = atoms.copy()
    outside.positions += np.random.default_rng(3).integers(-10**6, 10**6, (8, 3)) @ atoms.cell.array
    for dtype, rtol in (("float64", 1e-9), ("float32", 1e-6)):
        np.testing.assert_allclose(energy(random_si_model, outside, dtype=dtype),
                                   energy(random_si_model, atoms, dtype=dtype), rtol=rtol)


def test_float32_refuses_a_system_it_cannot_resolve(random_si_model):
    wide = Atoms("Si2", positions=[[0, 0, 0], [5000.0, 0, 0]])
    refused(random_si_model, wide, match="float32 resolves only", dtype="float32")
    assert np.isfinite(energy(random_si_model, wide, dtype="float64"))


@pytest.mark.parametrize("numbers, match", [
    ([200], "atomic number.*200 are not chemical elements"),
    ([0], "atomic number.*0 are not"),
    ([-3], "atomic number.*-3 are not"),
    ([14, 6], "species C not in the model"),
])
def test_numbers_outside_the_table_or_the_model(random_si_model, numbers, match):
    atoms = Atoms(numbers=numbers, positions=np.arange(3 * len(numbers)).reshape(-1, 3) * 2.0)
    refused(random_si_model, atoms, UnknownSpeciesError, match=match)


def test_a_slab_with_a_nan_cell_vector(random_si_model):
    slab = Atoms("Si2", positions=[[0, 0, 0], [2.3, 0, 0]], cell=[[5, 0, 0], [0, 5, 0], [np.nan] * 3],
                 pbc=[True, True, False])
    slab.calc = EIPNNCalculator(random_si_model)
    with pytest.raises(InvalidConfigurationError, match="cell contains NaN or inf"):
        slab.get_stress()


@pytest.mark.parametrize("positions", [[[0, 0, 0], [0, 0, 0]], [[0, 0, 0], [0.05, 0, 0]]])
def test_coincident_atoms(random_si_model, positions):
    refused(random_si_model, Atoms("Si2", positions=positions), match="atoms 0 and 1 are .* Å apart")


def test_an_atom_on_its_own_periodic_image_in_a_reused_list(random_si_model):
    # Moves within the skin reuse the list; the distance check must still run every call.
    atoms = Atoms("Si2", positions=[[0, 0, 0], [2.3, 0, 0]], cell=np.eye(3) * 8, pbc=True)
    atoms.calc = EIPNNCalculator(random_si_model, skin=3.0)
    atoms.get_potential_energy()
    atoms.positions[1] = [0.05, 0, 0]
    with pytest.raises(InvalidConfigurationError, match="apart"):
        atoms.get_potential_energy()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_cuda_without_cuda(random_si_model, device):
    with pytest.raises(DeviceUnavailableError, match="sees no CUDA device; use device='cpu'"):
        EIPNNCalculator(random_si_model, device=device)


@pytest.mark.parametrize("device", ["gpu", "tpu:3", ""])
def test_devices_that_are_no_device(random_si_model, device):
    with pytest.raises(DeviceUnavailableError, match="device must be 'cpu', 'cuda'"):
        EIPNNCalculator(random_si_model, device=device)


def test_build_edges_keeps_shifts_relative_to_the_given_positions():
    atoms = bulk("Si", "diamond", 5.43, cubic=True)
    atoms.positions += [[100.0 * 5.43, -3 * 5.43, 0]] * 8  # far outside the cell
    i, j = (edge_index := build_edges(atoms, 3.0)[0])
    lengths = np.linalg.norm(atoms.positions[j] + build_edges(atoms, 3.0)[1] - atoms.positions[i], axis=1)
    np.testing.assert_allclose(lengths, 5.43 * np.sqrt(3) / 4, rtol=1e-9)
    assert edge_index.shape[1] == 32


OUT_OF_MEMORY = r"""
import resource, sys
from ase.build import bulk
from eipnn_calc import EIPNNCalculator
from eipnn_calc.errors import MemoryLimitError
atoms = bulk("Po", "sc", 1.0, cubic=True).repeat(14)  # 2,744 atoms, 2 M pairs within 5 Å
atoms.set_chemical_symbols(["Si"] * len(atoms))
atoms.calc = EIPNNCalculator(sys.argv[1], memory_limit_gb=1000)  # the estimate lets it through
resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30,) * 2)  # the machine has less than it needs
try:
    atoms.get_potential_energy()
except MemoryLimitError as err:
    print(err)
"""


def test_running_out_of_memory_anyway_is_one_line_of_eipnn(random_si_model):
    import os
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", OUT_OF_MEMORY, str(random_si_model)], capture_output=True,
                         text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert len(out.stdout.strip().splitlines()) == 1
    assert "cpu ran out of memory evaluating 2744 atoms" in out.stdout
    assert "can't allocate memory" in out.stdout and "lower memory_limit_gb" in out.stdout
