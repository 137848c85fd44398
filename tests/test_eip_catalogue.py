"""The EIP catalogue: the paper's 20 potentials, name resolution, clear errors."""
from __future__ import annotations

import pytest

from eipnn_training.cli.label import main
from eipnn_training.eip import EIPNotInstalled, GROUPS, UnknownEIP, expand, resolve
from eipnn_training.eip.catalogue import KIM_CATALOGUE, catalogue_rows


@pytest.fixture(autouse=True)
def _kim_log_in_tmp(tmp_path, monkeypatch):
    """The KIM API appends its error log to ./kim.log: keep it out of the checkout."""
    monkeypatch.chdir(tmp_path)


def test_catalogue_holds_the_papers_twenty_eips_all_installed():
    rows = catalogue_rows()
    assert [len(GROUPS[g]) for g in ("si", "al", "agau")] == [8, 10, 2]
    assert len(rows) == 20
    assert all(installed for _, _, installed in rows)


def test_short_name_and_full_kim_id_resolve_to_the_same_key():
    short = resolve("si/sw-bht")
    full = resolve(KIM_CATALOGUE["si/sw-bht"])
    assert short.kind == full.kind == "kim"
    assert short.eip_id == full.eip_id == KIM_CATALOGUE["si/sw-bht"]


def test_any_installed_kim_model_is_usable_by_its_id():
    eip = resolve("SW_StillingerWeber_1985_Si__MO_405512056662_005")
    assert eip.kim_id == "SW_StillingerWeber_1985_Si__MO_405512056662_005"


def test_calculator_eip_key_identifies_its_parameters():
    eip = resolve("si/tersoff-tmod")
    assert eip.kind == "calculator"
    assert eip.eip_id.startswith("ase:matscipy.Manybody.Kumagai2007:")


def test_groups_expand_in_order_without_duplicates():
    assert expand("si,si/edip")[:1] == ["si/edip"]
    assert len(expand(["si", "al", "agau", "si"])) == 20


def test_missing_kim_model_names_the_debian_package():
    with pytest.raises(EIPNotInstalled, match="openkim-models"):
        resolve("SW_NotInstalled_2099_Si__MO_000000000000_000")


def test_unknown_name_says_what_to_use():
    with pytest.raises(UnknownEIP, match="eipnn-label --list"):
        resolve("si/no-such-potential")


def test_simulator_model_is_refused_with_the_reason():
    with pytest.raises(UnknownEIP, match="not a portable model"):
        resolve("Sim_LAMMPS_ModifiedTersoff_KumagaiIzumiHara_2007_Si__SM_773333226968_000")


def test_cli_list_shows_installed_or_missing(capsys):
    assert main(["--list"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 20
    assert all(" installed " in line for line in lines)
    assert lines[0].startswith("si/edip")


def test_cli_list_marks_an_absent_model_missing_and_names_the_package(capsys, monkeypatch):
    # A catalogue entry whose model really is not installed here (the KIM lookup runs).
    absent = "SW_NotInstalled_2099_Si__MO_000000000000_000"
    monkeypatch.setitem(KIM_CATALOGUE, "si/not-installed", absent)
    monkeypatch.setitem(GROUPS, "si", (*GROUPS["si"], "si/not-installed"))
    assert main(["--list"]) == 0
    out = capsys.readouterr().out
    assert f"si/not-installed               missing    {absent}" in out
    assert "apt-get install libkim-api-dev openkim-models" in out


def test_labels_of_a_model_for_several_elements_are_filed_apart_from_the_old_ones():
    """Labels of a multi-element KIM model made before it got one model object per element
    set (agau/emt gave every element its first one's) must not be reused: its store key
    changed; a one-element model's did not."""
    from eipnn_training.eip.catalogue import PER_ELEMENT_SET, kim_store_id, resolve

    assert resolve("agau/emt").eip_id == KIM_CATALOGUE["agau/emt"] + PER_ELEMENT_SET
    assert resolve("agau/eam-zhou-johnson-wadley").eip_id.endswith(PER_ELEMENT_SET)
    assert resolve("al/emt").eip_id == KIM_CATALOGUE["al/emt"]
    assert kim_store_id("Tersoff_LAMMPS_ErhartAlbe_2005_SiC__MO_903987585848_004").endswith(PER_ELEMENT_SET)
    assert kim_store_id("SW_StillingerWeber_1985_Si__MO_405512056662_005") == "SW_StillingerWeber_1985_Si__MO_405512056662_005"
