"""Property-based fuzz test of EIPNNCalculator's input handling (tests/fuzz_configurations.py):
every hostile configuration is answered with finite results within seconds, or refused with
eipnn's own error; answers do not depend on where the system sits; after any in-place change
they equal a fresh calculator's. EIPNN_FUZZ_EXAMPLES sets the number of examples (300)."""
from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings

from fuzz_configurations import calculator_factory, hostile_atoms, judge

EXAMPLES = int(os.environ.get("EIPNN_FUZZ_EXAMPLES", "300"))


@pytest.fixture(scope="module")
def make_calculator(random_si_model):
    # A limit small enough that the dense examples are refused fast, large enough for the rest.
    return calculator_factory(random_si_model, memory_limit_gb=1.5)


def test_hostile_configurations_are_answered_or_refused(make_calculator):
    verdicts = []

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(atoms=hostile_atoms())
    def check(atoms):
        verdict = judge(make_calculator, atoms, seed=len(verdicts))
        verdicts.append(verdict)
        assert verdict.outcome in ("answered", "refused"), f"{verdict.outcome}: {verdict.detail}"

    check()
    outcomes = {v.outcome for v in verdicts}
    # The generator must reach both sides, or the test proves nothing.
    assert outcomes == {"answered", "refused"}, outcomes
    assert len(verdicts) >= EXAMPLES
