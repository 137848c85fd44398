"""Learning-rate schedules: ``builder(lr, lr_final, total_steps) -> factor(step)``,
the factor multiplying ``lr`` at optimiser step ``step`` (a ``LambdaLR`` lambda)."""
from __future__ import annotations

from typing import Callable

ScheduleBuilder = Callable[[float, float, int], Callable[[int], float]]


def linear_decay(lr: float, lr_final: float, total_steps: int) -> Callable[[int], float]:
    """lr at step 0, falling linearly to lr_final at the last step (METHOD.md baseline)."""
    span = max(total_steps - 1, 1)
    end = lr_final / lr

    def factor(step: int) -> float:
        return 1.0 + (end - 1.0) * min(step, span) / span

    return factor


# METHOD.md: the slanted triangular rate peaks after the first 20 % of the steps.
SLANTED_PEAK_FRACTION = 0.2


def slanted_triangular(lr: float, lr_final: float, total_steps: int) -> Callable[[int], float]:
    """Rises linearly from lr_final at step 0 to lr at 20 % of the steps, then falls
    linearly back to lr_final at the last step (Howard & Ruder 2018; METHOD.md uses
    lr_final = lr / 32 for pretraining and the LA classifier)."""
    span = max(total_steps - 1, 1)
    peak = min(max(round(SLANTED_PEAK_FRACTION * span), 1), span)
    floor = lr_final / lr

    def factor(step: int) -> float:
        step = min(step, span)
        rise = step / peak if step <= peak else 1.0 - (step - peak) / max(span - peak, 1)
        return floor + (1.0 - floor) * rise

    return factor


SCHEDULES: dict[str, ScheduleBuilder] = {"linear": linear_decay, "slanted_triangular": slanted_triangular}
