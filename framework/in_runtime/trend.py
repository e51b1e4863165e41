"""A series' trend: the Theil–Sen slope with Sen's distribution-free confidence interval.

The soak workloads (``workloads/soak.py``) record memory after each repeat of a case, or every few seconds on an idle
cluster, and report how fast it grows. Theil–Sen — the median of the slopes between every pair of points — because
memory series are not normal: a garbage-collection pass, an allocator handing pages back or one repeat's temporary
peak is an outlier that moves a least-squares slope and widens its t-interval, while the median of the pairwise
slopes ignores up to 29 % of the points. Its interval (Sen 1968; Hollander & Wolfe, *Nonparametric statistical
methods*, § 9.4) comes from Kendall's S, so it needs no bootstrap: deterministic (no seed), and standard library
only (this module runs inside runtime environments).

What it assumes: the points' deviations from the line are independent. Memory sampled at short intervals is
autocorrelated (what a process allocated stays allocated for a while), which makes the interval too narrow: an
interval that excludes 0 by a little is not yet a leak. Cost: n (n - 1) / 2 slopes, sorted — 2 × 10⁶ for 2,000
points; ``MAX_POINTS`` refuses more.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Sequence
from statistics import NormalDist, median

MAX_POINTS = 5000


class TrendError(ValueError):
    """The series cannot give a slope with an interval (too short, mismatched, or too long)."""


@dataclasses.dataclass(frozen=True)
class Trend:
    """A slope (units of y per unit of x) and its confidence interval ``low`` – ``high``."""

    slope: float
    low: float
    high: float
    points: int
    confidence: float

    def covers(self, value: float) -> bool:
        return self.low <= value <= self.high


def _tie_term(values: Sequence[float]) -> float:
    """Σ t (t - 1) (2t + 5) over groups of ``t`` equal values: what ties take off the variance of Kendall's S."""
    return float(sum(t * (t - 1) * (2 * t + 5) for t in Counter(values).values() if t > 1))


def _at_rank(ordered: Sequence[float], rank: float) -> float:
    """The value at 1-based ``rank`` of ``ordered``, interpolated between neighbours for a fractional rank."""
    below = math.floor(rank)
    fraction = rank - below
    if fraction == 0:
        return ordered[below - 1]
    return ordered[below - 1] + fraction * (ordered[below] - ordered[below - 1])


def theil_sen(x: Sequence[float], y: Sequence[float], confidence: float = 0.95) -> Trend:
    """The Theil–Sen slope of ``y`` against ``x`` and its ``confidence`` interval.

    The interval's bounds are the pairwise slopes at ranks ``(N ∓ z σ) / 2`` (the upper one + 1) among the ``N``
    ordered slopes, where ``σ²`` is the variance of Kendall's S with the usual correction for ties in ``x`` and in
    ``y``, and ``z`` the normal quantile. Pairs with equal ``x`` give no slope.

    Raises:
        TrendError: fewer than 3 points, ``x`` and ``y`` of different lengths, a non-finite value, more than
            ``MAX_POINTS`` points, or a series too short for the interval at this confidence (the rank of a bound
            falls outside the slopes: 6 points are needed at 95 %).
    """
    if len(x) != len(y):
        raise TrendError(f"x has {len(x)} points and y {len(y)}: give one x per y")
    n = len(y)
    if n < 3:
        raise TrendError(f"{n} points: a slope with an interval needs at least 3 (6 at 95 % confidence)")
    if n > MAX_POINTS:
        raise TrendError(f"{n} points: at most {MAX_POINTS} (the pairwise slopes grow as n²) — sample less often")
    if not 0 < confidence < 1:
        raise TrendError(f"confidence {confidence!r}: give a fraction between 0 and 1, e.g. 0.95")
    if not all(math.isfinite(v) for v in (*x, *y)):
        raise TrendError("the series holds a NaN or an infinity: every point must be a finite number")
    slopes = sorted((y[j] - y[i]) / (x[j] - x[i]) for i in range(n) for j in range(i + 1, n) if x[j] != x[i])
    if not slopes:
        raise TrendError(f"all {n} points have the same x: no slope")
    variance = (n * (n - 1) * (2 * n + 5) - _tie_term(x) - _tie_term(y)) / 18
    spread = NormalDist().inv_cdf(0.5 + confidence / 2) * math.sqrt(max(variance, 0.0))
    count = len(slopes)
    lower_rank, upper_rank = (count - spread) / 2, (count + spread) / 2 + 1
    if lower_rank < 1 or upper_rank > count:
        raise TrendError(
            f"{n} points are too few for a {confidence:.0%} interval of the slope (its bounds fall outside the"
            f" {count} pairwise slopes) — give a longer series"
        )
    return Trend(
        slope=float(median(slopes)),
        low=_at_rank(slopes, lower_rank),
        high=_at_rank(slopes, upper_rank),
        points=n,
        confidence=confidence,
    )
