"""Reading a long history: the report's build time, and DuckDB over Parquet against SQLite for the regression scan's
query. A benchmark that prints figures; it asserts nothing (it refuses to time two queries that disagree).

1. **History** — ``history_synth.synthesize``: N case rows (default 1,000,000) in the store's real layout and
   schema, one Parquet file per nightly run × runtime, plus environments and decision records: the store *as
   written*. A copy is then compacted (``framework.compaction.compact``, timed): the store *as kept* — what
   ``nox -s matrix`` and ``nox -s report`` leave once a directory holds 100 loose files.
2. **Report** — ``framework.report.build_site(results_dir, out_dir)``, built 3 times into fresh directories from
   each store, alternating: the median time and the pages written (target ≤ 10 s, on the store as kept).
3. **Series points** — what ``nox -s regressions`` turns the history into: per hardware × runtime × case × size ×
   run, the run's time and the median of each metric over its passed measured repeats, in series order. The same
   query in DuckDB over each Parquet store (through ``framework.query.Results``) and in SQLite 3 (stdlib
   ``sqlite3``) over an on-disk copy of the rows it reads, whose median is written with window functions.
   The three answers are checked equal first; then the timings alternate (so drift hits all alike) and the
   medians and ratios are printed (target: DuckDB ≥ 10× faster). SQLite's copy holds only the columns the query
   reads, indexed, analysed and with a large page cache — its best case; DuckDB reads the full-schema Parquet.
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

from framework.compaction import compact
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


def prepare_compacted(root: Path, work: Path) -> tuple[Path, dict[str, Any]]:
    """A copy of the store, compacted (reused when ``--keep`` already holds one)."""
    kept = work / "compacted" / "results"
    if not kept.is_dir():
        shutil.rmtree(kept.parent, ignore_errors=True)
        shutil.copytree(root, kept)
        compaction = compact(kept)
        print("\n".join(compaction.lines()))
        seconds: float | None = compaction.seconds
    else:
        print(f"compacted store: reusing {kept}")
        seconds = None
    files = len(list((kept / "cases").glob("*.parquet")))
    return kept, {"compaction_s": seconds, "compacted_files": files}


def bench_report(stores: dict[str, Path], work: Path, builds: int) -> dict[str, Any]:
    try:
        from framework.report import build_site
    except (ImportError, SyntaxError) as error:  # another module's work in progress: time the rest anyway
        print(f"report: not timed — framework.report.build_site cannot be imported ({type(error).__name__}: {error})")
        return {}
    times: dict[str, list[float]] = {label: [] for label in stores}
    figures: dict[str, Any] = {}
    for index in range(builds):
        for label, root in stores.items():  # alternating: drift hits both layouts alike
            out = work / f"site-{label}-{index}"
            shutil.rmtree(out, ignore_errors=True)
            seconds, _ = timed(lambda out=out, root=root: build_site(root, out))
            times[label].append(seconds)
            written = [path for path in out.rglob("*") if path.is_file()]
            figures["pages"] = sum(path.suffix == ".html" for path in written)
            figures["site_bytes"] = sum(path.stat().st_size for path in written)
            print(
                f"report build {index + 1}/{builds} ({label}): {seconds:.2f} s, {figures['pages']} pages,"
                f" {len(written)} files, {_mb(figures['site_bytes'])}"
            )
            shutil.rmtree(out, ignore_errors=True)
    for label, values in times.items():
        median = statistics.median(values)
        figures[f"report_s_{label}"] = median
        print(
            f"report ({label}): median {median:.2f} s of {builds} builds (range {min(values):.2f}–{max(values):.2f})"
            + (f" — target ≤ 10 s: {'met' if median <= 10 else 'NOT met'}" if label == "compacted" else "")
        )
    return figures


def bench_points(stores: dict[str, Path], work: Path, repeats: int) -> dict[str, Any]:
    database = work / "history.sqlite"
    database.unlink(missing_ok=True)
    opened = {}
    results = {}
    for label, root in stores.items():
        opened[label], results[label] = timed(lambda root=root: Results(root))
    figures: dict[str, Any] = {}
    try:
        threads = results["compacted"].sql("SELECT current_setting('threads')")[1][0][0]
        for label, root in stores.items():
            figures[f"files_{label}"] = len(list((root / "cases").glob("*.parquet")))
            figures[f"duckdb_open_s_{label}"] = opened[label]
            print(f"duckdb ({label}): views over {figures[f'files_{label}']:,} files opened in {opened[label]:.2f} s")
        print(f"duckdb: {threads} threads (SQLite uses 1)")
        loading, loaded = timed(lambda: load_sqlite(results["compacted"], database))
        print(
            f"sqlite: {loaded:,} rows × {len(SQLITE_COLUMNS)} columns (of {len(CASE_COLUMNS)}) copied, indexed and"
            f" analysed in {loading:.1f} s ({_mb(database.stat().st_size)} on disk)"
        )
        connection = open_sqlite(database)
        try:
            print(f"sqlite plan: {sqlite_plan(connection)}")
            lite_first, lite = timed(lambda: sqlite_points(connection))
            print(f"series points: {len(lite):,}; first run SQLite {lite_first:.2f} s")
            for label, opened_results in results.items():
                first, duck = timed(lambda opened_results=opened_results: duckdb_points(opened_results))
                problems = differences(duck, lite)
                if problems:
                    print(
                        f"DuckDB ({label}) and SQLite disagree — not timed:\n  " + "\n  ".join(problems),
                        file=sys.stderr,
                    )
                    raise SystemExit(1)
                print(f"  DuckDB ({label}) gives the same rows (medians equal within 1e-9); first run {first:.2f} s")
            timings: dict[str, list[float]] = {"sqlite": [], **{label: [] for label in results}}
            floors: dict[str, list[float]] = {label: [] for label in results}
            for index in range(repeats):  # alternate, so drift and caches treat all alike
                timings["sqlite"].append(timed(lambda: sqlite_points(connection))[0])
                for label, opened_results in results.items():
                    timings[label].append(timed(lambda opened_results=opened_results: duckdb_points(opened_results))[0])
                    floors[label].append(
                        timed(lambda opened_results=opened_results: opened_results.sql(FLOOR_DUCKDB))[0]
                    )
                print(
                    f"  timing {index + 1}/{repeats}: "
                    + ", ".join(f"{label} {values[-1]:.3f} s" for label, values in timings.items())
                )
        finally:
            connection.close()
    finally:
        for opened_results in results.values():
            opened_results.close()
    lite_median = statistics.median(timings["sqlite"])
    for label in results:
        median = statistics.median(timings[label])
        figures[f"duckdb_s_{label}"] = median
        figures[f"duckdb_floor_s_{label}"] = statistics.median(floors[label])
        figures[f"ratio_{label}"] = lite_median / median
        print(
            f"series points, median of {repeats}: DuckDB ({label}) {median:.3f} s (range {min(timings[label]):.3f}–"
            f"{max(timings[label]):.3f}; {figures[f'duckdb_floor_s_{label}']:.3f} s of it is touching"
            f" {figures[f'files_{label}']:,} files), {lite_median / median:.1f}× faster than SQLite"
            + (f" — target ≥ 10×: {'met' if lite_median / median >= 10 else 'NOT met'}" if label == "compacted" else "")
        )
    print(f"SQLite: median {lite_median:.3f} s (range {min(timings['sqlite']):.3f}–{max(timings['sqlite']):.3f})")
    return figures | {
        "points": len(lite),
        "duckdb_threads": threads,
        "sqlite_s": lite_median,
        "sqlite_load_s": loading,
        "sqlite_bytes": database.stat().st_size,
    }


def markdown(figures: dict[str, Any], repeats: int, builds: int) -> str:
    synthesis, compaction = figures["synthesis_s"], figures["compaction_s"]
    lines = [
        "| figure | as written (one file per run) | as kept (compacted) | target |",
        "|---|---|---|---|",
        f"| machine | {os.cpu_count()} cores ({_cpu_model()}), {platform.system()} | | |",
        f"| history: {figures['rows']:,} rows | {figures['files_written']:,} Parquet files"
        f" ({_mb(figures['store_bytes'])})"
        + (f", synthesized in {synthesis:.0f} s" if synthesis is not None else "")
        + f" | {figures['files_compacted']:,} files ({_mb(figures['compacted_bytes'])})"
        + (f", compacted in {compaction:.0f} s" if compaction is not None else "")
        + " | |",
    ]
    if "report_s_compacted" in figures:
        lines.append(
            f"| report build (`build_site`), median of {builds}, {figures['pages']} pages"
            f" ({_mb(figures['site_bytes'])})"
            f" | {figures['report_s_written']:.2f} s | {figures['report_s_compacted']:.2f} s | ≤ 10 s |"
        )
    else:
        lines.append("| report build (`build_site`) | not measured: `framework.report` not available | | ≤ 10 s |")
    lines += [
        f"| series points ({figures['points']:,}), DuckDB over Parquet ({figures['duckdb_threads']} threads),"
        f" median of {repeats} | {figures['duckdb_s_written']:.2f} s | {figures['duckdb_s_compacted']:.2f} s | |",
        f"| the same query, SQLite on disk (1 thread; copy, index, analyse: {figures['sqlite_load_s']:.0f} s,"
        f" {_mb(figures['sqlite_bytes'])}), median of {repeats} | {figures['sqlite_s']:.2f} s | | |",
        f"| DuckDB speed-up over SQLite | {figures['ratio_written']:.1f}× | {figures['ratio_compacted']:.1f}×"
        " | ≥ 10× |",
        f"| versions | duckdb {duckdb.__version__}, SQLite {sqlite3.sqlite_version}, pyarrow {pyarrow.__version__},"
        f" Python {platform.python_version()} | | |",
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
        kept, compacted = prepare_compacted(root, work)
        figures |= compacted
        figures["compacted_bytes"] = sum(path.stat().st_size for path in kept.rglob("*.parquet"))
        stores = {"written": root, "compacted": kept}
        figures |= bench_report(stores, work, args.builds)
        figures |= bench_points(stores, work, args.repeats)
    print("\n" + markdown(figures, args.repeats, args.builds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
