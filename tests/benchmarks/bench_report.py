"""Reading a long history: the report's build time, and DuckDB over Parquet against SQLite for the regression scan's
query. A benchmark that prints figures; it asserts nothing (it refuses to time two queries that disagree).

1. **History** — ``history_synth.synthesize``: N case rows (default 1,000,000) in the store's real layout and
   schema, one Parquet file per nightly run × runtime, plus environments and decision records.
2. **Report** — ``framework.report.build_site(results_dir, out_dir)``, built 3 times into fresh directories:
   the median time and the pages written (target ≤ 10 s).
3. **Series points** — what ``nox -s regressions`` turns the history into: per hardware × runtime × case × size ×
   run, the run's time and the median of each metric over its passed measured repeats, in series order. The same
   query in DuckDB over the Parquet store (through ``framework.query.Results``) and in SQLite 3 (stdlib
   ``sqlite3``) over an on-disk copy of the rows it reads, whose median is written with window functions.
   Both answers are checked equal first; then the timings alternate (so drift hits both) and the medians and
   their ratio are printed (target: DuckDB ≥ 10× faster). SQLite's copy holds only the columns the query reads,
   indexed, analysed and with a large page cache — its best case; DuckDB reads the full-schema Parquet files.
4. A Markdown table of the figures, to paste into the README.

    nox -s bench -- report [--rows=1000000] [--keep=DIR] [--repeats=5] [--builds=3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow

from framework.query import Results
from framework.results import CASE_COLUMNS

# The scan's points, DuckDB (the views of framework.query). The run's time is the same on each of its rows.
POINTS_DUCKDB = """
SELECT hardware, runtime, case_id, coalesce(size, '') AS size, run_id, min(run_started_at) AS run_started_at,
       median(wall_s) AS wall_s, median(peak_memory_bytes) AS peak_memory_bytes,
       median(mean_memory_bytes) AS mean_memory_bytes, median(spilled_bytes) AS spilled_bytes
FROM rows
WHERE phase = 'measure' AND outcome = 'passed'
GROUP BY hardware, runtime, case_id, coalesce(size, ''), run_id
ORDER BY hardware, runtime, case_id, size, run_started_at, run_id
"""

# DuckDB's floor: count(*) over the view needs no column values, only every file's footer (a per-file cost).
FLOOR_DUCKDB = "SELECT count(*) FROM rows"

# The same, SQLite: no median aggregate, so each metric is ranked within its point (NULLs last, as a median
# ignores them) and the middle one or two ranks averaged — rank (n + 1) / 2 and (n + 2) / 2 in integer division.
_MEDIAN = "avg(CASE WHEN {c}_rank IN (({c}_n + 1) / 2, ({c}_n + 2) / 2) THEN {c} END) AS {c}"
_RANK = "row_number() OVER (point ORDER BY {c} NULLS LAST) AS {c}_rank, count({c}) OVER point AS {c}_n"
METRIC_COLUMNS = ("wall_s", "peak_memory_bytes", "mean_memory_bytes", "spilled_bytes")
POINTS_SQLITE = f"""
WITH ranked AS (
    SELECT hardware, runtime, case_id, coalesce(size, '') AS size, run_id, run_started_at,
           {", ".join(METRIC_COLUMNS)},
           {", ".join(_RANK.format(c=c) for c in METRIC_COLUMNS)}
    FROM rows
    WHERE phase = 'measure' AND outcome = 'passed'
    WINDOW point AS (PARTITION BY hardware, runtime, case_id, coalesce(size, ''), run_id)
)
SELECT hardware, runtime, case_id, size, run_id, min(run_started_at) AS run_started_at,
       {", ".join(_MEDIAN.format(c=c) for c in METRIC_COLUMNS)}
FROM ranked
GROUP BY hardware, runtime, case_id, size, run_id
ORDER BY hardware, runtime, case_id, size, run_started_at, run_id
"""

# SQLite's copy: the columns the scan reads (timestamps as µs since the epoch, UTC: SQLite has no timestamp type).
SQLITE_COLUMNS = {
    "hardware": "TEXT NOT NULL",
    "runtime": "TEXT NOT NULL",
    "workload": "TEXT NOT NULL",
    "case_id": "TEXT NOT NULL",
    "size": "TEXT",
    "run_id": "TEXT NOT NULL",
    "run_started_at": "INTEGER NOT NULL",
    "phase": "TEXT NOT NULL",
    "repeat": "INTEGER",
    "outcome": "TEXT NOT NULL",
    "wall_s": "REAL",
    "peak_memory_bytes": "INTEGER",
    "mean_memory_bytes": "INTEGER",
    "spilled_bytes": "INTEGER",
}
SQLITE_INDEXES = (
    "CREATE INDEX rows_series ON rows (hardware, runtime, case_id, size, run_started_at, run_id)",
    "CREATE INDEX rows_run ON rows (run_id)",
)
# Reading settings that favour SQLite: a 1 GiB page cache, sorts in memory, the file memory-mapped.
SQLITE_READ_PRAGMAS = ("PRAGMA cache_size = -1048576", "PRAGMA temp_store = MEMORY", "PRAGMA mmap_size = 1073741824")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


# --------------------------------------------------------------------------------------------------
# The two engines


def load_sqlite(results: Results, path: Path, batch_rows: int = 100_000) -> int:
    """Copy the rows the scan reads from the store into a new SQLite file, index and analyse it; returns rows."""
    columns = [f'"{name}"' for name in SQLITE_COLUMNS]
    exported = [f"epoch_us({name})" if name == "run_started_at" else f'"{name}"' for name in SQLITE_COLUMNS]
    table = results.arrow(f"SELECT {', '.join(exported)} FROM rows")
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA journal_mode = OFF")  # a copy made once: no rollback journal needed
        connection.execute("PRAGMA synchronous = OFF")
        declared = ", ".join(f"{column} {kind}" for column, kind in zip(columns, SQLITE_COLUMNS.values()))
        connection.execute(f"CREATE TABLE rows ({declared})")
        insert = f"INSERT INTO rows VALUES ({', '.join('?' * len(columns))})"
        for batch in table.to_batches(max_chunksize=batch_rows):
            connection.executemany(insert, zip(*(column.to_pylist() for column in batch.columns)))
        for statement in SQLITE_INDEXES:
            connection.execute(statement)
        connection.execute("ANALYZE")
        connection.commit()
    finally:
        connection.close()
    return table.num_rows


def open_sqlite(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    for pragma in SQLITE_READ_PRAGMAS:
        connection.execute(pragma)
    return connection


def duckdb_points(results: Results) -> list[tuple[Any, ...]]:
    return results.sql(POINTS_DUCKDB)[1]


def sqlite_points(connection: sqlite3.Connection) -> list[tuple[Any, ...]]:
    return connection.execute(POINTS_SQLITE).fetchall()


def differences(duck: Sequence[tuple[Any, ...]], lite: Sequence[tuple[Any, ...]], limit: int = 5) -> list[str]:
    """Where the two answers differ (same keys in the same order, medians equal within 1e-9); empty: the same."""
    found = []
    if len(duck) != len(lite):
        found.append(f"{len(duck)} points in DuckDB, {len(lite)} in SQLite")
    for index, (a, b) in enumerate(zip(duck, lite)):
        key_a = (*a[:5], (a[5] - _EPOCH) // dt.timedelta(microseconds=1))
        if key_a != tuple(b[:6]):
            found.append(f"point {index}: DuckDB {key_a} vs SQLite {tuple(b[:6])}")
        for column, x, y in zip(METRIC_COLUMNS, a[6:], b[6:]):
            same = (x is None and y is None) or (
                x is not None and y is not None and math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9)
            )
            if not same:
                found.append(f"point {index} {key_a[:5]}: {column} DuckDB {x!r} vs SQLite {y!r}")
        if len(found) >= limit:
            break
    return found[:limit]


def sqlite_plan(connection: sqlite3.Connection) -> str:
    return "; ".join(row[-1] for row in connection.execute(f"EXPLAIN QUERY PLAN {POINTS_SQLITE}"))


# --------------------------------------------------------------------------------------------------
# The benchmark


def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = function()
    return time.perf_counter() - started, value


def prepare_history(work: Path, rows: int) -> tuple[Path, dict[str, Any]]:
    """The store under ``work/results``: synthesized, or reused when ``--keep`` already holds ``rows`` of it."""
    from history_synth import synthesize

    root = work / "results"
    if (root / "cases").is_dir() and any((root / "cases").iterdir()):
        with Results(root) as results:
            (held,) = results.sql("SELECT count(*) FROM rows")[1][0]
        if held != rows:
            raise SystemExit(f"{root}: holds {held:,} rows, not {rows:,} — pass --rows={held} or an empty --keep")
        files = len(list((root / "cases").glob("*.parquet")))
        print(f"history: reusing {held:,} rows in {files:,} files under {root}")
        return root, {"rows": held, "files": files, "synthesis_s": None}
    history = synthesize(root, rows)
    print(
        f"history: {history.rows:,} rows in {history.files:,} files ({history.runs} nightly runs × up to 3 runtimes"
        f" × {history.cases} cases × 6 executions), {history.environments} environments,"
        f" records {history.records}; synthesized in {history.seconds:.1f} s"
    )
    return root, {"rows": history.rows, "files": history.files, "synthesis_s": history.seconds}


def bench_report(root: Path, work: Path, builds: int) -> dict[str, Any]:
    try:
        from framework.report import build_site
    except (ImportError, SyntaxError) as error:  # another module's work in progress: time the rest anyway
        print(f"report: not timed — framework.report.build_site cannot be imported ({type(error).__name__}: {error})")
        return {}
    times, pages, size = [], 0, 0
    for index in range(builds):
        out = work / f"site-{index}"
        shutil.rmtree(out, ignore_errors=True)
        seconds, _ = timed(lambda out=out: build_site(root, out))
        times.append(seconds)
        written = [path for path in out.rglob("*") if path.is_file()]
        pages = sum(path.suffix == ".html" for path in written)
        size = sum(path.stat().st_size for path in written)
        print(f"report build {index + 1}/{builds}: {seconds:.2f} s, {pages} pages, {len(written)} files, {_mb(size)}")
    median = statistics.median(times)
    verdict = "met" if median <= 10 else "NOT met"
    print(f"report: median {median:.2f} s of {builds} builds, {pages} pages ({_mb(size)}) — target ≤ 10 s: {verdict}")
    return {"report_s": median, "pages": pages, "site_bytes": size}


def bench_points(root: Path, work: Path, repeats: int) -> dict[str, Any]:
    database = work / "history.sqlite"
    database.unlink(missing_ok=True)
    opened, results = timed(lambda: Results(root))
    with results:
        threads = results.sql("SELECT current_setting('threads')")[1][0][0]
        files = len(list((root / "cases").glob("*.parquet")))
        print(f"duckdb: views over {files:,} files opened in {opened:.2f} s; {threads} threads (SQLite uses 1)")
        loading, loaded = timed(lambda: load_sqlite(results, database))
        print(
            f"sqlite: {loaded:,} rows × {len(SQLITE_COLUMNS)} columns (of {len(CASE_COLUMNS)}) copied, indexed and"
            f" analysed in {loading:.1f} s ({_mb(database.stat().st_size)} on disk)"
        )
        connection = open_sqlite(database)
        try:
            print(f"sqlite plan: {sqlite_plan(connection)}")
            duck_first, duck = timed(lambda: duckdb_points(results))
            lite_first, lite = timed(lambda: sqlite_points(connection))
            problems = differences(duck, lite)
            if problems:
                print("the two queries disagree — not timed:\n  " + "\n  ".join(problems), file=sys.stderr)
                raise SystemExit(1)
            print(
                f"series points: {len(duck):,} (same rows, medians equal within 1e-9); first runs"
                f" {duck_first:.2f} s DuckDB, {lite_first:.2f} s SQLite"
            )
            duck_times, lite_times, floor_times = [], [], []
            for index in range(repeats):  # alternate, so drift and caches treat both alike
                duck_times.append(timed(lambda: duckdb_points(results))[0])
                lite_times.append(timed(lambda: sqlite_points(connection))[0])
                floor_times.append(timed(lambda: results.sql(FLOOR_DUCKDB))[0])
                print(
                    f"  timing {index + 1}/{repeats}: DuckDB {duck_times[-1]:.3f} s, SQLite {lite_times[-1]:.3f} s"
                    f" (DuckDB count(*) over every file: {floor_times[-1]:.3f} s)"
                )
        finally:
            connection.close()
    duck_median, lite_median = statistics.median(duck_times), statistics.median(lite_times)
    floor = statistics.median(floor_times)
    ratio = lite_median / duck_median
    print(
        f"series points, median of {repeats}: DuckDB {duck_median:.3f} s (range {min(duck_times):.3f}–"
        f"{max(duck_times):.3f}), SQLite {lite_median:.3f} s (range {min(lite_times):.3f}–{max(lite_times):.3f});"
        f" DuckDB {ratio:.1f}× faster — target ≥ 10×: {'met' if ratio >= 10 else 'NOT met'}"
    )
    print(f"of DuckDB's time, {floor:.3f} s is the floor of touching {files:,} files (count(*) over the view)")
    return {
        "points": len(duck),
        "duckdb_threads": threads,
        "duckdb_floor_s": floor,
        "files": files,
        "duckdb_open_s": opened,
        "duckdb_s": duck_median,
        "sqlite_s": lite_median,
        "sqlite_load_s": loading,
        "sqlite_bytes": database.stat().st_size,
        "ratio": ratio,
    }


def markdown(figures: dict[str, Any], repeats: int, builds: int) -> str:
    synthesis = figures["synthesis_s"]
    lines = [
        "| figure | measured | target |",
        "|---|---|---|",
        f"| machine | {os.cpu_count()} cores ({_cpu_model()}), {platform.system()} | |",
        f"| history | {figures['rows']:,} rows in {figures['files']:,} Parquet files ({_mb(figures['store_bytes'])})"
        + (f", synthesized in {synthesis:.0f} s" if synthesis is not None else "")
        + " | |",
    ]
    if "report_s" in figures:
        lines.append(
            f"| report build (`build_site`), median of {builds} | {figures['report_s']:.2f} s,"
            f" {figures['pages']} pages ({_mb(figures['site_bytes'])}) | ≤ 10 s |"
        )
    else:
        lines.append("| report build (`build_site`) | not measured: `framework.report` not available | ≤ 10 s |")
    lines += [
        f"| series points ({figures['points']:,}), DuckDB over Parquet ({figures['duckdb_threads']} threads),"
        f" median of {repeats} |"
        f" {figures['duckdb_s']:.2f} s, of which {figures['duckdb_floor_s']:.2f} s is touching the"
        f" {figures['files']:,} files (views opened in {figures['duckdb_open_s']:.2f} s) | |",
        f"| the same query, SQLite on disk (1 thread), median of {repeats} | {figures['sqlite_s']:.2f} s"
        f" (copy, index, analyse: {figures['sqlite_load_s']:.0f} s, {_mb(figures['sqlite_bytes'])}) | |",
        f"| DuckDB speed-up | {figures['ratio']:.1f}× | ≥ 10× |",
        f"| versions | duckdb {duckdb.__version__}, SQLite {sqlite3.sqlite_version}, pyarrow {pyarrow.__version__},"
        f" Python {platform.python_version()} | |",
    ]
    return "\n".join(lines)


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    models = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return models[0] if models else platform.machine()


def _mb(size: int) -> str:
    return f"{size / 1e6:.0f} MB" if size >= 10e6 else f"{size / 1e6:.1f} MB"


def _rows(text: str) -> int:
    value = int(text.replace("_", "").replace(",", ""))
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: use a number of rows ≥ 1, e.g. --rows=1000000")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nox -s bench -- report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=_rows, default=1_000_000, help="case rows in the history (default 1,000,000)")
    parser.add_argument("--keep", type=Path, help="work here and keep the store, SQLite file and sites (reused)")
    parser.add_argument("--repeats", type=int, default=5, help="timings of each query (default 5)")
    parser.add_argument("--builds", type=int, default=3, help="report builds (default 3)")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.builds < 1:
        parser.error(f"--repeats={args.repeats} --builds={args.builds}: each must be ≥ 1 (default 5 and 3)")
    with tempfile.TemporaryDirectory(prefix="bench-report-") as temporary:
        work = (args.keep or Path(temporary)).resolve()
        work.mkdir(parents=True, exist_ok=True)
        print(f"work directory: {work}" + ("" if args.keep else " (removed at the end; --keep=DIR keeps it)"))
        root, figures = prepare_history(work, args.rows)
        figures["store_bytes"] = sum(path.stat().st_size for path in root.rglob("*.parquet"))
        figures |= bench_report(root, work, args.builds)
        figures |= bench_points(root, work, args.repeats)
    print("\n" + markdown(figures, args.repeats, args.builds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
