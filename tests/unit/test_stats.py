"""framework/stats.py against known distributions with known answers (scipy, installed for the tests, as referee)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats

from framework.in_runtime.errors import SelectionError
from framework.stats import (
    METRICS,
    SequentialComparison,
    bootstrap_ratio_ci,
    compare_samples,
    mann_whitney_p,
    metric,
    minimum_detectable_effect,
    parse_effects,
    repeats_needed,
    sign_confidence_sequence,
    smallest_p,
    student_t_p,
    t_quantile,
)
from framework.vocabulary import percent

GiB = 1024**3
PEAK = METRICS["peak_memory"]
WALL = METRICS["wall"]
SPILL = METRICS["spill"]


# ---------------------------------------------------------------- rank test


def test_complete_separation_of_five_against_five_gives_the_smallest_exact_p():
    assert mann_whitney_p([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]) == pytest.approx(2 / 252)
    assert smallest_p(5, 5) == pytest.approx(2 / 252)
    assert smallest_p(4, 4) == pytest.approx(2 / 70)


@pytest.mark.parametrize("seed", range(8))
def test_exact_p_matches_scipy_without_ties(seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(0, 1, size=rng.integers(3, 9))
    b = rng.normal(0.8, 1, size=rng.integers(3, 9))
    expected = scipy_stats.mannwhitneyu(a, b, alternative="two-sided", method="exact").pvalue
    assert mann_whitney_p(a, b) == pytest.approx(expected, rel=1e-9)


@st.composite
def small_samples(draw, values, *, ties, smallest=1):
    """Two samples of up to 9 values each: 9 vs 9 has 48,620 splits, within what mann_whitney_p enumerates."""
    n_a, n_b = draw(st.integers(smallest, 9)), draw(st.integers(smallest, 9))
    pooled = draw(st.lists(values, min_size=n_a + n_b, max_size=n_a + n_b, unique=not ties))
    return pooled[:n_a], pooled[n_a:]


@settings(max_examples=300, deadline=None)
@given(small_samples(st.floats(-1e6, 1e6, allow_nan=False), ties=False))
def test_exact_p_equals_scipys_exact_mann_whitney_for_any_small_samples_without_ties(samples):
    a, b = samples
    expected = scipy_stats.mannwhitneyu(a, b, alternative="two-sided", method="exact").pvalue
    assert abs(mann_whitney_p(a, b) - expected) <= 1e-9


@settings(max_examples=150, deadline=None)
@given(small_samples(st.integers(0, 3), ties=True, smallest=2))  # scipy's permutation test needs 2 per side
def test_exact_p_with_ties_is_the_permutation_p_of_the_midrank_sum(samples):
    """scipy's "exact" Mann–Whitney assumes no ties; with ties the p is exact conditional on the tied values.

    That is scipy's exact permutation test of |rank sum of b − its mean| over every split of the pooled values.
    """
    a, b = samples
    centre = len(b) * (len(a) + len(b) + 1) / 2

    def distance_of_rank_sum(x, y, axis):
        ranks = scipy_stats.rankdata(np.concatenate([x, y], axis=axis), axis=axis)
        return np.abs(ranks[..., x.shape[-1] :].sum(axis=-1) - centre)

    expected = scipy_stats.permutation_test(
        (a, b), distance_of_rank_sum, permutation_type="independent", alternative="greater", n_resamples=np.inf
    ).pvalue
    assert abs(mann_whitney_p(a, b) - expected) <= 1e-9


@pytest.mark.parametrize("seed", range(4))
def test_large_samples_with_ties_match_scipys_normal_approximation(seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 6, size=40)
    b = rng.integers(1, 7, size=35)
    expected = scipy_stats.mannwhitneyu(a, b, alternative="two-sided", method="asymptotic").pvalue
    assert mann_whitney_p(a, b) == pytest.approx(expected, rel=1e-6)


def test_small_samples_with_ties_are_exact_permutation_p_values():
    a, b = [0, 0, 0, 1], [0, 1, 1, 1]
    # every split of the pooled ranks enumerated by hand through scipy's permutation test on the rank sum
    result = scipy_stats.permutation_test(
        (a, b),
        lambda x, y: scipy_stats.mannwhitneyu(x, y, method="asymptotic").statistic - len(x) * len(y) / 2,
        permutation_type="independent",
        alternative="two-sided",
        n_resamples=np.inf,
    )
    assert mann_whitney_p(a, b) == pytest.approx(result.pvalue, rel=1e-9)


def test_identical_samples_have_p_one():
    assert mann_whitney_p([0, 0, 0], [0, 0, 0]) == 1.0
    assert mann_whitney_p([3.0], [3.0]) == 1.0


# ---------------------------------------------------------------- bootstrap interval


def test_bootstrap_interval_covers_the_true_ratio_about_95_percent_of_the_time():
    rng = np.random.default_rng(1)
    covered = 0
    runs = 300
    for seed in range(runs):
        a = np.exp(rng.normal(0.0, 0.05, size=11))
        b = np.exp(rng.normal(math.log(1.10), 0.05, size=11))
        low, high = bootstrap_ratio_ci(a, b, n_boot=2000, seed=seed)
        covered += low <= 1.10 <= high
    # percentile intervals of medians undercover a little at n = 11; far from 95 % would be a bug
    assert 0.88 <= covered / runs <= 0.99


def test_bootstrap_interval_of_zero_baseline_is_infinite_above():
    _, high = bootstrap_ratio_ci([0, 0, 0], [5, 6, 7], n_boot=200)
    assert high == math.inf


# ---------------------------------------------------------------- fixed-size decisions


def test_aa_false_alarms_stay_below_alpha_for_every_metric():
    rng = np.random.default_rng(2)
    for spec, cv in ((WALL, 0.13), (PEAK, 0.02), (METRICS["mean_memory"], 0.03)):
        alarms = 0
        for seed in range(1500):
            values = 3e9 * np.exp(rng.normal(0, cv, size=10))
            result = compare_samples(values[:5], values[5:], spec, seed=seed, n_boot=200)
            alarms += result.verdict in ("regressed", "improved")
        assert alarms / 1500 <= 0.01 + 0.006, spec.name  # exact test: ≤ 2/252 in expectation


def test_a_five_percent_peak_memory_shift_is_detected_with_five_repeats_when_noise_is_low():
    rng = np.random.default_rng(3)
    detected = 0
    for seed in range(400):
        a = 2e9 * np.exp(rng.normal(0, 0.01, size=5))
        b = 2e9 * 1.05 * np.exp(rng.normal(0, 0.01, size=5))
        detected += compare_samples(a, b, PEAK, seed=seed, n_boot=200).verdict == "regressed"
    assert detected / 400 >= 0.95


def test_improvement_and_minimum_effect():
    a = [10.0, 10.1, 9.9, 10.05, 9.95]
    faster = [8.0, 8.1, 7.9, 8.05, 7.95]
    assert compare_samples(a, faster, WALL).verdict == "improved"
    slightly = [x * 1.03 for x in a]  # significant, yet below a 5 % minimum effect
    result = compare_samples(a, slightly, WALL)
    assert result.p_value < 0.01
    assert result.verdict == "unchanged"
    assert compare_samples(a, slightly, WALL, min_effect=0.02).verdict == "regressed"


def test_unchanged_is_conclusive_only_when_the_interval_fits_the_band():
    rng = np.random.default_rng(4)
    tight = 1e9 * np.exp(rng.normal(0, 0.002, size=10))
    assert compare_samples(tight[:5], tight[5:], PEAK).conclusive
    noisy = 5.0 * np.exp(rng.normal(0, 0.2, size=10))
    result = compare_samples(noisy[:5], noisy[5:], WALL)
    assert result.verdict == "inconclusive"
    assert not result.conclusive
    assert "inconclusive" in result.sentence()


def test_too_few_repeats_say_so():
    result = compare_samples([1.0, 1.1, 1.2], [2.0, 2.1, 2.2], WALL)
    assert result.verdict == "inconclusive"  # 3 vs 3 can never reach p < 0.01
    assert result.mde is None
    assert "cannot reach p < 0.01" in result.sentence()


def test_spill_from_zero_is_judged_by_the_absolute_floor():
    none = [0, 0, 0, 0, 0]
    assert compare_samples(none, none, SPILL).verdict == "unchanged"
    assert compare_samples(none, none, SPILL).conclusive
    little = [1 << 20] * 5  # 1 MiB: below the 64 MiB floor
    assert compare_samples(none, little, SPILL).verdict == "unchanged"
    lots = [2 << 30, 2.1 * (1 << 30), 1.9 * (1 << 30), 2 << 30, 2 << 30]
    result = compare_samples(none, lots, SPILL)
    assert result.verdict == "regressed"
    assert result.ratio == math.inf
    assert "0 B → 2.0 GiB" in result.sentence()


def test_sentence_reads_as_the_issue_asks():
    a = [1.0e9, 1.01e9, 0.99e9, 1.0e9, 1.02e9, 0.98e9, 1.0e9]
    b = [x * 1.38 for x in a]
    text = compare_samples(a, b, PEAK).sentence()
    assert text.startswith("peak memory +38 % (")
    assert "p < 0.001" in text  # 7 vs 7 exact: the smallest p is 2/3432 = 0.0006
    assert "n = 7 vs 7 — regressed" in text


def test_percent_shows_a_ratio_as_a_change_with_a_digit_below_ten_percent():
    assert [percent(r) for r in (1.38, 1.042, 0.5, 1.0, 0.95)] == ["+38 %", "+4.2 %", "-50 %", "+0.0 %", "-5.0 %"]
    assert [percent(r, sign=False) for r in (1.31, 1.042, 0.5)] == ["31 %", "4.2 %", "-50 %"]
    assert (percent(math.inf), percent(math.inf, sign=False), percent(math.nan)) == ("+∞ %", "∞ %", "–")


# ---------------------------------------------------------------- power planning


def test_minimum_detectable_effect_falls_with_repeats_and_matches_simulation():
    assert minimum_detectable_effect(0.05, 4) is None  # 4 vs 4 cannot reach 0.01
    effects = [minimum_detectable_effect(0.05, n) for n in (5, 10, 20)]
    assert effects[0] > effects[1] > effects[2]
    # At the predicted MDE the simulated rank test detects the shift roughly 95 % of the time.
    n, sigma = 10, 0.05
    mde = minimum_detectable_effect(sigma, n)
    rng = np.random.default_rng(5)
    hits = sum(
        mann_whitney_p(rng.normal(0, sigma, n), rng.normal(math.log1p(mde), sigma, n)) < 0.01 for _ in range(400)
    )
    assert 0.88 <= hits / 400 <= 1.0


@pytest.mark.parametrize("df", [1, 2, 3, 4, 5, 8, 9, 10, 18, 30, 58, 120, 1000, 100_000])
def test_t_quantile_matches_scipy(df):
    for p in (0.0005, 0.005, 0.025, 0.05, 0.2, 0.5, 0.8, 0.9, 0.95, 0.975, 0.99, 0.995, 0.9995, 0.99995):
        assert t_quantile(p, df) == pytest.approx(scipy_stats.t.ppf(p, df), rel=1e-9, abs=1e-12), p


@pytest.mark.parametrize("df", [1, 2, 3, 4, 5, 7, 10, 18, 30, 100, 1000, 100_000])
def test_student_t_p_matches_scipy_over_a_grid(df):
    for t in (0.0, 0.01, 0.3, 1.0, 1.96, 2.5, 3.0, 4.0, 6.0, 10.0, 30.0, 100.0, 1e4):
        for signed in (t, -t):
            assert student_t_p(signed, df) == pytest.approx(2 * scipy_stats.t.sf(t, df), rel=1e-9, abs=1e-300), t
    assert student_t_p(math.inf, df) == 0.0


@pytest.mark.parametrize("alpha", [0.01, 0.05, 0.1])
@pytest.mark.parametrize("power", [0.5, 0.8, 0.95, 0.99])
def test_minimum_detectable_effect_is_the_t_test_formula_with_scipys_quantiles(alpha, power):
    sigma = 0.05
    for n in [*range(2, 40), 100, 1000]:
        df = 2 * n - 2
        quantiles = scipy_stats.t.ppf(1 - alpha / 2, df) + scipy_stats.t.ppf(power, df)
        expected = math.expm1(quantiles * sigma * math.sqrt(2.0 / n) * math.sqrt(math.pi / 3))
        if smallest_p(n, n) > alpha:
            assert minimum_detectable_effect(sigma, n, alpha, power) is None
        else:
            assert minimum_detectable_effect(sigma, n, alpha, power) == pytest.approx(expected, rel=1e-9), n


def test_repeats_needed_for_wall_time_noise_like_this_machines():
    # 13 % coefficient of variation (a 3–5 s groupby while another job ran): 5 % needs many repeats
    assert repeats_needed(0.13, 0.05) > 50
    assert repeats_needed(0.01, 0.05) == 5  # the exact test's floor at alpha 0.01


# ---------------------------------------------------------------- sequential


def test_confidence_sequence_is_an_interval_around_the_median():
    low, high = sign_confidence_sequence(list(np.linspace(-1, 1, 41)), alpha=0.05)
    assert low < 0 < high
    assert low > -1 and high < 1
    assert sign_confidence_sequence([0.1] * 3, alpha=0.01) == (-math.inf, math.inf)


def test_sequential_aa_false_alarms_are_controlled_despite_looking_after_every_pair():
    rng = np.random.default_rng(6)
    alarms = 0
    trials = 400
    for _ in range(trials):
        test = SequentialComparison(WALL, min_effect=0.02, alpha=0.01)
        for _ in range(40):
            test.add(*(5.0 * np.exp(rng.normal(0, 0.1, size=2))))
            if test.decision is not None:
                break
        alarms += test.decision in ("regressed", "improved")
    assert alarms / trials <= 0.01 + 0.01


def test_sequential_decides_a_regression_and_an_unchanged_quickly():
    rng = np.random.default_rng(7)
    test = SequentialComparison(PEAK, min_effect=0.02, alpha=0.01)
    while test.decision is None and len(test.a) < 40:
        test.add(1e9 * math.exp(rng.normal(0, 0.01)), 1.10e9 * math.exp(rng.normal(0, 0.01)))
    assert test.decision == "regressed"
    assert len(test.a) <= 15
    result = test.result()
    assert result.sequential and result.conclusive
    assert result.ci_low > 1.02
    assert "always-valid p" in result.sentence()

    same = SequentialComparison(PEAK, min_effect=0.05, alpha=0.01)
    while same.decision is None and len(same.a) < 40:
        same.add(1e9 * math.exp(rng.normal(0, 0.005)), 1e9 * math.exp(rng.normal(0, 0.005)))
    assert same.decision == "unchanged"


def test_sequential_out_of_budget_needs_the_minimum_effect_as_a_fixed_comparison_does():
    # A real but small shift (+0.5 … +2.5 %, median +1.5 %): twelve pairs exclude "no change" but the sequence
    # straddles the band's edge, so it is undecided when the budget ends — a change only beyond min_effect.
    changes = np.random.default_rng(9).permutation(np.linspace(0.005, 0.025, 12))
    strict = SequentialComparison(PEAK, min_effect=0.02, alpha=0.01)
    loose = SequentialComparison(PEAK, min_effect=0.01, alpha=0.01)
    for change in changes:
        strict.add(1e9, 1e9 * math.exp(change))
        loose.add(1e9, 1e9 * math.exp(change))
    assert strict.low > 0 and strict.decision is None and loose.decision is None
    assert strict.result().verdict == "inconclusive" and not strict.result().conclusive
    assert loose.result().verdict == "regressed"


def test_sequential_spill_of_zero_on_both_sides_is_unchanged():
    test = SequentialComparison(SPILL, min_effect=0.05)
    for _ in range(12):
        test.add(0, 0)
    assert test.decision == "unchanged"


# ---------------------------------------------------------------- parsing


def test_metric_names_and_effects():
    assert metric("peak_memory_bytes") is PEAK
    assert parse_effects("wall=10%, peak_memory=0.05") == {"wall": 0.10, "peak_memory": 0.05}
    with pytest.raises(SelectionError, match="did you mean 'peak_memory'"):
        metric("peak_memroy")
    with pytest.raises(SelectionError, match="METRIC=PERCENT"):
        parse_effects("wall")
    with pytest.raises(SelectionError, match="between 0 and 100"):
        parse_effects("wall=150%")


def test_sequential_spill_regression_is_judged_relative_to_the_amount():
    rng = np.random.default_rng(8)
    test = SequentialComparison(SPILL, min_effect=0.05)
    while test.decision is None and len(test.a) < 40:
        test.add(1.5 * GiB * math.exp(rng.normal(0, 0.02)), 1.8 * GiB * math.exp(rng.normal(0, 0.02)))
    assert test.decision == "regressed"
