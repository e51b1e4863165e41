"""The table printed at the end of a matrix run, and the plain-text table printer ``nox -s sql`` uses."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from framework.locks import recorded_diff_lines
from framework.machines import classified_summary_sql, load_policy, register
from framework.metric_catalogue import METRICS
from framework.noise import Delta, Noise, judge, notes, run_noise
from framework.query import Results
from framework.records import AB_ROUND_RUNS_SQL

# The change is against the previous run on the same kind of machine (machine class: framework.machines); a run on
# a class new to its runtime × hardware says so in its heading.
SUMMARY_SQL = f"""
WITH {classified_summary_sql()},
this AS (SELECT * FROM classified WHERE run_id = $run_id),
previous AS (
    SELECT runtime, hardware, machine_class, case_id, size, params, median_wall_s, median_peak_memory_bytes,
           overloaded_repeats, row_number() OVER (PARTITION BY runtime, hardware, machine_class, case_id, size, params
                              ORDER BY started_at DESC) AS age
    FROM classified
    WHERE run_id <> $run_id AND outcome = 'passed' AND started_at < (SELECT min(started_at) FROM this)
      AND run_id NOT IN ({AB_ROUND_RUNS_SQL})
),
earlier_classes AS (
    SELECT runtime, hardware, list(DISTINCT machine_class ORDER BY machine_class) AS classes FROM classified
    WHERE run_id <> $run_id AND started_at < (SELECT min(started_at) FROM this) GROUP BY ALL
)
SELECT this.runtime, this.hardware, this.case_id, this.size, this.outcome, this.passed, this.repeats,
       this.median_wall_s, previous.median_wall_s AS previous_wall_s,
       this.median_peak_memory_bytes, previous.median_peak_memory_bytes AS previous_peak_memory_bytes,
       this.median_spilled_bytes, this.median_tasks, this.first_error, this.dask_version,
       previous.case_id IS NOT NULL AS has_previous, this.machine_class,
       this.overloaded_repeats, coalesce(previous.overloaded_repeats, 0) AS previous_overloaded_repeats,
       this.max_load_avg_1m, this.cpu_count,
       coalesce(earlier_classes.classes, []) AS earlier_classes
FROM this LEFT JOIN previous
  ON previous.runtime = this.runtime AND previous.hardware = this.hardware
 AND previous.machine_class = this.machine_class
 AND previous.case_id = this.case_id AND previous.size IS NOT DISTINCT FROM this.size
 AND previous.params IS NOT DISTINCT FROM this.params AND previous.age = 1
LEFT JOIN earlier_classes ON earlier_classes.runtime = this.runtime AND earlier_classes.hardware = this.hardware
ORDER BY this.runtime, this.hardware, this.outcome = 'passed', this.case_id
"""
OUTCOMES = ("passed", "failed", "error", "timeout")
# The summary's columns after the case (and its size, when blocks mix sizes).
SUMMARY_COLUMNS = ["outcome", "passed", "wall (median)", "Δ wall", "peak memory", "Δ peak", "spilled", "tasks"]


def human_bytes(value: float | None) -> str:
    if value is None:
        return "–"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def format_table(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    max_width: int = 60,
    right: Collection[str] = (),
    missing: str = "NULL",
) -> str:
    """Columns aligned, numbers (and the columns named in ``right``) right-aligned, long cells cut: readable in a
    terminal and in CI logs. A missing value reads ``missing`` (SQL's ``NULL`` by default; ``–`` in tables for
    people)."""

    def cell(value: Any) -> str:
        if value is None:
            text = missing
        elif isinstance(value, float):
            text = f"{value:.4g}" if abs(value) < 1e6 else f"{value:.6g}"
        else:
            text = str(value).replace("\n", " ")
        return text if len(text) <= max_width else text[: max_width - 1] + "…"

    cells = [[cell(value) for value in row] for row in rows]
    widths = [max([len(name)] + [len(row[i]) for row in cells]) for i, name in enumerate(columns)]
    numeric = [
        name in right or (all(isinstance(row[i], (int, float)) or row[i] is None for row in rows) and bool(rows))
        for i, name in enumerate(columns)
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


def run_summary_rows(results: Results, run_id: str) -> list[dict[str, Any]]:
    """The summary's rows: one per case of the run (``matrix --json`` prints them as they are)."""
    register(results, load_policy())
    names, rows = results.sql(SUMMARY_SQL, {"run_id": run_id})
    return [dict(zip(names, row)) for row in rows]


def run_summary(results: Results, run_id: str, verbose: bool = False) -> str:
    """The end of a matrix run, one block per runtime × hardware: each case's outcome, median wall, peak memory
    and spill, with the change vs the runtime's previous run of the same case where it is beyond the case's noise
    (:mod:`framework.noise`; ``verbose``: the raw change and the noise band beside it); the cases that did not
    pass come first (in capitals), their first errors under the table, and a line of totals at the end."""
    cases = run_summary_rows(results, run_id)
    noise = run_noise(results, run_id)
    deltas: list[Delta] = []
    blocks: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for case in cases:
        blocks.setdefault((case["runtime"], case["hardware"]), []).append(case)
    # The size goes into each block's heading when it is the same for the whole block (the usual run).
    sized_blocks = all(len({case["size"] for case in block}) == 1 for block in blocks.values())
    columns = ["case", *([] if sized_blocks else ["size"]), *SUMMARY_COLUMNS, *(["noise from"] if verbose else [])]
    table: list[list[str]] = []
    headings: list[tuple[int, str]] = []  # (first row of the block, its heading)
    since = recorded_diff_lines(results, run_id)
    unusable = {}  # runtime × hardware whose every case is a setup row of an unusable runtime: one line, no table
    for (runtime, hardware), block in blocks.items():
        headline = block[0]["first_error"] or ""
        if headline.startswith(f"{runtime} is UNUSABLE:") and all(case["first_error"] == headline for case in block):
            unusable[(runtime, hardware)] = headline
    for (runtime, hardware), block in blocks.items():
        if (runtime, hardware) in unusable:
            continue
        about = [f"dask {block[0]['dask_version']}"] if block[0]["dask_version"] else []
        about += [f"size {block[0]['size']}"] if sized_blocks and block[0]["size"] else []
        heading = f"{runtime} × {hardware}" + (f" — {', '.join(about)}" if about else "")
        machine, earlier = block[0]["machine_class"], block[0]["earlier_classes"]
        if earlier and machine not in earlier:
            heading += (
                f"\n  machine class {machine}: its first run here (earlier runs: {', '.join(earlier)}) — changes are"
                " against runs on the same class only"
            )
        headings.append((len(table), heading + (f"\n  {since[runtime]}" if runtime in since else "")))
        for case in block:
            key = (case["runtime"], case["hardware"], case["case_id"], case["size"])
            cells, judged = _cells(case, noise.get(key, {}), verbose)
            deltas += judged
            table.append([case["case_id"], *([] if sized_blocks else [case["size"] or ""]), *cells])
    # One table for all blocks, so their columns line up; cut into blocks under their headings.
    header, rule, *lines = format_table(columns, table, right=SUMMARY_COLUMNS[1:]).splitlines()
    out: list[str] = []
    for (runtime, hardware), headline in unusable.items():
        n = len(blocks[(runtime, hardware)])
        heading = f"{runtime} × {hardware} — UNUSABLE" + (f"\n  {since[runtime]}" if runtime in since else "")
        out += [*([""] if out else []), heading, f"  {n} case{'s' if n != 1 else ''} not run: {headline}"]
    for index, (first, heading) in enumerate(headings):
        last = headings[index + 1][0] if index + 1 < len(headings) else len(lines)
        out += [*([""] if out else []), heading, *(f"  {line}" for line in (header, rule, *lines[first:last]))]
    errors = [
        f"  {case['runtime']} × {case['hardware']} × {case['case_id']}: {case['first_error']}"
        for case in cases
        if case["outcome"] != "passed" and case["first_error"] and (case["runtime"], case["hardware"]) not in unusable
    ]
    if errors:
        out += ["", "Not passed:", *errors]
    said = notes(deltas)
    out += ["", *said] if said else []
    out += overloaded_lines([case for case in cases if (case["runtime"], case["hardware"]) not in unusable])
    counts = dict.fromkeys(OUTCOMES, 0)
    for case in cases:
        counts[case["outcome"]] = counts.get(case["outcome"], 0) + 1
    totals = f"{len(cases)} case{'s' if len(cases) != 1 else ''}: " + ", ".join(f"{n} {o}" for o, n in counts.items())
    return "\n".join([*out, *([""] if out else []), totals])


OVERLOADED_MARK = " !"


def overloaded_lines(cases: Sequence[dict[str, Any]]) -> list[str]:
    """The note under the table when cases were measured while the machine was overloaded (load above its cores)."""
    loaded = [case for case in cases if case["overloaded_repeats"]]
    earlier = [case for case in cases if case["previous_overloaded_repeats"] and not case["overloaded_repeats"]]
    lines = []
    if loaded:
        peak = max(loaded, key=lambda case: case["max_load_avg_1m"] or 0)
        cores = f" on {peak['cpu_count']} cores" if peak["cpu_count"] else ""
        n = len(loaded)
        lines.append(
            f"!  {n} case{'s were' if n != 1 else ' was'} measured while the machine was overloaded (load > cores;"
            f" up to {peak['max_load_avg_1m']:.1f}{cores}): {'their' if n != 1 else 'its'} times are not comparable"
        )
    if earlier:
        n = len(earlier)
        lines.append(
            f"!  {n} case{'s’ previous runs were' if n != 1 else '’s previous run was'} measured overloaded:"
            " the Δ wall against it is not comparable"
        )
    return ["", *lines] if lines else []


def _cells(case: dict[str, Any], noise: dict[str, Noise | None], verbose: bool) -> tuple[list[str], list[Delta]]:
    """A case's cells after its name: the outcome (in capitals unless passed), measurements and changes; and the
    Δ cells judged against the case's noise (for the notes under the table)."""
    wall, peak, tasks = case["median_wall_s"], case["median_peak_memory_bytes"], case["median_tasks"]
    passed = case["outcome"] == "passed"
    judged: list[Delta] = []

    def delta(name: str, current: float | None, previous: float | None) -> str:
        if not case["has_previous"]:
            return "new"  # no passed run of this case on this runtime before
        if not passed:
            return "–"  # a failure's figures are not a change to report
        judged.append(judge(METRICS[name], current, previous, noise.get(name)))
        return judged[-1].text(verbose)

    # "!": measured (this run's repeats, or for a change either side's) while the machine was overloaded.
    loaded = OVERLOADED_MARK if case["overloaded_repeats"] else ""
    either = OVERLOADED_MARK if case["overloaded_repeats"] or case["previous_overloaded_repeats"] else ""

    def marked(text: str, mark: str) -> str:
        return text + mark if text not in ("–", "new") else text

    cells = [
        case["outcome"] if passed else case["outcome"].upper(),
        f"{case['passed']}/{case['repeats']}",
        marked(f"{wall:.2f} s" if wall is not None else "–", loaded),
        marked(delta("wall", wall, case["previous_wall_s"]), either),
        human_bytes(peak),
        delta("peak_memory", peak, case["previous_peak_memory_bytes"]),
        human_bytes(case["median_spilled_bytes"]),
        str(int(tasks)) if tasks is not None else "–",
    ]
    if verbose:
        sources = {f"{n.source} ({n.detail})" for n in noise.values() if n is not None}
        cells.append(", ".join(sorted(sources)) or "–")
    return cells, judged


def shard_note(run_group: str, shard: str, results: str) -> str:
    """The lines after a shard's summary: what it is part of, and how to see the whole run."""
    return (
        f"\nshard {shard} of run group {run_group}: the table holds this shard's cases only. To see the whole run,"
        f" copy every shard's results into one store (nox -s merge -- {results} OTHER_SHARD_DIRS... --into=DIR), then"
        f""" nox -s sql -- --results=DIR "SELECT * FROM run_groups WHERE run_group = '{run_group}'\""""
    )
