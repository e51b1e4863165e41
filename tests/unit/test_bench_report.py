"""The report benchmark's history and its two queries (tests/benchmarks/history_synth.py, bench_report.py).

What keeps the benchmark honest: the synthetic history is exactly as many rows as asked, in the current schema and
readable through ``framework.query.Results``; its known steps are really in the data; and the DuckDB and SQLite
forms of the scan's query give the same answer — which is also checked against medians computed in Python.
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from benchmark_modules import load_benchmark

from framework.config import load_catalog
from framework.in_runtime.cluster_health import COLUMNS as HEALTH
from framework.matrix import expand_workload
from framework.query import Results
from framework.results import CASE_SCHEMA, SCHEMA_VERSION

ROWS = 5_000


synth = load_benchmark("history_synth")
load_benchmark("history_records")
bench = load_benchmark("bench_report")


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("history") / "results"
    synth.synthesize(root, ROWS)
    return root


@pytest.fixture(scope="module")
def results(history: Path) -> Iterator[Results]:
    with Results(history) as opened:
        yield opened


def test_writes_exactly_the_rows_asked_in_the_current_schema(history: Path, results: Results) -> None:
    files = sorted((history / "cases").glob("*.parquet"))
    assert all(pq.read_schema(path).equals(CASE_SCHEMA, check_metadata=False) for path in files)
    assert all(path.name.count("__") == 2 and path.name.endswith("__local.parquet") for path in files)
    (count, versions, runtimes, cases), *_ = results.sql(
        "SELECT count(*), list(DISTINCT schema_version), list(DISTINCT runtime ORDER BY runtime),"
        " count(DISTINCT case_id) FROM rows"
    )[1]
    assert count == ROWS
    assert versions == [SCHEMA_VERSION]
    assert runtimes == ["latest", "previous", "stable"]
    catalog = load_catalog()
    assert cases == sum(len(expand_workload(workload, "tiny")[0]) for workload in catalog.workloads.values()) > 50
    # every execution is a warm-up or a measured repeat of a run; some did not pass, and say why
    _, outcomes = results.sql("SELECT phase, outcome, count(*) FROM rows GROUP BY ALL")
    assert {phase for phase, _, _ in outcomes} == {"warmup", "measure"}
    _, unexplained = results.sql("SELECT count(*) FROM rows WHERE outcome <> 'passed' AND error IS NULL")
    assert unexplained == [(0,)]
    assert any(outcome != "passed" for _, outcome, _ in outcomes)
    # the machine's load over every execution, overloaded now and then (load above its cores)
    _, load = results.sql(
        "SELECT count(*) FILTER (WHERE load_avg_1m IS NULL OR cpu_pressure IS NULL OR cpu_steal IS NULL"
        " OR overloaded IS NULL), count(*) FILTER (WHERE overloaded <> (load_avg_1m > cpu_count)),"
        " count(*) FILTER (WHERE overloaded) FROM rows"
    )
    assert load[0][:2] == (0, 0) and 0 < load[0][2] < ROWS / 20
    # scheduler and worker health: every value is there, or NULL with its reason in `missing` (some workers left)
    unexplained = ", ".join(
        f"count(*) FILTER (WHERE {c} IS NULL AND json_extract_string(missing, '$.{c}') IS NULL)" for c in HEALTH
    )
    _, [counts] = results.sql(f"SELECT {unexplained}, count(*) FILTER (WHERE worker_gc_s IS NULL) FROM rows")
    assert counts[:-1] == (0,) * len(HEALTH) and 0 < counts[-1] < ROWS / 2


def test_writes_environments_and_decision_records(results: Results) -> None:
    _, [(environments, locked)] = results.sql(
        "SELECT count(*), count(*) FILTER (WHERE lock LIKE '%dask==%') FROM environments"
    )
    _, [(unknown,)] = results.sql("SELECT count(*) FROM rows WHERE env_hash NOT IN (SELECT env_hash FROM environments)")
    assert environments == locked > 0
    assert unknown == 0
    _, [(comparisons, judged)] = results.sql("SELECT count(*), count(verdict) FROM comparisons")
    _, verdicts = results.sql("SELECT runtime, baseline, json_array_length(checks) FROM verdicts ORDER BY runtime")
    assert comparisons > judged > 0
    assert [(runtime, baseline) for runtime, baseline, _ in verdicts] == [("latest", "stable"), ("stable", "previous")]
    assert all(checks > 0 for _, _, checks in verdicts)


def test_is_deterministic(tmp_path: Path, history: Path) -> None:
    again = tmp_path / "results"
    synth.synthesize(again, ROWS)
    for path in sorted((history / "cases").glob("*.parquet")):
        assert pq.read_table(again / "cases" / path.name).equals(pq.read_table(path))
    assert sorted(p.name for p in (again / "environments").iterdir()) == sorted(
        p.name for p in (history / "environments").iterdir()
    )


def test_known_step_is_in_the_data(tmp_path: Path) -> None:
    """Around the day latest first runs dask 2025.2.0, dataframe cases' peak memory rises by the step's factor."""
    step = next(step for step in synth.STEPS if step.version == "2025.2.0")
    root = tmp_path / "results"
    # runs on 14 Feb (2025.1.0: 2025.2.0 came out that day) and on 15 and 16 Feb (2025.2.0)
    synth.synthesize(root, 3_000, end=dt.date(2025, 2, 16))
    with Results(root) as results:
        _, rows = results.sql(
            "SELECT dask_version, list_contains(tags, ?), median(peak_memory_bytes) FROM cases"
            " WHERE runtime = 'latest' AND outcome = 'passed' GROUP BY ALL",
            [step.tag],
        )
        _, regressions = results.sql("SELECT count(*) FROM regressions WHERE after_version = '2025.2.0'")
    level = {(version, tagged): median for version, tagged, median in rows}
    # per-case levels differ, so compare the tagged cases' median level with the untagged ones' on each side
    before = level[("2025.1.0", True)] / level[("2025.1.0", False)]
    after = level[("2025.2.0", True)] / level[("2025.2.0", False)]
    assert after / before == pytest.approx(step.factor, rel=0.05)
    assert regressions == [(0,)]  # one run before the change: too short a series for a finding


def test_duckdb_and_sqlite_queries_agree(tmp_path: Path, history: Path, results: Results) -> None:
    database = tmp_path / "history.sqlite"
    assert bench.load_sqlite(results, database) == ROWS
    connection = bench.open_sqlite(database)
    try:
        lite = bench.sqlite_points(connection)
    finally:
        connection.close()
    duck = bench.duckdb_points(results)
    assert bench.differences(duck, lite) == []
    assert len(duck) > 800
    # and both agree with medians computed here, from the raw rows (NULLs are not measurements)
    _, raw = results.sql(
        "SELECT hardware, runtime, case_id, size, run_id, wall_s, peak_memory_bytes, mean_memory_bytes,"
        " spilled_bytes FROM rows WHERE phase = 'measure' AND outcome = 'passed'"
    )
    values: dict[tuple[str, ...], list[list[float]]] = {}
    for row in raw:
        columns = values.setdefault(tuple(row[:5]), [[], [], [], []])
        for column, value in zip(columns, row[5:]):
            if value is not None:
                column.append(value)
    assert len(values) == len(duck)
    for point in duck:
        expected = [statistics.median(column) if column else None for column in values[tuple(point[:5])]]
        for got, want in zip(point[6:], expected):
            assert got is None if want is None else got == pytest.approx(want, rel=1e-9)
    # the history has points with a metric that is NULL in some repeats or all: the medians must skip them
    assert any(None in point[6:] for point in duck)


def test_differences_names_what_differs() -> None:
    at = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    micros = (at - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)) // dt.timedelta(microseconds=1)
    duck = [("local", "latest", "c", "tiny", "r1", at, 1.0, 2.0, None, 0.0)]
    assert bench.differences(duck, [("local", "latest", "c", "tiny", "r1", micros, 1.0, 2.0, None, 0.0)]) == []
    problems = bench.differences(duck, [("local", "latest", "c", "tiny", "r1", micros, 1.0, 2.5, 3.0, 0.0)])
    assert [problem.split(": ", 1)[1] for problem in problems] == [
        "peak_memory_bytes DuckDB 2.0 vs SQLite 2.5",
        "mean_memory_bytes DuckDB None vs SQLite 3.0",
    ]
    assert bench.differences(duck, []) == ["1 points in DuckDB, 0 in SQLite"]


def test_records_parse_as_json(results: Results) -> None:
    _, rows = results.sql("SELECT detail FROM comparisons LIMIT 5")
    assert all(isinstance(json.loads(detail), dict) for (detail,) in rows)


def test_the_benchmark_runs_end_to_end_on_both_layouts_and_prints_its_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bench.main(["--rows=3000", f"--keep={tmp_path}", "--repeats=1", "--builds=1"]) == 0

    out = capsys.readouterr().out
    assert (tmp_path / "results" / "cases").is_dir()  # the store as written is kept as it was…
    assert not list((tmp_path / "results" / "cases").glob("compacted__*"))
    assert list((tmp_path / "compacted" / "results" / "cases").glob("compacted__*"))  # …and a compacted copy
    table = out[out.index("| figure | as written (one file per run) | as kept (compacted) | target |") :]
    assert "| history: 3,000 rows |" in table
    assert "| DuckDB speed-up over SQLite |" in table
    assert "DuckDB (compacted) gives the same rows" in out
