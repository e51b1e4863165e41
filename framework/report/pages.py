"""The site-level pages: overview, the lists of workloads, runs and comparisons, and stability."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from framework.report.data import WorkloadHistory, page_name, section_anchor
from framework.report.environment import EnvironmentRecords, unusable_cell
from framework.report.layout import (
    MISSING,
    Context,
    cells,
    link,
    overloaded_note,
    page,
    status,
    table,
    table_row,
    text,
    when,
)

NO_RUNS = "No runs yet — <code>nox -s matrix -- --runtime=latest</code> records the first."


def overview(
    ctx: Context,
    *,
    answer: str,
    runs: Sequence[dict[str, Any]],
    verdicts: Sequence[dict[str, Any]],
    scan: Sequence[dict[str, Any]],
    scans: Sequence[dict[str, Any]],
    latest: Sequence[dict[str, Any]],
    comparisons: Sequence[dict[str, Any]],
    records: EnvironmentRecords,
) -> str:
    """``answer`` first (:mod:`framework.report.overview`, :mod:`framework.report.changes`): go or no-go per runtime."""
    if not runs and not verdicts and not comparisons:
        body = f"<h1>Overview</h1>{answer}<p>{NO_RUNS}</p>"
        return page(ctx, title="Overview", depth=0, active="overview", body=body)
    parts = ["<h1>Overview</h1>", answer, _latest_runs(runs, records), _verdicts(verdicts)]
    parts += [_regressions(scan, scans), _matrix(latest, records), _recent_comparisons(comparisons)]
    return page(ctx, title="Overview", depth=0, active="overview", body="\n".join(parts))


def _verdicts(verdicts: Sequence[dict[str, Any]]) -> str:
    rows = []
    for verdict in verdicts:
        word = "blessed" if verdict["blessed"] else "not blessed"
        reasons = "".join(f"<li>{escape(str(reason))}</li>" for reason in verdict["reasons"])
        passed = sum(1 for check in verdict["checks"] if check.get("passed"))
        judged = sum(1 for check in verdict["checks"] if check.get("passed") is not None)
        detail = f"<ul>{reasons}</ul>" if reasons else f"every check passed ({passed} of {judged})"
        rows.append(
            table_row(
                text(verdict["runtime"]),
                f'<span class="badge {"passed" if verdict["blessed"] else "failed"}">{word}</span>',
                text(verdict["baseline"]),
                text(verdict["criteria"]),
                text(verdict["hardware"]),
                when(verdict["decided_at"]),
                detail,
            )
        )
    headers = ["runtime", "verdict", "baseline", "criteria", "hardware", "decided (UTC)", "reasons"]
    return '<h2 id="verdicts">Verdicts</h2>' + table(headers, rows, empty="No blessing verdicts yet.")


def _latest_runs(runs: Sequence[dict[str, Any]], records: EnvironmentRecords) -> str:
    newest: dict[tuple[str, str], dict[str, Any]] = {}
    for run in runs:  # newest first
        newest.setdefault((run["runtime"], run["hardware"]), run)
    newest = {key: whole_group(run, runs) for key, run in newest.items()}
    rows = [
        table_row(
            text(runtime),
            text(hardware),
            link(f"runs/{run['page']}.html#{section_anchor(runtime, hardware)}", escape(run["run_id"]))
            + run.get("group_note", ""),
            when(run["started_at"]),
            text(run["dask_version"]),
            text(run["distributed_version"]),
            *_outcome_cells(run, records),
        )
        for (runtime, hardware), run in sorted(newest.items())
    ]
    headers = ["runtime", "hardware", "latest run", "started (UTC)", "dask", "distributed", "cases", "repeats passed"]
    return "<h2>Latest run of each runtime × hardware</h2>" + table(headers, rows, empty=NO_RUNS)


_SUMMED = (
    "cases", "passed", "failed", "error", "timeout", "interrupted", "repeats_passed", "repeats", "n_rows", "overloaded",
)  # fmt: skip


def whole_group(run: dict[str, Any], runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A shard's run line → its run group's, for the same runtime × hardware: the counts of every shard present
    summed, and a note naming the group and its shards (a run that was not split is returned as it is)."""
    if not run.get("shard"):
        return run
    parts = [
        other
        for other in runs
        if other.get("run_group") == run["run_group"]
        and (other["runtime"], other["hardware"]) == (run["runtime"], run["hardware"])
    ]
    whole = dict(run)
    for name in _SUMMED:
        whole[name] = sum(part[name] or 0 for part in parts)
    whole["started_at"] = min(part["started_at"] for part in parts)
    whole["max_load"] = max((part["max_load"] for part in parts if part.get("max_load") is not None), default=None)
    expected = str(run["shard"]).partition("/")[2]
    seen = sorted({str(part["shard"]).partition("/")[0] for part in parts}, key=lambda k: (len(k), k))
    missing = "" if len(seen) == int(expected or 0) else " — not every shard is here"
    whole["group_note"] = (
        f'<br><span class="note">run group {escape(str(run["run_group"]))}: shards {escape(", ".join(seen))} of'
        f" {escape(expected)}{missing}</span>"
    )
    return whole


def _outcome_cells(run: dict[str, Any], records: EnvironmentRecords) -> tuple[str, str]:
    """A run's cases and repeats passed; for a run whose runtime was unusable, that and why (none of it ran)."""
    check = records.of_run(run["run_id"], run["runtime"])
    if check is not None and not check["usable"]:
        return unusable_cell(check), MISSING
    return _counts(run), f"{run['repeats_passed']}/{run['repeats']}{overloaded_note(run, short=True)}"


def _counts(run: dict[str, Any]) -> str:
    """'3 of 4 cases passed, 1 timeout'."""
    every = "passed" if run["passed"] == run["cases"] else ""
    shown = f'<span class="count {every}">{run["passed"]} of {run["cases"]} cases passed</span>'
    kinds = ("failed", "error", "timeout", "interrupted")
    others = [f'<span class="count {kind}">{run[kind]} {kind}</span>' for kind in kinds if run.get(kind)]
    return ", ".join([shown, *others])


def _regressions(scan: Sequence[dict[str, Any]], scans: Sequence[dict[str, Any]]) -> str:
    head = "<h2>Latest regressions</h2>"
    if not scans:
        return head + '<p class="empty">No regression scan yet — <code>nox -s regressions</code> runs one.</p>'
    latest = scans[0]
    shown = [finding for finding in scan if finding["status"] in ("open", "pending")]
    other = len(scan) - len(shown)
    intro = (
        f"<p>Scan <code>{escape(latest['scan_id'])}</code> ({when(latest['scanned_at'])} UTC, along "
        f"{escape(str(latest['along']))}): {len(shown)} open or pending"
        + (f", {other} other finding(s) (accepted or improvements)" if other else "")
        + f". {len(scans)} scan(s) in all.</p>"
    )
    rows = [
        table_row(
            status(finding["status"]),
            text(finding["direction"]),
            link(f"workloads/{page_name(finding['workload'])}.html", escape(finding["workload"])),
            escape(finding["sentence"] or ""),
            link(f"runs/{page_name(finding['change_run_id'])}.html", escape(finding["change_run_id"])),
        )
        for finding in shown
    ]
    headers = ["status", "direction", "workload", "finding", "first run after"]
    return head + intro + table(headers, rows, empty="The latest scan found nothing open or pending.")


def _matrix(latest: Sequence[dict[str, Any]], records: EnvironmentRecords) -> str:
    coverage: dict[tuple[str, str], int] = {}
    for row in latest:
        coverage[row["runtime"], row["hardware"]] = coverage.get((row["runtime"], row["hardware"]), 0) + 1
    columns = sorted(coverage, key=lambda column: (-coverage[column], column))  # the widest runs first
    if not columns:
        return ""
    several_hardware = len({hardware for _, hardware in columns}) > 1
    cases = sorted({(row["case_id"], row["size"]) for row in latest})
    by_key = {(row["case_id"], row["size"], row["runtime"], row["hardware"]): row for row in latest}
    headers = ["case", "size", *(f"{r} @ {h}" if several_hardware else r for r, h in columns)]
    rows = []
    for case_id, size in cases:
        row_cells = [escape(case_id), text(size or None)]
        for runtime, hardware in columns:
            found = by_key.get((case_id, size, runtime, hardware))
            if found is None:
                row_cells.append('<span class="missing" title="not run">–</span>')
                continue
            mark = "✓" if found["outcome"] == "passed" else "✗ " + found["outcome"]
            check = records.of_run(found["run_id"], runtime)
            if check is not None and not check["usable"]:
                mark = "✗ unusable"  # its setup rows' error is the headline, shown on hover
            title = escape(found["error"] or f"{found['run_id']}, {when(found['started_at'])} UTC", quote=True)
            href = f"runs/{found['page']}.html#{section_anchor(runtime, hardware)}"
            row_cells.append(
                f'<a class="cell {escape(found["outcome"])}" title="{title}" href="{escape(href, quote=True)}">'
                f"{escape(mark)} {found['passed']}/{found['repeats']}</a>"
            )
        rows.append("<tr>" + cells(*row_cells) + "</tr>")
    return (
        "<h2>Matrix: the latest outcome of each case</h2>"
        '<p class="note">Each cell is the newest run of that case; ✓ all measured repeats passed, the count is '
        "passed/measured repeats; hover for the error, click for the run.</p>" + table(headers, rows, css="matrix")
    )


def _recent_comparisons(comparisons: Sequence[dict[str, Any]]) -> str:
    if not comparisons:
        return ""
    rows = [_comparison_row(group, "comparisons/") for group in comparisons[:5]]
    more = f' <a href="comparisons/index.html">All {len(comparisons)} comparisons</a>.' if len(comparisons) > 5 else ""
    return "<h2>Latest comparisons</h2>" + table(_COMPARISON_HEADERS, rows) + f'<p class="note">{more}</p>'


_COMPARISON_HEADERS = ["comparison", "created (UTC)", "mode", "baseline → candidate", "hardware", "verdicts"]


def _comparison_row(group: dict[str, Any], prefix: str) -> str:
    counts = group["counts"]
    verdicts = ", ".join(f'<span class="count {kind}">{counts[kind]} {kind}</span>' for kind in counts if counts[kind])
    if group["unusable"]:  # its rows are all 'missing': the reason is what matters
        verdicts = '<span class="unusable-cause"><b>UNUSABLE</b>: a side could not run</span>'
    return table_row(
        link(f"{prefix}{page_name(group['comparison_id'])}.html", escape(group["comparison_id"])),
        when(group["created_at"]),
        text(group["mode"]),
        f"{text(group['baseline'])} → {text(group['candidate'])}",
        text(group["hardware"]),
        verdicts or MISSING,
    )


def comparisons_index(ctx: Context, comparisons: Sequence[dict[str, Any]]) -> str:
    rows = [_comparison_row(group, "") for group in comparisons]
    body = "<h1>A/B comparisons</h1>" + table(
        _COMPARISON_HEADERS,
        rows,
        empty="No comparisons yet — <code>nox -s compare -- --baseline=stable --candidate=latest</code> runs one.",
    )
    return page(ctx, title="Comparisons", depth=1, active="comparisons", body=body)


def workloads_index(ctx: Context, histories: Sequence[WorkloadHistory]) -> str:
    rows = [
        table_row(
            link(f"{page_name(history.workload)}.html", escape(history.workload)),
            str(history.runs),
            str(history.points),
            f'<span class="count {"failed" if history.not_passed else "passed"}">{history.not_passed}</span>',
            when(history.first_at),
            when(history.last_at),
        )
        for history in histories
    ]
    headers = ["workload", "runs", "run × case points", "not passed", "first (UTC)", "last (UTC)"]
    body = "<h1>Workloads</h1>" + table(headers, rows, empty=NO_RUNS)
    body += (
        '<p class="note">Stability runs (chaos fuzzing) are on the <a href="../stability.html">Stability</a> page.</p>'
    )
    return page(ctx, title="Workloads", depth=1, active="workloads", body=body)


def runs_index(ctx: Context, runs: Sequence[dict[str, Any]], records: EnvironmentRecords) -> str:
    rows = [
        table_row(
            link(f"{run['page']}.html#{section_anchor(run['runtime'], run['hardware'])}", escape(run["run_id"])),
            text(run["runtime"]),
            text(run["hardware"]),
            when(run["started_at"]),
            text(run["dask_version"]),
            *_outcome_cells(run, records),
        )
        for run in runs
    ]
    headers = ["run", "runtime", "hardware", "started (UTC)", "dask", "cases", "repeats passed"]
    body = f"<h1>Runs</h1><p>{len({run['run_id'] for run in runs})} run(s), newest first.</p>" + table(
        headers, rows, empty=NO_RUNS
    )
    return page(ctx, title="Runs", depth=1, active="runs", body=body)
