"""framework/evidence.py: which stored results count as a blessing's evidence — the environments that are the
runtime's, the time window, the hardware and size, the stability budget, and the comparisons' repeats and mode."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from framework.config import load_catalog
from framework.criteria import Criteria
from framework.environments import BuiltEnvironment
from framework.evidence import (
    CaseOutcome,
    Identity,
    case_outcomes,
    identity,
    metric_evidence,
    stability_evidence,
)
from framework.failure_signatures import FailureSignature
from framework.matrix import Case
from framework.query import Results
from framework.records import write_record
from framework.results import ResultsStore, case_table, write_atomic

Row = dict[str, Any]
NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.timezone.utc)
LATEST = Identity("latest", "r" * 16, "e" * 16, frozenset({"e" * 16, "y" * 16}), {"dask": "2026.9.0"})
STABLE = Identity("stable", "s" * 16, "b" * 16, frozenset({"b" * 16}), {"dask": "2026.3.0"})


def at(hours_ago: float) -> str:
    return (NOW - dt.timedelta(hours=hours_ago)).isoformat()


@pytest.fixture
def write(results_dir: Path) -> Callable[[Sequence[Row]], None]:
    def write_rows(rows: Sequence[Row]) -> None:
        first = rows[0]
        name = f"{first['run_id']}__{first['runtime']}__{first['hardware']}.parquet"
        write_atomic(case_table(rows), ResultsStore(results_dir).cases_dir / name)

    return write_rows


@pytest.fixture(scope="module")
def cases() -> list[Case]:
    workload = load_catalog().workloads["groupby_agg"]
    return [Case(workload, f"groupby_agg[by={by}]", {"by": by}, "tiny") for by in ("id", "name")]


def outcomes(results_dir: Path, cases: list[Case], who: Identity = LATEST, hours: float = 48) -> dict[str, CaseOutcome]:
    with Results(results_dir) as results:
        return case_outcomes(results, who, "local", cases, NOW - dt.timedelta(hours=hours))


# --------------------------------------------------------------------------------------------------
# Must-pass cases


def test_every_repeat_of_every_reusable_run_counts_newest_problem_first(write, case_row, results_dir, cases) -> None:
    case = "groupby_agg[by=id]"
    write([case_row(run_id="old", run_started_at=at(30), case_id=case, repeat=i) for i in range(3)])
    write([
        case_row(run_id="new", run_started_at=at(2), case_id=case, repeat=0, outcome="timeout", error="past 60 s"),
        case_row(run_id="new", run_started_at=at(2), case_id=case, repeat=1),
        case_row(run_id="new", run_started_at=at(2), case_id=case, phase="warmup", outcome="error"),
    ])  # fmt: skip

    found = outcomes(results_dir, cases)

    problem = (FailureSignature("timeout", (), gist="past N s"), "new")  # read from its outcome, error, traceback
    assert found == {case: CaseOutcome(case, ("new", "old"), 5, 4, "timeout: past 60 s", "new", (problem,))}


def test_a_case_that_could_not_start_counts_as_a_repeat_that_did_not_pass(write, case_row, results_dir, cases) -> None:
    write([case_row(run_id="r", run_started_at=at(1), case_id="groupby_agg[by=name]", phase="setup",
                    outcome="error", error="cluster did not start")])  # fmt: skip

    [outcome] = outcomes(results_dir, cases).values()

    assert (outcome.repeats, outcome.passed, outcome.first_problem) == (1, 0, "error: cluster did not start")


@pytest.mark.parametrize(
    "other",
    [
        {"run_started_at": at(49)},  # older than the window
        {"env_hash": "x" * 16},  # another environment
        {"runtime_hash": "z" * 16},  # the runtime's spec changed (env vars, Dask config)
        {"hardware": "local-threads"},
        {"size": "small"},
    ],
)
def test_rows_of_another_environment_hardware_size_or_time_do_not_count(
    write, case_row, results_dir, cases, other: Row
) -> None:
    write([case_row(run_id="r", case_id="groupby_agg[by=id]", **{"run_started_at": at(1), **other})])

    assert outcomes(results_dir, cases) == {}


def test_an_earlier_environment_with_identical_packages_counts(write, case_row, results_dir, cases) -> None:
    write([case_row(run_id="yesterday", run_started_at=at(20), case_id="groupby_agg[by=id]", env_hash="y" * 16)])

    assert list(outcomes(results_dir, cases)) == ["groupby_agg[by=id]"]


def test_identity_gathers_the_environments_whose_lock_is_identical(results_dir: Path) -> None:
    store = ResultsStore(results_dir)
    lock = "dask==2026.9.0\ndistributed==2026.9.0\n"
    for env_hash, python, its_lock in [
        ("y" * 16, "3.11", lock),
        ("o" * 16, "3.11", "dask==2026.8.0\ndistributed==2026.9.0\n"),
        ("p" * 16, "3.12", lock),
    ]:
        store.record_environment({"env_hash": env_hash, "runtime": "latest", "python": python, "lock": its_lock})
    runtime = load_catalog().runtime("latest")
    today = BuiltEnvironment(runtime, results_dir, "t" * 16, "r" * 16, lock, True, 0.0)

    with Results(results_dir) as results:
        who = identity(results, runtime, today)

    assert who.env_hashes == {"t" * 16, "y" * 16}
    assert (who.env_hash, who.runtime_hash, who.built) == ("t" * 16, "r" * 16, True)
    assert who.versions == {"dask": "2026.9.0", "distributed": "2026.9.0"}


def test_identity_without_a_built_environment_matches_no_stored_environment(results_dir: Path) -> None:
    runtime = load_catalog().runtime("stable")
    store = ResultsStore(results_dir)
    store.record_environment({"env_hash": "a" * 16, "runtime": "stable", "python": "3.11", "lock": "dask==1.0\n"})
    with Results(results_dir) as results:
        who = identity(results, runtime, None)

    # Environments are named by their lock: without a resolution there is no name, and no stored build counts.
    assert "a" * 16 not in who.env_hashes
    assert who.env_hashes == {who.env_hash}
    assert not who.built


# --------------------------------------------------------------------------------------------------
# Stability


def stability_criteria(**stability: Any) -> Criteria:
    return Criteria.model_validate(
        {"baseline": "stable", "stability": {"tiers": ["inprocess", "process"], **stability}}
    )


def fuzz_row(case_row: Callable[..., Row], run_id: str, tier: str, hours: float = 1, **params: Any) -> Row:
    outcome = params.pop("outcome", "passed")
    row = case_row(
        run_id=run_id,
        run_started_at=at(hours),
        workload="stability.fuzz",
        case_id=f"fuzz[{tier}]",
        size=None,
        hardware="chaos",
        outcome=outcome,
        params={"tier": tier, "profile": "ci", "examples": None, **params},
        extra_metrics={"examples": 40},
    )
    if outcome != "passed":
        row.update(error="liveness: deadlock", failure_id=f"{run_id}-{tier}")
    return row


def found_stability(results_dir: Path, criteria: Criteria) -> Any:
    with Results(results_dir) as results:
        return stability_evidence(results, LATEST, criteria, NOW - dt.timedelta(days=7))


def test_the_newest_run_with_the_profile_and_every_tier_is_the_complete_one(write, case_row, results_dir) -> None:
    write([fuzz_row(case_row, "old", "inprocess", 5), fuzz_row(case_row, "old", "process", 5)])
    write([fuzz_row(case_row, "new", "inprocess", 1), fuzz_row(case_row, "new", "process", 1)])
    write([fuzz_row(case_row, "newest", "inprocess", 0.5)])  # one tier only: not complete

    found = found_stability(results_dir, stability_criteria())

    assert found.complete_run == "new"
    assert [(batch.run_id, batch.case_id) for batch in found.batches] == [
        ("new", "fuzz[inprocess]"),
        ("new", "fuzz[process]"),
    ]


@pytest.mark.parametrize(
    ("params", "criteria", "complete"),
    [
        ({"profile": "nightly"}, {}, False),  # another profile
        ({"examples": 2}, {}, False),  # a cut budget does not pass the profile's full one
        ({"examples": 2}, {"examples": 5}, False),
        ({"examples": 5}, {"examples": 5}, True),
        ({}, {"examples": 5}, True),  # the full budget is more than enough
    ],
)
def test_a_pass_counts_only_at_the_criteria_profile_and_budget(
    write, case_row, results_dir, params: Row, criteria: Row, complete: bool
) -> None:
    write([fuzz_row(case_row, "r", tier, **params) for tier in ("inprocess", "process")])

    found = found_stability(results_dir, stability_criteria(**criteria))

    assert (found is not None and found.complete_run == "r") is complete


def test_a_failure_counts_at_any_budget_and_in_any_run_of_the_window(write, case_row, results_dir) -> None:
    write([fuzz_row(case_row, "short", "process", 3, examples=1, outcome="timeout")])
    write([fuzz_row(case_row, "full", tier, 1) for tier in ("inprocess", "process")])

    found = found_stability(results_dir, stability_criteria())

    assert found.complete_run == "full"
    bad = [batch for batch in found.batches if batch.outcome != "passed"]
    assert [(b.run_id, b.case_id, b.failure_id) for b in bad] == [("short", "fuzz[process]", "short-process")]


def test_tiers_the_criteria_leave_out_do_not_count(write, case_row, results_dir) -> None:
    write([fuzz_row(case_row, "r", "inprocess"), fuzz_row(case_row, "r", "process", outcome="failed")])

    found = found_stability(results_dir, stability_criteria(tiers=["inprocess"]))

    assert found.complete_run == "r"
    assert [batch.case_id for batch in found.batches] == ["fuzz[inprocess]"]


def test_regression_cases_and_a_run_that_died_are_batches_of_their_run(write, case_row, results_dir) -> None:
    died = case_row(
        run_id="r", run_started_at=at(1), workload="stability.fuzz", case_id="stability[fuzz]", phase="setup",
        outcome="error", error="stability runner exited with code -9", hardware="chaos", size=None,
        params={"profile": "ci", "examples": None, "tiers": ["inprocess", "process"]},
    )  # fmt: skip
    regression = case_row(
        run_id="r", run_started_at=at(1), workload="stability.regression", case_id="regression[X]",
        hardware="chaos", size=None, params={"id": "X"},
    )  # fmt: skip
    write([regression, died])

    found = found_stability(results_dir, stability_criteria())

    assert found.complete_run == "r"
    assert {(batch.case_id, batch.outcome) for batch in found.batches} == {
        ("regression[X]", "passed"),
        ("stability[fuzz]", "error"),
    }


def test_no_stability_run_is_no_evidence(results_dir: Path) -> None:
    assert found_stability(results_dir, stability_criteria()) is None


# --------------------------------------------------------------------------------------------------
# Comparisons


METRICS_CRITERIA = Criteria.model_validate(
    {
        "baseline": "stable",
        "metrics": {"workloads": ["groupby_agg"], "repeat": 5, "max_regression": {"wall": "10%"}},
    }
)


def comparison(results_dir: Path, comparison_id: str, hours: float = 1, **changes: Any) -> None:
    row: Row = {
        "comparison_id": comparison_id,
        "created_at": NOW - dt.timedelta(hours=hours),
        "mode": "interleaved",
        "baseline": "stable",
        "candidate": "latest",
        "baseline_runtime_hash": STABLE.runtime_hash,
        "candidate_runtime_hash": LATEST.runtime_hash,
        "baseline_env_hash": STABLE.env_hash,
        "candidate_env_hash": "y" * 16,
        "hardware": "local",
        "workload": "groupby_agg",
        "case_id": "groupby_agg[by=id]",
        "size": "tiny",
        "metric": "wall",
        "n_baseline": 5,
        "n_candidate": 5,
        "baseline_median": 1.0,
        "candidate_median": 1.01,
        "ratio": 1.01,
        "ci_low": 0.98,
        "ci_high": 1.04,
        "p_value": 0.7,
        "min_effect": 0.1,
        "alpha": 0.01,
        "verdict": "unchanged",
        "conclusive": True,
        "mde": 0.05,
        "repeats_needed": 4,
        "detail": {"baseline": [1.0] * 5, "candidate": [1.01] * 5, "rounds": 5},
        **changes,
    }
    write_record(results_dir, "comparisons", comparison_id, [row])


def found_metrics(results_dir: Path, cases: list[Case]) -> dict[tuple[str, str], Any]:
    with Results(results_dir) as results:
        return metric_evidence(results, LATEST, STABLE, "local", cases, METRICS_CRITERIA, NOW - dt.timedelta(days=7))


def test_the_newest_comparison_of_the_two_environments_is_the_evidence(results_dir: Path, cases) -> None:
    comparison(results_dir, "older", hours=5, ratio=1.5)
    comparison(results_dir, "newer", hours=1)

    found = found_metrics(results_dir, cases)

    [evidence] = found.values()
    assert evidence.comparison_id == "newer"
    assert evidence.result.ratio == 1.01
    assert evidence.samples == ((1.0,) * 5, (1.01,) * 5)
    assert evidence.locks_differ_runs is None  # the record names no runs


def test_a_comparison_of_two_locks_names_its_runs_for_the_attribute_command(results_dir: Path, cases) -> None:
    runs = {"baseline": ["run-b"], "candidate": ["run-c"]}
    comparison(results_dir, "c", detail={"baseline": [1.0] * 5, "candidate": [1.01] * 5, "rounds": 5, "run_ids": runs})
    [evidence] = found_metrics(results_dir, cases).values()
    assert evidence.locks_differ_runs == ("run-b", "run-c")  # STABLE's environment against "yyyy…"


@pytest.mark.parametrize(
    "changes",
    [
        {"mode": "from-results"},  # not interleaved: drift between the sides is not cancelled
        {"n_baseline": 3, "n_candidate": 3, "detail": {"rounds": 3}},  # fewer repeats than the criteria's 5
        {"baseline_env_hash": "x" * 16},  # another baseline environment
        {"candidate_runtime_hash": "z" * 16},  # the candidate with other Dask config
        {"hardware": "local-threads"},
        {"size": "small"},
        {"created_at": NOW - dt.timedelta(days=8)},
    ],
)
def test_a_comparison_that_does_not_answer_the_criteria_question_is_not_reused(
    results_dir: Path, cases, changes: Row
) -> None:
    comparison(results_dir, "c", **changes)

    assert found_metrics(results_dir, cases) == {}


def test_a_sequential_comparison_counts_whatever_its_number_of_rounds(results_dir: Path, cases) -> None:
    comparison(results_dir, "seq", mode="sequential", n_baseline=3, n_candidate=3, detail={"rounds": 3})

    [evidence] = found_metrics(results_dir, cases).values()

    assert evidence.result.sequential


def test_a_metric_that_could_not_be_compared_is_evidence_with_its_reason(results_dir: Path, cases) -> None:
    nothing = dict.fromkeys(["baseline_median", "candidate_median", "ratio", "ci_low", "ci_high", "p_value",
                             "min_effect", "alpha", "verdict", "conclusive", "mde", "repeats_needed"])  # fmt: skip
    comparison(results_dir, "c", **nothing, n_candidate=0, missing="0 candidate repeat(s) passed")

    [evidence] = found_metrics(results_dir, cases).values()

    assert evidence.result is None
    assert evidence.missing == "0 candidate repeat(s) passed"
    assert json.dumps(evidence.samples)
