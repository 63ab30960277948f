"""Seed statistics of the report against hand-computed values."""
import math

import pytest

from pkd.report.stats import NO_DIFFERENCE, mean_std, paired_t_interval, verdict


def test_mean_and_sample_std():
    assert mean_std([1.0, 2.0, 3.0, 4.0]) == (2.5, pytest.approx(math.sqrt(5 / 3)))
    assert mean_std([0.7]) == (0.7, None)


def test_t_interval_by_hand():
    # diffs 1, 2, 3: mean 2, sd 1; t(0.975, 2) = 4.302653 -> half-width 4.302653 / sqrt(3) = 2.484138
    iv = paired_t_interval([1.0, 2.0, 3.0])
    assert iv.n == 3 and iv.mean == pytest.approx(2.0)
    assert (iv.low, iv.high) == (pytest.approx(2 - 2.484138, abs=1e-6), pytest.approx(2 + 2.484138, abs=1e-6))
    assert iv.spans_zero and verdict(iv, "PKD", "KD") == NO_DIFFERENCE
    # diffs 2, 2.5, 3: mean 2.5, sd 0.5 -> half-width 1.242069: [1.257931, 3.742069] excludes 0
    iv = paired_t_interval([2.0, 2.5, 3.0])
    assert iv.low == pytest.approx(1.257931, abs=1e-6) and not iv.spans_zero
    assert verdict(iv, "PKD", "KD") == "PKD > KD"
    # five seeds, t(0.975, 4) = 2.776445: diffs -1..-5, mean -3, sd sqrt(2.5)
    iv = paired_t_interval([-1.0, -2.0, -3.0, -4.0, -5.0])
    half = 2.776445 * math.sqrt(2.5) / math.sqrt(5)
    assert iv.high == pytest.approx(-3 + half, abs=1e-6)
    assert verdict(iv, "PKD", "KD") == "KD > PKD"


def test_one_seed_has_no_interval_and_no_ordering():
    iv = paired_t_interval([4.0])
    assert iv.low is None and iv.spans_zero
    assert ">" not in verdict(iv, "PKD", "KD")
