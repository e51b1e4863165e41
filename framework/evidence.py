"""The evidence a blessing verdict is decided on: where it is found in the results store, and producing what is not.

Evidence counts when it was produced by the runtime as declared today (``runtime_hash``) in an environment with
exactly today's packages (today's ``env_hash``, or an earlier build whose lock is identical — so ``latest``,
re-resolved daily, reuses yesterday's evidence when nothing was released since), on the criteria's hardware,
and is younger than the criteria's ``max_age``. Plain dataclasses: the decision (:func:`framework.blessing.decide`)
is a pure function of them. What is missing is produced in the order that wastes least: the interleaved comparison
first (its candidate rows are must-pass evidence too), then the must-pass cases it did not cover, then stability.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from framework.compare import CompareOptions, resolve_side, run_interleaved
from framework.config import DEFAULT_RESULTS, ROOT, Catalog
from framework.criteria import Criteria, Scope
from framework.engine import prepare_environment
from framework.environments import BuiltEnvironment, existing_environment, parse_lock, runtime_hash
from framework.failure_signatures import FailureSignature, of_row
from framework.in_runtime.errors import FrameworkError
from framework.limits import MeasuredRow
from framework.matrix import Case, Selection
from framework.metric_catalogue import METRICS
from framework.models import Runtime
from framework.pipeline import MatrixOptions, run_matrix
from framework.query import Results
from framework.results import ResultsStore
from framework.stability import StabilityOptions, replay, run_stability
from framework.stats import MetricComparison

STABILITY_WORKLOADS = ("stability.fuzz", "stability.regression")
# Modes whose two sides ran interleaved on one machine; 'from-results' pairs runs made at different times.
INTERLEAVED_MODES = ("interleaved", "sequential")


@dataclasses.dataclass(frozen=True)
class CaseOutcome:
    """Every measured repeat of one case in the reusable runs (a ``setup`` row — it could not start — counts too).

    All runs count, not only the newest: a failure in an identical environment is evidence a re-run cannot erase
    (``--no-reuse`` judges on fresh runs only).
    """

    case_id: str
    runs: tuple[str, ...]  # newest first
    repeats: int
    passed: int
    first_problem: str | None = None  # "timeout: ..." of the newest repeat that did not pass
    problem_run: str | None = None
    problems: tuple[tuple[FailureSignature, str], ...] = ()  # each repeat that did not pass: its signature, its run


@dataclasses.dataclass(frozen=True)
class StabilityBatch:
    run_id: str
    case_id: str  # fuzz[inprocess], regression[ID], or stability[fuzz] when the whole run died
    outcome: str
    error: str | None = None
    failure_id: str | None = None
    examples: int | None = None
    load_avg_1m: float | None = None  # the highest load average over the batch
    overloaded: bool | None = None  # load above the machine's cores: a liveness failure may be the machine's
    traceback: str | None = None  # read as its failure signature


@dataclasses.dataclass(frozen=True)
class StabilityEvidence:
    """Stability runs in the window: a pass counts only at the criteria's profile and budget, a failure at any."""

    complete_run: str | None  # newest run with the criteria's profile, every tier and at least their budget
    batches: tuple[StabilityBatch, ...]  # of that run, and every batch that did not pass in any run


@dataclasses.dataclass(frozen=True)
class MetricEvidence:
    """One case × metric of a stored comparison; ``result`` is None when it could not be compared."""

    comparison_id: str
    result: MetricComparison | None
    missing: str | None = None
    samples: tuple[tuple[float, ...], tuple[float, ...]] = ((), ())
    overloaded: tuple[int, int] = (0, 0)  # baseline's, candidate's runs measured while the machine was overloaded
    locks_differ_runs: tuple[str, str] | None = None  # (baseline run, candidate run) when their locks differ


@dataclasses.dataclass(frozen=True)
class Evidence:
    """Everything a verdict is decided on. A None value is evidence that could not be found or produced."""

    runtime: str
    baseline: str
    hardware: str
    cases: dict[str, CaseOutcome | None]  # must-pass case → its reusable repeats
    baseline_cases: dict[str, CaseOutcome] = dataclasses.field(default_factory=dict)
    # (criterion, selector) → why none of its cases can run on this hardware
    unrunnable: dict[tuple[str, str], str] = dataclasses.field(default_factory=dict)
    skipped: tuple[str, ...] = ()  # cases the hardware cannot run, with the reason
    stability: StabilityEvidence | None = None
    metrics: dict[tuple[str, str], MetricEvidence | None] = dataclasses.field(default_factory=dict)
    unavailable: dict[str, str] = dataclasses.field(default_factory=dict)  # kind → why it could not be produced
    # soak and health cases → their measured rows on the runtime, newest first (None: none found)
    soak: dict[str, tuple[MeasuredRow, ...] | None] = dataclasses.field(default_factory=dict)
    health: dict[str, tuple[MeasuredRow, ...] | None] = dataclasses.field(default_factory=dict)
    baseline_soak: dict[str, tuple[MeasuredRow, ...]] = dataclasses.field(default_factory=dict)  # shown, not judged


@dataclasses.dataclass(frozen=True)
class Identity:
    """Which results are this runtime's: its spec, and every environment with exactly today's packages."""

    runtime: str
    runtime_hash: str
    env_hash: str
    env_hashes: frozenset[str]
    versions: dict[str, str]
    built: bool = True  # False in a dry run when today's environment does not exist yet


def identity(results: Results, runtime: Runtime, environment: BuiltEnvironment | None) -> Identity:
    """Today's environment and the earlier builds with an identical lock (same Python, same package versions)."""
    if environment is None:
        # No environment of this spec yet: nothing stored can match (the builds are named by their locks).
        return Identity(runtime.name, runtime_hash(runtime), "not-built", frozenset(["not-built"]), {}, built=False)
    packages = environment.packages
    _, rows = results.sql("SELECT env_hash, lock FROM environments WHERE python = ?", [runtime.python])
    same = {env_hash for env_hash, lock in rows if lock is not None and parse_lock(lock) == packages}
    hashes = frozenset({environment.env_hash, *same})
    return Identity(runtime.name, environment.runtime_hash, environment.env_hash, hashes, packages)


def _in(values: Sequence[str]) -> str:
    return ", ".join("?" * len(values))


def case_outcomes(
    results: Results, who: Identity, hardware: str, cases: Sequence[Case], since: dt.datetime
) -> dict[str, CaseOutcome]:
    """Every reusable repeat of each case (at its size) on this runtime's environments and hardware since ``since``."""
    if not cases:
        return {}
    sizes = {case.case_id: case.size for case in cases}
    envs = sorted(who.env_hashes)
    _, rows = results.sql(
        "SELECT case_id, size, run_id, outcome, error, traceback FROM rows WHERE phase IN ('measure', 'setup')"
        f" AND runtime_hash = ? AND env_hash IN ({_in(envs)}) AND hardware = ? AND run_started_at >= ?"
        f" AND case_id IN ({_in(list(sizes))}) ORDER BY run_started_at DESC, run_id DESC, repeat",
        [who.runtime_hash, *envs, hardware, since, *sizes],
    )
    found: dict[str, CaseOutcome] = {}
    for case_id, size, run_id, outcome, error, traceback in rows:
        if size != sizes[case_id]:
            continue
        seen = found.get(case_id) or CaseOutcome(case_id, (), 0, 0)
        runs = seen.runs if run_id in seen.runs else (*seen.runs, run_id)
        problem, problem_run = seen.first_problem, seen.problem_run
        if outcome != "passed" and problem is None:
            problem, problem_run = (f"{outcome}: {error}" if error else outcome), run_id
        passed = seen.passed + (outcome == "passed")
        problems = seen.problems
        if outcome != "passed":
            row = {"workload": case_id, "outcome": outcome, "error": error, "traceback": traceback}
            problems = (*problems, (of_row(row), run_id))
        found[case_id] = CaseOutcome(case_id, runs, seen.repeats + 1, passed, problem, problem_run, problems)
    return found


def measured_rows(
    results: Results, who: Identity, hardware: str, cases: Sequence[Case], since: dt.datetime
) -> dict[str, tuple[MeasuredRow, ...]]:
    """Every measured repeat (values, extra metrics, what is missing) of each case at its size on this runtime's
    environments and hardware since ``since``, newest first: soak slopes and health figures are judged on them."""
    if not cases:
        return {}
    sizes = {case.case_id: case.size for case in cases}
    envs = sorted(who.env_hashes)
    columns = ", ".join(dict.fromkeys(spec.column for spec in METRICS.values()))
    names, rows = results.sql(
        f"SELECT case_id, size, run_id, outcome, error, extra_metrics, missing, overloaded, {columns} FROM rows"
        f" WHERE phase = 'measure' AND runtime_hash = ? AND env_hash IN ({_in(envs)}) AND hardware = ?"
        f" AND run_started_at >= ? AND case_id IN ({_in(list(sizes))}) ORDER BY run_started_at DESC, run_id DESC,"
        " repeat",
        [who.runtime_hash, *envs, hardware, since, *sizes],
    )
    found: dict[str, list[MeasuredRow]] = {}
    for values in rows:
        record = dict(zip(names, values))
        if record["size"] == sizes[record["case_id"]]:
            found.setdefault(record["case_id"], []).append(MeasuredRow.from_record(record))
    return {case_id: tuple(measured) for case_id, measured in found.items()}


def stability_evidence(
    results: Results, who: Identity, criteria: Criteria, since: dt.datetime
) -> StabilityEvidence | None:
    """Stability runs since ``since``: the newest complete one, and every batch that failed in any of them."""
    wanted = criteria.stability
    if wanted is None:
        return None
    envs = sorted(who.env_hashes)
    _, rows = results.sql(
        "SELECT run_id, workload, case_id, outcome, error, failure_id, params, extra_metrics, load_avg_1m, overloaded,"
        " traceback"
        " FROM rows"
        f" WHERE workload IN ({_in(STABILITY_WORKLOADS)}) AND runtime_hash = ? AND env_hash IN ({_in(envs)})"
        " AND run_started_at >= ? ORDER BY run_started_at DESC, run_id DESC, started_at",
        [*STABILITY_WORKLOADS, who.runtime_hash, *envs, since],
    )
    runs: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        runs.setdefault(row[0], []).append(row)
    complete, batches = None, []
    for run_id, run_rows in runs.items():
        run_batches, covered, qualifies = [], set(), True
        for _, workload, case_id, outcome, error, failure_id, params_text, extra_text, load, loaded, tb in run_rows:
            params, extra = json.loads(params_text or "{}"), json.loads(extra_text or "{}")
            if workload == "stability.fuzz":
                qualifies &= params.get("profile") == wanted.profile and _enough(params, wanted.examples, wanted.steps)
                tiers = set(params.get("tiers") or [params.get("tier")])  # a run that died covers all it planned
                covered |= tiers
                if not tiers & set(wanted.tiers):
                    continue  # a tier the criteria leave out
            examples = extra.get("examples")
            batch = StabilityBatch(run_id, case_id, outcome, error, failure_id, examples, load, loaded, tb)
            run_batches.append(batch)
        if complete is None and qualifies and set(wanted.tiers) <= covered:
            complete = run_id
            batches += run_batches
        else:
            batches += [batch for batch in run_batches if batch.outcome != "passed"]
    if complete is None and not batches:
        return None
    return StabilityEvidence(complete, tuple(batches))


def _enough(params: dict[str, Any], examples: int | None, steps: int | None) -> bool:
    """A batch whose budget was cut (``--examples``/``--steps``) counts only if the criteria ask for no more."""
    for key, wanted in (("examples", examples), ("steps", steps)):
        given = params.get(key)
        if given is not None and (wanted is None or given < wanted):
            return False
    return True


def metric_evidence(
    results: Results,
    candidate: Identity,
    baseline: Identity,
    hardware: str,
    cases: Sequence[Case],
    criteria: Criteria,
    since: dt.datetime,
) -> dict[tuple[str, str], MetricEvidence]:
    """The newest interleaved comparison of each case × metric between these two environments."""
    wanted = criteria.metrics
    if wanted is None or not cases:
        return {}
    sizes = {case.case_id: case.size for case in cases}
    names = list(wanted.max_regression)
    cand, base = sorted(candidate.env_hashes), sorted(baseline.env_hashes)
    parameters = [candidate.runtime_hash, baseline.runtime_hash, *cand, *base, hardware, since]
    parameters += [*INTERLEAVED_MODES, *sizes, *names]
    columns, rows = results.sql(
        "SELECT * FROM comparisons WHERE candidate_runtime_hash = ? AND baseline_runtime_hash = ?"
        f" AND candidate_env_hash IN ({_in(cand)}) AND baseline_env_hash IN ({_in(base)}) AND hardware = ?"
        f" AND created_at >= ? AND mode IN ({_in(INTERLEAVED_MODES)}) AND case_id IN ({_in(list(sizes))})"
        f" AND metric IN ({_in(names)}) ORDER BY created_at DESC, comparison_id DESC",
        parameters,
    )
    found: dict[tuple[str, str], MetricEvidence] = {}
    for values in rows:
        row = dict(zip(columns, values))
        key = (row["case_id"], row["metric"])
        detail = json.loads(row["detail"] or "{}")
        rounds = detail.get("rounds", min(row["n_baseline"] or 0, row["n_candidate"] or 0))
        if key in found or row["size"] != sizes[row["case_id"]]:
            continue
        if row["mode"] != "sequential" and rounds < wanted.repeat:
            continue  # fewer repeats than the criteria ask for: not enough to decide on
        samples = (tuple(detail.get("baseline", ())), tuple(detail.get("candidate", ())))
        loaded = detail.get("overloaded") or {}
        overloaded = (int(loaded.get("baseline") or 0), int(loaded.get("candidate") or 0))
        runs = detail.get("run_ids") or {}
        ends = None
        if (
            row.get("baseline_env_hash") != row.get("candidate_env_hash")
            and runs.get("baseline")
            and runs.get("candidate")
        ):
            ends = (str(runs["baseline"][-1]), str(runs["candidate"][-1]))
        found[key] = MetricEvidence(
            row["comparison_id"], stored_comparison(row), row["missing"], samples, overloaded, ends
        )
    return found


def stored_comparison(row: Mapping[str, Any]) -> MetricComparison | None:
    """A row of the ``comparisons`` view (of any age: old words read as today's) as the statistics' result; None
    when it could not be compared."""
    return MetricComparison.from_record(row)


@dataclasses.dataclass
class Found:
    """What the store holds for one blessing, keyed like :class:`Evidence`; absent keys are missing."""

    cases: dict[str, CaseOutcome]
    baseline_cases: dict[str, CaseOutcome]
    stability: StabilityEvidence | None
    metrics: dict[tuple[str, str], MetricEvidence]
    measured: dict[str, tuple[MeasuredRow, ...]] = dataclasses.field(default_factory=dict)  # soak and health cases
    baseline_measured: dict[str, tuple[MeasuredRow, ...]] = dataclasses.field(default_factory=dict)  # shown beside


def find(
    results: Results,
    candidate: Identity,
    baseline: Identity,
    hardware: str,
    must_pass: Sequence[Case],
    compared: Sequence[Case],
    criteria: Criteria,
    since: dt.datetime,
    judged: Sequence[Case] = (),
) -> Found:
    """``judged``: the soak and health cases, whose measured rows are their evidence."""
    return Found(
        case_outcomes(results, candidate, hardware, must_pass, since),
        case_outcomes(results, baseline, hardware, must_pass, since),
        stability_evidence(results, candidate, criteria, since),
        metric_evidence(results, candidate, baseline, hardware, compared, criteria, since),
        measured_rows(results, candidate, hardware, judged, since),
        measured_rows(results, baseline, hardware, judged, since),
    )


# --------------------------------------------------------------------------------------------------
# Producing what is missing


@dataclasses.dataclass(frozen=True)
class BlessOptions:
    runtime: str
    criteria: str = "default"
    baseline: str | None = None  # None: the criteria's
    hardware: str | None = None
    results_dir: Path = DEFAULT_RESULTS
    root: Path = ROOT
    rebuild: bool = False
    reuse: bool = True
    dry_run: bool = False


def prepare(runtime: Runtime, options: BlessOptions) -> BuiltEnvironment | None:
    """Today's environment of a runtime: built (or reused) and its lock stored; in a dry run only if it exists."""
    if options.dry_run:
        return existing_environment(runtime, options.root)
    store = ResultsStore(options.results_dir)
    return prepare_environment(runtime, options.root, store, options.rebuild, dt.datetime.now(dt.timezone.utc))


@dataclasses.dataclass(frozen=True)
class Runners:
    """What produces missing evidence: the real pipeline by default, fakes in tests."""

    environment: Callable[[Runtime, BlessOptions], BuiltEnvironment | None] = prepare
    matrix: Callable[[MatrixOptions], object] = run_matrix
    stability: Callable[[StabilityOptions], object] = run_stability
    compare: Callable[[CompareOptions], object] = run_interleaved
    replay: Callable[..., object] = replay  # a candidate's stability failure on the baseline (shared_failures)


def produce(
    options: BlessOptions,
    runners: Runners,
    catalog: Catalog,
    criteria: Criteria,
    who: Identity,
    hardware: str,
    plan: Plan,
    since: dt.datetime,
) -> dict[str, str]:
    """Run what is missing: the comparison first (its candidate rows are must-pass evidence too), then the
    must-pass cases it did not cover, then stability. Returns why any kind of evidence could not be produced."""
    unavailable: dict[str, str] = {}

    def attempt(kind: str, run: Callable[[Any], object], run_options: Any) -> None:
        try:
            run(run_options)
        except FrameworkError as error:  # e.g. the runtime lacks hypothesis: the check fails, with the reason
            unavailable[kind] = f"could not be produced: {error}"

    metrics, stability = criteria.metrics, criteria.stability
    if plan.compare and metrics is not None:
        compare = CompareOptions(
            baseline=resolve_side(plan.baseline, catalog, hardware),
            candidate=resolve_side(who.runtime, catalog, hardware),
            cases=plan.compare,
            results_dir=options.results_dir,
            repeat=metrics.repeat,
            until_decided=metrics.until_decided is not None,
            budget=metrics.until_decided or metrics.repeat,
            metrics=tuple(metrics.allowances),
            min_effects=metrics.allowances,
            alpha=metrics.alpha,
            root=options.root,
        )
        attempt("metrics", runners.compare, compare)
    must_run = list({case.case_id: case for case in [*plan.must_pass, *plan.measure]}.values())
    if must_run and plan.compare:
        with Results(options.results_dir) as results:
            covered = case_outcomes(results, who, hardware, must_run, since)
        must_run = [case for case in must_run if case.case_id not in covered]
    if must_run:
        workloads = list(dict.fromkeys(case.workload.name for case in must_run))
        selection = Selection(runtimes=[who.runtime], hardware=[hardware], workloads=workloads, size=criteria.size)
        attempt("must_pass", runners.matrix, MatrixOptions(selection, options.results_dir, options.root))
        if "must_pass" in unavailable:  # the same run measures the soak and health cases
            unavailable["measured"] = unavailable["must_pass"]
    if plan.stability and stability is not None:
        run = StabilityOptions(
            runtimes=[who.runtime],
            profile=stability.profile,
            tiers=tuple(stability.tiers),
            examples=stability.examples,
            steps=stability.steps,
            results_dir=options.results_dir,
            root=options.root,
        )
        attempt("stability", runners.stability, run)
    return unavailable


def metric_keys(criteria: Criteria, cases: Sequence[Case]) -> list[tuple[str, str]]:
    names = list(criteria.metrics.max_regression) if criteria.metrics else []
    return [(case.case_id, name) for case in cases for name in names]


@dataclasses.dataclass(frozen=True)
class Plan:
    lines: list[str]  # what is reused and what runs, for a person (the dry run prints only these)
    baseline: str
    compare: list[Case]
    must_pass: list[Case]
    stability: bool
    measure: list[Case] = dataclasses.field(default_factory=list)  # soak and health cases with no rows yet


def make_plan(criteria: Criteria, who: Identity, base: Identity, hardware: str, cases: Scope, found: Found) -> Plan:
    """What is reused and what must run."""
    lines = [
        f"no environment of {side.runtime} as declared is built yet — it will be, and the evidence of an"
        " earlier build with identical packages is then reused too"
        for side in (who, base)
        if not side.built and (side is who or criteria.metrics)
    ]
    keys = metric_keys(criteria, cases.compared)
    compare = [
        case for case in cases.compared if any(key not in found.metrics for key in metric_keys(criteria, [case]))
    ]
    reused = sorted({found.metrics[key].comparison_id for key in keys if key in found.metrics})
    if reused:
        lines.append(f"reuse: comparison(s) {', '.join(reused)}")
    if compare and criteria.metrics is not None:
        metrics = criteria.metrics
        rounds = (
            f"until decided (≤ {metrics.until_decided} rounds)" if metrics.until_decided else f"{metrics.repeat} rounds"
        )
        lines.append(
            f"run: interleaved comparison of {who.runtime} with {base.runtime} on {hardware}, {rounds}:"
            f" {', '.join(case.case_id for case in compare)}"
        )
    must_pass = [case for case in cases.must_pass if case.case_id not in found.cases]
    runs = sorted({run for outcome in found.cases.values() for run in outcome.runs})
    if runs:
        lines.append(f"reuse: must pass — {len(found.cases)} case(s) from run(s) {', '.join(runs)}")
    if must_pass:
        workloads = ",".join(dict.fromkeys(case.workload.name for case in must_pass))
        size = f" --size={criteria.size}" if criteria.size else ""
        lines.append(
            f"run: must pass — {len(must_pass)} case(s){' the comparison does not cover' if compare else ''}, as"
            f" nox -s matrix -- --runtime={who.runtime} --hardware={hardware} --workload={workloads}{size}"
        )
    judged = [case for case in [*cases.soak, *cases.health] if case.case_id not in found.measured]
    compared = {case.case_id for case in compare}
    measure = [
        case
        for case in {case.case_id: case for case in judged}.values()
        if case.case_id not in compared and case.case_id not in {c.case_id for c in must_pass}
    ]
    reused = sorted(
        {row.run_id for case in [*cases.soak, *cases.health] for row in found.measured.get(case.case_id, ())}
    )
    if reused:
        lines.append(f"reuse: soak and health — {len(found.measured)} case(s) from run(s) {', '.join(reused)}")
    if measure:
        workloads = ",".join(dict.fromkeys(case.workload.name for case in measure))
        size = f" --size={criteria.size}" if criteria.size else ""
        soaks = sum(case in cases.soak for case in measure)
        lines.append(
            f"run: soak and health — {len(measure)} case(s) ({soaks} soak), as nox -s matrix --"
            f" --runtime={who.runtime} --hardware={hardware} --workload={workloads}{size}"
        )
    wanted = criteria.stability
    complete = found.stability.complete_run if found.stability else None
    if wanted is not None and complete is not None:
        lines.append(f"reuse: stability profile {wanted.profile} — run {complete}")
    elif wanted is not None:
        budget = "".join(f" --{key}={n}" for key, n in (("examples", wanted.examples), ("steps", wanted.steps)) if n)
        lines.append(
            f"run: stability as nox -s stability -- --runtime={who.runtime} --profile={wanted.profile}"
            f" --tier={','.join(wanted.tiers)}{budget}"
        )
    missing_stability = wanted is not None and complete is None
    return Plan(lines, base.runtime, compare, must_pass, missing_stability, measure)
