"""The known-issues page: per runtime, the findings of the ledger (``matrices/findings.yaml``) its latest run's
packages fall inside; then the whole ledger, each finding with its range, guard, reproducer and upstream issue."""

from __future__ import annotations

import re
from collections.abc import Sequence
from html import escape
from typing import Any

from framework.findings import Finding, affecting
from framework.releases import BISECT_PREFIX
from framework.report.layout import MISSING, Context, badge, code, page, table, table_row, text


def known_issues_page(ctx: Context, runs: Sequence[dict[str, Any]], findings: dict[str, Finding]) -> str:
    """``runs``: one line per run × runtime × hardware, newest first (the report's run summaries)."""
    latest: dict[str, dict[str, Any]] = {}
    for run in runs:
        latest.setdefault(run["runtime"], run)  # newest first: the first seen is the latest
    declared = sorted(name for name in latest if not name.startswith(BISECT_PREFIX))
    bisected = sorted((name for name in latest if name.startswith(BISECT_PREFIX)), key=_release_order)
    per_runtime = table(
        ["runtime", "latest run", "packages", "known issues"],
        [_runtime_row(name, latest[name], findings) for name in declared],
        empty="No runs yet: run <code>nox -s matrix</code> to see which findings affect each runtime.",
    )
    if bisected:  # the releases a bisection measured: many, and not what a reader of the page chose to run
        per_runtime += (
            f"<details><summary>Releases measured by <code>nox -s bisect</code> ({len(bisected)})</summary>"
            + table(
                ["runtime", "latest run", "packages", "known issues"],
                [_runtime_row(name, latest[name], findings) for name in bisected],
            )
            + "</details>"
        )
    ledger = table(
        ["guard", "finding", "release range", "reproducer", "upstream", "evidence"],
        [_ledger_row(guard, finding) for guard, finding in findings.items()],
        empty="The ledger (<code>matrices/findings.yaml</code>) is empty.",
    )
    body = (
        "<h1>Known issues</h1>"
        "<p>Upstream bugs this proving ground met, each kept by a guard workload (tag <code>guard</code>) that fails"
        " exactly where the bug is present. <code>nox -s bless</code> fails a runtime whose lock falls inside a"
        " finding's range unless the criteria accept it. Ledger: <code>matrices/findings.yaml</code>; in SQL:"
        ' <code>nox -s sql -- "SELECT * FROM findings"</code>.</p>'
        f"<h2>Per runtime (its latest run)</h2>{per_runtime}<h2>The ledger</h2>{ledger}"
    )
    return page(ctx, title="Known issues", depth=0, active="known-issues", body=body)


def _runtime_row(runtime: str, run: dict[str, Any], findings: dict[str, Finding]) -> str:
    packages = {name: run[f"{name}_version"] for name in ("dask", "distributed") if run.get(f"{name}_version")}
    found = affecting(findings, packages)
    versions = ", ".join(f"{name} {version}" for name, version in packages.items()) or MISSING
    issues = (
        "<br>".join(
            f'{badge("failed", "known issue")} <a href="#{escape(item.guard)}">{escape(item.guard)}</a> — '
            f"{text(item.finding.summary)}"
            for item in found
        )
        if found
        else badge("passed", "none known")
    )
    return table_row(escape(runtime), text(run["run_id"]), versions, issues)


def _release_order(runtime: str) -> tuple[Any, ...]:
    """``bisect-dask-2024.10.0`` after ``bisect-dask-2024.9.1``: by package, then the release's numbers."""
    package, _, release = runtime[len(BISECT_PREFIX) :].rpartition("-")
    return (package, tuple(int(part) for part in re.findall(r"\d+", release)), release)


def _ledger_row(guard: str, finding: Finding) -> str:
    upstream = (
        f'<a href="{escape(finding.upstream)}">{escape(finding.upstream.rsplit("/", 3)[-3])}'
        f"#{escape(finding.upstream.rsplit('/', 1)[-1])}</a>"
        if finding.upstream
        else MISSING
    )
    evidence = ", ".join(code(run) for run in finding.evidence) or MISSING
    good = f"; last good {escape(finding.last_good)}" if finding.last_good else ""
    if finding.intermittent:
        good += "; intermittent: its guard may pass inside the range"
    return (
        f'<tr id="{escape(guard)}"><td>{code(guard)}</td><td>{text(finding.summary)}</td>'
        f"<td>{escape(finding.range_text)}{good}</td><td>{code(finding.reproducer)}</td>"
        f"<td>{upstream}</td><td>{evidence}</td></tr>"
    )
