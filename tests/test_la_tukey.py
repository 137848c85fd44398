"""Tukey's biweight and the LA loss against hand-computed values and gradients."""
from __future__ import annotations

import pytest
import torch

from eipnn_training.data.batching import KIND_DFT, KIND_EIP, Batch
from eipnn_training.strategies.label_augmentation.tukey import (
    MAD_TO_SIGMA,
    TUKEY_C,
    AugmentedForceLoss,
    AugmentedLoss,
    mad_scale,
    tukey_force_term,
    tukey_rho,
    tukey_term,
)

C = 4.6851


def rho(r: float) -> float:
    """METHOD.md's formula, written out again for the test."""
    return C * C / 6 * (1 - (1 - (r / C) ** 2) ** 3) if abs(r) <= C else C * C / 6


def psi(r: float) -> float:
    """d rho / d r by hand: r (1 - (r/c)^2)^2 inside c, 0 beyond."""
    return r * (1 - (r / C) ** 2) ** 2 if abs(r) <= C else 0.0


def rows_batch(targets: list[float], kinds: list[int]) -> Batch:
    """A batch whose rows carry only what a loss reads (targets, kinds); geometry unused."""
    n = len(targets)
    return Batch(
        positions=torch.zeros(n, 3, dtype=torch.float64), species=torch.zeros(n, dtype=torch.int64),
        edge_index=torch.zeros(2, 0, dtype=torch.int64), edge_shift=torch.zeros(0, 3, dtype=torch.float64),
        batch=torch.arange(n), num_atoms=torch.ones(n, dtype=torch.int64),
        targets=torch.tensor(targets, dtype=torch.float64)[:, None],
        target_mask=torch.ones(n, 1, dtype=torch.bool), weight=torch.ones(n, dtype=torch.float64),
        kind=torch.tensor(kinds), rows=torch.arange(n),
    )


def test_constants_are_methods():
    assert TUKEY_C == 4.6851 and MAD_TO_SIGMA == 1.4826


def test_rho_values():
    r = torch.tensor([0.0, 1.0, -2.0, C, 10.0, -1e30], dtype=torch.float64)
    expected = [0.0, 0.4775670429497726, 1.6576767560989776, C * C / 6, C * C / 6, C * C / 6]
    assert tukey_rho(r).tolist() == pytest.approx(expected, rel=1e-12)
    assert [rho(float(x)) for x in r] == pytest.approx(expected, rel=1e-12)


def test_rho_gradient_matches_psi_and_vanishes_beyond_c():
    r = torch.tensor([0.5, -2.0, 4.0, 4.7, -50.0, 1e30], dtype=torch.float64, requires_grad=True)
    tukey_rho(r).sum().backward()
    assert r.grad.tolist() == pytest.approx([psi(float(x)) for x in r.detach()], abs=1e-12)
    assert r.grad[3:].tolist() == [0.0, 0.0, 0.0]
    assert torch.isfinite(r.grad).all()


def test_float32_huge_residual_gives_finite_zero_gradient():
    r = torch.tensor([3e38, -3e38], dtype=torch.float32, requires_grad=True)
    tukey_rho(r).sum().backward()
    assert r.grad.tolist() == [0.0, 0.0]


def test_tukey_term_by_hand_scale_over_all_rows_and_detached():
    # Residuals y - y_hat: DFT rows -1, +1; EIP rows +10, -3. |r| = 1, 1, 3, 10: median 2.
    batch = rows_batch([0.0, 0.0, 10.0, 0.0], [KIND_DFT, KIND_DFT, KIND_EIP, KIND_EIP])
    predicted = torch.tensor([[1.0], [-1.0], [0.0], [3.0]], dtype=torch.float64, requires_grad=True)
    s = 1.4826 * 2.0
    value = tukey_term(predicted, batch)
    assert value.item() == pytest.approx((rho(10 / s) + rho(-3 / s)) / 2, rel=1e-12)
    value.backward()
    # d rho((y - y_hat)/s) / d y_hat = -psi(r) / s, averaged over the 2 EIP rows; the DFT
    # rows only set s, which is detached, so their gradient is exactly 0.
    expected = [0.0, 0.0, -psi(10 / s) / s / 2, -psi(-3 / s) / s / 2]
    assert predicted.grad[:, 0].tolist() == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_eip_row_beyond_c_pulls_with_zero_force():
    batch = rows_batch([0.0, 0.0, 1000.0], [KIND_DFT, KIND_DFT, KIND_EIP])
    predicted = torch.tensor([[0.5], [-0.5], [0.0]], dtype=torch.float64, requires_grad=True)
    value = tukey_term(predicted, batch)
    assert value.item() == pytest.approx(C * C / 6)
    value.backward()
    assert predicted.grad[:, 0].tolist() == [0.0, 0.0, 0.0]


def test_no_eip_rows_gives_zero_with_a_graph():
    batch = rows_batch([1.0, 2.0], [KIND_DFT, KIND_DFT])
    predicted = torch.tensor([[0.0], [0.0]], dtype=torch.float64, requires_grad=True)
    value = tukey_term(predicted, batch)
    assert value.item() == 0.0 and value.requires_grad
    loss = AugmentedLoss(alpha=5.0, balance=3.0)(predicted, batch)
    assert loss.item() == pytest.approx((1.0 + 4.0) / 2)  # the plain MSE of the DFT rows


def test_mad_scale_is_the_median_and_never_zero():
    assert float(mad_scale(torch.tensor([4.0, -1.0, 2.0]))) == pytest.approx(1.4826 * 2.0)
    assert float(mad_scale(torch.tensor([0.0, 0.0, 5.0]))) > 0.0


def test_augmented_loss_combines_mse_and_weighted_eip_term():
    batch = rows_batch([0.0, 0.0, 10.0, 0.0], [KIND_DFT, KIND_DFT, KIND_EIP, KIND_EIP])
    predicted = torch.tensor([[1.0], [-1.0], [0.0], [3.0]], dtype=torch.float64)
    s = 1.4826 * 2.0
    tukey = (rho(10 / s) + rho(-3 / s)) / 2
    assert float(AugmentedLoss(0.5, 4.0)(predicted, batch)) == pytest.approx(1.0 + 0.5 * 4.0 * tukey)
    mse_eip = (100.0 + 9.0) / 2
    assert float(AugmentedLoss(0.5, 4.0, "mse")(predicted, batch)) == pytest.approx(1.0 + 2.0 * mse_eip)
    with pytest.raises(ValueError, match="eip_loss must be 'tukey' or 'mse'"):
        AugmentedLoss(1.0, 1.0, "huber")


def force_batch(kinds: list[int], force_rows: list[list[float] | None]) -> Batch:
    """One atom per row; ``force_rows[b]`` its force label (3 components) or None (no label)."""
    batch = rows_batch([0.0] * len(kinds), kinds)
    batch.forces = torch.tensor([f or [0.0, 0.0, 0.0] for f in force_rows], dtype=torch.float64)[:, None, :]
    batch.force_mask = torch.tensor([[f is not None] for f in force_rows])
    return batch


def test_tukey_force_term_by_hand_scale_over_every_present_component():
    # DFT atom 0 (labelled), DFT atom 1 (no label: masked), EIP atoms 2 and 3.
    batch = force_batch([KIND_DFT, KIND_DFT, KIND_EIP, KIND_EIP],
                        [[1.0, 0.0, -1.0], None, [0.5, 8.0, 0.0], [2.0, -2.0, 3.0]])
    predicted = torch.zeros(4, 1, 3, dtype=torch.float64, requires_grad=True)
    with torch.no_grad():
        predicted[1] = 100.0  # the unlabelled atom's prediction must not count anywhere
    term = tukey_force_term(predicted, batch)
    # |residuals| of the 9 present components: 1 0 1 | 0.5 8 0 | 2 2 3 -> median 1.
    s = MAD_TO_SIGMA * 1.0
    eip = [0.5, 8.0, 0.0, 2.0, -2.0, 3.0]
    assert float(term.detach()) == pytest.approx(sum(rho(r / s) for r in eip) / 6)
    term.backward()
    # d/d F_hat of rho((F - F_hat)/s) / 6 = -psi(r)/s / 6; 8/s is beyond c: zero pull.
    expected = [-psi(r / s) / s / 6 for r in eip]
    assert predicted.grad[2:, 0].reshape(-1).tolist() == pytest.approx(expected)
    assert predicted.grad[2, 0, 1] == 0.0 and not predicted.grad[:2].any()


def test_tukey_force_term_is_zero_without_eip_force_labels():
    batch = force_batch([KIND_DFT, KIND_EIP], [[1.0, 0.0, 0.0], None])
    predicted = torch.zeros(2, 1, 3, dtype=torch.float64, requires_grad=True)
    term = tukey_force_term(predicted, batch)
    assert float(term.detach()) == 0.0 and term.requires_grad


def test_augmented_force_loss_combines_dft_mse_and_weighted_eip_term():
    batch = force_batch([KIND_DFT, KIND_EIP, KIND_EIP], [[1.0, -1.0, 2.0], [0.5, 0.0, -0.5], [3.0, 0.0, 1.0]])
    predicted = torch.zeros(3, 1, 3, dtype=torch.float64)
    dft_mse = (1 + 1 + 4) / 3
    s = MAD_TO_SIGMA * 1.0  # |residuals| 1 1 2 .5 0 .5 3 0 1 -> median 1
    tukey = sum(rho(r / s) for r in [0.5, 0.0, -0.5, 3.0, 0.0, 1.0]) / 6
    loss = AugmentedForceLoss(dft_weight=0.3, alpha=0.5, balance=4.0, eip_weight=0.2)
    assert float(loss(predicted, batch)) == pytest.approx(0.3 * dft_mse + 0.5 * 4.0 * 0.2 * tukey)
    mse_eip = (0.25 + 0.25 + 9 + 1) / 6
    plain = AugmentedForceLoss(0.0, 0.5, 4.0, 0.2, "mse")
    assert float(plain(predicted, batch)) == pytest.approx(0.5 * 4.0 * 0.2 * mse_eip)
