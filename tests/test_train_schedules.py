"""Lambda schedules: shapes, endpoints, monotonicity, the adaptive rule, checkpoint state."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from constraintc.train.schedules import LambdaSchedule


@given(st.integers(2, 500), st.floats(0, 1), st.floats(0, 1))
def test_linear_and_cosine_endpoints_and_monotone(total, start, end):
    for kind in ("linear", "cosine"):
        s = LambdaSchedule(kind, total, start, end)
        values = [s.value(t) for t in range(total)]
        assert math.isclose(values[0], start, abs_tol=1e-12) and math.isclose(values[-1], end, abs_tol=1e-12)
        diffs = [b - a for a, b in zip(values, values[1:])]
        assert all(d >= -1e-12 for d in diffs) if end >= start else all(d <= 1e-12 for d in diffs)
        assert s.value(total + 10) == pytest.approx(end)  # flat after the end


def test_published_ramp_and_cosine_shape():
    lin = LambdaSchedule("linear", 101, 0.05, 0.30)
    cos = LambdaSchedule("cosine", 101, 0.05, 0.30)
    assert lin.value(50) == pytest.approx(0.175)
    assert cos.value(50) == pytest.approx(0.175)  # symmetric half cosine meets the line midway
    assert cos.value(10) < lin.value(10) and cos.value(90) > lin.value(90)  # slow start, slow end


def test_constant_and_none():
    assert {LambdaSchedule("constant", 10, 0.2).value(t) for t in range(10)} == {0.2}
    assert {LambdaSchedule("none", 10, 0.2).value(t) for t in range(10)} == {0.0}


def test_adaptive_rises_on_collapse_and_relaxes_within_bounds():
    s = LambdaSchedule("adaptive", 100, start=0.1, up=2.0, down=0.5, maximum=0.5)
    seen = []
    for collapsed in [True, True, True, True, False, False, False, True]:
        s.observe(collapsed)
        seen.append(s.value(0))
    assert seen == pytest.approx([0.2, 0.4, 0.5, 0.5, 0.25, 0.125, 0.1, 0.2])
    state = s.state_dict()
    t = LambdaSchedule("adaptive", 100, start=0.1, up=2.0, down=0.5, maximum=0.5)
    t.load_state_dict(state)
    assert t.value(3) == s.value(3)
    fixed = LambdaSchedule("linear", 10)
    fixed.observe(True)  # only adaptive reacts
    assert fixed.value(0) == pytest.approx(0.05)
