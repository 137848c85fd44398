"""The exported SchNet's tabulated filters (training/models/tabulated.py): the same function
as the network to the spline's accuracy, continuous with its slope, and what the export
writes unless ``exact``. The physics checks of the tabulated file (finite differences,
invariances, the cutoff) are in test_schnet.py, its pruned layers in test_layer_edges.py."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from ase.build import bulk

from eipnn_calc import EIPNNCalculator, read_metadata
from eipnn_calc.neighbors import build_edges
from eipnn_training.export import export_model
from eipnn_training.models.build import ModelSpec, build_potential
from eipnn_training.models.tabulated import (TOLERANCE, FilterTable, TableAccuracyError, TabulatedSOAP, derivatives,
                                             schnet_filters, soap_radial, tabulated)

from models import SMALL_SCHNET, batched, fit_energies_and_forces, sw_configurations

CUTOFF = 5.0


@pytest.fixture(scope="module")
def fitted():
    """(spec, potential): a small SchNet with the paper's Gaussians fitted to SW energies and
    forces, so its filters are trained ones rather than random."""
    torch.manual_seed(2)
    spec = ModelSpec("schnet", ["Si"], CUTOFF, dict(SMALL_SCHNET))
    potential = build_potential(spec).double()
    fit_energies_and_forces(potential, batched(sw_configurations(12, 3), CUTOFF), steps=60)
    return spec, potential


def _configurations():
    rattled = bulk("Si", "diamond", 5.431, cubic=True).repeat(2)
    rattled.rattle(0.15, seed=4)
    strained = bulk("Si", "diamond", 5.2, cubic=True)
    strained.set_cell(strained.cell.array @ np.array([[1.0, 0.04, 0], [0, 1.03, 0], [0, 0, 0.97]]), scale_atoms=True)
    vacancy = bulk("Si", "diamond", 5.431, cubic=True).repeat(2)
    del vacancy[0]
    vacancy.rattle(0.05, seed=5)
    return [rattled, strained, vacancy]


def _evaluate(potential, atoms, dtype=torch.float64):
    edge_index, shifts = build_edges(atoms, CUTOFF)
    out = potential(torch.tensor(atoms.positions, dtype=dtype), torch.zeros(len(atoms), dtype=torch.int64),
                    torch.tensor(edge_index), torch.tensor(shifts, dtype=dtype), torch.ones(len(atoms), dtype=torch.bool))
    return float(out["energy"]) / len(atoms), out["forces"].double().numpy()


def _largest_differences(potential, other, dtype=torch.float64) -> tuple[float, float]:
    """(eV/atom, eV/Å): the largest energy and force-component differences over the
    configurations between ``other`` (in ``dtype``) and ``potential`` (float64)."""
    energy, force = 0.0, 0.0
    for atoms in _configurations():
        e_ref, f_ref = _evaluate(potential, atoms)
        e, f = _evaluate(other, atoms, dtype)
        energy, force = max(energy, abs(e - e_ref)), max(force, float(np.abs(f - f_ref).max()))
    return energy, force


def _with_table(potential, spacing: float | None = None):
    copied = copy.deepcopy(potential)
    copied.representation = tabulated(potential.representation, CUTOFF, spacing)
    return copied


def _spline(table: FilterTable, layer: int, lengths: torch.Tensor) -> torch.Tensor:
    return table.filters(layer, *table.locate(lengths))


def test_the_table_takes_the_networks_value_slope_and_curvature_at_every_knot_from_both_sides(fitted):
    """At each knot the spline on either side has the network's W, dW/dr and d2W/dr2 (the
    slope and curvature by central differences of the spline within its interval)."""
    _, potential = fitted
    schnet = potential.representation
    table = FilterTable.of(schnet_filters(schnet), CUTOFF, 0.05)
    knots = torch.arange(1, table.num_knots - 1, dtype=torch.float64) * table.spacing
    step = 1e-4
    for layer, (value, slope, curvature) in enumerate(derivatives(schnet_filters(schnet), knots)):
        with torch.no_grad():
            np.testing.assert_allclose(_spline(table, layer, knots), value, atol=1e-12)
            for side in (-1, 1):  # differences inside the interval left, then right, of the knot
                near = [_spline(table, layer, knots + side * m * step) for m in (0.5, 1.5, 2.5)]
                by_length = side * (near[1] - near[0]) / step  # at knot + side * step
                second = (near[2] - 2 * near[1] + near[0]) / step**2  # at knot + side * 1.5 step
                np.testing.assert_allclose(by_length, slope + side * step * curvature, rtol=1e-5, atol=1e-5)
                np.testing.assert_allclose(second, curvature, rtol=1e-3, atol=1e-2 * float(curvature.abs().max()))


def test_the_filters_and_their_slopes_are_zero_at_the_cutoff(fitted):
    _, potential = fitted
    table = FilterTable.accurate(schnet_filters(potential.representation), CUTOFF)
    assert (table.num_knots - 1) * table.spacing == pytest.approx(CUTOFF, rel=1e-12)
    k = table.num_knots
    assert float(table.rows[:, [k - 1, 2 * k - 1, 3 * k - 1]].abs().max()) == 0.0
    at_cutoff = _spline(table, 0, torch.tensor([CUTOFF * (1 - 1e-12)], dtype=torch.float64))
    assert float(at_cutoff.abs().max()) < 1e-12


def test_the_tabulated_potential_is_the_network_to_the_spline_accuracy(fitted):
    """On the grid ``accurate`` picks, energies within 1e-6 eV/atom and forces within 1e-5
    eV/Å of the network (issue 17's bound) on rattled, strained and defective cells; the
    differences shrink as a quintic spline's do (energy ~h^6, forces ~h^5), so halving the
    spacing cuts them by ~64x and ~32x; a coarse table misses the bound (the check can fail)."""
    _, potential = fitted
    energy, force = _largest_differences(potential, _with_table(potential))
    assert energy < 1e-6 and force < 1e-5
    coarse = _largest_differences(potential, _with_table(potential, 0.4))
    finer = _largest_differences(potential, _with_table(potential, 0.2))
    assert coarse[1] > 1e-5
    assert coarse[0] / finer[0] > 20 and coarse[1] / finer[1] > 10


def test_the_grid_is_the_coarsest_within_the_tolerance(fitted):
    """Narrow Gaussians (sigma = their spacing) make filters that vary faster: a finer grid."""
    _, potential = fitted
    filters = schnet_filters(potential.representation)
    table = FilterTable.accurate(filters, CUTOFF)
    assert table.largest_relative_error(filters) <= TOLERANCE
    coarser = FilterTable.of(filters, CUTOFF, 2 * table.spacing)
    assert coarser.largest_relative_error(filters) > TOLERANCE
    torch.manual_seed(2)
    narrow = build_potential(ModelSpec("schnet", ["Si"], CUTOFF, {**SMALL_SCHNET, "rbf_width": "spacing"})).double()
    assert FilterTable.accurate(schnet_filters(narrow.representation), CUTOFF).spacing < table.spacing
    with pytest.raises(TableAccuracyError, match="export the model with exact=True"):
        FilterTable.accurate(filters, CUTOFF, tolerance=1e-15)


def test_a_float32_table_is_no_further_from_the_network_than_the_float32_network(fitted):
    """Both in float32 against the float64 network: mean energy and force differences over
    the configurations within 1.5x of each other (energies differ at the last bits of a
    float32 sum). The spline is written so that its slope does not lose digits to rounding:
    written with the two knot values instead of their difference, its largest float32 force
    differences were 5x the network's on a cubic spline's grid of 0.005 Å, 12x at half of it."""
    _, potential = fitted
    table = _with_table(potential).float()
    network = copy.deepcopy(potential).float()
    errors = {"table": [], "network": []}
    for atoms in _configurations() + [bulk("Si", "diamond", 5.3 + 0.05 * k).repeat(2) for k in range(6)]:
        atoms.rattle(0.05, seed=6)
        e_ref, f_ref = _evaluate(potential, atoms)
        for name, model in (("table", table), ("network", network)):
            e, f = _evaluate(model, atoms, torch.float32)
            errors[name].append((abs(e - e_ref), np.abs(f - f_ref).mean()))
    table_mean, network_mean = np.mean(errors["table"], axis=0), np.mean(errors["network"], axis=0)
    assert np.all(table_mean <= 1.5 * network_mean), (table_mean, network_mean)


def test_export_writes_the_table_unless_exact(fitted, tmp_path):
    spec, potential = fitted
    export_model(potential, spec, tmp_path / "tabulated.pt")
    export_model(potential, spec, tmp_path / "exact.pt", exact=True)
    table = read_metadata(tmp_path / "tabulated.pt").model["filter_table"]
    assert table["spacing_angstrom"] == FilterTable.accurate(schnet_filters(potential.representation), CUTOFF).spacing
    assert "filter_table" not in read_metadata(tmp_path / "exact.pt").model
    atoms = _configurations()[0]
    energies = []
    for name in ("tabulated", "exact"):
        atoms.calc = EIPNNCalculator(tmp_path / f"{name}.pt")
        energies.append(atoms.get_potential_energy() / len(atoms))
    assert energies[0] != energies[1] and energies[0] == pytest.approx(energies[1], abs=1e-6)


# --- SOAPNet: the radial functions of its SOAP ----------------------------------------------


@pytest.mark.parametrize("smooth", [True, False], ids=["switched", "dscribe"])
def test_soapnets_tabulated_radial_functions_give_its_energies_and_forces(smooth):
    """SOAP's L n radial functions from the table: energies within 1e-6 eV/atom and forces
    within 1e-5 eV/Å of the analytic ones, with the smooth switch (which vanishes at the
    cutoff) and without it (dscribe's settings: nonzero at the cutoff); the descriptor
    itself to 1e-6 of its scale."""
    torch.manual_seed(0)
    hyper = {"n_max": 4, "l_max": 3, "num_features": 16, "num_dense": 2, "smooth_cutoff": smooth}
    spec = ModelSpec("soapnet", ["Si"], CUTOFF, hyper, 16)
    potential = build_potential(spec).double()
    potential.scale.fill_(10.0)
    table = _with_table(potential)
    assert isinstance(table.representation.soap, TabulatedSOAP)
    energy, force = _largest_differences(potential, table)
    assert energy < 1e-6 and force < 1e-5
    assert energy > 0.0  # the table, not the analytic functions
    coarse = _largest_differences(potential, _with_table(potential, 0.5))
    assert coarse[1] > 1e-5  # the check can fail
    atoms = _configurations()[0]
    edge_index, shifts = build_edges(atoms, CUTOFF)
    vectors = torch.tensor(atoms.positions[edge_index[1]] - atoms.positions[edge_index[0]] + shifts)
    arguments = (torch.zeros(len(atoms), dtype=torch.int64), torch.tensor(edge_index), vectors, vectors.norm(dim=1))
    exact = potential.representation.soap(*arguments)
    np.testing.assert_allclose(table.representation.soap(*arguments), exact, atol=1e-6 * float(exact.abs().max()))


def test_soapnet_export_writes_the_radial_table(tmp_path):
    torch.manual_seed(0)
    spec = ModelSpec("soapnet", ["Si"], CUTOFF, {"n_max": 4, "l_max": 3, "num_features": 16, "num_dense": 2}, 16)
    potential = build_potential(spec).double()
    export_model(potential, spec, tmp_path / "soapnet.pt")
    table = read_metadata(tmp_path / "soapnet.pt").model["radial_table"]
    assert table["spacing_angstrom"] == FilterTable.accurate(soap_radial(potential.representation.soap), CUTOFF).spacing
