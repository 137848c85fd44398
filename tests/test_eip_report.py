"""The Table 2 report and the labelling CLI, on small slices of si-pbe."""
from __future__ import annotations

import numpy as np
import pytest

from eipnn_training.cli.label import main
from eipnn_training.data.si_pbe import load_si_pbe
from eipnn_training.eip import EIPCalculator, LabelStore, label, species_counts
from eipnn_training.eip.report import accuracy_rows, format_table


@pytest.fixture(scope="module")
def si_slice():
    configurations = load_si_pbe()
    picked = np.random.default_rng(0).choice(len(configurations), 160, replace=False)
    return [configurations[i] for i in np.sort(picked)]


def test_alignment_reduces_the_error_of_every_eip_on_test(si_slice, tmp_path):
    names = ["si/sw-bht", "si/tersoff-t2"]
    labels = label(si_slice, names, store=False, progress=False)
    dft = np.array([atoms.get_potential_energy() for atoms in si_slice])
    counts, species = species_counts(si_slice)
    with LabelStore(tmp_path) as store:
        rows = accuracy_rows(labels, dft, counts, species, seeds=(1, 2), store=store)
        store.load_alignment("si-pbe/seed2/train")  # saved beside the labels
    for row in rows:
        raw_atom = np.mean([atom for _, atom in row["raw"]])
        aligned_atom = np.mean([atom for _, atom in row["aligned"]])
        # si-pbe DFT and EIP zeros differ by about 1 eV/atom (dataset README)
        assert raw_atom > 0.5 and aligned_atom < raw_atom - 0.3
        assert row["missing"] == [0, 0]
    table = format_table(rows, species, (1, 2), n_test=7)
    assert table.count("\n| si/") == 2
    assert "seeds 1, 2" in table


def test_raw_mae_is_computed_by_hand(si_slice):
    labels = label(si_slice, ["si/edip"], store=False, progress=False)
    dft = np.array([atoms.get_potential_energy() for atoms in si_slice])
    counts, species = species_counts(si_slice)
    rows = accuracy_rows(labels, dft, counts, species, seeds=(3,))
    from eipnn_training.data.si_pbe import protocol_split

    test = protocol_split(len(si_slice), 3)["test"]
    error = np.abs(labels.energies[test, 0] - dft[test])
    assert rows[0]["raw"][0] == pytest.approx((error.mean(), (error / labels.n_atoms[test]).mean()))


def test_cli_labels_a_file_into_a_store_and_an_npz(si_slice, tmp_path, capsys):
    import ase.io

    path = tmp_path / "frames.extxyz"
    ase.io.write(path, si_slice[:5])
    output = tmp_path / "labels.npz"
    argv = [str(path), "--eips", "si/sw-bht,si/edip", "--store", str(tmp_path / "s")]
    argv += ["--output", str(output), "--forces"]
    assert main(argv) == 0
    assert "5 configurations x 2 EIPs" in capsys.readouterr().out
    saved = np.load(output)
    assert saved["energies_ev"].shape == (5, 2) and saved["present"].all()
    forces = saved["forces_ev_per_angstrom"]
    assert forces.shape == (saved["n_atoms"].sum(), 2, 3) and np.isfinite(forces).all()
    atoms = ase.io.read(path, index=4)  # as written to the file, digits and all
    atoms.calc = EIPCalculator("si/edip")
    np.testing.assert_allclose(forces[-len(atoms):, 1], atoms.get_forces(), atol=1e-10)
    assert LabelStore(tmp_path / "s").count() == 10


def test_cli_reports_unknown_eip_without_a_traceback(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the failed KIM lookup is logged to ./kim.log
    assert main(["si-pbe", "--eips", "si/nope", "--store", str(tmp_path)]) == 1
    assert "unknown EIP 'si/nope'" in capsys.readouterr().err


def test_report_command_path_writes_the_markdown(tmp_path):
    from eipnn_training.eip.report import eip_accuracy_report

    output = tmp_path / "eip_accuracy.md"
    text = eip_accuracy_report(
        seeds=(1,), eip_names=("si/sw-bht",), store=tmp_path / "s", output=output
    )
    assert output.read_text() == text
    assert "| si/sw-bht | SW_BalamaneHaliciogluTiller" in text
    assert "(222 configurations)" in text  # the protocol's test split
    with LabelStore(tmp_path / "s") as store:
        assert store.count() == 5534
        assert store.load_alignment("si-pbe/seed1/train")["names"] == ["si/sw-bht"]
