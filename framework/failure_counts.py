"""Stability failures counted by signature: what ``nox -s stability`` prints after its table.

One line per signature: how often the store holds it, since when, on which runtimes, the known-failures entry it
matches (an expired one says EXPIRED) and the newest failure with the command that replays it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from framework.failure_signatures import group_line, grouped, of_row
from framework.known_failures import KnownFailure, expired_line, match
from framework.query import Results


def run_signature_lines(results_dir: Path, run_id: str, known: Mapping[str, KnownFailure]) -> list[str]:
    """What ``nox -s stability`` prints after its table for run ``run_id`` (today's date decides expiry)."""
    return signature_lines(stored_failures(results_dir), run_id, known, dt.date.today())


def stored_failures(results_dir: Path) -> list[dict[str, Any]]:
    """Every stability row that did not pass (fuzz batches, regression cases, replays, runs that died)."""
    with Results(results_dir) as results:
        columns, rows = results.sql(
            "SELECT run_id, runtime, workload, case_id, outcome, error, traceback, failure_id,"
            " CAST(started_at AS VARCHAR) AS started_at FROM rows"
            " WHERE starts_with(workload, 'stability.') AND outcome <> 'passed' ORDER BY started_at"
        )
    return [dict(zip(columns, row)) for row in rows]


def signature_lines(
    failures: Sequence[Mapping[str, Any]], run_id: str, known: Mapping[str, KnownFailure], today: dt.date
) -> list[str]:
    """The signatures run ``run_id`` failed with, each counted over every stored failure; [] when it had none."""
    wanted = {of_row(row).text for row in failures if row.get("run_id") == run_id}
    if not wanted:
        return []
    lines = ["failures by signature (counted over every stability failure in the store):"]
    for group in grouped(failures):
        if group.signature.text not in wanted:
            continue
        found = match(known, group.signature.text)
        lines.append("  " + group_line(group, found.label(today) if found else None))
        if found and found.entry.expired(today):
            lines.append("    ! " + expired_line(found))
    return lines
