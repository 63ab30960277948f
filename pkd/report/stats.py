"""Statistics over student seeds: mean ± sample std, and paired t-intervals.

Students of one (task, strategy, depth) differ only by their seed, which sets
the fresh classifier head and the data order. Two strategies trained with the
same seed see the same order, so their scores are compared seed by seed
(paired). The interval is Student's t over the per-seed differences; it
measures how much a difference moves from seed to seed, which on GLUE's small
dev sets is the dominant noise. A difference whose interval contains 0 is not
an ordering, however large its mean.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy.special import stdtrit  # the t quantile; scipy.stats would add ~1 s to the report stage start-up

CONFIDENCE = 0.95
NO_DIFFERENCE = "no measurable difference"
METHOD = ("Paired t-interval over seeds: per seed, the difference of the two students' "
          "main dev metric (same seed, so same head init and data order); "
          "mean ± t(0.975, n-1) · sd / sqrt(n).")


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (ddof=1; None for a single value)."""
    n = len(values)
    if n == 0:
        raise ValueError("mean_std of no values")
    mean = math.fsum(values) / n
    if n < 2:
        return mean, None
    var = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var)


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float | None   # None with fewer than 2 pairs: no interval
    high: float | None
    n: int

    @property
    def spans_zero(self) -> bool:
        return self.low is None or self.low <= 0 <= self.high


def paired_t_interval(diffs: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """Confidence interval for the mean of paired differences (t distribution, n-1 dof)."""
    mean, sd = mean_std(diffs)
    n = len(diffs)
    if sd is None:
        return Interval(mean, None, None, n)
    half = stdtrit(n - 1, 0.5 + confidence / 2) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)


def verdict(interval: Interval, a: str, b: str) -> str:
    """An ordering only when the interval excludes 0."""
    if interval.low is None:
        return "one seed: no interval"
    if interval.spans_zero:
        return NO_DIFFERENCE
    return f"{a} > {b}" if interval.low > 0 else f"{b} > {a}"
