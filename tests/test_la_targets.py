"""Class targets (closest EIP or class K), EIP ranking and the EIP subset option."""
from __future__ import annotations

import numpy as np
import pytest

from eipnn_training.strategies.label_augmentation.errors import UnknownEIPSelection
from eipnn_training.strategies.label_augmentation.targets import (
    eip_atom_mae,
    eip_classes,
    resolve_eip_columns,
)

NAN = np.nan


def test_classes_by_hand():
    # Three EIPs; configurations of 10 atoms (threshold 0.1 eV/atom = 1 eV in total).
    dft = np.array([-50.0, -50.0, -50.0, -50.0, -50.0, -50.0])
    eip = np.array([
        [-49.0, -50.2, -53.0],  # clear best: EIP 1 (0.02 eV/atom)
        [-50.5, -49.5, -52.0],  # tie between EIPs 0 and 1 (0.05 eV/atom each): the first
        [-45.0, -60.0, -51.5],  # all bad: the closest, EIP 2, is 0.15 eV/atom away -> K
        [NAN, -50.9, -49.0],    # EIP 0 missing; EIP 1 at 0.09 eV/atom
        [NAN, NAN, NAN],        # no EIP at all -> K
        [-52.0, -51.0, NAN],    # exactly on the threshold: 1 eV / 10 atoms is not > 0.1
    ])
    classes = eip_classes(eip, dft, np.full(6, 10), threshold_ev_per_atom=0.1)
    assert classes.tolist() == [1, 0, 3, 1, 3, 1]


def test_threshold_is_per_atom_and_a_setting():
    dft, eip = np.array([-100.0, -10.0]), np.array([[-101.5], [-11.5]])  # 1.5 eV off
    # 100 atoms: 0.015 eV/atom (EIP 0); 10 atoms: 0.15 eV/atom (class K = 1).
    assert eip_classes(eip, dft, np.array([100, 10]), 0.1).tolist() == [0, 1]
    assert eip_classes(eip, dft, np.array([100, 10]), 0.2).tolist() == [0, 0]


def test_eip_atom_mae_skips_missing_entries():
    dft = np.array([-10.0, -20.0])
    eip = np.array([[-11.0, NAN], [-20.0, NAN]])
    mae = eip_atom_mae(eip, dft, np.array([2, 4]))
    assert mae[0] == pytest.approx((0.5 + 0.0) / 2) and mae[1] == np.inf


def test_resolve_eip_columns_names_best_worst():
    names = ["si/a", "si/b", "si/c"]
    mae = np.array([0.3, 0.1, 0.5])
    assert resolve_eip_columns(names, None, mae) is None
    assert resolve_eip_columns(names, ["best"], mae) == [1]
    assert resolve_eip_columns(names, ["worst"], mae) == [2]
    assert resolve_eip_columns(names, ["si/c", "best", "si/b"], mae) == [1, 2]
    with pytest.raises(UnknownEIPSelection, match="'si/zz', which is not among la.eips"):
        resolve_eip_columns(names, ["si/zz"], mae)
