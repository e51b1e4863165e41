"""The table printed at the end of a matrix run, and the plain-text table printer ``nox -s sql`` uses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from framework.query import Results

SUMMARY_SQL = """
WITH this AS (SELECT * FROM case_summary WHERE run_id = $run_id),
previous AS (
    SELECT runtime, hardware, case_id, size, params, median_wall_s, median_peak_memory_bytes,
           row_number() OVER (PARTITION BY runtime, hardware, case_id, size, params ORDER BY started_at DESC) AS age
    FROM case_summary
    WHERE run_id <> $run_id AND outcome = 'passed' AND started_at < (SELECT min(started_at) FROM this)
)
SELECT this.runtime, this.hardware, this.case_id, this.size, this.outcome, this.passed, this.repeats,
       this.median_wall_s, previous.median_wall_s AS previous_wall_s,
       this.median_peak_memory_bytes, previous.median_peak_memory_bytes AS previous_peak_memory_bytes,
       this.median_spilled_bytes, this.median_tasks, this.first_error, this.dask_version
FROM this LEFT JOIN previous
  ON previous.runtime = this.runtime AND previous.hardware = this.hardware
 AND previous.case_id = this.case_id AND previous.size IS NOT DISTINCT FROM this.size
 AND previous.params IS NOT DISTINCT FROM this.params AND previous.age = 1
ORDER BY this.runtime, this.hardware, this.case_id
"""


def human_bytes(value: float | None) -> str:
    if value is None:
        return "–"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def change(current: float | None, previous: float | None) -> str:
    if current is None or previous is None or previous == 0:
        return "new" if previous is None and current is not None else "–"
    return f"{(current / previous - 1) * 100:+.0f} %"


def format_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], max_width: int = 60) -> str:
    """Columns aligned, numbers right-aligned, long cells cut: readable in a terminal and in CI logs."""

    def cell(value: Any) -> str:
        if value is None:
            text = "NULL"
        elif isinstance(value, float):
            text = f"{value:.4g}" if abs(value) < 1e6 else f"{value:.6g}"
        else:
            text = str(value).replace("\n", " ")
        return text if len(text) <= max_width else text[: max_width - 1] + "…"

    cells = [[cell(value) for value in row] for row in rows]
    widths = [max([len(name)] + [len(row[i]) for row in cells]) for i, name in enumerate(columns)]
    numeric = [
        all(isinstance(row[i], (int, float)) or row[i] is None for row in rows) and bool(rows)
        for i in range(len(columns))
    ]
    lines = ["  ".join(name.ljust(widths[i]) for i, name in enumerate(columns)).rstrip()]
    lines.append("  ".join("-" * width for width in widths))
    for row in cells:
        lines.append(
            "  ".join(
                (text.rjust(widths[i]) if numeric[i] else text.ljust(widths[i])) for i, text in enumerate(row)
            ).rstrip()
        )
    return "\n".join(lines)


def run_summary(results: Results, run_id: str) -> str:
    """Workload, outcome, median wall, peak memory, spill, and change vs the previous run of the same case."""
    _, rows = results.sql(SUMMARY_SQL, {"run_id": run_id})
    columns = [
        "runtime",
        "hardware",
        "case",
        "size",
        "outcome",
        "passed",
        "wall (median)",
        "Δ wall",
        "peak memory",
        "Δ peak",
        "spilled",
        "tasks",
    ]
    table = []
    errors = []
    for (
        runtime,
        hardware,
        case_id,
        size,
        outcome,
        passed,
        repeats,
        wall,
        previous_wall,
        peak,
        previous_peak,
        spilled,
        tasks,
        first_error,
        _dask,
    ) in rows:
        table.append(
            [
                runtime,
                hardware,
                case_id,
                size or "",
                outcome.upper() if outcome != "passed" else outcome,
                f"{passed}/{repeats}",
                f"{wall:.2f} s" if wall is not None else "–",
                change(wall, previous_wall),
                human_bytes(peak),
                change(peak, previous_peak),
                human_bytes(spilled),
                str(int(tasks)) if tasks is not None else "–",
            ]
        )
        if outcome != "passed" and first_error:
            errors.append(f"  {runtime} × {hardware} × {case_id}: {first_error}")
    text = format_table(columns, table)
    if errors:
        text += "\n\nNot passed:\n" + "\n".join(errors)
    return text
