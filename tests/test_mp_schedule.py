"""The slanted triangular learning rate of METHOD.md (pretraining and the LA classifier)."""
from __future__ import annotations

import pytest
import torch

from eipnn_training.train.schedules import SCHEDULES, slanted_triangular

LR = 1.0e-3
FLOOR = LR / 32  # METHOD.md: from lr/32 up to lr and back to lr/32


def test_start_peak_end_values():
    factor = slanted_triangular(LR, FLOOR, total_steps=101)  # steps 0..100, peak at 20
    assert factor(0) * LR == pytest.approx(FLOOR)
    assert factor(20) * LR == pytest.approx(LR)
    assert factor(100) * LR == pytest.approx(FLOOR)
    # Linear on both sides: halfway up and halfway down sit at the mean of floor and peak.
    assert factor(10) * LR == pytest.approx((LR + FLOOR) / 2)
    assert factor(60) * LR == pytest.approx((LR + FLOOR) / 2)
    assert max(factor(s) for s in range(101)) == pytest.approx(1.0)


def test_stays_at_floor_after_the_last_step():
    factor = slanted_triangular(LR, FLOOR, total_steps=50)
    assert factor(49) == pytest.approx(FLOOR / LR)
    assert factor(500) == pytest.approx(FLOOR / LR)


def test_drives_torch_lambda_lr_through_the_registry():
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([parameter], lr=LR)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, SCHEDULES["slanted_triangular"](LR, FLOOR, 11)
    )
    seen = []
    for _ in range(11):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen[0] == pytest.approx(FLOOR)
    assert seen[2] == pytest.approx(LR)  # peak at 20 % of 10 steps
    assert seen[10] == pytest.approx(FLOOR)
    assert seen.index(max(seen)) == 2
