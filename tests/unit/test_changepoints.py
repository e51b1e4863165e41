"""framework/changepoints.py on synthetic series with known answers: where the steps are, and where none are."""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
import pytest
from scipy import stats as scipy_stats

from framework.changepoints import arc_scores, arcs, detect, segment
from framework.stats import METRICS, MiB, student_t_p

WALL = METRICS["wall"]
PEAK = METRICS["peak_memory"]
SPILL = METRICS["spill"]


def series(levels, cv=0.03, repeats=3, seed=0):
    """One run per level: ``repeats`` values with log-normal noise of coefficient of variation ``cv``."""
    rng = np.random.default_rng(seed)
    return [[float(level * math.exp(rng.normal(0, cv))) for _ in range(repeats)] for level in levels]


def found(changes):
    return [(change.index, change.direction, change.status) for change in changes]


# ---------------------------------------------------------------- known steps


def test_a_clean_step_of_twenty_percent_is_found_at_its_run():
    changes = detect(series([10.0] * 12 + [12.0] * 12), WALL)

    assert found(changes) == [(12, "regression", "open")]
    [change] = changes
    assert change.ratio == pytest.approx(1.2, abs=0.03)
    assert change.ci_low < 1.2 < change.ci_high
    assert change.p_value < 0.01
    assert (change.runs_before, change.runs_after) == (12, 12)
    assert change.before_median == pytest.approx(10, rel=0.03)


def test_two_steps_are_both_found():
    changes = detect(series([10.0] * 10 + [13.0] * 10 + [9.0] * 10, seed=1), WALL)

    assert found(changes) == [(10, "regression", "open"), (20, "improvement", "open")]
    assert changes[1].before_median == pytest.approx(13, rel=0.05)


def test_a_step_down_is_an_improvement():
    [change] = detect(series([500.0 * MiB] * 10 + [400.0 * MiB] * 10, seed=2), PEAK)

    assert (change.index, change.direction, change.status) == (10, "improvement", "open")
    assert change.effect == pytest.approx(-0.2, abs=0.03)


def test_a_level_that_came_and_went_is_found_at_both_ends():
    """A single split's statistic is weak here (the second change inflates its variance); arcs are not."""
    changes = detect(series([10.0] * 10 + [13.0] * 5 + [10.0] * 10, seed=3), WALL)

    assert found(changes) == [(10, "regression", "open"), (15, "improvement", "open")]


def test_a_step_below_the_minimum_effect_is_not_reported_unless_the_minimum_is_lowered():
    steps = series([10.0] * 15 + [10.3] * 15, cv=0.005, seed=4)  # +3 %, far above this noise

    assert detect(steps, WALL) == []  # wall's minimum effect is 5 %
    assert found(detect(steps, WALL, min_effect=0.02)) == [(15, "regression", "open")]


# ---------------------------------------------------------------- noise


def test_pure_noise_with_a_realistic_wall_time_cv_gives_no_finding():
    assert detect(series([4.0] * 30, cv=0.13, seed=5), WALL) == []


def test_false_alarms_on_noise_are_at_most_about_alpha():
    """300 series of pure noise (13 % CV, 3 repeats, 20 runs), no minimum effect: only the test guards."""
    open_alarms = pending_alarms = 0
    for seed in range(300):
        changes = detect(series([4.0] * 20, cv=0.13, seed=100 + seed), WALL, min_effect=0.0, seed=seed)
        open_alarms += any(change.status == "open" for change in changes)
        pending_alarms += any(change.status == "pending" for change in changes)

    # alpha = 0.01: 3 expected of 300; 9 or more would happen with probability < 0.5 % if the test holds.
    assert open_alarms <= 8
    assert pending_alarms <= 8


# ---------------------------------------------------------------- newest runs, persistence


def test_a_step_in_the_last_run_only_is_pending():
    changes = detect(series([10.0] * 20 + [13.0], seed=6), WALL)

    assert found(changes) == [(20, "regression", "pending")]
    assert changes[0].runs_after == 1


def test_a_step_in_the_last_two_runs_of_a_short_series_is_pending_at_its_first_run():
    """1 / C(14, 2) > 0.01: no permutation test can call it yet; the tail test says where it starts."""
    assert found(detect(series([10.0] * 12 + [13.0] * 2, seed=7), WALL)) == [(12, "regression", "pending")]


def test_persistence_decides_between_open_and_pending():
    steps = series([10.0] * 20 + [13.0] * 3, seed=8)

    assert found(detect(steps, WALL, persistence=3)) == [(20, "regression", "open")]
    assert found(detect(steps, WALL, persistence=4)) == [(20, "regression", "pending")]


def test_a_change_whose_next_run_falls_back_more_than_half_way_does_not_persist():
    steps = series([10.0] * 8 + [12.0, 10.9] + [12.0] * 6, cv=0.01, seed=9)

    assert found(detect(steps, WALL, persistence=1)) == [(8, "regression", "open")]
    assert detect(steps, WALL, persistence=2) == []


def test_a_level_shorter_than_persistence_is_a_blip_neither_end_reported():
    steps = series([10.0] * 12 + [13.0] * 5 + [10.0] * 12, seed=10)

    assert found(detect(steps, WALL, persistence=5)) == [(12, "regression", "open"), (17, "improvement", "open")]
    assert detect(steps, WALL, persistence=6) == []


# ---------------------------------------------------------------- zeros and missing values


def test_spill_from_zero_is_a_regression_with_an_infinite_ratio():
    steps = series([0.0] * 10 + [512.0 * MiB] * 6, cv=0.02, seed=11)

    [change] = detect(steps, SPILL)

    assert (change.index, change.direction, change.status) == (10, "regression", "open")
    assert change.before_median == 0
    assert change.ratio == math.inf
    assert change.ci_low is None


def test_spill_changes_below_the_absolute_floor_are_not_reported():
    assert detect(series([0.0] * 10 + [8.0 * MiB] * 6, cv=0.02), SPILL) == []  # floor: 64 MiB
    assert detect([[0.0, 0.0, 0.0]] * 20, SPILL) == []


def test_missing_values_are_skipped_not_taken_as_zero():
    steps = series([10.0] * 10 + [12.0] * 10, seed=12)
    with_gaps = [*steps[:5], [None, None], *steps[5:12], [], [float("nan")], *steps[12:]]

    [change] = detect(with_gaps, WALL)

    assert change.index == 10 + 1  # the position in the input: the gap before the change counts
    assert change.ratio == pytest.approx(1.2, abs=0.03)


def test_one_missing_repeat_leaves_the_run_median_of_the_others():
    changes = detect([[10.0, None, 10.1]] * 10 + [[12.0, 12.1, None]] * 10, WALL)

    assert found(changes) == [(10, "regression", "open")]


def test_too_short_series_find_nothing():
    assert detect(series([10.0, 20.0, 40.0]), WALL) == []
    assert detect([], WALL) == []


# ---------------------------------------------------------------- the machinery


def test_results_are_deterministic_for_a_seed():
    steps = series([10.0] * 10 + [11.5] * 10, cv=0.05, seed=13)

    assert detect(steps, WALL, seed=3) == detect(steps, WALL, seed=3)


def test_arcs_leave_two_runs_inside_and_on_each_side():
    start, end = arcs(6)
    pairs = set(zip(start.tolist(), end.tolist()))

    assert (0, 2) in pairs  # a change after run 2
    assert (4, 6) in pairs  # a change before the last two
    assert (2, 4) in pairs  # a level in the middle
    assert (0, 6) not in pairs  # the whole segment is no change
    assert (1, 3) not in pairs  # one run before it
    assert (2, 5) not in pairs  # one run after it
    assert all(end - start >= 2)


def test_arc_scores_rank_arcs_as_the_pooled_t_statistic_does():
    rng = np.random.default_rng(14)
    y = rng.normal(size=12)
    y -= y.mean()
    start, end = arcs(12)
    scores = np.abs(arc_scores(y, start, end))
    t = [abs(scipy_stats.ttest_ind(y[s:e], np.r_[y[:s], y[e:]]).statistic) for s, e in zip(start, end)]

    assert np.all(np.diff(np.array(t)[np.argsort(scores)]) > -1e-9)  # t grows with the score


def test_segmentation_p_values_are_permutation_p_values_corrected_for_two_families():
    """Single changes and middle levels are tested separately, each at alpha / 2: the smallest p is 2 / 1000."""
    y = np.log(np.r_[np.full(10, 10.0), np.full(10, 12.0)])

    splits = segment(y, alpha=0.01, permutations=999)

    assert list(splits) == [10]
    assert splits[10] == pytest.approx(2 / 1000)


def test_a_step_among_the_newest_runs_is_not_drowned_by_the_many_middle_arcs():
    """20 runs then 3: pooled with every middle arc, its maximum would need p ≈ 0.012; alone it is ≈ 0.002."""
    y = np.log(np.r_[np.full(20, 10.0), np.full(3, 13.0)]) + np.random.default_rng(16).normal(0, 0.01, 23)

    splits = segment(y, alpha=0.01, permutations=999)

    assert list(splits) == [20]


@pytest.mark.parametrize(("t", "df"), [(2.262157, 9), (12.7062, 1), (0.5, 3), (4.0, 20), (-3.0, 7), (0.0, 5)])
def test_student_t_p_matches_scipy(t, df):
    assert student_t_p(t, df) == pytest.approx(2 * scipy_stats.t.sf(abs(t), df), rel=1e-9, abs=1e-15)


def test_a_thirty_run_series_with_a_thousand_permutations_takes_well_under_a_tenth_of_a_second():
    steps = series([10.0] * 15 + [12.0] * 15, cv=0.05, seed=15)
    detect(steps, WALL, permutations=1000)  # warm-up

    elapsed = min(_timed(lambda: detect(steps, WALL, permutations=1000)) for _ in range(3))

    assert elapsed < 0.1


def test_too_few_permutations_to_reach_alpha_is_refused():
    with pytest.raises(ValueError, match=r"199 permutations cannot give p < 0.01 .* use at least 200"):
        detect(series([10.0] * 10), WALL, permutations=199)


def test_effect_and_status_are_plain_fields_a_benchmark_can_read():
    [change] = detect(series([10.0] * 10 + [12.0] * 10), WALL)

    assert dataclasses.asdict(change)["status"] == "open"
    assert change.effect == pytest.approx(change.ratio - 1)


def _timed(function):
    start = time.perf_counter()
    function()
    return time.perf_counter() - start
