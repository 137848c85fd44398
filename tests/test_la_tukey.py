"""Tukey's biweight and the LA loss against hand-computed values and gradients."""
from __future__ import annotations

import pytest
import torch

from eipnn_training.data.batching import KIND_DFT, KIND_EIP, Batch
from eipnn_training.strategies.label_augmentation.tukey import (
    MAD_TO_SIGMA,
    TUKEY_C,
    AugmentedLoss,
    mad_scale,
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
