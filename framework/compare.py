"""A/B comparison of two sides — runtimes, hardware profiles or Dask configs — with the evidence for each call.

    sides → build both environments → rounds A B | B A | A B … (each a fresh runner and cluster, one repeat of
    every case) → per case × metric: ratio of medians, bootstrap interval, rank test, verdict → record

Rounds alternate which side goes first, so slow drift of the machine (another job starting, caches warming)
falls on both sides alike, and neither side always runs right after the other. ``--until-decided`` keeps adding
rounds until every metric's confidence sequence decides or the budget is spent (see :mod:`framework.stats`).
``framework.compare_stored`` compares rows already in the store, chosen by SQL filters, without running anything.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from framework.config import ROOT, Catalog
from framework.engine import CaseGroup, new_run_id, prepare_environment, run_group, say
from framework.environments import BuiltEnvironment
from framework.in_runtime import provenance
from framework.in_runtime.errors import SelectionError, UnusableRuntimeError, near_miss
from framework.matrix import Case, Selection, build_plan
from framework.metric_catalogue import METRICS, metric
from framework.models import HardwareProfile, Runtime
from framework.progress import Progress
from framework.records import write_record
from framework.results import ResultsStore
from framework.stats import MetricComparison, SequentialComparison, compare_samples
from framework.vocabulary import VERDICTS, Verdict, count_verdicts, counts_text

BASELINE, CANDIDATE = "baseline", "candidate"


@dataclasses.dataclass(frozen=True)
class Side:
    """One arm of a comparison: a runtime (maybe with Dask config changed) on a hardware profile."""

    label: str
    runtime: Runtime
    hardware: HardwareProfile


def resolve_side(text: str, catalog: Catalog, hardware: str, config: Sequence[str] = ()) -> Side:
    """``RUNTIME[@HARDWARE]`` plus ``KEY=VALUE`` Dask config overrides → a Side; near misses for typos."""
    name, _, on = text.partition("@")
    on = on or hardware
    if name not in catalog.runtimes:
        raise SelectionError(near_miss(name, catalog.runtimes, "runtime") + " (in matrices/runtimes.yaml)")
    if on not in catalog.hardware:
        raise SelectionError(near_miss(on, catalog.hardware, "hardware") + " (in matrices/hardware.yaml)")
    runtime = catalog.runtimes[name]
    label = name if on == hardware else f"{name}@{on}"
    if config:
        overrides = dict(runtime.dask_config)
        for item in config:
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise SelectionError(
                    f"Dask config {item!r} is not KEY=VALUE — use e.g. distributed.scheduler.worker-saturation=1.0"
                )
            overrides[key.strip()] = _config_value(value.strip())
        label += "+" + ",".join(f"{item}" for item in config)
        runtime = Runtime.model_validate({**runtime.model_dump(), "dask_config": overrides})
    return Side(label, runtime, catalog.hardware[on])


def _config_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


@dataclasses.dataclass(frozen=True)
class CompareOptions:
    baseline: Side
    candidate: Side
    cases: list[Case]
    results_dir: Path
    repeat: int = 5  # rounds (pairs) of a fixed-size comparison
    until_decided: bool = False
    budget: int = 30  # most rounds of a sequential comparison
    time_budget_s: float | None = None
    metrics: tuple[str, ...] = tuple(METRICS)
    min_effects: dict[str, float] = dataclasses.field(default_factory=dict)
    alpha: float = 0.01
    root: Path = ROOT
    address: str | None = None
    rebuild: bool = False
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class CaseMetric:
    """One line of a comparison: a case × metric and its statistics, or why it could not be compared."""

    workload: str
    case_id: str
    size: str | None
    hardware: str
    metric: str
    result: MetricComparison | None
    missing: str | None = None
    samples: tuple[tuple[float, ...], tuple[float, ...]] = ((), ())

    @property
    def verdict(self) -> Verdict:
        return Verdict.UNUSABLE if self.result is None else Verdict(self.result.verdict)

    def sentence(self) -> str:
        if self.result is None:
            return f"{METRICS[self.metric].label}: not compared — {self.missing}"
        return self.result.sentence()


@dataclasses.dataclass
class ComparisonReport:
    comparison_id: str
    mode: str
    baseline: str
    candidate: str
    lines: list[CaseMetric]
    outcomes: dict[tuple[str, str], tuple[int, int]]  # (side, case_id) → (passed, measured)
    run_ids: dict[str, list[str]]
    rounds: int = 0
    seconds: float = 0.0
    record: Path | None = None
    # (side, case_id) → (measured runs taken while the machine was overloaded, measured runs, the highest load read)
    overloaded: dict[tuple[str, str], tuple[int, int, float | None]] = dataclasses.field(default_factory=dict)
    env_hashes: dict[str, list[str]] = dataclasses.field(default_factory=dict)  # side → its rows' environments

    @property
    def regressed(self) -> list[CaseMetric]:
        return [line for line in self.lines if line.verdict is Verdict.REGRESSED]

    def counts(self) -> dict[Verdict, int]:
        """Verdicts per case × metric — the counts every output of this comparison shows."""
        return count_verdicts(line.verdict for line in self.lines)

    def failures(self, side: str) -> list[tuple[str, int, int]]:
        return [(case, passed, n) for (s, case), (passed, n) in self.outcomes.items() if s == side and passed < n]


def compare_text(report: ComparisonReport, verbose: bool = False) -> str:
    """The comparison as a reader wants it: biggest effects first, one plain sentence per case × metric that is
    not unchanged (``verbose``: every one); the unchanged ones are counted in one line."""
    aa = " (A/A: the noise floor)" if report.baseline == report.candidate else ""
    head = f"comparison {report.comparison_id} ({report.mode}): {report.candidate} vs {report.baseline}{aa}"
    if report.rounds:
        head += f", {report.rounds} round(s) in {report.seconds:.0f} s"
    lines = [head]

    def key(line: CaseMetric) -> tuple[int, float]:
        if line.result is None:
            return (VERDICTS.index(Verdict.UNUSABLE), 0.0)
        ratio = line.result.ratio
        return (VERDICTS.index(Verdict(line.result.verdict)), -abs((ratio if ratio != float("inf") else 1e9) - 1))

    folded = 0
    for line in sorted(report.lines, key=key):
        if not verbose and line.result is not None and line.result.verdict == Verdict.UNCHANGED:
            folded += 1
            continue
        lines.append(f"  {line.case_id}: {line.sentence()}")
    if folded:
        lines.append(f"  … and {folded} case × metric pair(s) unchanged (--verbose lists them; the record holds all)")
    for side in (BASELINE, CANDIDATE):
        for case_id, passed, measured in report.failures(side):
            label = report.baseline if side == BASELINE else report.candidate
            lines.append(f"  {case_id}: {measured - passed} of {measured} run(s) did not pass on {label}")
    for side in (BASELINE, CANDIDATE):
        per_case = [value for (s, _), value in report.overloaded.items() if s == side]
        loaded = sum(value[0] for value in per_case)
        if loaded:
            label = report.baseline if side == BASELINE else report.candidate
            peak = max((value[2] for value in per_case if value[2] is not None), default=0.0)
            cases = sum(bool(value[0]) for value in per_case)
            lines.append(
                f"  ! {label}: {loaded} of {sum(value[1] for value in per_case)} measured run(s) ({cases} case(s))"
                f" taken while the machine was overloaded (load > cores, up to {peak:.1f}): their times are not"
                " comparable"
            )
    lines += attribute_hints(report)
    lines.append(f"{counts_text(report.counts())} — recorded: {report.record}")
    return "\n".join(lines)


def attribute_hints(report: ComparisonReport) -> list[str]:
    """For the largest regression, when the sides ran on different locks: the command that names the package(s)."""
    from framework.attribute.hints import hint, locks_differ

    if not report.regressed or not locks_differ(report.env_hashes):
        return []
    baseline_runs, candidate_runs = report.run_ids.get(BASELINE, []), report.run_ids.get(CANDIDATE, [])
    if not baseline_runs or not candidate_runs:
        return []
    worst = max(report.regressed, key=lambda line: abs(line.result.ratio - 1) if line.result else 0.0)
    return [f"  {hint(baseline_runs[-1], candidate_runs[-1], worst.case_id, worst.metric)}"]


def env_hashes(rows: dict[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
    return {
        side: sorted({str(row["env_hash"]) for row in side_rows if row.get("env_hash")})
        for side, side_rows in rows.items()
    }


def interleaving(rounds: int) -> list[tuple[int, str]]:
    """The run order: A B | B A | A B | … — each round one pair, who goes first alternating."""
    order = []
    for index in range(rounds):
        pair = (BASELINE, CANDIDATE) if index % 2 == 0 else (CANDIDATE, BASELINE)
        order += [(index, side) for side in pair]
    return order


# --------------------------------------------------------------------------------------------------
# Running


Measure = Callable[[str, int], list[dict[str, Any]]]


def run_interleaved(options: CompareOptions, measure: Measure | None = None) -> ComparisonReport:
    """Run both sides in alternating rounds; compare every case × metric; record the comparison.

    ``measure(side, round) → rows`` runs one round of one side; by default a runner process in the side's
    environment (``make_measure``). Tests inject a fake.
    """
    if not options.cases:
        raise SelectionError("the comparison has no case to run — widen --workload/--size, or check the names")
    comparison_id = new_run_id()
    store = ResultsStore(options.results_dir)
    run_ids = {BASELINE: new_run_id(), CANDIDATE: new_run_id()}
    environments: dict[str, BuiltEnvironment] = {}
    if measure is None:
        measure, environments = make_measure(options, store, run_ids)
    rows: dict[str, list[dict[str, Any]]] = {BASELINE: [], CANDIDATE: []}
    sequential = _sequential_tests(options) if options.until_decided else {}
    rounds = options.budget if options.until_decided else options.repeat
    started = time.monotonic()
    done = 0
    order = interleaving(rounds)
    # Sequential or time-boxed, the rounds planned are a budget: it may stop early, so the bar shows "≤".
    bounded = options.until_decided or options.time_budget_s is not None
    with Progress("compare", 2 * rounds, "runs", bound="at most" if bounded else "exact") as progress:
        for index in range(rounds):
            for _, side in order[2 * index : 2 * index + 2]:
                label = options.baseline.label if side == BASELINE else options.candidate.label
                say(f"round {index + 1}/{rounds}: {side} {label}")
                progress.advance(0, current=f"round {index + 1}/{rounds}: {side} {label}")
                measured = measure(side, index)
                rows[side] += measured
                progress.advance(1, failed=int(any(row.get("outcome") != "passed" for row in measured)))
            done = index + 1
            if options.until_decided and _update_sequential(sequential, rows, index):
                say(f"every metric decided after {done} round(s)")
                break
            if options.time_budget_s is not None and time.monotonic() - started > options.time_budget_s:
                say(f"time budget of {options.time_budget_s:.0f} s spent after {done} round(s)")
                break
    mode = "sequential" if options.until_decided else "interleaved"
    lines = _judge(options, rows, sequential)
    report = ComparisonReport(
        comparison_id,
        mode,
        options.baseline.label,
        options.candidate.label,
        lines,
        count_outcomes(rows),
        {side: [run_ids[side]] for side in run_ids},
        rounds=done,
        seconds=time.monotonic() - started,
        overloaded=count_overloaded(rows),
        env_hashes=env_hashes(rows),
    )
    report.record = _record(report, options, environments, rows)
    return report


def make_measure(
    options: CompareOptions, store: ResultsStore, run_ids: dict[str, str]
) -> tuple[Measure, dict[str, BuiltEnvironment]]:
    """Build (or reuse) both environments; return a function that runs one round of one side."""
    started = dt.datetime.now(dt.timezone.utc)
    sides = {BASELINE: options.baseline, CANDIDATE: options.candidate}
    environments = {
        side: prepare_environment(spec.runtime, options.root, store, options.rebuild, started, run_ids[side])
        for side, spec in sides.items()
    }
    unusable = [
        f"the {side} {environment.health.headline(environment.runtime.name)}"
        for side, environment in environments.items()
        if environment.health is not None and not environment.health.usable
    ]
    if unusable:  # stop before the rounds: measuring a runtime that cannot import is no comparison
        raise UnusableRuntimeError(f"compare stopped before its rounds: {'; '.join(unusable)} — nothing was compared")
    git = provenance.git_commit(options.root)
    one = {"repeats": 1}  # one measured repeat per round; the rounds are the repeats
    single = [dataclasses.replace(case, workload=case.workload.model_copy(update=one)) for case in options.cases]

    def measure(side: str, index: int) -> list[dict[str, Any]]:
        group = CaseGroup(environments[side], sides[side].hardware, single, first_repeat=index, suffix=f"__r{index}")
        _, rows = run_group(group, run_ids[side], started, store, options.root, options.address, git)
        return rows

    return measure, environments


# --------------------------------------------------------------------------------------------------
# Judging


def _values(rows: list[dict[str, Any]], case_id: str, column: str) -> dict[int, float]:
    """Round → value of the measured, passed repeat of one case; NULL metrics left out (never 0)."""
    out = {}
    for row in rows:
        if row.get("case_id") != case_id or row.get("phase") != "measure" or row.get("outcome") != "passed":
            continue
        value = row.get(column)
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            out[int(row.get("repeat", 0))] = float(value)
    return out


def missing_reason(rows: list[dict[str, Any]], case_id: str, column: str) -> str | None:
    for row in rows:
        if row.get("case_id") == case_id and row.get("outcome") == "passed":
            missing = row.get("missing") or {}
            if isinstance(missing, str):
                missing = json.loads(missing)
            reason = missing.get(column)
            if reason:
                return str(reason)
    return None


def _sequential_tests(options: CompareOptions) -> dict[tuple[str, str], SequentialComparison]:
    return {
        (case.case_id, name): SequentialComparison(
            METRICS[name], options.min_effects.get(name, METRICS[name].min_effect), options.alpha
        )
        for case in options.cases
        for name in options.metrics
    }


def _update_sequential(
    tests: dict[tuple[str, str], SequentialComparison], rows: dict[str, list[dict[str, Any]]], index: int
) -> bool:
    """Add round ``index``'s pair to every test; True when all tests that have data have decided."""
    for (case_id, name), test in tests.items():
        column = METRICS[name].column
        a = _values(rows[BASELINE], case_id, column).get(index)
        b = _values(rows[CANDIDATE], case_id, column).get(index)
        if a is not None and b is not None:
            test.add(a, b)
    live = [test for test in tests.values() if test.a]
    return bool(live) and all(test.decision is not None for test in live)


def _judge(
    options: CompareOptions,
    rows: dict[str, list[dict[str, Any]]],
    sequential: dict[tuple[str, str], SequentialComparison],
) -> list[CaseMetric]:
    lines = []
    for case in options.cases:
        for name in options.metrics:
            spec = METRICS[name]
            a = _values(rows[BASELINE], case.case_id, spec.column)
            b = _values(rows[CANDIDATE], case.case_id, spec.column)
            samples = (tuple(a.values()), tuple(b.values()))
            hardware = options.candidate.hardware.name
            if options.baseline.hardware.name != hardware:
                hardware = f"{options.baseline.hardware.name} vs {hardware}"
            line = CaseMetric(case.workload.name, case.case_id, case.size, hardware, name, None, None, samples)
            if len(a) < 2 or len(b) < 2:
                reason = missing_reason(rows[BASELINE] + rows[CANDIDATE], case.case_id, spec.column)
                counts = f"{len(a)} baseline and {len(b)} candidate repeat(s) passed with a value"
                lines.append(dataclasses.replace(line, missing=f"{counts}{'; ' + reason if reason else ''}"))
                continue
            test = sequential.get((case.case_id, name))
            if test is not None and test.a:
                result = test.result()
            else:
                effect = options.min_effects.get(name)
                result = compare_samples(
                    list(a.values()), list(b.values()), spec, min_effect=effect, alpha=options.alpha, seed=options.seed
                )
            lines.append(dataclasses.replace(line, result=result))
    return lines


def count_outcomes(rows: dict[str, list[dict[str, Any]]]) -> dict[tuple[str, str], tuple[int, int]]:
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for side, side_rows in rows.items():
        for row in side_rows:
            if row.get("phase") in ("measure", "setup"):
                entry = counts[(side, str(row["case_id"]))]
                entry[1] += 1
                entry[0] += row.get("outcome") == "passed"
    return {key: (passed, total) for key, (passed, total) in counts.items()}


def count_overloaded(rows: dict[str, list[dict[str, Any]]]) -> dict[tuple[str, str], tuple[int, int, float | None]]:
    """(side, case) → (measured rows taken while the machine was overloaded, measured rows, the highest load)."""
    out: dict[tuple[str, str], tuple[int, int, float | None]] = {}
    for side, side_rows in rows.items():
        for row in side_rows:
            if row.get("phase") != "measure":
                continue
            key = (side, str(row["case_id"]))
            loaded, measured, peak = out.get(key, (0, 0, None))
            load = row.get("load_avg_1m")
            if load is not None:
                peak = max(float(load), peak) if peak is not None else float(load)
            out[key] = (loaded + bool(row.get("overloaded")), measured + 1, peak)
    return out


def _versions(environment: BuiltEnvironment | None, rows: list[dict[str, Any]]) -> dict[str, str | None]:
    if environment is not None:
        packages = environment.packages
    else:
        packages = next((row["packages"] for row in rows if isinstance(row.get("packages"), dict)), {})
    return {name: packages.get(name) for name in ("dask", "distributed", "pandas", "pyarrow", "numpy")}


def _record(
    report: ComparisonReport,
    options: CompareOptions,
    environments: dict[str, BuiltEnvironment],
    rows: dict[str, list[dict[str, Any]]],
) -> Path | None:
    common = record_identity(report, rows, environments)
    return write_record(options.results_dir, "comparisons", report.comparison_id, record_rows(report, common))


def record_identity(
    report: ComparisonReport, rows: dict[str, list[dict[str, Any]]], environments: dict[str, BuiltEnvironment]
) -> dict[str, Any]:
    """What every row of a comparison record shares: its id, mode, and each side's runtime, environment, versions."""

    def first(side: str, key: str) -> Any:
        return next((row.get(key) for row in rows[side] if row.get(key) is not None), None)

    return {
        "comparison_id": report.comparison_id,
        "created_at": dt.datetime.now(dt.timezone.utc),
        "mode": report.mode,
        "baseline": report.baseline,
        "candidate": report.candidate,
        "baseline_runtime_hash": first(BASELINE, "runtime_hash"),
        "candidate_runtime_hash": first(CANDIDATE, "runtime_hash"),
        "baseline_env_hash": first(BASELINE, "env_hash"),
        "candidate_env_hash": first(CANDIDATE, "env_hash"),
        "baseline_versions": _versions(environments.get(BASELINE), rows[BASELINE]),
        "candidate_versions": _versions(environments.get(CANDIDATE), rows[CANDIDATE]),
    }


def record_rows(report: ComparisonReport, common: dict[str, Any]) -> list[dict[str, Any]]:
    """The comparison as rows of the ``comparisons`` record (one per case × metric)."""
    out = []
    for line in report.lines:
        result = line.result
        row = {
            **common,
            "hardware": line.hardware,
            "workload": line.workload,
            "case_id": line.case_id,
            "size": line.size,
            "metric": line.metric,
            "n_baseline": len(line.samples[0]),
            "n_candidate": len(line.samples[1]),
            "sentence": line.sentence(),
            "missing": line.missing,
            "detail": {
                "baseline": list(line.samples[0]),
                "candidate": list(line.samples[1]),
                "run_ids": report.run_ids,
                "rounds": report.rounds,
                # each side's measured runs of this case taken while the machine was overloaded (load > cores)
                "overloaded": {
                    side: report.overloaded.get((side, line.case_id), (0, 0, None))[0] for side in (BASELINE, CANDIDATE)
                },
            },
        }
        row.update({"verdict": Verdict.UNUSABLE.value} if result is None else result.record_fields())
        out.append(row)
    return out


# --------------------------------------------------------------------------------------------------
# Planning


def plan_cases(
    catalog: Catalog,
    baseline: Side,
    workloads: Sequence[str] | None,
    size: str | None,
    matrix: str = "default",
    warmup: int | None = None,
) -> tuple[list[Case], list[str]]:
    """The cases to compare (the matrix's workloads unless narrowed), and why any were skipped."""
    selection = Selection(
        matrix=matrix,
        runtimes=[baseline.runtime.name],
        hardware=[baseline.hardware.name],
        workloads=workloads,
        size=size,
        warmup=warmup,
    )
    plan = build_plan(catalog, selection)
    skipped = [f"{s.case_id} on {s.hardware}: {s.reason}" for s in plan.skipped]
    return [planned.case for planned in plan.cases], skipped


def metric_names(values: Sequence[str] | None) -> tuple[str, ...]:
    if not values:
        return tuple(METRICS)
    return tuple(dict.fromkeys(metric(name).name for name in values))
