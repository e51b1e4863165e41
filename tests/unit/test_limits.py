"""framework/limits.py: soak slopes and health figures held to absolute limits, judged with their intervals.

Synthetic rows: the slopes come from real Theil–Sen fits (framework/in_runtime/trend.py) of made-up memory series —
one growing as every release measured here does (≈ 120 KiB a repeat: distributed's bounded histories filling), one
with a leak on top.
"""

from __future__ import annotations

import dataclasses
import random

import pytest

from framework.criteria import Criteria
from framework.in_runtime.trend import theil_sen
from framework.limits import MeasuredRow, health_checks, median_interval, position, soak_checks

KiB, MiB = 1024.0, 1024.0**2


def criteria(**changes: object) -> Criteria:
    spec = {
        "baseline": "stable",
        "soak": {"max_leak": "1MiB/repeat", "max_idle_growth": "2MiB/min"},
        "health": {"workloads": ["tag:smoke"], "max": {"scheduler_loop_max": "3s", "worker_gc": "1s"}},
    }
    return Criteria.model_validate(spec | changes)


def series(slope: float, n: int = 80, noise: float = 40 * KiB, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    return [400 * MiB + slope * i + rng.gauss(0, noise) for i in range(n)]


def leak_row(values: list[float], run_id: str = "soak-1", **changes: object) -> MeasuredRow:
    trend = theil_sen(range(len(values)), values)
    extra = {
        "unmanaged_slope_bytes_per_repeat": trend.slope,
        "unmanaged_slope_low_bytes_per_repeat": trend.low,
        "unmanaged_slope_high_bytes_per_repeat": trend.high,
        "series_repeats": float(len(values)),
    }
    return MeasuredRow(run_id, "passed", extra=extra, **changes)  # type: ignore[arg-type]


def slope_row(slope: float, low: float, high: float, unit: str = "bytes_per_repeat") -> MeasuredRow:
    extra = {f"unmanaged_slope_{unit}": slope, f"unmanaged_slope_low_{unit}": low, f"unmanaged_slope_high_{unit}": high}
    return MeasuredRow("soak-1", "passed", extra=extra)


def test_an_interval_is_within_beyond_or_straddling_a_limit() -> None:
    assert position(1.0, 2.0, 2.0) == "within"
    assert position(2.1, 3.0, 2.0) == "beyond"
    assert position(1.5, 2.5, 2.0) == "inconclusive"


def test_the_growth_every_release_shows_passes_and_a_synthetic_leak_fails() -> None:
    rows = {"leak_a": (leak_row(series(120 * KiB)),), "leak_b": (leak_row(series(120 * KiB + 2 * MiB)),)}

    ordinary, leaking = soak_checks(criteria(), rows, "latest", "")

    assert ordinary.passed
    assert ordinary.reason.startswith("leak_a: unmanaged memory +1")
    assert "KiB/repeat (95 % CI +1" in ordinary.reason
    assert ordinary.reason.endswith(", 80 repeats) on latest, limit ≤ 1MiB/repeat — within the limit — run soak-1")
    assert not leaking.passed
    assert leaking.subject == "leak_b unmanaged"
    assert "limit ≤ 1MiB/repeat — beyond the limit — run soak-1" in leaking.reason
    assert leaking.evidence == ("soak-1",)


@pytest.mark.parametrize(("inconclusive", "passed"), [("fail", False), ("pass", True)])
def test_a_slope_whose_interval_straddles_the_limit_is_inconclusive_as_the_criteria_say(
    inconclusive: str, passed: bool
) -> None:
    soak = {"max_leak": "1MiB/repeat", "max_idle_growth": "2MiB/min", "inconclusive": inconclusive}

    [check] = soak_checks(criteria(soak=soak), {"leak_a": (slope_row(MiB, 0.9 * MiB, 1.1 * MiB),)}, "latest", "")

    assert check.passed is passed
    assert "+1024.0 KiB/repeat (95 % CI +921.6 KiB/repeat to +1126.4 KiB/repeat) on latest" in check.reason
    assert "inconclusive: its interval straddles the limit" in check.reason


def test_an_idle_cluster_is_judged_per_minute_against_max_idle_growth() -> None:
    rows = {"idle": (slope_row(3 * MiB, 2.5 * MiB, 3.5 * MiB, "bytes_per_minute"),)}

    [check] = soak_checks(criteria(), rows, "latest", "")

    assert not check.passed
    assert "+3072.0 KiB/min (95 % CI +2560.0 KiB/min to +3584.0 KiB/min) on latest, limit ≤ 2MiB/min" in check.reason


def test_each_series_the_criteria_name_is_its_own_check() -> None:
    soak = {"max_leak": "1MiB/repeat", "max_idle_growth": "2MiB/min", "series": ["unmanaged", "scheduler_rss"]}

    checks = soak_checks(criteria(soak=soak), {"leak_a": (slope_row(KiB, 0, 2 * KiB),)}, "latest", "")

    assert [(c.subject, c.passed) for c in checks] == [("leak_a unmanaged", True), ("leak_a scheduler_rss", False)]
    assert "records no scheduler_rss slope on latest (no scheduler_rss_slope_bytes_per_repeat" in checks[1].reason


def test_the_baseline_slope_is_shown_beside_the_candidates_when_the_store_has_it_but_not_judged() -> None:
    rows = {"leak_a": (slope_row(MiB, 0.9 * MiB, 1.1 * MiB),), "leak_b": (slope_row(KiB, 0, 2 * KiB),)}
    baseline = {"leak_a": (dataclasses.replace(slope_row(MiB, 0.95 * MiB, 1.05 * MiB), run_id="base-1"),)}

    straddling, alone = soak_checks(criteria(), rows, "latest", "", baseline, "stable")

    assert not straddling.passed  # the baseline growing as much excuses nothing: the limit is absolute
    assert straddling.reason.endswith(
        "; stable: +1024.0 KiB/repeat (95 % CI +972.8 KiB/repeat to +1075.2 KiB/repeat) — run base-1"
    )
    assert alone.passed and "stable" not in alone.reason


def test_a_soak_case_without_a_slope_is_judged_by_its_outcome_and_says_so() -> None:
    rows = {"retire_keeps_data": (MeasuredRow("r2", "passed", extra={"workers": 2.0}), MeasuredRow("r1", "passed"))}

    [check] = soak_checks(criteria(), rows, "latest", "")

    assert check.passed
    assert check.reason == (
        "retire_keeps_data: 2/2 repeats passed on latest; it records no memory slope (not a leak or idle case), so"
        " only its outcome is judged — runs r2, r1"
    )


def test_a_soak_that_failed_or_never_ran_fails_and_says_why() -> None:
    died = MeasuredRow("soak-2", "failed", "WorkloadCheckFailed: workers changed during the soak")
    rows = {"leak_a": (died, slope_row(KiB, 0, 2 * KiB)), "leak_b": None}

    failed, absent = soak_checks(criteria(), rows, "latest", "could not be produced: no Python 3.11")

    assert not failed.passed and not absent.passed
    assert failed.reason.startswith("leak_a: the soak did not complete on latest: failed (WorkloadCheckFailed: workers")
    assert "— run soak-2; a worker restarted past its memory limit is what a fast leak looks like" in failed.reason
    assert absent.reason == "leak_b: no soak result on latest — could not be produced: no Python 3.11"


def test_a_slope_that_could_not_be_measured_is_missing_not_passed() -> None:
    row = MeasuredRow("soak-3", "passed", missing={"extra_metrics": "the case returned no metrics"})

    [check] = soak_checks(criteria(), {"leak_a": (row,)}, "latest", "")

    assert not check.passed
    assert check.reason == "leak_a: unmanaged slope missing on latest: the case returned no metrics — run soak-3"


@pytest.mark.parametrize(
    ("n", "k", "coverage"),
    [(5, 1, 0.9375), (7, 1, 0.984375), (10, 2, 0.978515625), (20, 6, 0.9586105346679688)],
)
def test_the_median_interval_takes_the_widest_ranks_reaching_95_percent(n: int, k: int, coverage: float) -> None:
    values = [float(i) for i in range(1, n + 1)]

    middle, low, high, covered = median_interval(values[::-1])

    assert (middle, low, high) == ((n + 1) / 2, float(k), float(n + 1 - k))
    assert covered == pytest.approx(coverage)


def health_row(stall: float | None, gc: float | None = 0.01, run_id: str = "run-1", **missing: str) -> MeasuredRow:
    return MeasuredRow(run_id, "passed", values={"scheduler_loop_max": stall, "worker_gc": gc}, missing=missing)


def test_health_within_its_limits_passes_with_median_interval_and_worst_repeat() -> None:
    rows = {"array_mean_var": tuple(health_row(0.01 * i) for i in range(1, 8))}

    stall, gc = health_checks(criteria(), rows, "latest", "")

    assert stall.passed and gc.passed
    assert stall.reason == (
        "array_mean_var: scheduler's longest event-loop stall median 0.04 s (98 % CI 0.01 s to 0.07 s; worst 0.07 s,"
        " 0 of 7 repeats beyond) on latest, limit ≤ 3 s — within the limit — run run-1"
    )


@pytest.mark.parametrize(("inconclusive", "passed"), [("fail", False), ("pass", True)])
def test_one_stall_beyond_the_limit_in_few_repeats_is_inconclusive(inconclusive: str, passed: bool) -> None:
    health = {"workloads": ["tag:smoke"], "max": {"scheduler_loop_max": "3s"}, "inconclusive": inconclusive}
    rows = {"array_mean_var": (health_row(12.0, run_id="run-2"), *(health_row(0.05) for _ in range(6)))}

    [check] = health_checks(criteria(health=health), rows, "latest", "")

    assert check.passed is passed
    assert "worst 12 s, 1 of 7 repeats beyond) on latest, limit ≤ 3 s — inconclusive" in check.reason
    assert check.evidence == ("run-2", "run-1")


def test_health_beyond_its_limit_in_every_repeat_fails() -> None:
    rows = {"array_mean_var": tuple(health_row(0.01, gc=1.5 + 0.1 * i) for i in range(5))}

    stall, gc = health_checks(criteria(), rows, "latest", "")

    assert stall.passed and not gc.passed
    assert "workers' GC pauses median 1.7 s (94 % CI 1.5 s to 1.9 s" in gc.reason
    assert "limit ≤ 1 s — beyond the limit" in gc.reason


def test_a_health_value_missing_with_a_reason_fails_as_missing_never_passes() -> None:
    why = "scheduler: no tick callback (Server.periodic_callbacks has no 'tick')"
    rows = {"array_mean_var": tuple(health_row(None, scheduler_loop_max_s=why) for _ in range(3))}

    stall, gc = health_checks(criteria(), rows, "old", "")

    assert not stall.passed and gc.passed
    assert stall.reason == (
        f"array_mean_var: scheduler's longest event-loop stall missing on old in all 3 repeat(s): {why} — run run-1;"
        " a value that was not measured is not within a limit"
    )


def test_health_without_any_result_fails_with_why() -> None:
    checks = health_checks(criteria(), {"array_mean_var": None}, "latest", "could not be produced: boom")

    assert [check.passed for check in checks] == [False, False]
    assert checks[0].reason.endswith("— no result on latest — could not be produced: boom")


def test_a_row_of_the_store_reads_its_values_extra_metrics_and_missing() -> None:
    record = {
        "run_id": "r",
        "outcome": "passed",
        "error": None,
        "scheduler_loop_max_s": 0.2,
        "worker_gc_s": None,
        "extra_metrics": '{"unmanaged_slope_bytes_per_repeat": 5, "note": "text"}',
        "missing": '{"worker_gc_s": "no gc hook"}',
        "overloaded": True,
    }

    row = MeasuredRow.from_record(record)

    assert row.values == {"scheduler_loop_max": 0.2, "worker_gc": None}
    assert row.extra == {"unmanaged_slope_bytes_per_repeat": 5.0}
    assert (row.missing, row.overloaded) == ({"worker_gc_s": "no gc hook"}, True)
