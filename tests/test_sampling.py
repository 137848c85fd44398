"""Configuration sampling with the EIPs: reproducible from the seed, sizes and kinds as
planned, no atoms too close, no duplicates, and the subset that gets DFT labels."""
from __future__ import annotations

from collections import Counter

import ase.io
import numpy as np
import pytest
from ase.build import bulk

from eipnn_training.cli import sample as sample_cli
from eipnn_training.sampling import (
    RECIPES,
    SYSTEMS,
    SamplingError,
    fingerprint,
    min_distance_angstrom,
    plan_counts,
    read_pool,
    sample_pool,
    stratified_subset,
)

SIZE = 30  # one to a few of each kind: a few seconds of MD per system
SANE_MIN_DISTANCE_ANGSTROM = 1.9


@pytest.fixture(scope="module", params=sorted(SYSTEMS))
def pool(request):
    return request.param, sample_pool(request.param, size=SIZE, seed=11)


def _same(first, second) -> bool:
    return len(first) == len(second) and all(
        np.array_equal(a.numbers, b.numbers)
        and np.array_equal(a.positions, b.positions)
        and np.array_equal(a.cell.array, b.cell.array)
        and np.array_equal(a.pbc, b.pbc)
        and a.info == b.info
        for a, b in zip(first, second)
    )


def _without_index(frames):
    for atoms in frames:
        atoms.info.pop("pool_index")
    return frames


def test_the_seed_reproduces_the_pool_and_another_seed_changes_it(pool):
    name, configurations = pool
    assert _same(sample_pool(name, size=SIZE, seed=11), configurations)
    # each kind draws from its own stream: a part of the plan is the same part of the pool
    kinds = sorted(SYSTEMS[name].plan)[1::4]  # a static kind and an MD one
    assert any(k.startswith("md-") for k in kinds) and not all(k.startswith("md-") for k in kinds)
    part = _without_index([a.copy() for a in configurations if a.info["kind"] in kinds])
    assert _same(_without_index(sample_pool(name, size=SIZE, seed=11, kinds=kinds)), part)
    assert not _same(_without_index(sample_pool(name, size=SIZE, seed=12, kinds=kinds)), part)


def test_every_kind_has_its_share_and_every_size_is_within_bounds(pool):
    name, configurations = pool
    kinds = Counter(atoms.info["kind"] for atoms in configurations)
    assert kinds == Counter(plan_counts(SYSTEMS[name], SIZE)) and set(kinds) == set(SYSTEMS[name].plan)
    assert set(kinds) <= set(RECIPES)
    assert len(configurations) == SIZE
    assert all(4 <= len(atoms) <= 32 for atoms in configurations)
    assert [atoms.info["pool_index"] for atoms in configurations] == list(range(SIZE))


def test_no_two_atoms_are_too_close_and_no_configuration_repeats(pool):
    name, configurations = pool
    minimum = SYSTEMS[name].min_distance_angstrom
    assert minimum >= SANE_MIN_DISTANCE_ANGSTROM
    assert all(min_distance_angstrom(atoms) >= minimum for atoms in configurations)
    assert len({fingerprint(atoms) for atoms in configurations}) == len(configurations)


def test_species_surfaces_and_md_are_what_the_system_says(pool):
    name, configurations = pool
    spec = SYSTEMS[name]
    assert {s for atoms in configurations for s in atoms.get_chemical_symbols()} == set(spec.species)
    for atoms in configurations:
        kind = atoms.info["kind"]
        if kind in ("surface", "md-surface", "diamond-surface"):
            assert atoms.pbc.tolist() == [True, True, False]
            z = atoms.positions[:, 2]
            assert atoms.cell[2, 2] - (z.max() - z.min()) > 8.0  # vacuum between images
        else:
            assert atoms.pbc.all()
        if kind.startswith("md-"):
            assert atoms.info["md_eip"] == spec.md_eip and 300 <= atoms.info["temperature_K"] <= 2500
    if name == "agau":
        fractions = [np.mean(atoms.numbers == 47) for atoms in configurations]
        assert min(fractions) < 0.3 and max(fractions) > 0.7  # Ag_x Au_1-x over the range


def test_fingerprint_ignores_symmetry_but_not_displacements():
    crystal = bulk("Al", "fcc", a=4.05, cubic=True).repeat(2)
    moved = crystal.copy()
    moved.translate([0.3, -0.2, 0.1])
    moved.wrap()
    shuffled = crystal[np.random.default_rng(0).permutation(len(crystal))]
    vacancy_a, vacancy_b = crystal.copy(), crystal.copy()
    del vacancy_a[0]
    del vacancy_b[17]
    rattled = crystal.copy()
    rattled.positions[3, 0] += 0.05
    key = fingerprint(crystal)
    assert key == fingerprint(moved) == fingerprint(shuffled)
    assert fingerprint(vacancy_a) == fingerprint(vacancy_b) != key
    assert fingerprint(rattled) != key


def test_the_subset_to_label_is_stratified_and_seeded(pool):
    name, configurations = pool
    chosen = stratified_subset(configurations, 12, seed=1)
    assert len(chosen) == 12 == len(set(chosen)) and chosen == sorted(chosen)
    assert chosen == stratified_subset(configurations, 12, seed=1)
    assert len({configurations[i].info["kind"] for i in chosen}) == len(SYSTEMS[name].plan)
    assert stratified_subset(configurations, 100) == list(range(SIZE))


def test_unknown_system_and_too_small_a_pool_are_refused():
    with pytest.raises(SamplingError, match="unknown system 'cu': use one of al, agau, si"):
        sample_pool("cu", size=20)
    with pytest.raises(SamplingError, match="at least 10 configurations"):
        sample_pool("al", size=5)
    with pytest.raises(SamplingError, match="unknown kinds \\['liquid'\\]"):
        sample_pool("al", size=20, kinds=["liquid"])


def test_the_full_plans_hold_at_least_4000():
    # si widens si-pbe's pool of 4,427 (data/si-eip-pool): it is not a data set of its own
    assert all(sum(plan_counts(SYSTEMS[name], None).values()) >= 4000 for name in ("al", "agau"))
    assert sum(plan_counts(SYSTEMS["si"], None).values()) >= 1000


def test_eipnn_sample_writes_a_compressed_pool(pool, tmp_path, capsys):
    name, configurations = pool
    output = tmp_path / "pool.extxyz.xz"
    arguments = [name, "--output", str(output), "--size", str(SIZE), "--seed", "11"]
    assert sample_cli.main(arguments) == 0
    frames = read_pool(output)  # decompressed in memory: ase.io.read of .xz seeks quadratically
    assert f"{SIZE} configurations" in capsys.readouterr().out
    assert all(a.info == b.info for a, b in zip(frames, ase.io.read(output, ":")))
    assert len(frames) == SIZE and output.stat().st_size < 100_000
    assert all(np.allclose(a.positions, b.positions, atol=1e-7) and a.info == b.info
               for a, b in zip(frames, configurations))


def test_the_si_pool_holds_the_regions_a_property_card_probes():
    configurations = sample_pool("si", size=SIZE, seed=11)
    a0 = SYSTEMS["si"].diamond_a_angstrom
    by_kind = {}
    for atoms in configurations:
        by_kind.setdefault(atoms.info["kind"], []).append(atoms)
    volume_ratio = [atoms.get_volume() / len(atoms) / (a0**3 / 8) for atoms in by_kind["diamond-strain"]]
    assert min(volume_ratio) < 0.85 and max(volume_ratio) > 1.15  # E–V of 5.0–6.0 Å: 0.76–1.31
    for atoms in by_kind["diamond-vacancy"] + by_kind["md-diamond-vacancy"]:
        assert atoms.info["vacancies"] == 1 and len(atoms) % 2 == 1 and len(atoms) >= 15
    for atoms in by_kind["diamond-interstitial"]:
        assert atoms.info["interstitials"] == 1 and len(atoms) % 2 == 1
    assert all(atoms.info["lattice"] == "diamond" for atoms in configurations)
    assert any("relaxed_with" in atoms.info for atoms in configurations)
