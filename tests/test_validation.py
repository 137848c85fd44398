"""The property card (eipnn_training.validation): its property functions checked against
Stillinger-Weber through KIM (known values and closed forms), the smoothness measure, the
references file, the card of a model without references, and eipnn-validate end to end."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from ase import units
from ase.build import bulk
from ase.calculators.calculator import Calculator, all_changes
from models import SW_SI

from eipnn_training.cli.validate import main as validate_main
from eipnn_training.config import ConfigError, config_from_dict
from eipnn_training.validation import (CardSettings, ValidationError, count_local_minima,
                                       cubic_elastic_constants, energy_volume_curve,
                                       fit_birch_murnaghan, load_references, nve_stability,
                                       phonon_bands, property_card, select_elements, smoothness,
                                       vacancy_formation_energy)
from eipnn_training.validation.equation_of_state import EVCurve

torch.set_num_threads(1)
SW_A0 = 5.431  # Stillinger & Weber (1985): a0, and C11, C12, C44 (relaxed) in GPa below
SW_C11, SW_C12, SW_C44 = 151.4, 76.4, 56.4


@pytest.fixture(scope="module")
def sw():
    from ase.calculators.kim import KIM
    return KIM(SW_SI)


@pytest.fixture(scope="module")
def sw_eos(sw):
    curve = energy_volume_curve(sw, "Si", "diamond", (5.0, 6.0), 101)
    return curve, fit_birch_murnaghan(curve, 0.03)


def test_sw_equation_of_state_gives_the_known_lattice_constant_and_bulk_modulus(sw_eos):
    curve, eos = sw_eos
    assert eos.a0_angstrom == pytest.approx(SW_A0, abs=0.002)
    assert eos.bulk_modulus_gpa == pytest.approx((SW_C11 + 2 * SW_C12) / 3, rel=0.01)
    assert eos.e0_ev_per_atom == pytest.approx(-4.3366, abs=1e-3)  # SW's cohesive energy
    smooth = smoothness(curve)
    assert smooth.local_minima == 1 and smooth.wiggle_mev_per_atom < 5


def test_sw_elastic_constants_with_internal_relaxation(sw):
    elastic = cubic_elastic_constants(sw, "Si", "diamond", SW_A0, 0.005, 1e-4, 200)
    assert elastic.c11_gpa == pytest.approx(SW_C11, rel=0.01)
    assert elastic.c12_gpa == pytest.approx(SW_C12, rel=0.01)
    assert elastic.c44_gpa == pytest.approx(SW_C44, rel=0.02)
    assert elastic.c44_unrelaxed_gpa > elastic.c44_gpa + 30  # the inner relaxation matters
    assert elastic.relaxations_converged


def test_sw_vacancy_equals_the_cohesive_energy_unrelaxed(sw, sw_eos):
    """SW's three-body term and its derivative vanish at the tetrahedral angle and the pair
    term has its minimum at the bond length, so the unrelaxed vacancy costs exactly the
    cohesive energy (4 broken bonds = 2 x 2 bonds per atom), in any cell size, and the
    neighbours feel no force: relaxing cannot lower it."""
    e0 = sw_eos[1].e0_ev_per_atom
    for min_atoms in (8, 64):
        vacancy = vacancy_formation_energy(sw, "Si", "diamond", SW_A0, min_atoms, 1e-3, 300)
        assert vacancy.num_atoms == min_atoms
        assert vacancy.unrelaxed_formation_ev == pytest.approx(-e0, abs=2e-3)
        assert vacancy.formation_ev <= vacancy.unrelaxed_formation_ev + 1e-3
        assert vacancy.converged


def frozen_gamma_phonon_thz(calculator, a0: float, u: float = 1e-3) -> float:
    """The optical frequency at Γ from the 2-atom primitive cell alone: moving one
    sublattice by u along x (every periodic image with it) gives force -k u, and
    ω = sqrt(2k/m) for two equal masses. Independent of ase.phonons."""
    atoms = bulk("Si", "diamond", a=a0)
    atoms.calc = calculator
    forces = []
    for sign in (1, -1):
        moved = atoms.copy()
        moved.calc = calculator
        moved.positions[1, 0] += sign * u
        forces.append(moved.get_forces()[1, 0])
    k = -(forces[0] - forces[1]) / (2 * u)  # eV/Å²
    omega = np.sqrt(2 * k / atoms.get_masses()[1])  # rad per ASE time unit
    return float(omega * units.fs * 1000 / (2 * np.pi))


def test_phonon_gamma_optical_matches_a_frozen_phonon(sw):
    bands = phonon_bands(sw, "Si", "diamond", SW_A0, 2, 0.01, 30)
    assert bands.gamma_optical_thz == pytest.approx(frozen_gamma_phonon_thz(sw, SW_A0), rel=2e-3)
    assert np.abs(bands.gamma_thz[:3]).max() < 0.05  # acoustic modes at Γ
    assert bands.frequencies_thz.shape == (30, 6) and bands.path_labels.startswith("GX")


def test_sw_nve_is_stable_and_conserves_energy(sw):
    run = nve_stability(sw, "Si", "diamond", SW_A0, 1000, 2.0, 100, 64, 5, 1.5, seed=1)
    assert run.stable and run.steps_done == 100 and run.num_atoms == 64
    assert run.min_distance_angstrom > 1.9
    assert abs(run.drift_mev_per_atom_per_ps) < 5
    assert 500 < run.mean_temperature_k < 1500  # drawn at 2000 K, equipartition halves it


class CollapsingPair(Calculator):
    """A stiff spring pulling atoms 0 and 1 together (rest length 0): the crystal cannot
    stay stable under it."""

    implemented_properties = ["energy", "forces"]

    def calculate(self, atoms=None, properties=None, system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        d = self.atoms.get_distance(0, 1, mic=True, vector=True)  # r1 - r0
        forces = np.zeros((len(self.atoms), 3))
        forces[0], forces[1] = 50 * d, -50 * d
        self.results = {"energy": 25 * float(d @ d), "forces": forces}


def test_nve_flags_atoms_that_come_too_close():
    run = nve_stability(CollapsingPair(), "Si", "diamond", SW_A0, 300, 1.0, 400, 64, 2, 1.5)
    assert not run.stable
    assert run.min_distance_angstrom < 1.5 and run.steps_done < 400
    assert "apart" in run.note


def test_smoothness_counts_the_minima_of_a_jagged_curve():
    a = np.linspace(5.0, 6.0, 101)
    smooth = 0.5 * (a - 5.47) ** 2 - 5.4  # eV/atom
    jagged = smooth + 0.02 * np.sin(2 * np.pi * a / 0.05)  # 20 meV wiggles, 0.05 Å period
    assert count_local_minima(smooth) == 1
    assert smoothness(EVCurve(a, smooth, 8)).wiggle_mev_per_atom < 1e-6
    result = smoothness(EVCurve(a, jagged, 8))
    assert result.local_minima > 1 and result.wiggle_mev_per_atom > 5


def test_equation_of_state_without_a_minimum_in_range_says_so():
    a = np.linspace(5.0, 6.0, 21)
    eos = fit_birch_murnaghan(EVCurve(a, -a, 8), 0.03)  # falls all the way
    assert eos.a0_angstrom is None and "edge of the range" in eos.note


def test_the_e_v_grid_is_cut_to_what_a_kim_eam_computes():
    """Ercolessi-Adams Al's tables end above the nearest-neighbour distance of a = 3.6 Å: the
    KIM model refuses those cells, so the curve keeps the longest computed run and says so."""
    from eipnn_training.eip.calculator import EIPCalculator
    from eipnn_training.validation.equation_of_state import energy_volume_curve

    curve = energy_volume_curve(EIPCalculator("al/eam-ercolessi-adams"), "Al", "fcc", (3.6, 4.6), 21)
    assert curve.lattice_angstrom[0] > 3.6 and curve.lattice_angstrom[-1] == pytest.approx(4.6)
    assert np.isfinite(curve.energy_ev_per_atom).all() and "fails at" in curve.note
    eos = fit_birch_murnaghan(curve, 0.03)
    assert eos.a0_angstrom == pytest.approx(4.03, abs=0.03)  # the model's own, near experiment's 4.05
    with pytest.raises(ValidationError, match="only 1 of the 3 E-V grid points"):
        energy_volume_curve(EIPCalculator("al/eam-ercolessi-adams"), "Al", "fcc", (3.0, 4.05), 3)


def test_references_file_holds_the_targets():
    refs = load_references()
    si = refs.entry("Si")
    assert si.structure == "diamond" and si.lattice_range_angstrom == (5.0, 6.0)
    for key, value in (("a0_angstrom", 5.469), ("c11_gpa", 153.1), ("c12_gpa", 57.0), ("c44_gpa", 74.3),
                       ("bulk_modulus_gpa", 89.0), ("vacancy_formation_ev", 3.6)):
        assert si.properties[key].value == value
        assert si.properties[key].source in refs.sources
    assert si.properties["a0_angstrom"].tolerance.passes(5.469 * 1.004, 5.469)
    assert not si.properties["a0_angstrom"].tolerance.passes(5.469 * 1.006, 5.469)
    assert not si.properties["vacancy_formation_ev"].tolerance.passes(3.95, 3.6)
    assert refs.checks["ev_local_minima"].tolerance.passes(1) and not refs.checks["ev_local_minima"].tolerance.passes(2)
    assert {refs.entry(s).structure for s in ("Al", "Ag", "Au")} == {"fcc"}
    for symbol in ("Al", "Ag", "Au"):  # PBE at the settings of their labels (benchmarks/dft_references.py)
        properties = refs.entry(symbol).properties
        assert {"a0_angstrom", "bulk_modulus_gpa", "c11_gpa", "c12_gpa", "c44_gpa"} <= set(properties)
        assert {p.source for p in properties.values()} == {"eipnn-gpaw-pbe"}
    assert 4.0 < refs.entry("Al").properties["a0_angstrom"].value < 4.1
    (agau,) = refs.alloys_of(["Ag", "Au"])
    assert agau.elements == ("Ag", "Au") and all(p.value < -30 for p in agau.properties.values())


@pytest.mark.parametrize("text, match", [
    ("elements: {Si: {structure: hcp, lattice_range_angstrom: [5, 6]}}", "'structure' must be one of"),
    ("elements: {Si: {structure: diamond, lattice_range_angstrom: [6, 5]}}", "lattice_range_angstrom"),
    ("elements: {Si: {structure: diamond, lattice_range_angstrom: [5, 6], properties: "
     "{a0_angstrom: {value: 5.4, tolerance: {within: 1}}}}}", "tolerance must be one of"),
    ("elements: {Si: {structure: diamond, lattice_range_angstrom: [5, 6], properties: "
     "{a0_angstrom: {value: 5.4, source: nowhere, tolerance: {relative: 0.1}}}}}", "source 'nowhere'"),
    ("elements: {Xx: {structure: fcc, lattice_range_angstrom: [3, 4]}}", "not a chemical symbol"),
])
def test_malformed_references_file(tmp_path, text, match):
    path = tmp_path / "refs.yaml"
    path.write_text(text)
    with pytest.raises(ValidationError, match=match):
        load_references(path)


def test_element_selection():
    refs = load_references()
    chosen, skipped = select_elements(["Si", "Ne"], None, refs)
    assert [e.symbol for e in chosen] == ["Si"] and "no structure for Ne" in skipped["Ne"]
    (carbon,), _ = select_elements(["Si", "C"], "C", refs)  # not in the file: ASE's reference state
    assert carbon.structure == "diamond" and not carbon.properties and "ase.data" in carbon.origin
    with pytest.raises(ValidationError, match="not in the model, which knows only Si"):
        select_elements(["Si"], "Al", refs)
    with pytest.raises(ValidationError, match="has no structure"):
        select_elements(["Si", "H"], "H", refs)  # ASE: H is a diatom


def test_cli_quick_card_on_the_sw_model(sw_si_model, tmp_path, capsys):
    out = tmp_path / "card"
    assert validate_main([str(sw_si_model), "--element", "Si", "-o", str(out), "--quick", "--no-progress"]) == 0
    for name in ("property_card.md", "property_card.json", "ev_Si.png", "phonons_Si.png", "nve_Si.png"):
        assert (out / name).stat().st_size > 0, name
    card = json.loads((out / "property_card.json").read_text())
    assert card["quick"] is True and card["header"]["species"] == ["Si"] and card["skipped"] == {}
    si = card["elements"]["Si"]
    assert si["has_references"] and si["structure"] == "diamond"
    for key in ("a0_angstrom", "bulk_modulus_gpa", "ev_local_minima", "ev_wiggle_mev_per_atom", "c11_gpa",
                "c12_gpa", "c44_gpa", "vacancy_formation_ev", "gamma_optical_thz", "nve_stable",
                "nve_drift_mev_per_atom_per_ps", "nve_min_distance_angstrom"):
        assert key in si["values"], key
    assert set(si["seconds"]) == {"ev", "elastic", "vacancy", "phonons", "nve"}
    # The SW-fitted model against SW itself (KIM): same crystal, close lattice and phonon.
    values = si["values"]
    assert values["a0_angstrom"] == pytest.approx(SW_A0, rel=0.02)
    assert values["nve_stable"] is True and values["ev_local_minima"] == 1
    from ase.calculators.kim import KIM
    assert values["gamma_optical_thz"] == pytest.approx(frozen_gamma_phonon_thz(KIM(SW_SI), SW_A0), rel=0.1)
    rows = {row["key"]: row for row in si["rows"]}
    assert rows["a0_angstrom"]["reference"] == 5.469 and rows["a0_angstrom"]["passed"] in (True, False)
    assert rows["c11_gpa"]["deviation"] == pytest.approx(values["c11_gpa"] - 153.1)
    assert si["num_checks"] == 10 and si["passed"] == (si["num_passed"] == 10)
    markdown = (out / "property_card.md").read_text()
    assert "| property | value | reference (PBE) | deviation | tolerance | pass/fail |" in markdown
    assert "| pass |" in markdown or "| **fail** |" in markdown
    assert "[mp-149]" in markdown and "Sci. Data 2, 150009" in markdown
    assert "# Property card: sw_si.pt" in capsys.readouterr().out


def test_card_without_references_has_no_comparison_columns(sw_si_model, tmp_path):
    refs = tmp_path / "refs.yaml"
    refs.write_text("checks:\n  nve_stable: {tolerance: {equals: true}}\n"
                    "elements:\n  Si: {structure: diamond, lattice_range_angstrom: [5.1, 5.8]}\n")
    card = property_card(sw_si_model, out_dir=tmp_path / "card", references=refs,
                         settings=CardSettings.quick(progress=False, md_steps=20), parts=("ev", "nve"))
    si = card["elements"]["Si"]
    assert not si["has_references"] and all(row["reference"] is None for row in si["rows"])
    assert [row["key"] for row in si["rows"] if row["passed"] is not None] == ["nve_stable"]
    assert "c11_gpa" not in si["values"] and set(si["seconds"]) == {"ev", "nve"}
    markdown = (tmp_path / "card" / "property_card.md").read_text()
    assert "| property | value | check | pass/fail |" in markdown and "reference (PBE)" not in markdown
    assert card["sources"] == {}


def test_cli_reports_a_missing_model_in_one_line(tmp_path, capsys):
    assert validate_main([str(tmp_path / "missing.pt"), "--quick"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("eipnn-validate: error:")


def test_cli_rejects_unknown_parts(sw_si_model, tmp_path, capsys):
    assert validate_main([str(sw_si_model), "-o", str(tmp_path), "--quick", "--parts", "ev,magic"]) == 1
    assert "unknown card parts ['magic']" in capsys.readouterr().err


def test_validation_config_section():
    config = config_from_dict({"validation": {"quick": True, "element": "Si"}})
    assert config.validation.enabled and config.validation.quick and config.validation.element == "Si"
    assert config_from_dict({}).validation.quick is False
    with pytest.raises(ConfigError, match="unknown config key 'validation.fast'"):
        config_from_dict({"validation": {"fast": True}})


def test_fcc_card_with_any_calculator(tmp_path):
    """An fcc element without reference values (Al, ASE's EMT): the card builds the fcc
    cells, its two bulk moduli agree, it has no optical phonon, and only the
    reference-free checks are judged."""
    from ase.calculators.emt import EMT

    from eipnn_training.validation import calculator_card
    path = tmp_path / "refs.yaml"
    checks = load_references().checks  # the shipped file's reference-free checks, Al without values
    path.write_text("checks: {" + ", ".join(f"{key}: {{tolerance: {{{c.tolerance.kind}: {str(c.tolerance.amount).lower()}}}}}"
                                            for key, c in checks.items()) + "}\n"
                    "elements: {Al: {structure: fcc, lattice_range_angstrom: [3.6, 4.6]}}\n")
    refs = load_references(path)
    card = calculator_card(EMT(), [refs.entry("Al")], tmp_path, CardSettings.quick(progress=False),
                           refs, "EMT Al")
    al = card["elements"]["Al"]
    v = al["values"]
    assert al["structure"] == "fcc" and not al["has_references"]
    assert 3.9 < v["a0_angstrom"] < 4.2
    assert v["bulk_modulus_elastic_gpa"] == pytest.approx(v["bulk_modulus_gpa"], rel=0.05)
    assert v["c11_gpa"] > v["c12_gpa"] > 0 and v["c44_gpa"] > 0
    assert v["c44_gpa"] == pytest.approx(v["c44_unrelaxed_gpa"], rel=1e-3)  # one atom per primitive cell
    assert "gamma_optical_thz" not in {row["key"] for row in al["rows"]}
    assert al["details"]["vacancy"]["num_atoms"] == 32  # the smallest fcc cube with >= 8 atoms
    assert {row["key"] for row in al["rows"] if row["passed"] is not None} == {
        "ev_local_minima", "ev_wiggle_mev_per_atom", "nve_stable"}
    assert "header" in card and card["header"] == {}
    assert "Computed with the ASE calculator given." in (tmp_path / "property_card.md").read_text()


def test_settings_full_and_quick():
    full, quick = CardSettings(), CardSettings.quick(md_steps=7)
    assert not full.is_quick and quick.is_quick and quick.md_steps == 7
    assert (full.ev_points, full.md_steps, full.md_timestep_fs, full.vacancy_min_atoms) == (101, 2500, 2.0, 64)
    assert json.loads(json.dumps(full.to_dict()))["is_quick"] is False  # plain data, for the JSON card


def _agau_references(tmp_path, values: dict[str, float], tolerance: float):
    """A references file with the AgAu alloy (and no elements) holding ``values``."""
    properties = ", ".join(f"mixing_x{x}_mev_per_atom: {{value: {v}, source: here, tolerance: {{absolute: {tolerance}}}}}"
                           for x, v in values.items())
    path = tmp_path / "refs.yaml"
    path.write_text("sources: {here: made in the test}\n"
                    "alloys: {AgAu: {elements: [Ag, Au], lattice_angstrom: [4.09, 4.08], "
                    f"properties: {{{properties}}}}}}}\n")
    return load_references(path)


def test_an_alloy_card_compares_the_mixing_energies(tmp_path):
    """The mixing energies of Ag-Au (ASE's EMT) beside references: ones the calculator meets
    pass, a far one fails, and the card's page and headline carry them."""
    from ase.calculators.emt import EMT

    from eipnn_training.validation import calculator_card
    from eipnn_training.validation.card import headline
    from eipnn_training.validation.mixing import mixing_curve

    curve = mixing_curve(EMT(), "Ag", "Au", 4.09, 4.08)
    exact = {"0.25": curve.mixing_mev_per_atom[1], "0.5": curve.mixing_mev_per_atom[2]}
    refs = _agau_references(tmp_path, {**exact, "0.75": curve.mixing_mev_per_atom[3] + 30.0}, tolerance=1.0)
    assert refs.alloys_of(["Ag", "Au", "Cu"])[0].elements == ("Ag", "Au") and not refs.alloys_of(["Ag"])
    card = calculator_card(EMT(), [], tmp_path / "card", CardSettings.quick(progress=False), refs, "EMT",
                           alloys=refs.alloys_of(["Ag", "Au"]))
    agau = card["alloys"]["AgAu"]
    assert agau["values"]["mixing_x0.5_mev_per_atom"] == pytest.approx(curve.mixing_mev_per_atom[2])
    assert agau["failed"] == ["mixing_x0.75_mev_per_atom"] and agau["num_checks"] == 3
    assert card["passed"] is False and card["sources"] == {"here": "made in the test"}
    page = (tmp_path / "card" / "property_card.md").read_text()
    assert "## AgAu (fcc, ordered 4-atom cells): 2/3 checks pass" in page and "mixing_AgAu.png" in page
    assert (tmp_path / "card" / "mixing_AgAu.png").exists()
    assert headline(card, tmp_path)["alloys"]["AgAu"]["failed"] == ["mixing_x0.75_mev_per_atom"]


@pytest.mark.parametrize("alloy, match", [
    ("{elements: [Ag], lattice_angstrom: [4.1, 4.1]}", "two chemical symbols"),
    ("{elements: [Ag, Ag], lattice_angstrom: [4.1, 4.1]}", "two chemical symbols"),
    ("{elements: [Ag, Au], lattice_angstrom: [4.1]}", "lattice_angstrom"),
])
def test_malformed_alloy_in_references_file(tmp_path, alloy, match):
    path = tmp_path / "refs.yaml"
    path.write_text(f"alloys: {{AgAu: {alloy}}}\n")
    with pytest.raises(ValidationError, match=match):
        load_references(path)
