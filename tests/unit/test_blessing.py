"""framework/blessing.py: the verdict with each criterion failing in turn, running what is missing, the stored
verdict, and the command's output and exit codes.

The decision is tested as the pure function it is (hand-made evidence). The command runs against a copy of the
project's YAML files with fake producers that write what the real ones would (rows, stability batches, comparison
records) into a temporary results store — fast and deterministic; the real `nox -s bless` is tested end to end in
tests/integration/test_nox_bless.py.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from framework.blessing import Check, Verdict, bless, decide, format_verdict
from framework.cli.verdicts import cmd_bless
from framework.compare import CaseMetric, CompareOptions, ComparisonReport, record_rows
from framework.config import ROOT, Catalog, load_catalog
from framework.criteria import Criteria
from framework.environments import BuiltEnvironment, runtime_hash
from framework.evidence import (
    BlessOptions,
    CaseOutcome,
    Evidence,
    MetricEvidence,
    Runners,
    StabilityBatch,
    StabilityEvidence,
)
from framework.in_runtime.errors import FrameworkError, SelectionError
from framework.matrix import Selection, build_plan
from framework.models import Runtime
from framework.pipeline import MatrixOptions
from framework.query import Results
from framework.records import write_record
from framework.results import ResultsStore, case_table, write_atomic
from framework.stability import StabilityError, StabilityOptions
from framework.stats import METRICS, compare_samples

MiB = 2**20
# A base value per metric far above its absolute floor, so a relative shift is what decides.
BASE = {"wall": 1.0, "peak_memory": 500 * MiB, "mean_memory": 300 * MiB, "spill": 2048 * MiB,
        "scheduler_loop_max": 2.0, "scheduler_loop_blocked": 5.0, "worker_loop_max": 2.0,
        "worker_loop_blocked": 5.0, "scheduler_cpu": 3.0, "scheduler_rss": 500 * MiB, "scheduler_gc": 1.0,
        "worker_gc": 1.0}  # fmt: skip

CRITERIA = Criteria.model_validate(
    {
        "baseline": "stable",
        "hardware": "local",
        "size": "tiny",
        "must_pass": ["groupby_agg"],
        "stability": {"profile": "ci", "tiers": ["inprocess", "process"]},
        "metrics": {
            "workloads": ["array_mean_var"],
            "repeat": 5,
            "max_regression": dict.fromkeys(METRICS, "10%"),  # every metric of the catalogue
        },
    }
)


def samples(metric: str, factor: float = 1.0, n: int = 5) -> tuple[list[float], list[float]]:
    """Baseline samples 1 % apart, and the candidate's: the same times ``factor``."""
    baseline = [BASE[metric] * (1 + 0.01 * i) for i in range(n)]
    return baseline, [value * factor for value in baseline]


def metric_evidence(metric: str, factor: float = 1.0, allowed: float = 0.10, n: int = 5) -> MetricEvidence:
    a, b = samples(metric, factor, n)
    result = compare_samples(a, b, METRICS[metric], min_effect=allowed, alpha=0.01)
    return MetricEvidence(f"cmp-{metric}", result, None, (tuple(a), tuple(b)))


def passing_evidence(**changes: Any) -> Evidence:
    """Evidence on which CRITERIA bless `latest`; ``changes`` replace fields."""
    evidence = Evidence(
        runtime="latest",
        baseline="stable",
        hardware="local",
        cases={
            "groupby_agg[by=id]": CaseOutcome("groupby_agg[by=id]", ("run-1",), 3, 3),
            "groupby_agg[by=name]": CaseOutcome("groupby_agg[by=name]", ("run-1",), 3, 3),
        },
        stability=StabilityEvidence(
            "stab-1",
            (
                StabilityBatch("stab-1", "fuzz[inprocess]", "passed", examples=40),
                StabilityBatch("stab-1", "fuzz[process]", "passed", examples=8),
            ),
        ),
        metrics={("array_mean_var", name): metric_evidence(name) for name in METRICS},
    )
    return dataclasses.replace(evidence, **changes)


def failed_reasons(verdict: Verdict) -> list[str]:
    return [check.reason for check in verdict.failed]


# --------------------------------------------------------------------------------------------------
# The decision, each criterion failing in turn


def test_all_criteria_met_is_blessed_with_one_passed_check_per_case_tier_run_and_metric() -> None:
    verdict = decide(CRITERIA, passing_evidence(), "default")

    assert verdict.blessed
    assert verdict.failed == []
    assert [check.criterion for check in verdict.checks] == ["must_pass"] * 2 + ["stability"] + ["metric"] * len(
        METRICS
    )
    must_pass = verdict.checks[0]
    assert must_pass.reason == "groupby_agg[by=id]: 3/3 repeats passed on latest — run run-1"
    assert must_pass.evidence == ("run-1",)
    stability = verdict.checks[2]
    assert stability.reason == (
        "stability profile ci passed on latest: fuzz[inprocess] (40 examples), fuzz[process] (8 examples) — run stab-1"
    )
    wall = verdict.checks[3]
    assert wall.passed
    assert wall.reason.startswith("array_mean_var: wall time +0.0 % (")
    assert wall.reason.endswith("— unchanged vs stable, allowed ≤ 10 % — comparison cmp-wall")


def test_a_must_pass_case_that_failed_a_repeat_is_not_blessed_with_its_error_and_run() -> None:
    cases = passing_evidence().cases | {
        "groupby_agg[by=id]": CaseOutcome(
            "groupby_agg[by=id]", ("run-2", "run-1"), 6, 4, "error: ValueError: boom\n  more", "run-2"
        )
    }

    verdict = decide(CRITERIA, passing_evidence(cases=cases))

    assert not verdict.blessed
    assert failed_reasons(verdict) == [
        "groupby_agg[by=id] failed 2/6 repeats on latest (error: ValueError: boom more) — run run-2"
        ' (of runs run-2, run-1); signature: error: ValueError; "boom more"; not checked on the baseline stable —'
        " run nox -s matrix -- --runtime=stable --workload=groupby_agg"
    ]
    assert verdict.failed[0].evidence == ("run-2", "run-1")


def test_a_case_that_fails_on_the_baseline_too_but_otherwise_is_still_a_failure_and_says_so() -> None:
    failing = CaseOutcome("groupby_agg[by=id]", ("run-2",), 3, 0, "timeout: past 300 s", "run-2")
    on_baseline = CaseOutcome("groupby_agg[by=id]", ("base-1",), 3, 1, "failed: wrong answer", "base-1")
    evidence = passing_evidence(
        cases=passing_evidence().cases | {"groupby_agg[by=id]": failing},
        baseline_cases={"groupby_agg[by=id]": on_baseline},
    )

    [reason] = failed_reasons(decide(CRITERIA, evidence))

    assert reason == (
        "groupby_agg[by=id] failed 3/3 repeats on latest (timeout: past 300 s) — run run-2; signature: timeout: no"
        ' error type; "past N s"; it fails on stable too (run base-1), but not the same way (failed: wrong answer)'
    )


def test_a_failing_case_that_passes_on_the_baseline_says_so() -> None:
    failing = CaseOutcome("groupby_agg[by=id]", ("run-2",), 3, 2, "error: KeyError", "run-2")
    evidence = passing_evidence(
        cases=passing_evidence().cases | {"groupby_agg[by=id]": failing},
        baseline_cases={"groupby_agg[by=id]": CaseOutcome("groupby_agg[by=id]", ("base-1",), 3, 3)},
    )

    [reason] = failed_reasons(decide(CRITERIA, evidence))

    assert reason.endswith("— run run-2; signature: error: KeyError; it passes on stable (3/3, run base-1)")


def test_a_must_pass_case_without_any_result_fails_with_why_it_could_not_be_produced() -> None:
    cases = passing_evidence().cases | {"groupby_agg[by=id]": None}
    evidence = passing_evidence(cases=cases, unavailable={"must_pass": "could not be produced: no Python 3.11"})

    [reason] = failed_reasons(decide(CRITERIA, evidence))

    assert reason == "groupby_agg[by=id]: no result on latest — could not be produced: no Python 3.11"


def test_a_selector_no_case_of_which_can_run_on_the_hardware_fails_rather_than_judging_nothing() -> None:
    evidence = passing_evidence(unrunnable={("must_pass", "tag:worker-death"): "needs ≥ 2 workers, profile has 1"})

    [check] = decide(CRITERIA, evidence).failed

    assert check.criterion == "must_pass"
    assert check.reason == (
        "must_pass 'tag:worker-death': no case can run on hardware local (needs ≥ 2 workers, profile has 1)"
        " — nothing to judge it by"
    )


def test_a_stability_failure_names_the_batch_the_run_the_failure_and_how_to_replay_it() -> None:
    failed = StabilityBatch("stab-2", "fuzz[process]", "timeout", "liveness: deadlock: 3 keys stuck", "F1", 3)
    evidence = passing_evidence(stability=StabilityEvidence("stab-2", (failed,)))

    [check] = decide(CRITERIA, evidence).failed

    assert check.reason == (
        "stability profile ci on latest: fuzz[process] timeout (liveness: deadlock: 3 keys stuck) — run stab-2,"
        ' failure F1 (replay: nox -s stability -- --replay=F1); signature: liveness: no error type; "deadlock";'
        " not checked on the baseline stable — replay with nox -s stability -- --replay=F1 --runtime=stable"
    )
    assert check.evidence == ("stab-2", "F1")


def test_a_stability_failure_in_an_earlier_run_is_not_erased_by_a_later_pass() -> None:
    passed = StabilityBatch("stab-3", "fuzz[inprocess]", "passed", examples=40)
    earlier = StabilityBatch("stab-1", "fuzz[inprocess]", "failed", "results: wrong value", "F0")
    evidence = passing_evidence(stability=StabilityEvidence("stab-3", (passed, earlier)))

    [check] = decide(CRITERIA, evidence).failed

    assert "fuzz[inprocess] failed (results: wrong value) — run stab-1, failure F0" in check.reason
    assert check.evidence == ("stab-3", "stab-1", "F0")


@pytest.mark.parametrize(
    ("stability", "unavailable", "why"),
    [
        (None, {}, "no run with its budget on tiers inprocess, process"),
        (None, {"stability": "could not be produced: no hypothesis in runtime 'latest'"}, "no hypothesis"),
    ],
)
def test_stability_without_a_complete_run_fails_with_the_reason(
    stability: StabilityEvidence | None, unavailable: dict[str, str], why: str
) -> None:
    evidence = passing_evidence(stability=stability, unavailable=unavailable)

    [reason] = failed_reasons(decide(CRITERIA, evidence))

    assert reason.startswith("stability profile ci: no result on latest — ")
    assert why in reason


def test_a_regression_between_different_locks_says_how_to_find_the_package() -> None:
    regressed = dataclasses.replace(metric_evidence("wall", factor=1.2), locks_differ_runs=("run-b", "run-c"))
    metrics = passing_evidence().metrics | {("array_mean_var", "wall"): regressed}
    [check] = decide(CRITERIA, passing_evidence(metrics=metrics)).failed
    assert check.reason.endswith(
        "which package? the locks differ: nox -s attribute -- --baseline=run-b --candidate=run-c"
        " --workload=array_mean_var --metric=wall"
    ), check.reason
    same_lock = passing_evidence().metrics | {("array_mean_var", "wall"): metric_evidence("wall", factor=1.2)}
    [check] = decide(CRITERIA, passing_evidence(metrics=same_lock)).failed
    assert "nox -s attribute" not in check.reason


@pytest.mark.parametrize("metric", list(METRICS))
def test_each_metric_over_its_allowance_fails_with_its_interval_p_value_and_comparison(metric: str) -> None:
    metrics = passing_evidence().metrics | {("array_mean_var", metric): metric_evidence(metric, factor=1.2)}

    verdict = decide(CRITERIA, passing_evidence(metrics=metrics))

    assert not verdict.blessed
    [check] = verdict.failed
    assert check.subject == f"array_mean_var {metric}"
    assert check.evidence == (f"cmp-{metric}",)
    label = METRICS[metric].label
    assert check.reason.startswith(f"array_mean_var: {label} +20 % (")
    for part in ("p = 0.008", "n = 5 vs 5", "— regressed vs stable, allowed ≤ 10 % — comparison cmp-"):
        assert part in check.reason


def test_a_metric_within_its_allowance_passes_even_when_it_is_significant() -> None:
    metrics = passing_evidence().metrics | {("array_mean_var", "wall"): metric_evidence("wall", factor=1.05)}

    verdict = decide(CRITERIA, passing_evidence(metrics=metrics))

    assert verdict.blessed, failed_reasons(verdict)


def test_a_comparison_made_with_another_minimum_effect_is_judged_again_at_the_allowance() -> None:
    # `nox -s compare` with a 5 % minimum effect calls +6 % a regression; these criteria allow 10 %.
    stored = metric_evidence("wall", factor=1.06, allowed=0.05)
    assert stored.result is not None
    assert stored.result.verdict == "regressed"
    metrics = passing_evidence().metrics | {("array_mean_var", "wall"): stored}

    verdict = decide(CRITERIA, passing_evidence(metrics=metrics))

    assert verdict.blessed, failed_reasons(verdict)
    assert "allowed ≤ 10 %" in verdict.checks[3].reason


def test_a_metric_that_could_not_be_measured_fails_with_the_reason() -> None:
    missing = MetricEvidence("cmp-9", None, "0 baseline and 0 candidate repeat(s) passed with a value; no probe")
    metrics = passing_evidence().metrics | {("array_mean_var", "spill"): missing}

    [reason] = failed_reasons(decide(CRITERIA, passing_evidence(metrics=metrics)))

    assert reason == (
        "array_mean_var: spill could not be compared with stable — 0 baseline and 0 candidate repeat(s) passed"
        " with a value; no probe — comparison cmp-9"
    )


def test_a_metric_no_comparison_recorded_fails_with_why() -> None:
    metrics = passing_evidence().metrics | {("array_mean_var", "peak_memory"): None}
    evidence = passing_evidence(metrics=metrics, unavailable={"metrics": "could not be produced: no Python 3.11"})

    [reason] = failed_reasons(decide(CRITERIA, evidence))

    assert reason == "array_mean_var: peak memory not compared with stable — could not be produced: no Python 3.11"


def inconclusive_wall() -> MetricEvidence:
    # noisy samples, no real change: the interval reaches past +10 % and p is far from 0.01
    a = [1.0, 1.3, 0.8, 1.2, 0.9]
    b = [1.1, 0.85, 1.25, 0.95, 1.15]
    result = compare_samples(a, b, METRICS["wall"], min_effect=0.10)
    return MetricEvidence("cmp-noisy", result, None, (tuple(a), tuple(b)))


def test_an_inconclusive_comparison_fails_by_default_and_says_what_would_decide_it() -> None:
    metrics = passing_evidence().metrics | {("array_mean_var", "wall"): inconclusive_wall()}

    [reason] = failed_reasons(decide(CRITERIA, passing_evidence(metrics=metrics)))

    assert "inconclusive" in reason
    assert reason.endswith("— cannot rule out a regression beyond the allowance")


def test_criteria_may_accept_an_inconclusive_comparison_and_the_reason_still_says_so() -> None:
    assert CRITERIA.metrics is not None
    lenient = CRITERIA.model_copy(update={"metrics": CRITERIA.metrics.model_copy(update={"inconclusive": "pass"})})
    metrics = passing_evidence().metrics | {("array_mean_var", "wall"): inconclusive_wall()}

    verdict = decide(lenient, passing_evidence(metrics=metrics))

    assert verdict.blessed
    assert verdict.checks[3].reason.endswith("(criteria accept inconclusive comparisons)")


def test_health_without_rows_says_the_comparison_that_would_have_measured_them_could_not_run() -> None:
    limits = Criteria.model_validate({"baseline": "stable", "health": {"workloads": ["x"], "max": {"worker_gc": "1s"}}})
    criteria = CRITERIA.model_copy(update={"health": limits.health})
    evidence = passing_evidence(health={"array_mean_var": None}, unavailable={"metrics": "could not be produced: boom"})

    [check] = decide(criteria, evidence).failed

    assert (check.criterion, check.subject) == ("health", "array_mean_var worker_gc")
    assert check.reason == "array_mean_var: workers' GC pauses — no result on latest — could not be produced: boom"


def test_no_checks_is_never_blessed() -> None:
    assert not Verdict("latest", "stable", "default", ()).blessed


def test_the_printout_gives_every_failure_in_full_then_the_passes_briefly() -> None:
    checks = (
        Check("must_pass", "a", True, "a: 3/3 repeats passed on latest — run r1", ("r1",)),
        Check("must_pass", "b", True, "b: 3/3 repeats passed on latest — run r2", ("r2",)),
        Check("stability", "profile ci", False, "stability profile ci on latest: fuzz[process] failed"),
        Check("metric", "a wall", True, "a: wall time +1 % … — comparison c1", ("c1",)),
    )

    text = format_verdict(Verdict("latest", "stable", "default", checks, ("x on local: needs ≥ 2 workers",)))

    assert text.splitlines() == [
        "latest is NOT BLESSED against stable (criteria default): 1 of 4 checks failed",
        "  ✗ stability profile ci on latest: fuzz[process] failed",
        "passed (3):",
        "  ✓ must pass: 2 case(s) passed every repeat — run(s) r1, r2",
        "  ✓ a: wall time +1 % … — comparison c1",
        "not run on this hardware (1): x on local: needs ≥ 2 workers",
    ]
    blessed = format_verdict(Verdict("latest", "stable", "default", checks[:2]))
    assert blessed.splitlines()[0] == "latest is BLESSED against stable (criteria default)"


# --------------------------------------------------------------------------------------------------
# Running what is missing, with fake producers


TEST_CRITERIA = """\
criteria:
  test:
    baseline: stable
    hardware: local
    size: tiny
    must_pass: [groupby_agg, array_mean_var]
    stability: {profile: ci, tiers: [inprocess]}
    metrics:
      workloads: [array_mean_var]
      repeat: 5
      max_regression: {wall: 10%, peak_memory: 10%}
    max_age: 2d
"""


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


@pytest.fixture(autouse=True)
def catalog_read_once(catalog: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading the catalogue's YAML takes ~0.5 s; the project copies below hold the very same files."""
    monkeypatch.setattr("framework.criteria.load_catalog", lambda root: catalog)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project whose matrices/blessing.yaml is TEST_CRITERIA (its catalogue is the real one, read once above)."""
    root = tmp_path / "project"
    (root / "matrices").mkdir(parents=True)
    (root / "matrices" / "blessing.yaml").write_text(TEST_CRITERIA)
    return root


class Lab:
    """Fake producers that write what the real ones would, and remember how they were called."""

    def __init__(self, root: Path, results: Path, case_row: Callable[..., dict[str, Any]], catalog: Catalog) -> None:
        self.root, self.results, self.case_row, self.catalog = root, results, case_row, catalog
        self.calls: list[tuple[str, Any]] = []
        self.locks = {"latest": "dask==2026.9.0\n", "stable": "dask==2026.3.0\n"}
        self.env_hashes = {"latest": "a" * 16, "stable": "b" * 16}
        self.outcomes: dict[str, str] = {}  # case_id → outcome of the matrix fake (default passed)
        self.extra: dict[str, dict[str, float]] = {}  # case_id → extra_metrics of the matrix fake's rows
        self.stability_outcome = "passed"
        self.factors: dict[str, float] = {}  # metric → candidate / baseline in the compare fake
        self.compare_writes_rows = False
        self.compare_overloaded = 0  # candidate runs of each case the compare fake took at load > cores
        self.stability_load: dict[str, Any] = {}  # load columns of the stability fake's rows
        self.fail: dict[str, FrameworkError] = {}  # producer → error it raises
        self.age = dt.timedelta(0)  # how long ago the producers' evidence is stamped
        self.ids = itertools.count(1)

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc) - self.age

    def runners(self) -> Runners:
        return Runners(self.environment, self.matrix, self.stability, self.compare)

    def environment(self, runtime: Runtime, options: BlessOptions) -> BuiltEnvironment:
        self.calls.append(("environment", runtime.name))
        env_hash = self.env_hashes[runtime.name]
        return BuiltEnvironment(runtime, self.root, env_hash, runtime_hash(runtime), self.locks[runtime.name], True, 0)

    def _rows(self, runtime: Runtime, run_id: str, started: dt.datetime, **row: Any) -> dict[str, Any]:
        return self.case_row(
            run_id=run_id,
            run_started_at=started.isoformat(),
            runtime=runtime.name,
            runtime_hash=runtime_hash(runtime),
            env_hash=self.env_hashes[runtime.name],
            **row,
        )

    def _write(self, rows: list[dict[str, Any]]) -> None:
        first = rows[0]
        name = f"{first['run_id']}__{first['runtime']}__{first['hardware']}.parquet"
        write_atomic(case_table(rows), ResultsStore(self.results).cases_dir / name)

    def matrix(self, options: MatrixOptions) -> None:
        self.calls.append(("matrix", options))
        if "matrix" in self.fail:
            raise self.fail["matrix"]
        plan = build_plan(self.catalog, options.selection)
        started = self.now()
        run_id = f"run-{next(self.ids)}"
        rows = []
        for planned in plan.cases:
            case = planned.case
            outcome = self.outcomes.get(case.case_id, "passed")
            fields = {"workload": case.workload.name, "case_id": case.case_id, "size": case.size, "outcome": outcome}
            fields["error"] = None if outcome == "passed" else f"{outcome}: it went wrong"
            if case.case_id in self.extra:
                fields["extra_metrics"] = self.extra[case.case_id]
            rows += [self._rows(planned.runtime, run_id, started, repeat=repeat, **fields) for repeat in range(3)]
        self._write(rows)

    def stability(self, options: StabilityOptions) -> None:
        self.calls.append(("stability", options))
        if "stability" in self.fail:
            raise self.fail["stability"]
        runtime = self.catalog.runtime(options.runtimes[0])
        started = self.now()
        run_id = f"stab-{next(self.ids)}"
        rows = []
        for tier in options.tiers:
            params = {"tier": tier, "profile": options.profile, "seed": 1, "examples": options.examples}
            outcome = self.stability_outcome
            fields = {"workload": "stability.fuzz", "case_id": f"fuzz[{tier}]", "size": None, "hardware": "chaos"}
            fields |= {"params": params, "outcome": outcome, "extra_metrics": {"examples": 40}}
            if outcome != "passed":
                fields |= {"error": "liveness: deadlock", "failure_id": f"{run_id}-latest-{tier}"}
            rows.append(self._rows(runtime, run_id, started, **fields, **self.stability_load))
        self._write(rows)

    def compare(self, options: CompareOptions) -> None:
        self.calls.append(("compare", options))
        if "compare" in self.fail:
            raise self.fail["compare"]
        lines = []
        for case in options.cases:
            for name in options.metrics:
                a, b = samples(name, self.factors.get(name, 1.0), options.repeat)
                result = compare_samples(a, b, METRICS[name], min_effect=options.min_effects[name], alpha=options.alpha)
                line = CaseMetric(case.workload.name, case.case_id, case.size, "local", name, result, None, (a, b))
                lines.append(line)
        comparison_id = f"cmp-{next(self.ids)}"
        report = ComparisonReport(comparison_id, "interleaved", "stable", "latest", lines, {}, {}, options.repeat)
        report.overloaded = {
            ("candidate", case.case_id): (self.compare_overloaded, options.repeat, 9.0) for case in options.cases
        }
        sides = {"baseline": options.baseline.runtime, "candidate": options.candidate.runtime}
        common = {
            "comparison_id": comparison_id,
            "created_at": self.now(),
            "mode": "interleaved",
            "baseline": "stable",
            "candidate": "latest",
        }
        for side, runtime in sides.items():
            common[f"{side}_runtime_hash"] = runtime_hash(runtime)
            common[f"{side}_env_hash"] = self.env_hashes[runtime.name]
        write_record(self.results, "comparisons", comparison_id, record_rows(report, common))
        if self.compare_writes_rows:  # as the real one does: the candidate's repeats are case rows too
            started, run_id = self.now(), f"cmp-run-{next(self.ids)}"
            rows = [
                self._rows(sides["candidate"], run_id, started, workload=case.workload.name, case_id=case.case_id,
                           size=case.size, repeat=index)
                for case in options.cases
                for index in range(options.repeat)
            ]  # fmt: skip
            self._write(rows)

    def ran(self) -> list[str]:
        return [kind for kind, _ in self.calls if kind != "environment"]


@pytest.fixture
def lab(project: Path, results_dir: Path, case_row: Callable[..., dict[str, Any]], catalog: Catalog) -> Lab:
    return Lab(project, results_dir, case_row, catalog)


def run(lab: Lab, now: dt.datetime | None = None, **options: Any) -> Any:
    settings = {"runtime": "latest", "criteria": "test", "results_dir": lab.results, "root": lab.root, **options}
    return bless(BlessOptions(**settings), lab.runners(), now=now)


def test_with_an_empty_store_it_runs_the_comparison_the_must_pass_cases_and_stability_then_blesses(lab: Lab) -> None:
    report = run(lab)

    assert lab.ran() == ["compare", "matrix", "stability"]
    compare = lab.calls[2][1]
    assert [case.case_id for case in compare.cases] == ["array_mean_var"]
    assert (compare.baseline.runtime.name, compare.candidate.runtime.name) == ("stable", "latest")
    assert (compare.repeat, compare.until_decided, compare.alpha) == (5, False, 0.01)
    assert compare.min_effects == {"wall": 0.10, "peak_memory": 0.10}
    assert compare.metrics == ("wall", "peak_memory")
    matrix = lab.calls[3][1]
    assert matrix.selection == Selection(
        runtimes=["latest"], hardware=["local"], workloads=["groupby_agg", "array_mean_var"], size="tiny"
    )
    stability = lab.calls[4][1]
    assert (stability.runtimes, stability.profile, stability.tiers) == (["latest"], "ci", ("inprocess",))
    assert report.verdict.blessed, failed_reasons(report.verdict)
    assert [check.criterion for check in report.verdict.checks] == ["must_pass"] * 3 + ["stability"] + ["metric"] * 2


SOAK_CRITERIA = """\
criteria:
  test:
    baseline: stable
    size: tiny
    soak: {workloads: [leak_array_mean_var], max_leak: 1MiB/repeat, max_idle_growth: 2MiB/min}
    health: {workloads: [array_mean_var], max: {scheduler_loop_max: 3s}}
"""


def test_soak_and_health_cases_are_run_once_judged_with_their_intervals_and_reused(lab: Lab) -> None:
    (lab.root / "matrices" / "blessing.yaml").write_text(SOAK_CRITERIA)
    leak = {"unmanaged_slope_bytes_per_repeat": 3 * MiB, "unmanaged_slope_low_bytes_per_repeat": 2.5 * MiB}
    lab.extra = {"leak_array_mean_var": leak | {"unmanaged_slope_high_bytes_per_repeat": 3.5 * MiB}}

    plan = run(lab, dry_run=True).plan
    first = run(lab)
    second = run(lab)

    assert plan == [
        "run: soak and health — 2 case(s) (1 soak), as nox -s matrix -- --runtime=latest --hardware=local"
        " --workload=leak_array_mean_var,array_mean_var --size=tiny"
    ]
    assert lab.ran() == ["matrix"]
    soak, health = first.verdict.checks
    assert not first.verdict.blessed
    assert (soak.criterion, soak.subject, soak.passed) == ("soak", "leak_array_mean_var unmanaged", False)
    assert soak.reason == (
        "leak_array_mean_var: unmanaged memory +3072.0 KiB/repeat (95 % CI +2560.0 KiB/repeat to +3584.0 KiB/repeat)"
        f" on latest, limit ≤ 1MiB/repeat — beyond the limit — run {soak.evidence[0]}"
    )
    assert health.passed and "limit ≤ 3 s — within the limit" in health.reason
    assert second.plan[0].startswith("reuse: soak and health — 2 case(s) from run(s) run-")
    assert [check.reason for check in second.verdict.checks] == [check.reason for check in first.verdict.checks]


def test_a_verdict_on_evidence_measured_overloaded_says_so_in_its_checks(lab: Lab) -> None:
    lab.compare_overloaded = 2
    lab.stability_outcome = "timeout"
    lab.stability_load = {"load_avg_1m": 16.0, "overloaded": True, "cpu_count": 2}

    verdict = run(lab).verdict

    [stability] = [check for check in verdict.checks if check.criterion == "stability"]
    assert not stability.passed and "[measured overloaded: load 16.0 > cores" in stability.reason
    metrics = [check for check in verdict.checks if check.criterion == "metric"]
    assert metrics and all(check.passed for check in metrics)
    assert all("rests on 0 baseline and 2 candidate run(s) taken at load > cores" in check.reason for check in metrics)


def test_a_second_run_reuses_every_piece_of_evidence_and_runs_nothing(lab: Lab) -> None:
    first = run(lab)
    lab.calls.clear()

    second = run(lab)

    assert lab.ran() == []
    assert second.verdict.blessed
    assert [check.evidence for check in second.verdict.checks] == [check.evidence for check in first.verdict.checks]
    assert any(line.startswith("reuse: stability profile ci — run stab-") for line in second.plan)


def test_the_comparisons_own_candidate_rows_count_for_the_must_pass_cases(lab: Lab) -> None:
    lab.compare_writes_rows = True

    run(lab)

    matrix = next(options for kind, options in lab.calls if kind == "matrix")
    assert matrix.selection.workloads == ["groupby_agg"]  # array_mean_var's repeats came from the comparison


def test_evidence_older_than_max_age_is_produced_again(lab: Lab) -> None:
    lab.age = dt.timedelta(days=2, minutes=1)
    run(lab, now=lab.now())
    lab.calls.clear()
    lab.age = dt.timedelta(0)

    report = run(lab)

    assert lab.ran() == ["compare", "matrix", "stability"]
    assert report.verdict.blessed


def test_no_reuse_runs_everything_again_and_judges_only_the_new_evidence(lab: Lab) -> None:
    lab.outcomes = {"groupby_agg[by=id]": "failed"}
    assert not run(lab).verdict.blessed
    lab.calls.clear()
    lab.outcomes = {}

    report = run(lab, reuse=False)

    assert lab.ran() == ["compare", "matrix", "stability"]
    assert report.verdict.blessed, failed_reasons(report.verdict)


def test_a_failure_stays_evidence_while_it_is_reusable(lab: Lab) -> None:
    lab.outcomes = {"groupby_agg[by=id]": "timeout"}
    run(lab)
    lab.calls.clear()

    report = run(lab)

    assert lab.ran() == []
    [reason] = failed_reasons(report.verdict)
    assert reason.startswith("groupby_agg[by=id] failed 3/3 repeats on latest (timeout: timeout: it went wrong) — run ")


def test_a_new_environment_with_other_packages_does_not_reuse_the_old_evidence(lab: Lab) -> None:
    run(lab)
    lab.calls.clear()
    lab.env_hashes["latest"], lab.locks["latest"] = "c" * 16, "dask==2026.10.0\n"

    run(lab)

    assert lab.ran() == ["compare", "matrix", "stability"]


def test_a_rebuilt_environment_with_identical_packages_reuses_the_evidence(lab: Lab) -> None:
    # yesterday's `latest` (another env_hash, same lock) — as prepare_environment records it
    store = ResultsStore(lab.results)
    for env_hash in ("a" * 16, "d" * 16):
        store.record_environment(
            {"env_hash": env_hash, "runtime": "latest", "python": "3.11", "lock": lab.locks["latest"]}
        )
    run(lab)
    lab.calls.clear()
    lab.env_hashes["latest"] = "d" * 16

    report = run(lab)

    assert lab.ran() == []
    assert report.verdict.blessed


@pytest.mark.parametrize(
    ("producer", "error", "kind"),
    [
        ("stability", StabilityError("runtime lacks hypothesis — add it"), "stability"),
        ("matrix", SelectionError("no Python 3.11 on this machine"), "must_pass"),
        ("compare", SelectionError("the comparison has no case to run"), "metric"),
    ],
)
def test_evidence_that_could_not_be_produced_is_a_failed_check_with_the_reason(
    lab: Lab, producer: str, error: FrameworkError, kind: str
) -> None:
    lab.fail[producer] = error

    report = run(lab)

    assert not report.verdict.blessed
    failed = report.verdict.failed
    assert failed and {check.criterion for check in failed} == {kind}
    assert all(f"could not be produced: {error}" in check.reason for check in failed)


def test_a_regression_found_by_the_comparison_is_not_blessed(lab: Lab) -> None:
    lab.factors = {"peak_memory": 1.3}

    report = run(lab)

    [check] = report.verdict.failed
    assert check.subject == "array_mean_var peak_memory"
    assert "peak memory +30 %" in check.reason
    assert "regressed vs stable, allowed ≤ 10 % — comparison cmp-" in check.reason


def test_a_stability_failure_found_now_is_not_blessed(lab: Lab) -> None:
    lab.stability_outcome = "timeout"

    [reason] = failed_reasons(run(lab).verdict)

    assert "fuzz[inprocess] timeout (liveness: deadlock)" in reason
    assert "(replay: nox -s stability -- --replay=stab-" in reason


def test_the_baseline_may_not_be_the_runtime_itself(lab: Lab) -> None:
    with pytest.raises(SelectionError, match="the baseline is the runtime itself"):
        run(lab, baseline="latest")


def test_a_dry_run_says_what_it_would_run_and_what_it_reuses_and_runs_and_stores_nothing(lab: Lab) -> None:
    report = run(lab, dry_run=True)

    assert lab.ran() == []
    assert report.verdict is None
    assert report.plan == [
        "run: interleaved comparison of latest with stable on local, 5 rounds: array_mean_var",
        "run: must pass — 3 case(s) the comparison does not cover, as nox -s matrix -- --runtime=latest"
        " --hardware=local --workload=groupby_agg,array_mean_var --size=tiny",
        "run: stability as nox -s stability -- --runtime=latest --profile=ci --tier=inprocess",
    ]
    assert not (lab.results / "verdicts").exists()


# --------------------------------------------------------------------------------------------------
# The stored verdict


def test_the_verdict_is_stored_and_reads_back_through_the_verdicts_view(lab: Lab) -> None:
    lab.factors = {"wall": 1.5}
    report = run(lab)

    with Results(lab.results) as results:
        columns, rows = results.sql("SELECT * FROM verdicts")
    [row] = [dict(zip(columns, values)) for values in rows]
    assert row["verdict_id"] == report.verdict_id
    assert report.record == lab.results / "verdicts" / f"{report.verdict_id}.parquet"
    assert (row["criteria"], row["runtime"], row["baseline"], row["hardware"]) == ("test", "latest", "stable", "local")
    assert row["blessed"] is False
    assert row["env_hash"] == "a" * 16
    assert row["runtime_hash"] == runtime_hash(lab.catalog.runtime("latest"))
    assert json.loads(row["reasons"]) == failed_reasons(report.verdict)
    checks = json.loads(row["checks"])
    assert len(checks) == len(report.verdict.checks)
    assert {"criterion", "subject", "passed", "reason", "evidence"} <= set(checks[0])
    assert json.loads(row["criteria_spec"])["metrics"]["max_regression"] == {"wall": "10%", "peak_memory": "10%"}
    assert json.loads(row["versions"]) == {"dask": "2026.9.0"}
    assert row["record_version"] == 1


# --------------------------------------------------------------------------------------------------
# The command: output and exit codes (the shipped `quick` criteria, fake producers)


@pytest.fixture
def quick_lab(
    results_dir: Path, case_row: Callable[..., dict[str, Any]], catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> Lab:
    # The fake runtimes' dask 2026.9.0 is inside a finding of the real ledger: these tests judge the evidence alone
    # (the ledger's own check: test_a_lock_inside_a_finding_of_the_ledger_is_a_failed_check_first, and test_findings).
    monkeypatch.setattr("framework.blessing.load_findings", lambda *args, **kwargs: {})
    return Lab(ROOT, results_dir, case_row, catalog)


def test_a_lock_inside_a_finding_of_the_ledger_is_a_failed_check_first(
    results_dir: Path, case_row: Callable[..., dict[str, Any]], catalog: Catalog, capsys: pytest.CaptureFixture[str]
) -> None:
    lab = Lab(ROOT, results_dir, case_row, catalog)
    argv = ["--runtime=latest", "--baseline=stable", "--criteria=quick", f"--results={lab.results}"]

    assert cmd_bless([*argv, "--dry-run"], lab.runners()) == 0
    dry = capsys.readouterr().out
    assert "known issue (a ✗ of the verdict): latest has dask 2026.9.0: known issue mixed_compute_order — " in dry
    assert cmd_bless(argv, lab.runners()) == 1

    out = capsys.readouterr().out.splitlines()
    assert out[0] == "latest is NOT BLESSED against stable (criteria quick): 1 of 6 checks failed"
    assert out[1].startswith("  ✗ latest has dask 2026.9.0: known issue mixed_compute_order — One dask.compute mixing")
    assert "(dask 2025.4.0 and later, no fix released yet)" in out[1]


def test_command_prints_blessed_and_exits_0(quick_lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--runtime=latest", "--baseline=stable", "--criteria=quick", f"--results={quick_lab.results}"]

    code = cmd_bless(argv, quick_lab.runners())

    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0] == "latest is BLESSED against stable (criteria quick)"
    assert out[-1].startswith("verdict ")
    assert out[-1].endswith(".parquet")


def test_command_prints_every_failed_reason_and_exits_1(
    quick_lab: Lab, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    quick_lab.outcomes = {"array_mean_var": "error"}
    summary = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))

    code = cmd_bless(["--criteria=quick", f"--results={quick_lab.results}"], quick_lab.runners())

    out = capsys.readouterr().out.splitlines()
    assert code == 1
    assert out[0] == "latest is NOT BLESSED against stable (criteria quick): 1 of 5 checks failed"
    assert out[1].startswith("  ✗ array_mean_var failed 3/3 repeats on latest (error: error: it went wrong)")
    # In a GitHub workflow the verdict is the job summary's section too: heading, headline, the printout.
    written = summary.read_text()
    assert written.startswith("## Blessing latest\n\n**" + out[0] + "**\n\n```text\n")
    assert out[1] in written


def test_command_dry_run_exits_0_and_stores_nothing(quick_lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    code = cmd_bless(["--criteria=quick", "--dry-run", f"--results={quick_lab.results}"], quick_lab.runners())

    assert code == 0
    assert quick_lab.ran() == []
    assert "run: stability as nox -s stability" in capsys.readouterr().out


def test_command_without_reuse_runs_everything(quick_lab: Lab) -> None:
    cmd_bless(["--criteria=quick", f"--results={quick_lab.results}"], quick_lab.runners())
    quick_lab.calls.clear()

    cmd_bless(["--criteria=quick", "--no-reuse", f"--results={quick_lab.results}"], quick_lab.runners())

    assert quick_lab.ran() == ["compare", "matrix", "stability"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--runtime=lates"], "unknown runtime 'lates' — did you mean 'latest'?"),
        (["--baseline=stabel"], "unknown runtime 'stabel' — did you mean 'stable'?"),
        (["--criteria=quik"], "unknown criteria set 'quik' — did you mean 'quick'?"),
        (["--hardware=lokal"], "unknown hardware profile 'lokal' — did you mean 'local'?"),
    ],
)
def test_a_user_mistake_is_a_framework_error_with_exit_code_2(quick_lab: Lab, argv: list[str], message: str) -> None:
    with pytest.raises(FrameworkError) as raised:
        cmd_bless([*argv, f"--results={quick_lab.results}"], quick_lab.runners())

    assert raised.value.exit_code == 2
    assert message in str(raised.value)
    assert quick_lab.ran() == []


def test_an_unknown_option_exits_2_with_the_near_miss(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        cmd_bless(["--runtim=latest"])

    assert raised.value.code == 2
    assert "did you mean --runtime?" in capsys.readouterr().err


def test_command_json_is_one_document_with_every_check(quick_lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    quick_lab.outcomes = {"array_mean_var": "error"}
    code = cmd_bless(["--criteria=quick", "--json", f"--results={quick_lab.results}"], quick_lab.runners())

    document = json.loads(capsys.readouterr().out)  # the whole of stdout: nothing else is printed there
    assert code == 1
    assert document["runtime"] == "latest" and document["blessed"] is False
    failed = [check for check in document["checks"] if not check["passed"]]
    assert len(failed) == 1 and failed[0]["reason"].startswith("array_mean_var failed 3/3 repeats on latest")
    assert document["record"].endswith(".parquet")
