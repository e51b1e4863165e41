"""Regression detection over history: the series the results hold, the changes in them, and which are new.

A *series* is one metric of one case (and size) on one hardware profile and machine class (:mod:`framework.machines`:
a run on another kind of machine starts a series of its own, with a note, never a change point), along run dates
(one series per runtime) or along a package's versions (the runs of every runtime that has the package, ordered by
its version, then by date). Each run is a point; :mod:`framework.changepoints` finds where the level moved. A
change a person has looked at and accepted (``matrices/accepted.yaml``) is reported as accepted, not open.

A scan writes its findings to ``results/regressions/<scan_id>.parquet`` (the ``regressions`` view). A finding
is *new* when no earlier scan reported it (same series, first run after the change, direction) with the same
or a stronger status: a pending change that becomes open is new once, and a scan restricted to a few
workloads does not make every other finding new the next time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import re
import secrets
from pathlib import Path
from typing import Any, Literal

from packaging.version import InvalidVersion, Version

from framework import step_summary
from framework.accepted import ACCEPTED_FILE, AcceptedChange, load_accepted, normalise_package
from framework.changepoints import ChangePoint, detect
from framework.in_runtime.errors import SelectionError, near_miss
from framework.in_runtime.redaction import redact_text
from framework.machines import MACHINES_FILE, class_sql, join_sql, load_policy, register
from framework.metric_catalogue import METRICS, metric
from framework.query import Results
from framework.records import AB_ROUND_RUNS_SQL, write_record
from framework.vocabulary import change_with_interval, percent

MIN_RUNS = 4  # fewer runs in a series: nothing can be judged yet (two on each side of a change)
Along = Literal["date", "version"]
Status = Literal["open", "pending", "accepted"]


# --------------------------------------------------------------------------------------------------
# Series from the results store


@dataclasses.dataclass(frozen=True)
class RunPoint:
    """One run of one case: when, which runtime and package versions, and each metric's measured values."""

    run_id: str
    runtime: str
    at: dt.datetime
    versions: dict[str, str]
    values: dict[str, list[float | None]]  # metric → the passed repeats' values (None: not measured, never 0)

    def measured(self, metric_name: str) -> bool:
        return any(value is not None for value in self.values[metric_name])


@dataclasses.dataclass(frozen=True)
class Series:
    hardware: str
    runtime: str  # '*' along versions
    workload: str
    case_id: str
    size: str
    points: list[RunPoint]
    machine_class: str = ""

    def key(self, metric_name: str) -> str:
        return f"{self.hardware}@{self.machine_class}|{self.runtime}|{self.case_id}|{self.size}|{metric_name}"

    def classless_key(self, metric_name: str) -> str:
        """The key scans made before machine classes: their findings are still known (not new again)."""
        return f"{self.hardware}|{self.runtime}|{self.case_id}|{self.size}|{metric_name}"


@dataclasses.dataclass(frozen=True)
class MachineNote:
    """A machine class first seen on a hardware profile whose history had runs on other classes already."""

    hardware: str
    machine_class: str
    run_id: str
    at: dt.datetime
    earlier: tuple[str, ...]  # the classes of the profile seen before it

    def sentence(self) -> str:
        return (
            f"machine class {self.machine_class} first seen on {self.hardware} in run {self.run_id}"
            f" ({self.at:%Y-%m-%d}): new series, not compared with earlier runs (on {', '.join(self.earlier)})"
        )


@dataclasses.dataclass(frozen=True)
class ScanOptions:
    results_dir: Path
    along: Along = "date"
    package: str = "dask"
    metrics: tuple[str, ...] = tuple(METRICS)
    workloads: tuple[str, ...] = ()  # workload names or case ids; empty (and no tags): all
    tags: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)  # tag → its workloads (--tag)
    hardware: tuple[str, ...] = ()
    runtimes: tuple[str, ...] = ()
    alpha: float = 0.01
    persistence: int = 2
    min_effects: dict[str, float] = dataclasses.field(default_factory=dict)  # metric → relative, e.g. 0.10
    accepted_file: Path = ACCEPTED_FILE
    machines_file: Path = MACHINES_FILE
    permutations: int = 999
    seed: int = 0


_ROWS_SQL = """
SELECT r.hardware, r.runtime, r.workload, r.case_id, coalesce(r.size, '') AS size, r.run_id, r.run_started_at,
       {machine_class} AS machine_class, {columns}
FROM cases r {join} WHERE r.outcome = 'passed' AND r.run_id NOT IN ({ab_rounds})
ORDER BY r.run_started_at, r.run_id, r.repeat
"""
# The package list is the same for every row of a run × runtime × hardware: read and parse it once per run.
_VERSIONS_SQL = """
SELECT run_id, runtime, hardware, any_value(packages), any_value(dask_version), any_value(distributed_version)
FROM cases GROUP BY ALL
"""


def load_series(results: Results, options: ScanOptions) -> list[Series]:
    """Passed measured repeats grouped into runs. Failed and timed-out repeats are not measurements."""
    register(results, load_policy(options.machines_file))
    columns = ", ".join(f"r.{spec.column}" for spec in METRICS.values())
    query = _ROWS_SQL.format(columns=columns, machine_class=class_sql(), join=join_sql(), ab_rounds=AB_ROUND_RUNS_SQL)
    rows = results.arrow(query).to_pylist()
    _check_filters(rows, options)
    versions = {tuple(run[:3]): _versions(*run[3:]) for run in results.sql(_VERSIONS_SQL)[1]}
    package = normalise_package(options.package)
    grouped: dict[tuple[str, str, str, str, str], dict[tuple[str, str], RunPoint]] = {}
    for row in rows:
        if not _selected(row, options):
            continue
        runtime = "*" if options.along == "version" else row["runtime"]
        key = (row["hardware"], row["machine_class"], runtime, row["case_id"], row["size"])
        by_run = grouped.setdefault(key, {})
        point = by_run.get((row["run_id"], row["runtime"]))
        if point is None:
            run_versions = versions[(row["run_id"], row["runtime"], row["hardware"])]
            point = RunPoint(
                row["run_id"], row["runtime"], row["run_started_at"], run_versions, {m: [] for m in METRICS}
            )
            by_run[(row["run_id"], row["runtime"])] = point
        for name, spec in METRICS.items():
            value = row[spec.column]
            point.values[name].append(None if value is None else float(value))
    workload_of = {row["case_id"]: row["workload"] for row in rows}
    found = []
    for (hardware, machine_class, runtime, case_id, size), by_run in sorted(grouped.items()):
        points = list(by_run.values())
        if options.along == "version":  # runs without the package cannot be placed, so they are left out
            points = sorted((p for p in points if package in p.versions), key=lambda p: (_version(p, package), p.at))
        found.append(Series(hardware, runtime, workload_of[case_id], case_id, size, points, machine_class))
    return found


def machine_notes(all_series: list[Series]) -> list[MachineNote]:
    """Where a hardware profile's history moves to another machine class: each class after its first, with the run
    that started it. Its runs are a series of their own (never a change point in the earlier one)."""
    first: dict[str, dict[str, RunPoint]] = {}
    for series in all_series:
        seen = first.setdefault(series.hardware, {})
        for point in series.points:
            known = seen.get(series.machine_class)
            if known is None or (point.at, point.run_id) < (known.at, known.run_id):
                seen[series.machine_class] = point
    notes = []
    for hardware, classes in sorted(first.items()):
        ordered = sorted(classes.items(), key=lambda item: (item[1].at, item[1].run_id))
        for index, (machine_class, point) in enumerate(ordered[1:], start=1):
            earlier = tuple(name for name, _ in ordered[:index])
            notes.append(MachineNote(hardware, machine_class, point.run_id, point.at, earlier))
    return notes


def _versions(packages: str | None, dask: str | None, distributed: str | None) -> dict[str, str]:
    try:
        versions = {normalise_package(name): str(value) for name, value in json.loads(packages or "{}").items()}
    except (ValueError, AttributeError):
        versions = {}
    for name, version in (("dask", dask), ("distributed", distributed)):
        if version and name not in versions:
            versions[name] = version
    return versions


def _version(point: RunPoint, package: str) -> tuple[int, Version | str]:
    text = point.versions[package]
    try:
        return (1, Version(text))
    except InvalidVersion:
        return (0, text)  # unparsable versions first, in text order, rather than dropped silently


def _selected(row: dict[str, Any], options: ScanOptions) -> bool:
    return (
        (not options.hardware or any(_matches(row["hardware"], name) for name in options.hardware))
        and (not options.runtimes or any(_matches(row["runtime"], name) for name in options.runtimes))
        and (
            not (options.workloads or options.tags)
            or any(_matches(row["workload"], name) or row["case_id"] == name for name in options.workloads)
            or any(row["workload"] in names for names in options.tags.values())
        )
    )


def _matches(value: str, wanted: str) -> bool:
    """A name, or a shell-style pattern with ``*`` (``--runtime='bisect-*'``: every release a sweep built).
    Case ids contain brackets, so only ``*`` is a wildcard."""
    if "*" not in wanted:
        return value == wanted
    return re.fullmatch(".*".join(re.escape(part) for part in wanted.split("*")), value) is not None


def _check_filters(rows: list[dict[str, Any]], options: ScanOptions) -> None:
    """A filter naming nothing in the results is a mistake (a typo), not an empty history."""
    known = {
        "hardware profile": ({row["hardware"] for row in rows}, options.hardware),
        "runtime": ({row["runtime"] for row in rows}, options.runtimes),
        "workload": ({row["workload"] for row in rows} | {row["case_id"] for row in rows}, options.workloads),
    }
    for what, (names, wanted) in known.items():
        for name in wanted:
            if not any(_matches(known_name, name) for known_name in names):
                raise SelectionError(f"{near_miss(name, names, what)} (in the measured runs of {options.results_dir})")
    for tag, members in options.tags.items():
        if not known["workload"][0] & set(members):
            raise SelectionError(
                f"--tag={tag}: no measured runs of its workloads ({', '.join(members)}) in {options.results_dir}"
                " — run them first: nox -s matrix -- --tag=" + tag
            )


# --------------------------------------------------------------------------------------------------
# The scan


@dataclasses.dataclass(frozen=True)
class Finding:
    series: Series
    metric: str
    change: ChangePoint
    before: RunPoint  # the last run before the change that measured the metric
    after: RunPoint  # the first run after it
    status: Status
    new: bool = False
    accepted: AcceptedChange | None = None
    package: str = "dask"

    @property
    def key(self) -> str:
        return self.series.key(self.metric)

    @property
    def versions(self) -> tuple[str | None, str | None]:
        package = normalise_package(self.package)
        return self.before.versions.get(package), self.after.versions.get(package)

    def sentence(self) -> str:
        """'peak memory of parquet_roundtrip (tiny) on local / latest rose +38 % (95 % CI +31 % to +45 %), 465 MiB →
        642 MiB…'."""
        spec, change, series = METRICS[self.metric], self.change, self.series
        text = f"{spec.label} of {series.case_id}" + (f" ({series.size})" if series.size else "")
        text += f" on {series.hardware} [{series.machine_class}]"
        text += f" / {series.runtime}" if series.runtime != "*" else ""
        text += " rose " if change.direction == "regression" else " fell "
        if math.isfinite(change.ratio):
            if change.ci_low is not None and change.ci_high is not None:
                text += change_with_interval(change.ratio, change.ci_low, change.ci_high)
            else:
                text += percent(change.ratio)
            text += ", "
        text += f"{spec.show(change.before_median)} → {spec.show(change.after_median)}, at run {self.after.run_id}"
        text += f" of {self.after.runtime}" if series.runtime == "*" else ""
        before_version, after_version = self.versions
        if before_version != after_version:
            text += f" ({self.package} {before_version or '?'} → {after_version or '?'})"
        elif after_version:
            text += f" ({self.package} {after_version} on both sides)"
        text += f", p = {change.p_value:.2g}" if change.p_value >= 0.001 else f", p = {change.p_value:.1e}"
        text += f", {_count(change.runs_before, 'run')} before, {change.runs_after} after"
        if self.status == "pending":
            text += " — pending: too few runs after it to call it yet"
        if self.accepted is not None:
            text += f" — accepted by {self.accepted.accepted_by}: {self.accepted.reason}"
        return text


@dataclasses.dataclass(frozen=True)
class ScanReport:
    scan_id: str
    options: ScanOptions
    n_series: int  # series × metric with at least one measured run
    n_short: int  # of which with fewer than MIN_RUNS runs (nothing to judge yet)
    findings: list[Finding]
    record: Path | None  # the regressions/<scan_id>.parquet written
    unmatched: list[int]  # positions in accepted.yaml of entries that matched no change
    machines: list[MachineNote] = dataclasses.field(default_factory=list)  # classes that started a new series

    def having(self, status: Status, direction: str | None = None) -> list[Finding]:
        return [f for f in self.findings if f.status == status and direction in (None, f.change.direction)]


_STRENGTH = {"pending": 1, "open": 2}


def scan(options: ScanOptions, *, write: bool = True) -> ScanReport:
    """Find the changes in every selected series, mark accepted and new ones, and record the findings."""
    # By name or column; an unknown one → SelectionError with the near miss.
    options = dataclasses.replace(options, metrics=tuple(dict.fromkeys(metric(name).name for name in options.metrics)))
    accepted = load_accepted(options.accepted_file)
    scanned_at = dt.datetime.now(dt.timezone.utc)
    scan_id = scanned_at.strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)
    with Results(options.results_dir) as results:
        all_series = load_series(results, options)
        _, earlier = results.sql("SELECT series, change_run_id, direction, status FROM regressions")
    reported: dict[tuple[str, str, str], int] = {}
    for key, run_id, direction, status in earlier:
        reported[(key, run_id, direction)] = max(reported.get((key, run_id, direction), 0), _STRENGTH.get(status, 0))
    findings: list[Finding] = []
    used: set[int] = set()
    n_series = n_short = 0
    for series in all_series:
        for name in options.metrics:
            measured = [i for i, point in enumerate(series.points) if point.measured(name)]
            n_series += bool(measured)
            n_short += 0 < len(measured) < MIN_RUNS
            changes = detect(
                [point.values[name] for point in series.points],
                METRICS[name],
                alpha=options.alpha,
                persistence=options.persistence,
                min_effect=options.min_effects.get(name),
                # enough permutations for p-values well below alpha (a smaller alpha needs more of them)
                permutations=max(options.permutations, math.ceil(10 / options.alpha) - 1),
                seed=options.seed,
            )
            for change in changes:
                before = series.points[max(i for i in measured if i < change.index)]
                after = series.points[change.index]
                finding = Finding(series, name, change, before, after, change.status, package=options.package)
                match = next((i for i, entry in enumerate(accepted) if entry.matches(finding)), None)
                if match is not None:
                    used.add(match)
                    finding = dataclasses.replace(finding, status="accepted", accepted=accepted[match])
                else:
                    strength = max(
                        reported.get((key, finding.after.run_id, change.direction), 0)
                        for key in (finding.key, series.classless_key(name))
                    )
                    finding = dataclasses.replace(finding, new=strength < _STRENGTH[change.status])
                findings.append(finding)
    rows = [_row(finding, scan_id, scanned_at, options) for finding in findings]
    record = write_record(options.results_dir, "regressions", scan_id, rows) if write else None
    unmatched = [i for i in range(len(accepted)) if i not in used]
    return ScanReport(scan_id, options, n_series, n_short, findings, record, unmatched, machine_notes(all_series))


def _row(finding: Finding, scan_id: str, scanned_at: dt.datetime, options: ScanOptions) -> dict[str, Any]:
    change, series, package = finding.change, finding.series, normalise_package(options.package)
    before_version, after_version = finding.versions
    points = [
        {
            "run_id": p.run_id,
            "runtime": p.runtime,
            "at": p.at.isoformat(),
            "version": p.versions.get(package),
            "values": p.values[finding.metric],
        }
        for p in series.points
    ]
    return {
        "scan_id": scan_id,
        "scanned_at": scanned_at,
        "series": finding.key,
        "along": options.along,
        "hardware": series.hardware,  # its machine class: in the series key and in detail
        "runtime": finding.after.runtime,  # the series' runtime along dates; the run's along versions
        "workload": series.workload,
        "case_id": series.case_id,
        "size": series.size or None,
        "metric": finding.metric,
        "direction": change.direction,
        "status": finding.status,
        "new": finding.new,
        "change_run_id": finding.after.run_id,
        "change_at": finding.after.at,
        "before_version": before_version,
        "after_version": after_version,
        "before_median": change.before_median,
        "after_median": change.after_median,
        "ratio": change.ratio,
        "ci_low": change.ci_low,
        "ci_high": change.ci_high,
        "p_value": change.p_value,
        "runs_before": change.runs_before,
        "runs_after": change.runs_after,
        "sentence": finding.sentence(),
        "detail": {
            "package": options.package,
            "machine_class": series.machine_class,
            "alpha": options.alpha,
            "persistence": options.persistence,
            "min_effect": options.min_effects.get(finding.metric, METRICS[finding.metric].min_effect),
            "accepted": finding.accepted.model_dump() if finding.accepted else None,
            "points": points,
        },
    }


# --------------------------------------------------------------------------------------------------
# Reports and the command line


def _headline(report: ScanReport) -> str:
    options, regressions = report.options, report.having("open", "regression")
    along = f"{options.package} versions" if options.along == "version" else "run dates"
    improvements = len(report.having("open", "improvement"))
    return (
        f"{_count(len(regressions), 'open regression')} ({sum(f.new for f in regressions)} new),"
        f" {_count(improvements, 'improvement')}, {len(report.having('pending'))} pending,"
        f" {len(report.having('accepted'))} accepted — {report.n_series} series along {along}"
        f" ({report.n_short} with fewer than {MIN_RUNS} runs), alpha {options.alpha:g},"
        f" persistence {_count(options.persistence, 'run')}"
    )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _sections(report: ScanReport) -> list[tuple[str, list[Finding]]]:
    return [
        ("Open regressions", report.having("open", "regression")),
        ("Improvements", report.having("open", "improvement")),
        ("Pending (too few runs after the change to call it; not failing)", report.having("pending")),
        (f"Accepted ({report.options.accepted_file.name})", report.having("accepted")),
    ]


def markdown(report: ScanReport) -> str:
    """A GitHub job summary: the headline, then a table per kind of finding with a plain sentence each."""
    lines = [f"## Regressions over history — scan `{report.scan_id}`", "", _headline(report) + ".", ""]
    for title, findings in _sections(report):
        if findings:
            lines += [f"### {title}", "", "| | finding |", "|---|---|"]
            for finding in findings:
                mark = "**new**" if finding.new else finding.status
                lines.append("| " + mark + " | " + finding.sentence().replace("|", "\\|") + " |")
            lines.append("")
    if not report.findings:
        lines += ["No change found.", ""]
    if report.machines:
        lines += ["### New machine classes", ""] + [f"- {note.sentence()}" for note in report.machines] + [""]
    return "\n".join(lines)


def report_text(report: ScanReport) -> str:
    """What the command prints: open regressions with their evidence first, then the rest."""
    lines = [f"regression scan {report.scan_id}: {_headline(report)}"]
    for title, findings in _sections(report):
        if findings:
            lines.append(f"{title.split(' (')[0].lower()}:")
            for finding in findings:
                lines.append(f"  {'NEW ' if finding.new else ''}{finding.sentence()}")
                lines += [f"    {line}" for line in _attribute_hint(finding)]
    lines += [f"note: {note.sentence()}" for note in report.machines]
    for index in report.unmatched:
        lines.append(
            f"note: {report.options.accepted_file.name}: accepted.{index} matches no change found by this scan"
        )
    return "\n".join(lines)


def _attribute_hint(finding: Finding) -> list[str]:
    """An open regression between runs whose package versions differ: the command that names the package(s)."""
    from framework.attribute.hints import hint, versions_differ

    if finding.status != "open" or finding.change.direction != "regression":
        return []
    if not versions_differ(finding.before.versions, finding.after.versions):
        return []
    return [hint(finding.before.run_id, finding.after.run_id, finding.series.case_id, finding.metric)]


FailOn = Literal["new", "open", "never"]


def failing(report: ScanReport, fail_on: FailOn) -> list[Finding]:
    """The open regressions that fail the scan: the new ones, all of them, or none."""
    regressions = report.having("open", "regression")
    return {"new": [f for f in regressions if f.new], "open": regressions, "never": []}[fail_on]


def write_summary(report: ScanReport, target: Path) -> None:
    """The scan's Markdown summary at ``target`` (and in GitHub's step summary when it runs there)."""
    summary = redact_text(markdown(report))  # names and versions only, but a secret the process knows never leaves
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(summary, encoding="utf-8")  # a view of the latest scan; the Parquet record is the history
    step_summary.add_markdown(summary)
