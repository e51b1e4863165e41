"""``nox -s reproduce -- --run=RUN_ID``: rebuild a recorded run's exact environment and run its cases again.

    the run's rows → the lock stored for its env_hash (never resolved again) → build + health check → the
    recorded cases (today's workload functions; the recorded params, size and hardware) → a new run → recorded vs now

It works after the runtime's YAML changed or ``latest`` moved on: the runtime is the spec the rows recorded
(``runtime_spec``) and the packages are the lock the ``environments`` view holds for the run's env_hash. Older runs
stored ``uv pip freeze`` there, without hashes: ``uv pip sync`` installs those pins just as well. A run whose lock was
never stored is rebuilt from the versions its rows recorded as installed. Recorded vs now is judged per case × metric
by :func:`framework.stats.compare_samples`, as ``nox -s compare`` judges two runtimes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from framework.config import ROOT, Catalog
from framework.environments import BuiltEnvironment, describe_changes, lock_changes, parse_lock
from framework.in_runtime.errors import SelectionError, near_miss
from framework.in_runtime.redaction import masked_note, without_masked
from framework.matrix import Case
from framework.metric_catalogue import METRICS
from framework.models import HardwareProfile, Runtime
from framework.progress import echo
from framework.query import Results
from framework.stats import MetricComparison, compare_samples, smallest_p
from framework.vocabulary import Verdict, interval_bounds, percent

RECENT_RUNS = 'nox -s sql -- "SELECT DISTINCT run_id, runtime FROM runs ORDER BY 1 DESC LIMIT 10"'
_ROWS = """
SELECT run_id, runtime, env_hash, runtime_spec, hardware, hardware_spec, workload, case_id, size, params, phase,
       repeat, outcome, packages, run_started_at, started_at, {metrics}
FROM rows WHERE run_id = $run OR run_group = $run ORDER BY started_at, repeat
"""


@dataclasses.dataclass(frozen=True)
class RecordedCase:
    """One case as the run recorded it: which workload, with which params and size, measured how many times."""

    workload: str
    case_id: str
    params: dict[str, Any]
    size: str | None
    measured: int


@dataclasses.dataclass(frozen=True)
class RecordedGroup:
    """One runtime × hardware of a recorded run: its runtime spec, the lock it ran with, its cases and rows."""

    runtime: Runtime
    env_hash: str
    lock: str
    lock_source: str  # where the lock comes from, in words (the stored lock, or the versions the rows recorded)
    hardware: str
    hardware_spec: dict[str, Any] | None
    cases: list[RecordedCase]
    rows: list[dict[str, Any]]

    @property
    def label(self) -> str:
        return f"{self.runtime.name} × {self.hardware}"

    @property
    def installed(self) -> dict[str, str]:
        """The package versions the run found installed (every row carries them)."""
        for row in self.rows:
            if isinstance(row.get("packages"), dict):
                return dict(row["packages"])
        return {}


@dataclasses.dataclass(frozen=True)
class RecordedRun:
    run_id: str
    started_at: Any
    groups: list[RecordedGroup]


# --------------------------------------------------------------------------------------------------
# Reading the record (pure but for the query)


def load_run(results: Results, run_id: str, case_ids: Sequence[str] | None = None) -> RecordedRun:
    """A run's rows — or a run group's: every shard's — grouped by runtime × hardware × environment, each with the
    lock it ran with; refuses unknown runs and cases."""
    columns = ", ".join(spec.column for spec in METRICS.values())
    names, found = results.sql(_ROWS.format(metrics=columns), {"run": run_id})
    rows = [dict(zip(names, row)) for row in found]
    if not rows:
        raise SelectionError(f"no run {run_id!r} in {results.root} — list recent runs with: {RECENT_RUNS}")
    for row in rows:
        for column in ("runtime_spec", "hardware_spec", "params", "packages"):
            if isinstance(row.get(column), str):
                row[column] = json.loads(row[column])
    if case_ids:
        known = list(dict.fromkeys(str(row["case_id"]) for row in rows))
        for wanted in case_ids:
            if wanted not in known:
                raise SelectionError(near_miss(wanted, known, f"case of run {run_id}"))
        rows = [row for row in rows if row["case_id"] in case_ids]
    # By environment too: the shards of a run group (given its id) may have run one runtime in different builds.
    grouped: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault((str(row["runtime"]), str(row["hardware"]), str(row["env_hash"])), []).append(row)
    groups = [_group(results, run_id, group_rows) for group_rows in grouped.values()]
    return RecordedRun(run_id, rows[0]["run_started_at"], groups)


def _group(results: Results, run_id: str, rows: list[dict[str, Any]]) -> RecordedGroup:
    first = rows[0]
    env_hash = str(first["env_hash"])
    runtime = recorded_runtime(str(first["runtime"]), first.get("runtime_spec"), run_id)
    _, stored = results.sql(
        "SELECT lock FROM environments WHERE env_hash = ? AND lock IS NOT NULL ORDER BY built_at LIMIT 1", [env_hash]
    )
    installed: dict[str, str] = next((r["packages"] for r in rows if isinstance(r.get("packages"), dict)), {})
    lock, source = recorded_lock(stored[0][0] if stored else None, installed, env_hash, run_id)
    return RecordedGroup(
        runtime, env_hash, lock, source, str(first["hardware"]), first.get("hardware_spec"), recorded_cases(rows), rows
    )


def recorded_runtime(name: str, spec: dict[str, Any] | None, run_id: str) -> Runtime:
    """The runtime as the run recorded it (``runtime_spec``), under its recorded name — never today's YAML.

    Fields today's model does not know any more are dropped; the lock, not the spec, decides the packages."""
    if not spec:
        raise SelectionError(
            f"run {run_id} recorded no runtime spec for {name!r} (rows older than the runtime_spec column)"
            " — it cannot be rebuilt; reproduce a newer run"
        )
    spec, dropped = without_masked(spec)
    if dropped:
        echo(masked_note(f"run {run_id}'s runtime {name!r}", dropped))
    known = {key: value for key, value in spec.items() if key in Runtime.model_fields and key != "name"}
    try:
        return Runtime.model_validate({**known, "name": name})
    except ValidationError as error:
        problem = error.errors()[0]
        raise SelectionError(
            f"run {run_id}: the recorded spec of runtime {name!r} is not valid today"
            f" ({'.'.join(str(part) for part in problem['loc'])}: {problem['msg']}) — it cannot be rebuilt"
        ) from None


def recorded_lock(stored: str | None, installed: dict[str, str], env_hash: str, run_id: str) -> tuple[str, str]:
    """(lock, where it comes from): the stored lock; else the versions the rows recorded as installed."""
    if stored and parse_lock(stored):
        how = "stored lock, with hashes" if "--hash=" in stored else "stored lock, pins without hashes (uv pip freeze)"
        return stored, how
    if installed:
        pins = "".join(f"{name}=={version}\n" for name, version in sorted(installed.items()))
        return pins, "no lock stored — the versions its rows recorded as installed"
    raise SelectionError(
        f"run {run_id}: no lock is stored for environment {env_hash} and its rows recorded no package versions"
        " — it cannot be rebuilt"
    )


def recorded_cases(rows: Sequence[dict[str, Any]]) -> list[RecordedCase]:
    """The cases in the order they ran, with the number of measured repeats each recorded."""
    cases: dict[str, RecordedCase] = {}
    measured: dict[str, int] = {}
    for row in rows:
        case_id = str(row["case_id"])
        if case_id not in cases:
            params = row.get("params") if isinstance(row.get("params"), dict) else {}
            cases[case_id] = RecordedCase(str(row["workload"]), case_id, dict(params or {}), row.get("size"), 0)
        measured[case_id] = measured.get(case_id, 0) + (row.get("phase") == "measure")
    return [dataclasses.replace(case, measured=measured[case.case_id]) for case in cases.values()]


def recorded_hardware(name: str, spec: dict[str, Any] | None, catalog: Catalog, run_id: str) -> HardwareProfile:
    """The hardware profile as recorded (``hardware_spec``); else the catalog's profile of that name."""
    if spec:
        try:
            profile: HardwareProfile = TypeAdapter(HardwareProfile).validate_python(spec)
            return profile
        except ValidationError:
            pass
    if name in catalog.hardware:
        return catalog.hardware[name]
    raise SelectionError(
        f"run {run_id} ran on hardware {name!r}, which it did not record in full and matrices/hardware.yaml no"
        " longer declares — declare a profile of that name to reproduce it"
    )


def cases_today(group: RecordedGroup, catalog: Catalog, run_id: str, repeat: int | None) -> list[Case]:
    """The recorded cases with today's workload functions, the recorded params and size, and the recorded number of
    measured repeats (or ``repeat``). A workload that no longer exists is a one-line error."""
    cases = []
    for recorded in group.cases:
        workload = catalog.workloads.get(recorded.workload)
        if workload is None:
            hint = (
                " (stability runs are replayed with nox -s stability -- --replay=FAILURE_ID)"
                if recorded.workload.startswith("stability.")
                else ""
            )
            raise SelectionError(
                f"run {run_id}: workload {recorded.workload!r} (case {recorded.case_id}) is not in today's workloads"
                f"/*.yaml — it cannot be run again{hint}; see what exists with nox -s workloads"
            )
        repeats = repeat or max(recorded.measured, 1)
        cases.append(Case(workload.model_copy(update={"repeats": repeats}), recorded.case_id, recorded.params,
                          recorded.size))  # fmt: skip
    return cases


# --------------------------------------------------------------------------------------------------
# Recorded vs now (pure)


@dataclasses.dataclass(frozen=True)
class SideBySide:
    """One case × metric: the recorded run's measured values and today's, and their comparison."""

    case_id: str
    metric: str
    recorded: tuple[float, ...]
    now: tuple[float, ...]
    passed: tuple[str, str]  # "3/3" recorded, now
    result: MetricComparison | None  # None when a side has fewer than 2 values

    @property
    def medians(self) -> tuple[float | None, float | None]:
        return (
            statistics.median(self.recorded) if self.recorded else None,
            statistics.median(self.now) if self.now else None,
        )


def _measured(rows: Sequence[dict[str, Any]], case_id: str, column: str) -> tuple[float, ...]:
    """Values of a case's measured, passed repeats; NULL metrics left out (never 0)."""
    values = []
    for row in rows:
        if row.get("case_id") != case_id or row.get("phase") != "measure" or row.get("outcome") != "passed":
            continue
        value = row.get(column)
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            values.append(float(value))
    return tuple(values)


def _passed(rows: Sequence[dict[str, Any]], case_id: str) -> str:
    counted = [row for row in rows if row.get("case_id") == case_id and row.get("phase") in ("measure", "setup")]
    return f"{sum(row.get('outcome') == 'passed' for row in counted)}/{len(counted)}"


def side_by_side(
    case_ids: Sequence[str],
    recorded: Sequence[dict[str, Any]],
    now: Sequence[dict[str, Any]],
    metrics: Sequence[str] = tuple(METRICS),
    seed: int = 0,
) -> list[SideBySide]:
    """Per case × metric: recorded (baseline) against now (candidate), by ``compare_samples``."""
    lines = []
    for case_id in case_ids:
        passed = (_passed(recorded, case_id), _passed(now, case_id))
        for name in metrics:
            spec = METRICS[name]
            a, b = _measured(recorded, case_id, spec.column), _measured(now, case_id, spec.column)
            result = compare_samples(a, b, spec, seed=seed) if len(a) >= 2 and len(b) >= 2 else None
            lines.append(SideBySide(case_id, name, a, b, passed, result))
    return lines


def format_side_by_side(lines: Sequence[SideBySide]) -> str:
    """A table: per case its outcomes, then one line per metric — recorded and now (medians), change, 95 % CI."""
    from framework.summary import format_table

    columns = ["case", "passed (then → now)", "metric", "recorded", "now", "change", "95 % CI", "verdict"]
    rows = []
    previous = None
    for line in lines:
        spec = METRICS[line.metric]
        then, now = line.medians
        first = line.case_id != previous
        previous = line.case_id
        result = line.result
        if result is None:
            ratio, interval = "–", f"n = {len(line.recorded)} vs {len(line.now)}"
            verdict = Verdict.UNUSABLE.value
        else:
            ratio, interval = percent(result.ratio), interval_bounds(result.ci_low, result.ci_high)
            verdict = result.verdict
        rows.append(
            [
                line.case_id if first else "",
                " → ".join(line.passed) if first else "",
                spec.label,
                spec.show(then),
                spec.show(now),
                ratio,
                interval,
                verdict,
            ]
        )
    table = format_table(columns, rows, max_width=60, right={"recorded", "now", "change", "95 % CI"})
    blocked = [line.result for line in lines if line.result is not None and line.result.mde is None]
    if blocked:  # the rank test cannot reach alpha with so few repeats: say how many would
        few = blocked[0]
        needed = repeats_for_a_verdict(few.n_a, few.alpha)
        fix = f"reproduce with --repeat={needed} for a verdict" if needed else "the run recorded too few repeats"
        table += f"\ninconclusive: {few.n_a} recorded against {few.n_b} repeats cannot reach p < {few.alpha:g} — {fix}"
    return table


def repeats_for_a_verdict(recorded: int, alpha: float, most: int = 50) -> int | None:
    """The fewest repeats now with which the exact rank test can reach ``alpha`` against ``recorded`` repeats."""
    return next((n for n in range(2, most + 1) if smallest_p(recorded, n) < alpha), None)


def package_difference(recorded: dict[str, str], installed: dict[str, str]) -> str:
    """``same N packages as recorded`` or what differs (``numpy 2.4.4 → 2.3.5, …``)."""
    if not recorded or not installed:
        return "installed packages not compared (one side recorded none)"
    changes = lock_changes(recorded, installed)
    if not changes:
        return f"the same {len(installed)} package versions as the recorded run"
    return f"{len(changes)} package(s) differ from the recorded run: {describe_changes(changes)}"


# --------------------------------------------------------------------------------------------------
# Running it again


@dataclasses.dataclass(frozen=True)
class ReproduceOptions:
    run_id: str
    results_dir: Path
    case_ids: Sequence[str] | None = None
    repeat: int | None = None
    root: Path = ROOT
    address: str | None = None
    rebuild: bool = False


Planned = tuple[RecordedGroup, HardwareProfile, list[Case]]


@dataclasses.dataclass
class GroupOutcome:
    group: RecordedGroup
    environment: BuiltEnvironment
    lines: list[SideBySide] = dataclasses.field(default_factory=list)
    rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @property
    def packages(self) -> str:
        installed: dict[str, str] = next((r["packages"] for r in self.rows if isinstance(r.get("packages"), dict)), {})
        return package_difference(self.group.installed, installed)

    @property
    def not_passed(self) -> int:
        return sum(row.get("outcome") != "passed" for row in self.rows)


@dataclasses.dataclass
class ReproduceReport:
    recorded: RecordedRun
    run_id: str
    outcomes: list[GroupOutcome] = dataclasses.field(default_factory=list)
    unusable: str | None = None  # the health headline of an environment that could not be used


def plan_reproduction(options: ReproduceOptions, catalog: Catalog) -> tuple[RecordedRun, list[Planned]]:
    """The recorded run and, per group, its hardware and cases today: every mistake before anything is built (a
    workload gone, a hardware profile gone)."""
    with Results(options.results_dir) as results:
        recorded = load_run(results, options.run_id, options.case_ids)
    return recorded, [
        (
            group,
            recorded_hardware(group.hardware, group.hardware_spec, catalog, options.run_id),
            cases_today(group, catalog, options.run_id, options.repeat),
        )
        for group in recorded.groups
    ]


def reproduce(options: ReproduceOptions, catalog: Catalog | None = None) -> ReproduceReport:
    """Rebuild each recorded environment from its lock, check it, run its cases again as a new run, compare."""
    from framework.config import load_catalog
    from framework.engine import CaseGroup, new_run_id, record_health, run_group, say
    from framework.environments import build_from_lock
    from framework.health import check_health
    from framework.in_runtime import provenance
    from framework.progress import Progress
    from framework.results import ResultsStore

    recorded, planned = plan_reproduction(options, catalog or load_catalog(options.root))
    store = ResultsStore(options.results_dir)
    started = dt.datetime.now(dt.timezone.utc)
    report = ReproduceReport(recorded, new_run_id(started))
    git = provenance.git_commit(options.root)
    executions = sum(c.workload.warmup + c.workload.repeats for _, _, cases in planned for c in cases)
    with Progress("reproduce", executions, "executions") as progress:
        for group, hardware, cases in planned:
            runtime = group.runtime
            say(f"environment of run {options.run_id} for {runtime.name!r} from its {group.lock_source} …")
            with progress.setup(f"environment for {runtime.name}"):
                environment = build_from_lock(runtime, group.lock, options.root, rebuild=options.rebuild)
            how = "reused" if environment.reused else f"built in {environment.build_seconds:.1f} s"
            same = "the recorded one" if environment.env_hash == group.env_hash else f"recorded: {group.env_hash}"
            say(f"  {how}: {environment.path} (env_hash {environment.env_hash}, {same})")
            store.record_environment(
                {
                    "env_hash": environment.env_hash,
                    "runtime": runtime.name,
                    "runtime_hash": environment.runtime_hash,
                    "python": runtime.python,
                    "built_at": started,
                    "requirements": runtime.requirements,
                    "lock": environment.lock,
                }
            )
            with progress.setup(f"health of {runtime.name}"):
                health = check_health(environment, options.root)
            environment = dataclasses.replace(environment, health=health)
            record_health(options.results_dir, report.run_id, environment, started)
            if not health.usable:
                report.unusable = health.headline(runtime.name)
                return report
            say(f"  health: usable — imports, lockstep versions, a one-worker cluster ({health.seconds:.1f} s)")
            say(f"running {len(cases)} case(s) of run {options.run_id} on hardware {hardware.name!r} …")
            _, rows = run_group(
                CaseGroup(environment, hardware, cases), report.run_id, started, store, options.root,
                options.address, git, progress,
            )  # fmt: skip
            outcome = GroupOutcome(group, environment, rows=rows)
            outcome.lines = side_by_side([case.case_id for case in cases], group.rows, rows)
            report.outcomes.append(outcome)
    return report


def format_report(report: ReproduceReport) -> str:
    """One block per runtime × hardware: where the environment came from, then recorded vs now."""
    recorded = report.recorded
    lines = [f"run {report.run_id} reproduces run {recorded.run_id} (recorded {str(recorded.started_at)[:19]} UTC)"]
    for outcome in report.outcomes:
        group, environment = outcome.group, outcome.environment
        same = "the recorded one" if environment.env_hash == group.env_hash else f"recorded: {group.env_hash}"
        lines.append(
            f"{group.label} — environment {environment.env_hash} ({same}) from the {group.lock_source};"
            f" {outcome.packages}"
        )
        lines.append(format_side_by_side(outcome.lines))
    return "\n".join(lines)
