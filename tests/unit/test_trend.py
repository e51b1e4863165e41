"""framework/in_runtime/trend.py: the Theil–Sen slope and Sen's interval on series with known answers (scipy's
``theilslopes`` as referee), its coverage on many noisy series, and the series it refuses."""

from __future__ import annotations

import math
import random

import pytest
from scipy import stats as scipy_stats

from framework.in_runtime.trend import MAX_POINTS, TrendError, theil_sen

MiB = 1024**2
PAGE = 4096


def noisy_line(slope: float, n: int, noise: float, seed: int) -> list[float]:
    """``slope · i`` plus normal noise (sd ``noise``) around 800 MiB, like a cluster's memory after each repeat."""
    rng = random.Random(seed)
    return [800 * MiB + slope * i + rng.gauss(0, noise) for i in range(n)]


def test_a_flat_noisy_series_has_an_interval_around_zero() -> None:
    memory = noisy_line(0.0, 40, noise=5 * MiB, seed=1)

    trend = theil_sen(range(40), memory)

    assert trend.covers(0.0)
    assert trend.low < 0 < trend.high
    assert abs(trend.slope) < 0.5 * MiB  # noise of 5 MiB over 40 repeats: the slope is well under a MiB a repeat
    assert (trend.points, trend.confidence) == (40, 0.95)


def test_a_constant_series_has_slope_zero_and_a_zero_width_interval() -> None:
    trend = theil_sen(range(10), [512 * MiB] * 10)

    assert (trend.slope, trend.low, trend.high) == (0.0, 0.0, 0.0)


def test_a_linear_leak_is_recovered_and_its_interval_excludes_zero() -> None:
    leak = 2 * MiB  # per repeat, under noise of 5 MiB
    memory = noisy_line(leak, 60, noise=5 * MiB, seed=2)

    trend = theil_sen(range(60), memory)

    assert trend.covers(leak)
    assert trend.low > 0
    assert trend.slope == pytest.approx(leak, rel=0.2)


def test_an_exact_line_gives_its_slope_and_a_zero_width_interval() -> None:
    minutes = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0]

    trend = theil_sen(minutes, [10.0 + 4.0 * t for t in minutes])

    assert (trend.slope, trend.low, trend.high) == (4.0, 4.0, 4.0)


def test_outliers_do_not_move_the_slope_as_they_move_least_squares() -> None:
    # One repeat in ten holds a 200 MiB temporary peak (a GC pass not yet done, a big intermediate result).
    memory = noisy_line(1 * MiB, 50, noise=1 * MiB, seed=3)
    for i in range(5, 50, 10):
        memory[i] += 200 * MiB
    memory[-1] += 400 * MiB  # and the last one most

    trend = theil_sen(range(50), memory)
    least_squares = scipy_stats.linregress(range(50), memory).slope

    assert trend.covers(1 * MiB)
    assert abs(trend.slope - 1 * MiB) < 0.2 * MiB
    assert abs(least_squares - 1 * MiB) > 0.5 * MiB  # least squares nearly doubles it: what the median is spared


@pytest.mark.parametrize("n", [6, 10, 30, 100])
def test_the_slope_is_scipys_and_the_bounds_agree_up_to_scipys_rounding_of_ranks(n: int) -> None:
    memory = noisy_line(0.3 * MiB, n, noise=2 * MiB, seed=n)

    trend = theil_sen(range(n), memory)
    referee = scipy_stats.theilslopes(memory, range(n), alpha=0.95)

    assert trend.slope == pytest.approx(referee.slope, rel=1e-12)
    # scipy rounds the bounds' ranks to whole slopes; this module interpolates between neighbouring ones.
    width = referee.high_slope - referee.low_slope
    assert trend.low == pytest.approx(referee.low_slope, abs=0.2 * width)
    assert trend.high == pytest.approx(referee.high_slope, abs=0.2 * width)


def test_the_interval_covers_the_true_slope_in_about_95_percent_of_noisy_series() -> None:
    series, n, leak = 1000, 20, 1 * MiB
    trends = [theil_sen(range(n), noisy_line(leak, n, noise=3 * MiB, seed=seed)) for seed in range(series)]
    covered = sum(trend.covers(leak) for trend in trends)

    # Binomial sd at 95 %: 0.7 points over 1000 series; Sen's normal approximation errs a little on the safe side.
    assert 0.93 <= covered / series <= 0.98


def test_memory_in_whole_pages_ties_often_and_the_interval_still_covers_zero() -> None:
    # RSS moves in 4 KiB pages: a quiet process repeats the same few values; ties shrink Kendall's variance.
    rng = random.Random(4)
    memory = [float(200 * MiB + PAGE * rng.choice([0, 0, 0, 1, 2])) for _ in range(30)]

    trend = theil_sen(range(30), memory)

    assert trend.covers(0.0)
    assert trend.high - trend.low <= 2 * PAGE


def test_a_90_percent_interval_is_inside_the_95_percent_one() -> None:
    memory = noisy_line(0.5 * MiB, 40, noise=4 * MiB, seed=5)

    wide, narrow = theil_sen(range(40), memory, 0.95), theil_sen(range(40), memory, 0.90)

    assert wide.low < narrow.low <= narrow.slope <= narrow.high < wide.high


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        (range(5), [1.0, 2.0, 3.0, 4.0, 5.0], r"5 points are too few for a 95% interval"),
        (range(2), [1.0, 2.0], r"2 points: a slope with an interval needs at least 3"),
        (range(4), [1.0, 2.0, 3.0], r"x has 4 points and y 3"),
        (range(8), [1.0] * 7 + [math.nan], r"a NaN or an infinity"),
        ([1.0] * 8, range(8), r"all 8 points have the same x"),
    ],
)
def test_a_series_that_cannot_give_an_interval_is_refused_saying_why(x, y, message) -> None:
    with pytest.raises(TrendError, match=message):
        theil_sen(list(x), list(y))


def test_a_confidence_outside_0_1_and_a_series_too_long_are_refused() -> None:
    with pytest.raises(TrendError, match=r"confidence 95: give a fraction between 0 and 1"):
        theil_sen(range(10), range(10), 95)
    with pytest.raises(TrendError, match=rf"{MAX_POINTS + 1} points: at most {MAX_POINTS}"):
        theil_sen(range(MAX_POINTS + 1), range(MAX_POINTS + 1))
