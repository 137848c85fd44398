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


SCHEDULES: dict[str, ScheduleBuilder] = {"linear": linear_decay}
