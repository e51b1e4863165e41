"""The detail pages: a workload's history, a run with every recorded column, and one A/B comparison."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from html import escape
from typing import Any

from framework.metric_catalogue import METRICS, MetricSpec
from framework.report import comparison_plot, workload_view
from framework.report.data import (
    HISTORY_FIELDS,
    ROW_COLUMNS,
    TIMESTAMP_COLUMNS,
    RunSection,
    WorkloadHistory,
    section_anchor,
)
from framework.report.environment import EnvironmentRecords, run_facts
from framework.report.layout import (
    Context,
    case_html,
    link,
    local_file,
    outcome,
    overloaded_note,
    page,
    status,
    table,
    table_row,
    text,
    when,
)
from framework.report.workload_view import RUNS_LISTED
from framework.stats import MetricComparison
from framework.vocabulary import Verdict, read_verdict

FAILURES_SHOWN = 50


def workload(ctx: Context, history: WorkloadHistory, changes: Sequence[dict[str, Any]], versions: Sequence[str]) -> str:
    name = history.workload
    found = workload_view.points(history.data, HISTORY_FIELDS)
    compared = sum(1 for point in found if point["compare"])
    meta = {
        "fields": list(HISTORY_FIELDS),  # what each point's array holds
        "metrics": [{"name": key, "label": spec.label, "unit": spec.unit} for key, spec in METRICS.items()],
        "versions": list(versions),
        "package": "dask",
        "changes": [
            {
                key: change.get(key)
                for key in ("along", "metric", "case_id", "size", "hardware", "machine_class", "runtime", "direction")
            }
            | {"run_id": change["change_run_id"], "status": change["status"], "sentence": change["sentence"]}
            for change in changes
        ],
        "bands": workload_view.bands(found, changes),
    }
    tabs = "".join(
        f'<button class="tab{" active" if axis == "date" else ""}" data-tab="{axis}">{label}</button>'
        for axis, label in (("date", "along run dates"), ("version", "along dask versions"))
    )
    panels = "".join(
        f'<div class="tab-panel" data-panel="{axis}"{"" if axis == "date" else " hidden"}>'
        f'<p class="note">{_AXIS_NOTES[axis]}</p><div class="legend" data-axis="{axis}"></div>'
        + (_compare_toggle(compared, axis) if compared else "")
        + "".join(f'<div class="plot" data-axis="{axis}" data-metric="{key}"></div>' for key in METRICS)
        + "</div>"
        for axis in ("date", "version")
    )
    body = [
        f"<h1>Workload {escape(name)}</h1>",
        f"<p>{history.runs} run(s) from {when(history.first_at)} to {when(history.last_at)} UTC, {history.points} "
        f"run × case points, {history.not_passed} not passed. Each point is one run's median over its passed "
        'measured repeats; <span class="fail-mark">×</span> marks a run where a repeat failed, erred or timed '
        "out (at the bottom of the plot when nothing was measured); dashed lines are change points found by "
        "<code>nox -s regressions</code>; the shaded band is each series' level ± its noise between change points "
        "(the median of its runs ± the spread the comparisons judge by). Memory axes start at zero. Hover a point "
        "for its versions and values, click it for the run.</p>",
        _machines_note(history.machines),
        f'<div class="tabs">{tabs}</div>{panels}',
        '<p class="note" id="version-note"></p>',
        "<h2>Change points</h2>",
        _changes_table(changes),
        "<h2>Failures</h2>",
        _failures_table(workload_view.grouped_failures(history.failures)),
    ]
    data = {"history-points": history.data, "history-meta": json.dumps(meta)}
    return page(ctx, title=name, depth=1, active="workloads", body="\n".join(body), plots=True, data=data)


def _machines_note(machines: Sequence[dict[str, Any]]) -> str:
    """Where a hardware profile's history moved to another machine class: a series of its own from there on."""
    by_hardware: dict[str, list[dict[str, Any]]] = {}
    for machine in machines:
        by_hardware.setdefault(machine["hardware"], []).append(machine)
    items = []
    for hardware, classes in sorted(by_hardware.items()):
        first, *later = classes
        for machine in later:
            items.append(
                f"<li>machine class <b>{escape(machine['machine_class'])}</b> first seen on {escape(hardware)} in run "
                + link(f"../runs/{machine['page']}.html", escape(machine["run_id"]))
                + f": a new series, not compared with the runs before it (on {escape(first['machine_class'])})</li>"
            )
    if not items:
        return ""
    return (
        '<div class="note machine-note"><p>Series are per hardware profile × machine class (the machine the workers'
        " ran on, <code>matrices/machines.yaml</code> decides which pool):</p><ul>" + "".join(items) + "</ul></div>"
    )


_AXIS_NOTES = {
    "date": "One line per runtime × hardware × case, as <code>nox -s regressions</code> scans along run dates.",
    "version": "One line per hardware × case through the runs of every runtime, ordered by dask's version and "
    "then by date, as <code>nox -s regressions -- --along=version</code> scans them.",
}


def _changes_table(changes: Sequence[dict[str, Any]]) -> str:
    rows = [
        table_row(
            status(change["status"]),
            text(change["direction"]),
            text(change["along"]),
            escape(change["sentence"] or ""),
            link(f"../runs/{change['page']}.html", escape(change["change_run_id"])),
            f"{escape(change['scan_id'])} ({when(change['scanned_at'])})",
        )
        for change in changes
    ]
    headers = ["status", "direction", "along", "change", "first run after", "last reported by scan (UTC)"]
    return table(headers, rows, empty="No change point found in this workload's history by any scan.")


def _compare_toggle(compared: int, axis: str) -> str:
    return (
        f'<label class="compare-toggle"><input type="checkbox" data-compare-toggle="{axis}"> show the {compared}'
        " point(s) of A/B comparisons (their interleaved rounds: measured apart from the nightly history)</label>"
    )


def _failures_table(groups: Sequence[dict[str, Any]]) -> str:
    """One row per distinct error: the error once, how many run × case points it hit, and where."""
    rows = []
    for group in groups[:FAILURES_SHOWN]:
        runs = group["runs"]
        listed = ", ".join(
            link(f"../runs/{run['page']}.html", escape(run["started_at"] or run["run_id"]))
            + f" ({text(run['runtime'])})"
            for run in runs[:RUNS_LISTED]
        )
        more = f", and {len(runs) - RUNS_LISTED} earlier" if len(runs) > RUNS_LISTED else ""
        rows.append(
            table_row(
                f'<span class="error">{text(group["error"])}</span>',
                outcome(group["outcome"]),
                str(group["count"]),
                ", ".join(case_html(case) for case in group["cases"]),
                escape(", ".join(group["runtimes"])),
                f"{len(runs)} run(s): {listed}{more}",
            )
        )
    more = ""
    if len(groups) > FAILURES_SHOWN:
        more = (
            f'<p class="note">The {FAILURES_SHOWN} most recent of {len(groups)} errors; every one is marked in the'
            " plots.</p>"
        )
    headers = ["error", "outcome", "times", "cases", "runtimes", "runs (newest first, UTC)"]
    return table(headers, rows, css="failures", empty="Every execution of this workload passed.") + more


def run(
    ctx: Context,
    sections: Sequence[RunSection],
    environments: dict[str, dict[str, Any]],
    records: EnvironmentRecords,
) -> str:
    run_id = sections[0].run_id
    page_dir = ctx.out_dir / "runs"
    dumps = {dump["cluster_dump"] for section in sections for dump in section.dumps}
    links = {dump: local_file(dump, ctx.results_dir, page_dir) for dump in sorted(dumps)}
    index = " · ".join(
        link(f"#{section_anchor(s.summary['runtime'], s.summary['hardware'])}", _section_title(s)) for s in sections
    )
    started = min(section.summary["run_started_at"] for section in sections)
    body = [
        f"<h1>Run {escape(run_id)}</h1>",
        f"<p>Started {when(started)} UTC; {len(sections)} runtime × hardware section(s): {index}</p>",
    ]
    data = {"columns": _COLUMNS, "dump-links": json.dumps(links)}
    for number, section in enumerate(sections):
        data[f"executions-{number}"] = f"[{section.executions}]"
        body.append(_run_section(section, number, links, environments, records))
    return page(ctx, title=f"run {run_id}", depth=1, active="runs", body="\n".join(body), data=data)


def _section_title(section: RunSection) -> str:
    return f"{escape(section.summary['runtime'])} @ {escape(section.summary['hardware'])}"


_COLUMNS = json.dumps({"names": list(ROW_COLUMNS), "timestamps": list(TIMESTAMP_COLUMNS)})
# The first metric's heading says the cells are medians (as the matrix run's summary table does).
_SUMMARY_HEADERS = ["case", "size", "outcome", "passed"] + [
    f"{spec.heading} (median)" if index == 0 else spec.heading for index, spec in enumerate(METRICS.values())
]


def _run_section(
    section: RunSection,
    number: int,
    links: dict[str, str],
    environments: dict[str, dict[str, Any]],
    records: EnvironmentRecords,
) -> str:
    summary = section.summary
    anchor = section_anchor(summary["runtime"], summary["hardware"])
    headers = "".join(f"<th>{h}</th>" for h in [*_SUMMARY_HEADERS, "error"])
    facts = run_facts(records, summary, section.env_hash)  # "" in a store older than health checks and lock diffs
    parts = [
        f'<section id="{anchor}"><h2>{_section_title(section)}</h2>',
        f"<p>dask {text(summary['dask_version'])}, distributed {text(summary['distributed_version'])}; "
        f"{summary['passed']} of {summary['cases']} cases passed, {summary['repeats_passed']} of "
        f"{summary['repeats']} measured repeats. Medians are over the passed measured repeats; a case's outcome is "
        "the worst of its executions.</p>",
        *([facts] if facts else []),
        *([loaded] if (loaded := overloaded_note(summary)) else []),
        f'<div class="scroll"><table><thead><tr>{headers}</tr></thead><tbody>{section.case_rows}</tbody></table></div>',
    ]
    if section.dumps:
        rows = [
            table_row(
                escape(d["case_id"]),
                text(d["phase"]),
                text(d["repeat"]),
                outcome(d["outcome"]),
                links[d["cluster_dump"]],
            )
            for d in section.dumps
        ]
        parts.append("<h3>Cluster dumps</h3>" + table(["case", "phase", "repeat", "outcome", "dump"], rows))
    parts.append(
        "<h3>Runtime, hardware and machine</h3>"
        f'<div class="scroll"><table class="keyvalue"><tbody>{section.provenance}</tbody></table></div>'
    )
    parts.append(_locks(section.env_hash, environments))
    parts.append(
        f"<h3>Every execution ({summary['n_rows']} rows, every recorded column)</h3>"
        f'<div class="executions scroll" data-source="executions-{number}"></div></section>'
    )
    return "\n".join(parts)


def _locks(env_hash: str | None, environments: dict[str, dict[str, Any]]) -> str:
    if env_hash is None:
        return '<h3>Environment</h3><p class="note">No environment hash recorded.</p>'
    found = environments.get(env_hash)
    if found is None:
        return (
            f'<h3>Environment</h3><p class="note">No lock recorded for environment <code>{escape(env_hash)}</code>.</p>'
        )
    lock = found["lock"] or ""
    lines = [line for line in lock.splitlines() if line.strip()]
    return (
        f"<h3>Environment</h3><details><summary>Lock of environment <code>{escape(env_hash)}</code>: "
        f"{len(lines)} packages, built {when(found['built_at'])} UTC, Python {text(found['python'])}</summary>"
        f"<pre>{escape(lock)}</pre></details>"
    )


def comparison(ctx: Context, group: dict[str, Any]) -> str:
    rows = sorted(group["rows"], key=_effect_order)
    unusable = group["unusable"]
    items: list[str] = []
    not_compared: list[str] = []
    for row in rows:
        spec = METRICS.get(row["metric"])
        size = f" ({row['size']})" if row["size"] else ""
        label = f"{row['case_id']}{size} · {spec.label if spec else row['metric']}"
        kind = verdict_kind(row)
        sentence = _sentence(row, spec)
        badge = f'<span class="badge {kind}">{kind}</span>'
        item = f'<li class="{kind}">{badge} <b>{escape(label)}</b>: {escape(sentence)}</li>'
        # A side that could not run leaves every row missing: those fold away under its cause.
        (not_compared if unusable and kind == Verdict.UNUSABLE else items).append(item)
    plotted = comparison_plot.panels(rows, verdict_kind)
    versions = " · ".join(
        f"{escape(side)}: {escape(_versions(group[f'{side}_versions']))}" for side in ("baseline", "candidate")
    )
    body = [
        f"<h1>Comparison {escape(group['comparison_id'])}</h1>",
        *(f'<div class="unusable"><p class="cause">{cause}</p></div>' for cause in unusable),
        f"<p><b>{text(group['candidate'])}</b> against <b>{text(group['baseline'])}</b> on {text(group['hardware'])}, "
        f"{text(group['mode'])}, {when(group['created_at'])} UTC. {versions}.</p>",
        "<p class=\"note\">Change of the candidate's median against the baseline's with its 95 % bootstrap interval, "
        "the two-sided rank test's p-value and the repeats per side; sorted by the size of the change. A change is "
        "regressed or improved only when it is significant and at least the metric's minimum effect.</p>"
        if items
        else "",
        _VERDICT_LEGEND
        + _PLOT_NOTE
        + "".join(
            f'<div class="plot comparison" data-comparison="comparison-data" data-metric="{escape(panel["metric"])}">'
            "</div>"
            for panel in plotted
        )
        if plotted
        else "",
        f'<ol class="sentences">{"".join(items)}</ol>' if items else "",
    ]
    if not_compared:
        body.append(
            f"<details><summary>{len(not_compared)} case × metric(s) not compared: a side could not run</summary>"
            f'<ol class="sentences">{"".join(not_compared)}</ol></details>'
        )
    data = {"comparison-data": json.dumps(plotted)}
    title = f"comparison {group['comparison_id']}"
    return page(ctx, title=title, depth=1, active="comparisons", body="\n".join(body), plots=bool(plotted), data=data)


_PLOT_NOTE = (
    '<p class="note">One panel per metric, on a log scale (+100 % and −50 % are equally far from 0). Each panel '
    "shows its significant findings whole and other changes up to +50 % / −33 %; an interval that runs further "
    "ends in an arrow ▸ at the edge — hover it for its real bounds.</p>"
)
_VERDICT_LEGEND = (
    '<div class="verdict-legend">'
    + "".join(
        f'<span><span class="dot" style="background:{colour}"></span>{kind}</span>'
        for kind, colour in (
            ("regressed", "#d62728"),
            ("improved", "#2ca02c"),
            ("unchanged", "#7f7f7f"),
            ("inconclusive", "#e6a100"),
        )
    )
    + "</div>"
)


def _sentence(row: dict[str, Any], spec: MetricSpec | None) -> str:
    """The row's sentence in today's words and interval format, without the metric's name (its label says it)."""
    figures = ("ci_low", "ci_high", "p_value", "n_baseline", "n_candidate", "baseline_median", "candidate_median")
    complete = spec is not None and all(row.get(name) is not None for name in figures)
    result = MetricComparison.from_record(row) if complete else None  # else: the sentence as stored
    if result is not None:
        sentence = result.sentence()
    else:
        sentence = row["sentence"] or f"could not be compared: {row['missing'] or 'no reason recorded'}"
    return sentence.removeprefix(spec.label).lstrip(": ") if spec is not None else sentence


def verdict_kind(row: dict[str, Any]) -> str:
    """A stored comparison row's verdict, in today's words (framework/vocabulary.py)."""
    if row["ratio"] is None or row["sentence"] is None:
        return Verdict.UNUSABLE.value
    return read_verdict(row["verdict"], row["conclusive"]).value


def _effect_order(row: dict[str, Any]) -> tuple[int, float]:
    ratio = row["ratio"]
    if not _finite(ratio) or ratio <= 0:
        return (1 if ratio is None else 0, 0.0 if ratio is None else -math.inf)
    return (0, -abs(math.log(ratio)))


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _versions(value: str | None) -> str:
    try:
        versions = json.loads(value or "{}")
    except ValueError:
        return value or "versions not recorded"
    return ", ".join(f"{name} {version}" for name, version in versions.items()) or "versions not recorded"
