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
    assert output.read_text() == "# EIP accuracy: the paper's Table 2\n\n" + text
    assert text.startswith("<!-- eip-accuracy:si-pbe:begin -->\n## si-pbe\n")
    assert "| si/sw-bht | SW_BalamaneHaliciogluTiller" in text
    assert "(222 configurations)" in text  # the protocol's test split
    with LabelStore(tmp_path / "s") as store:
        assert store.count() == 5534
        assert store.load_alignment("si-pbe/seed1/train")["names"] == ["si/sw-bht"]


def test_report_of_a_dft_set_folder_is_its_own_section(tmp_path):
    """A set made like data/al-pbe (EMT energies standing in for DFT): its group's EIPs by
    default, the set's protocol splits, and a section that leaves the others alone."""
    from test_pbe_sets import make_set

    from eipnn_training.data.pbe_sets import pbe_set_split
    from eipnn_training.eip.report import eip_accuracy_report

    folder = tmp_path / "al-emt"
    make_set(folder, 80, list(range(0, 80, 2)))
    output = tmp_path / "eip_accuracy.md"
    output.write_text("# EIP accuracy: the paper's Table 2\n\n<!-- eip-accuracy:si-pbe:begin -->\nkept\n"
                      "<!-- eip-accuracy:si-pbe:end -->\n")
    text = eip_accuracy_report(seeds=(1, 2), store=tmp_path / "s", output=output, dataset=folder)
    written = output.read_text()
    assert "kept" in written and written.endswith(text)
    assert text.startswith("<!-- eip-accuracy:al-emt:begin -->\n## al-emt\n")
    assert text.count("\n| al/") == 10  # the catalogue's Al group
    test = pbe_set_split(np.arange(0, 80, 2), 40, 1)["test"]
    assert f"on the 40 configurations labelled so far ({len(test)} configurations)" in text
    # KIM's Asap EMT is ASE's EMT up to a constant per atom (ASE's has no cohesive zero):
    # the raw error is that constant, the aligned one nothing.
    cells = next(line for line in text.splitlines() if line.startswith("| al/emt |")).split(" | ")
    raw_atom, aligned_config, offset = float(cells[3].split()[0]), cells[4], cells[6]
    assert raw_atom > 1.0 and aligned_config == "0.0000 (0.0000)"
    assert offset == f"Al: {-raw_atom:+.3f}" or offset == f"Al: {raw_atom:+.3f}"
