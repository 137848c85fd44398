"""The model file contract: export, load, and the errors of a file that is not a model
(the schema of its metadata and network: tests/test_model_file_schema.py)."""
import numpy as np
import pytest
import torch
from ase.build import bulk

from eipnn_calc import EIPNNCalculator, ModelFileError, load_model, read_metadata
from eipnn_calc.neighbors import build_edges
from eipnn_training.export import export_model
from eipnn_training.models.build import ModelSpec, build_potential


def test_metadata_round_trip(random_si_model):
    metadata = read_metadata(random_si_model)
    assert metadata.species == ["Si"]
    assert metadata.cutoff_angstrom == 5.0
    assert metadata.num_layers == 2
    assert metadata.dtype == "float64"
    assert metadata.model["kind"] == "schnet"
    assert metadata.versions["torch"] == torch.__version__
    assert metadata.units == {"energy": "eV", "length": "Angstrom"}


@pytest.mark.parametrize("exact, atol", [(True, 1e-10), (False, 1e-7)], ids=["exact", "tabulated"])
def test_exported_model_equals_python_model(tmp_path, exact, atol):
    """The exact export is the network to rounding; the tabulated one (the default) to the
    accuracy of its filter tables (tests/test_tabulated.py)."""
    torch.manual_seed(3)
    spec = ModelSpec("schnet", ["Si"], 5.0, {"num_features": 32, "num_interactions": 2, "num_rbf": 32})
    potential = build_potential(spec).double()
    potential.atom_ref.fill_(-5.0)
    export_model(potential, spec, tmp_path / "m.pt", exact=exact)
    atoms = bulk("Si", "diamond", 5.43, cubic=True)
    atoms.rattle(0.1, seed=2)
    edge_index, shifts = build_edges(atoms, 5.0)
    inputs = (
        torch.tensor(atoms.positions),
        torch.zeros(len(atoms), dtype=torch.int64),
        torch.tensor(edge_index),
        torch.tensor(shifts),
        torch.ones(len(atoms), dtype=torch.bool),
    )
    expected = potential(*inputs)
    atoms.calc = EIPNNCalculator(tmp_path / "m.pt")
    assert atoms.get_potential_energy() == pytest.approx(float(expected["energy"]), abs=atol)
    np.testing.assert_allclose(atoms.get_forces(), expected["forces"].numpy(), atol=atol)
    np.testing.assert_allclose(atoms.get_potential_energies(), expected["energies"].numpy(), atol=atol)


def test_missing_path(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        load_model(tmp_path / "nothing.pt")


def test_not_torchscript(tmp_path):
    path = tmp_path / "model.pt"
    path.write_text("this is not a model")
    with pytest.raises(ModelFileError, match="not a TorchScript file"):
        EIPNNCalculator(path)


def test_torchscript_but_not_eipnn(tmp_path):
    path = tmp_path / "plain.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(path))
    with pytest.raises(ModelFileError, match="not an eipnn model"):
        load_model(path)


def test_edge_chunks_do_not_change_results():
    torch.manual_seed(4)
    spec = ModelSpec("schnet", ["Si"], 5.0, {"num_features": 16, "num_interactions": 2, "num_rbf": 16})
    potential = build_potential(spec).double()
    atoms = bulk("Si", "diamond", 5.43, cubic=True)
    atoms.rattle(0.1, seed=5)
    edge_index, shifts = build_edges(atoms, 5.0)
    inputs = lambda: (  # noqa: E731
        torch.tensor(atoms.positions),
        torch.zeros(len(atoms), dtype=torch.int64),
        torch.tensor(edge_index),
        torch.tensor(shifts),
        torch.ones(len(atoms), dtype=torch.bool),
    )
    whole = potential(*inputs())
    potential.representation.edge_chunk = 37  # 128 edges -> 4 chunks, the last one short
    chunked = potential(*inputs())
    for key in ("energy", "forces", "virial"):
        torch.testing.assert_close(chunked[key], whole[key], rtol=1e-12, atol=1e-12)


SMALL_HYPER = {
    "schnet": {"num_features": 16, "num_interactions": 2, "num_rbf": 16},
    "cgcnn": {"num_features": 16, "num_layers": 2, "num_rbf": 16},
    "soapnet": {"n_max": 3, "l_max": 2},
    "gemnet": {"num_blocks": 1, "atom_features": 8, "edge_features": 8, "triplet_features": 4, "rbf_features": 4,
               "cbf_features": 4, "bilinear_features": 4, "num_spherical": 3, "num_radial": 4, "num_atom_layers": 1,
               "triplet_cutoff_angstrom": 3.0},
}


@pytest.mark.parametrize("kind", sorted(SMALL_HYPER))
def test_edge_gradients_are_the_energy_derivative_of_each_edge(tmp_path, kind):
    """Format 3's edge_gradients (what the KIM driver's folded periodic images use): dE/dr_e
    for each given edge, zero beyond the cutoff, and the forces and virial are made of them.
    The shift enters an edge vector additively, so dE/dshift_e is dE/dr_e."""
    torch.manual_seed(5)
    spec = ModelSpec(kind, ["Si"], 4.0, SMALL_HYPER[kind])
    path = tmp_path / f"{kind}.pt"
    export_model(build_potential(spec), spec, path)
    module, _ = load_model(path)
    atoms = bulk("Si", "diamond", 5.43, cubic=True)
    atoms.rattle(0.1, seed=6)
    edge_index, shifts = build_edges(atoms, 4.5)  # a skin: some edges lie beyond the cutoff
    positions, edges = torch.tensor(atoms.positions), torch.tensor(edge_index)
    species, mask = torch.zeros(len(atoms), dtype=torch.int64), torch.ones(len(atoms), dtype=torch.bool)

    def run(edge_shift: np.ndarray) -> dict:
        return module(positions.clone(), species, edges, torch.tensor(edge_shift), mask)

    out = run(shifts)
    gradients = out["edge_gradients"].numpy()
    assert gradients.shape == shifts.shape
    lengths = np.linalg.norm(atoms.positions[edge_index[1]] + shifts - atoms.positions[edge_index[0]], axis=1)
    assert (lengths >= 4.0).sum() > 10 and not gradients[lengths >= 4.0].any()
    step = 1e-5
    for e in np.flatnonzero(lengths < 4.0)[:: max(1, (lengths < 4.0).sum() // 6)]:
        for k in range(3):
            plus, minus = shifts.copy(), shifts.copy()
            plus[e, k] += step
            minus[e, k] -= step
            numeric = (float(run(plus)["energy"]) - float(run(minus)["energy"])) / (2 * step)
            assert numeric == pytest.approx(gradients[e, k], abs=1e-7)
    forces = np.zeros_like(atoms.positions)
    np.add.at(forces, edge_index[0], gradients)
    np.add.at(forces, edge_index[1], -gradients)
    np.testing.assert_allclose(forces, out["forces"].numpy(), rtol=0, atol=1e-10)
    vectors = atoms.positions[edge_index[1]] + shifts - atoms.positions[edge_index[0]]
    virial = -vectors.T @ gradients
    np.testing.assert_allclose(0.5 * (virial + virial.T), out["virial"].numpy(), rtol=0, atol=1e-10)
