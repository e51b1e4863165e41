"""``--json``: a verb that prints a table prints one JSON document on stdout instead, and nothing else there.

Whatever else the verb would print while it works (progress, skipped cases, where files went) goes to stderr, so
``nox -s compare -- … --json | jq`` always reads one document.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from framework.vocabulary import Verdict

if TYPE_CHECKING:
    from pathlib import Path

    from framework.blessing import BlessReport
    from framework.compare import ComparisonReport
    from framework.history import ScanReport
    from framework.matrix import PlannedCase, Skipped
    from framework.reproduce import ReproduceReport
    from framework.stats import MetricComparison


@contextlib.contextmanager
def stdout_to_stderr(enabled: bool) -> Iterator[None]:
    """While the verb works with ``--json``, its own prints go to stderr (stdout is for the document)."""
    if not enabled:
        yield
        return
    with contextlib.redirect_stdout(sys.stderr):
        yield


def emit(document: Any) -> None:
    """The one JSON document on stdout (timestamps and paths as text). A NaN or infinity is refused (it is no
    JSON): pass floats through :func:`number`."""
    sys.stdout.write(json.dumps(document, default=str, allow_nan=False) + "\n")
    sys.stdout.flush()


def number(value: float | None) -> float | str | None:
    """A float JSON can hold: NaN is null, ±infinity the text 'inf' / '-inf' (json.loads of 'Infinity' is not JSON)."""
    if value is None or math.isnan(value):
        return None
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return float(value)


def change(result: MetricComparison | None) -> dict[str, Any]:
    """A case × metric's verdict and change (``unusable`` and nulls when it was not compared)."""
    if result is None:
        return {"verdict": Verdict.UNUSABLE.value, "ratio": None, "ci_low": None, "ci_high": None, "p_value": None}
    figures = {name: number(getattr(result, name)) for name in ("ratio", "ci_low", "ci_high", "p_value")}
    return {"verdict": result.verdict, **figures}


def comparison_document(report: ComparisonReport) -> dict[str, Any]:
    """``compare --json``: the comparison, its counts (the words of framework/vocabulary.py) and one entry per line."""
    lines = [
        {
            "case_id": line.case_id,
            "size": line.size,
            "hardware": line.hardware,
            "metric": line.metric,
            **change(line.result),
            "n_baseline": len(line.samples[0]),
            "n_candidate": len(line.samples[1]),
            "sentence": line.sentence(),
            "missing": line.missing,
        }
        for line in report.lines
    ]
    return {
        "comparison_id": report.comparison_id,
        "mode": report.mode,
        "baseline": report.baseline,
        "candidate": report.candidate,
        "rounds": report.rounds,
        "counts": {word.value: n for word, n in report.counts().items()},
        "lines": lines,
        "record": report.record,
    }


def scan_document(report: ScanReport, summary: Path) -> dict[str, Any]:
    """``regressions --json``: the scan and each finding (status, direction, the change with its interval)."""
    findings = [
        {
            "series": finding.key,
            "workload": finding.series.workload,
            "case_id": finding.series.case_id,
            "runtime": finding.series.runtime,
            "hardware": finding.series.hardware,
            "metric": finding.metric,
            "status": finding.status,
            "direction": finding.change.direction,
            "new": finding.new,
            "accepted": finding.accepted is not None,
            "ratio": number(finding.change.ratio),
            "ci_low": number(finding.change.ci_low),
            "ci_high": number(finding.change.ci_high),
            "p_value": number(finding.change.p_value),
            "change_run_id": finding.after.run_id,
            "sentence": finding.sentence(),
        }
        for finding in report.findings
    ]
    return {
        "scan_id": report.scan_id,
        "series": report.n_series,
        "findings": findings,
        "summary": summary,
        "record": report.record,
    }


def verdict_document(report: BlessReport) -> dict[str, Any]:
    """``bless --json``: the verdict, every check with its reason and evidence, and where it is stored."""
    verdict = report.verdict
    assert verdict is not None  # a dry run has no verdict (refused with --json)
    return {
        "runtime": verdict.runtime,
        "baseline": verdict.baseline,
        "criteria": verdict.criteria,
        "blessed": verdict.blessed,
        "checks": [dataclasses.asdict(check) for check in verdict.checks],
        "skipped": list(verdict.skipped),
        "verdict_id": report.verdict_id,
        "record": report.record,
        "exports": [str(export) for export in report.exports],
        "export_problem": report.export_problem,
    }


def plain(value: Any) -> Any:
    """Rows from the store as JSON can hold them: floats through :func:`number`, nested lists and dicts too."""
    if isinstance(value, float):
        return number(value)
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


def plan_document(planned: Sequence[PlannedCase], skipped: Sequence[Skipped]) -> dict[str, Any]:
    """``matrix --dry-run --json``: each planned case with its repeats and warm-ups, and each skipped one."""
    return {
        "dry_run": True,
        "cases": [
            {
                "runtime": p.runtime.name,
                "hardware": p.hardware.name,
                "case_id": p.case.case_id,
                "size": p.case.size,
                "repeats": p.case.workload.repeats,
                "warmup": p.case.workload.warmup,
            }
            for p in planned
        ],
        "skipped": [dataclasses.asdict(s) for s in skipped],
    }


def reproduction_document(report: ReproduceReport) -> dict[str, Any]:
    """``reproduce --json``: per recorded environment, each case × metric recorded against now, with its verdict."""
    groups = []
    for outcome in report.outcomes:
        lines = []
        for line in outcome.lines:
            lines.append(
                {
                    "case_id": line.case_id,
                    "metric": line.metric,
                    "passed_then": line.passed[0],
                    "passed_now": line.passed[1],
                    "recorded": [number(value) for value in line.recorded],
                    "now": [number(value) for value in line.now],
                    **change(line.result),
                }
            )
        groups.append(
            {
                "group": outcome.group.label,
                "recorded_env_hash": outcome.group.env_hash,
                "env_hash": outcome.environment.env_hash,
                "lines": lines,
            }
        )
    return {
        "run_id": report.run_id,
        "reproduces": report.recorded.run_id,
        "unusable": report.unusable,
        "groups": groups,
    }
