"""A/B over rows already in the results store: each side chosen by an SQL filter, nothing run (``--from-results``).

The same judging as an interleaved comparison (:func:`framework.stats.compare_samples` per case × metric), on the
measured, passed repeats the filters select — by default each side's newest run of every case. The comparison is
recorded like any other, with mode ``from-results``.

Each side runs on one hardware profile and one machine class (:mod:`framework.machines`; a filter may name
``machine_class``). Sides on different machine classes are refused unless ``across_machines`` is given: their
timings differ by the machine as much as by what is compared. Given, the labels name both classes.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from framework.compare import (
    BASELINE,
    CANDIDATE,
    CaseMetric,
    ComparisonReport,
    count_outcomes,
    count_overloaded,
    env_hashes,
    missing_reason,
    record_identity,
    record_rows,
)
from framework.engine import new_run_id
from framework.in_runtime.errors import SelectionError, near_miss
from framework.machines import MACHINES_FILE, class_sql, join_sql, load_policy, register
from framework.metric_catalogue import METRICS
from framework.records import write_record
from framework.stats import compare_samples

if TYPE_CHECKING:
    from framework.query import Results

_SELECT = """
SELECT workload, case_id, size, hardware, machine_class, runtime, run_id, repeat, phase, outcome, missing,
       runtime_hash, env_hash, packages, load_avg_1m, overloaded, {columns}
FROM (SELECT r.*, {machine_class} AS machine_class FROM cases r {join})
WHERE ({where}) {latest}
ORDER BY run_started_at, started_at
"""
_LATEST = "QUALIFY run_started_at = max(run_started_at) OVER (PARTITION BY hardware, case_id, size)"


def from_results(
    results_dir: Path,
    baseline: tuple[str, str],
    candidate: tuple[str, str],
    *,
    metrics: tuple[str, ...] = tuple(METRICS),
    min_effects: dict[str, float] | None = None,
    alpha: float = 0.01,
    latest_only: bool = True,
    workloads: Sequence[str] | None = None,
    record: bool = True,
    across_machines: bool = False,
    machines_file: Path = MACHINES_FILE,
) -> ComparisonReport:
    """Compare rows already stored. Each side is (label, SQL filter over the ``cases`` view).

    ``latest_only`` keeps each side's newest run per case (the default; ``--all-runs`` pools the whole history
    the filter selects). Nothing runs; the comparison is recorded like any other (mode ``from-results``).
    """
    from framework.query import Results

    rows: dict[str, list[dict[str, Any]]] = {}
    with Results(results_dir) as results:
        register(results, load_policy(machines_file))
        for side, (label, where) in ((BASELINE, baseline), (CANDIDATE, candidate)):
            rows[side] = _side_rows(results, side, label, where, metrics, latest_only, workloads)
    options = _FromResults(metrics, min_effects or {}, alpha)
    lines = []
    hardware_label = rows[BASELINE][0]["hardware"]
    if rows[CANDIDATE][0]["hardware"] != hardware_label:
        hardware_label = f"{hardware_label} vs {rows[CANDIDATE][0]['hardware']}"
    machine = {side: str(rows[side][0]["machine_class"]) for side in rows}
    if machine[BASELINE] != machine[CANDIDATE]:
        if not across_machines:
            raise SelectionError(
                f"the baseline ({baseline[0]}) ran on machine class {machine[BASELINE]}, the candidate"
                f" ({candidate[0]}) on {machine[CANDIDATE]} — a difference would be the machine's as much as the"
                " runtime's; compare rows of one class (a filter may name machine_class), pool the machines in"
                " matrices/machines.yaml if they are alike, or pass --across-machines to compare them anyway"
            )
        hardware_label = " vs ".join(f"{rows[side][0]['hardware']}@{machine[side]}" for side in (BASELINE, CANDIDATE))
        baseline = (f"{baseline[0]} [{machine[BASELINE]}]", baseline[1])
        candidate = (f"{candidate[0]} [{machine[CANDIDATE]}]", candidate[1])
    keys = dict.fromkeys((row["workload"], row["case_id"], row["size"]) for row in rows[BASELINE])
    candidates = {(row["workload"], row["case_id"], row["size"]) for row in rows[CANDIDATE]}
    for workload, case_id, size in keys:
        if (workload, case_id, size) not in candidates:
            continue
        for name in options.metrics:
            spec = METRICS[name]
            a = [float(r[spec.column]) for r in rows[BASELINE] if _sample(r, case_id, size, spec.column)]
            b = [float(r[spec.column]) for r in rows[CANDIDATE] if _sample(r, case_id, size, spec.column)]
            line = CaseMetric(workload, case_id, size, hardware_label, name, None, None, (tuple(a), tuple(b)))
            if len(a) < 2 or len(b) < 2:
                reason = missing_reason(rows[BASELINE] + rows[CANDIDATE], case_id, spec.column)
                counts = f"{len(a)} baseline and {len(b)} candidate repeat(s) passed with a value"
                lines.append(dataclasses.replace(line, missing=f"{counts}{'; ' + reason if reason else ''}"))
                continue
            result = compare_samples(a, b, spec, min_effect=options.min_effects.get(name), alpha=alpha)
            lines.append(dataclasses.replace(line, result=result))
    if not lines:
        raise SelectionError(
            f"the {baseline[0]} and {candidate[0]} rows share no case — compare sides that ran the same workloads"
        )
    run_ids = {side: sorted({str(row["run_id"]) for row in rows[side]}) for side in rows}
    report = ComparisonReport(
        new_run_id(),
        "from-results",
        baseline[0],
        candidate[0],
        lines,
        count_outcomes(rows),
        run_ids,
        overloaded=count_overloaded(rows),
        env_hashes=env_hashes(rows),
    )
    if record:
        common = record_identity(report, rows, {})
        report.record = write_record(results_dir, "comparisons", report.comparison_id, record_rows(report, common))
    return report


def _side_rows(
    results: Results,
    side: str,
    label: str,
    where: str,
    metrics: tuple[str, ...],
    latest_only: bool,
    workloads: Sequence[str] | None,
) -> list[dict[str, Any]]:
    """One side's measured rows, each with its machine class; refused when none, or several profiles or classes."""
    columns = ", ".join(METRICS[name].column for name in metrics)
    latest = _LATEST if latest_only else ""
    query = _SELECT.format(columns=columns, where=where, latest=latest, machine_class=class_sql(), join=join_sql())
    names, found = results.sql(query)
    side_rows = [dict(zip(names, row)) for row in found]
    if workloads:
        known = {str(row["workload"]) for row in side_rows} | {str(row["case_id"]) for row in side_rows}
        side_rows = [row for row in side_rows if _selected(row, workloads)]
        if known and not side_rows:  # a typo, not an empty comparison
            raise SelectionError(
                f"--workload: {near_miss(workloads[0], known, f'workload or case of the {side} rows')}"
            )
    if not side_rows:
        raise SelectionError(
            f"no measured rows match the {side} filter {where!r} ({label}) — check it with"
            ' nox -s sql -- "SELECT runtime, hardware, case_id, count(*) FROM cases'
            f' WHERE {where} GROUP BY ALL"'
        )
    hardware = sorted({str(row["hardware"]) for row in side_rows})
    if len(hardware) > 1:
        raise SelectionError(
            f"the {side} rows ({label}) span hardware {', '.join(hardware)} — add e.g."
            f" \"AND hardware = '{hardware[0]}'\" to its filter"
        )
    classes = sorted({str(row["machine_class"]) for row in side_rows})
    if len(classes) > 1:
        raise SelectionError(
            f"the {side} rows ({label}) ran on machine classes {', '.join(classes)} — add e.g."
            f" \"AND machine_class = '{classes[-1]}'\" to its filter (matrices/machines.yaml pools classes)"
        )
    for row in side_rows:
        if isinstance(row.get("packages"), str):
            row["packages"] = json.loads(row["packages"])
    return side_rows


@dataclasses.dataclass(frozen=True)
class _FromResults:
    metrics: tuple[str, ...]
    min_effects: dict[str, float]
    alpha: float


def _sample(row: dict[str, Any], case_id: str, size: str | None, column: str) -> bool:
    return (
        row["case_id"] == case_id
        and row["size"] == size
        and row["outcome"] == "passed"
        and row.get(column) is not None
        and not (isinstance(row[column], float) and math.isnan(row[column]))
    )


def _selected(row: dict[str, Any], workloads: Sequence[str]) -> bool:
    return any(row["workload"] == name or row["case_id"] == name for name in workloads)


def side_filter(name: str) -> str:
    """The default SQL filter of a side named on the command line: its runtime's rows."""
    return "runtime = '" + name.replace("'", "''") + "'"
