"""Reference alignment: known per-species offsets are recovered despite outliers."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from ase.build import bulk

from eipnn_training.eip import (
    Alignment,
    AlignmentError,
    LabelStore,
    fit_alignment,
    label,
    species_counts,
)


def _agau_frames(count: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(count):
        atoms = bulk("Au", "fcc", a=4.08, cubic=True) * (1, 1, 1 + int(rng.integers(2)))
        silver = rng.random(len(atoms)) < rng.uniform(0.1, 0.9)
        atoms.symbols[silver] = "Ag"
        atoms.rattle(0.05, seed=int(rng.integers(1 << 30)))
        frames.append(atoms)
    return frames


@pytest.fixture(scope="module")
def agau():
    frames = _agau_frames(60)
    labels = label(frames, "agau", store=False, progress=False)
    counts, species = species_counts(frames)
    return frames, labels, counts, species


def test_known_offsets_are_recovered_despite_outliers(agau):
    frames, labels, counts, species = agau
    assert species == ["Ag", "Au"]
    true_offsets = np.array([-1.25, -2.75])  # eV per Ag, per Au atom
    rng = np.random.default_rng(1)
    k = labels.column("agau/emt")
    dft = labels.energies[:, k] + counts @ true_offsets + 0.01 * rng.standard_normal(len(frames))
    dft[[3, 17, 41]] += [8.0, -6.0, 12.0]  # where this EIP is badly wrong
    subset = np.arange(50)  # fit on part only
    alignment = fit_alignment(labels, dft, counts, subset, species)
    np.testing.assert_allclose(alignment.offsets_ev[k], true_offsets, atol=5e-3)
    aligned = alignment.apply(labels, counts)
    held_out = np.arange(50, 60)
    assert np.abs(aligned[held_out, k] - dft[held_out]).max() < 0.05


def test_plain_least_squares_would_not_recover_them(agau):
    frames, labels, counts, species = agau
    k = labels.column("agau/emt")
    dft = labels.energies[:, k] + counts @ np.array([-1.25, -2.75])
    dft[[3, 17, 41]] += [8.0, -6.0, 12.0]
    plain, *_ = np.linalg.lstsq(counts.astype(float), dft - labels.energies[:, k], rcond=None)
    assert np.abs(plain - [-1.25, -2.75]).max() > 0.02  # so the robust fit is what helps


def test_species_absent_from_the_fit_give_missing_aligned_energies(agau):
    frames, _, _, _ = agau
    frames = [*frames, bulk("Au", "fcc", a=4.08, cubic=True)]
    labels = label(frames, "agau", store=False, progress=False)
    counts, species = species_counts(frames)
    gold_only = np.flatnonzero(counts[:, 0] == 0)
    dft = labels.energies[:, 0] - 3.0 * counts.sum(axis=1)
    alignment = fit_alignment(labels, dft, counts, gold_only, species)
    assert np.isnan(alignment.offsets_ev[:, 0]).all()
    assert np.isfinite(alignment.offsets_ev[:, 1]).all()
    aligned = alignment.apply(labels, counts)
    assert np.isfinite(aligned[gold_only]).all()
    assert np.isnan(aligned[counts[:, 0] > 0]).all()


def test_alignment_round_trips_through_the_store(agau, tmp_path):
    frames, labels, counts, species = agau
    dft = labels.energies[:, 0] - 2.0 * counts.sum(axis=1)
    alignment = fit_alignment(labels, dft, counts, np.arange(len(frames)), species)
    with LabelStore(tmp_path) as store:
        alignment.save(store, "agau/test")
        loaded = Alignment.load(store, "agau/test")
    np.testing.assert_array_equal(loaded.offsets_ev, alignment.offsets_ev)
    assert loaded.eip_ids == labels.eip_ids


def test_apply_to_other_eips_is_refused(agau):
    frames, labels, counts, species = agau
    alignment = fit_alignment(labels, labels.energies[:, 0], counts, np.arange(10), species)
    other = label(frames[:3], ["agau/emt"], store=False, progress=False)
    with pytest.raises(AlignmentError, match="same EIPs in the same order"):
        alignment.apply(other, counts[:3])


def test_fit_without_any_present_entry_is_refused(agau):
    frames, labels, counts, species = agau
    present = labels.present.copy()
    present[:5] = False
    labels = dataclasses.replace(labels, present=present)
    with pytest.raises(AlignmentError, match="no configuration of the subset"):
        fit_alignment(labels, labels.energies[:, 0], counts, np.arange(5), species)
