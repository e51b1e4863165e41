"""framework/query.py: DuckDB views over the results directory, read-only."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from framework.in_runtime.errors import QueryError
from framework.query import VIEWS, Results
from framework.results import CASE_COLUMNS, SCHEMA_VERSION

RUN_1 = "2026-01-01T00:00:00+00:00"
RUN_2 = "2026-01-02T00:00:00+00:00"


@pytest.fixture
def results(results_dir):
    with Results(results_dir) as opened:
        yield opened


# --- views ------------------------------------------------------------------------------------------------------


def test_views_exist_and_list_columns_without_any_file(results):
    described = results.views()

    assert set(described) == {
        "rows", "environments", *VIEWS, "comparisons", "regressions", "verdicts", "health", "lock_changes"
    }  # fmt: skip
    assert {"usable", "cause", "note", "env_hash"} <= set(dict(described["health"]))
    assert {"previous_run_id", "package", "old_version", "new_version", "change"} <= set(
        dict(described["lock_changes"])
    )
    assert [name for name, _ in described["rows"]] == list(CASE_COLUMNS)
    assert dict(described["rows"])["wall_s"] == "DOUBLE"
    assert dict(described["rows"])["run_started_at"] == "TIMESTAMP WITH TIME ZONE"
    assert "lock" in dict(described["environments"])
    assert {"n_passed", "n_failed"} <= set(dict(described["runs"]))
    assert {"median_wall_s", "first_error"} <= set(dict(described["case_summary"]))
    assert {"ratio", "ci_low", "ci_high", "verdict"} <= set(dict(described["comparisons"]))
    assert {"blessed", "reasons"} <= set(dict(described["verdicts"]))
    for view in described:
        assert results.sql(f"SELECT count(*) FROM {view}")[1] == [(0,)]


def test_rows_written_by_case_table_are_visible(results_dir, case_row, write_run):
    write_run(
        [
            case_row(phase="setup", outcome="error", error="ImportError: no module named zarr", wall_s=None),
            case_row(phase="warmup", wall_s=5.0),
            case_row(phase="measure", repeat=0, wall_s=1.0),
            case_row(phase="measure", repeat=1, wall_s=2.0),
        ]
    )

    with Results(results_dir) as results:
        columns, rows = results.sql("SELECT phase, wall_s, params, tags FROM rows ORDER BY phase, repeat")
        assert columns == ["phase", "wall_s", "params", "tags"]
        assert [row[:2] for row in rows] == [("measure", 1.0), ("measure", 2.0), ("setup", None), ("warmup", 5.0)]
        assert rows[0][2] == '{"by": "id"}'
        assert rows[0][3] == ["smoke", "dataframe"]
        _, cases = results.sql("SELECT phase, wall_s FROM cases ORDER BY repeat")
        assert cases == [("measure", 1.0), ("measure", 2.0)]
        _, [(by,)] = results.sql("SELECT params->>'by' FROM cases LIMIT 1")
        assert by == "id"


def test_runs_count_outcomes_per_run(results_dir, case_row, write_run):
    write_run(
        [
            case_row(run_id="run-1", case_id="a", outcome="passed"),
            case_row(run_id="run-1", case_id="a", repeat=1, outcome="failed", error="AssertionError: wrong"),
            case_row(run_id="run-1", case_id="b", outcome="timeout"),
            case_row(run_id="run-1", case_id="c", phase="setup", outcome="error", error="boom"),
        ]
    )
    write_run([case_row(run_id="run-2", run_started_at=RUN_2, case_id=case) for case in "abc"])

    with Results(results_dir) as results:
        columns, rows = results.sql(
            "SELECT run_id, n_cases, n_measured, n_passed, n_failed, n_error, n_timeout FROM runs ORDER BY run_id"
        )

    assert columns[0] == "run_id"
    assert rows == [("run-1", 3, 3, 1, 1, 1, 1), ("run-2", 3, 3, 3, 0, 0, 0)]


def test_case_summary_medians_and_outcome(results_dir, case_row, write_run):
    write_run(
        [
            case_row(case_id="a", phase="warmup", wall_s=100.0, peak_memory_bytes=10**12),
            *(
                case_row(case_id="a", repeat=n, wall_s=wall, peak_memory_bytes=peak)
                for n, (wall, peak) in enumerate([(1.0, 100), (3.0, 300), (2.0, 200)])
            ),
            case_row(case_id="b", wall_s=1.0),
            case_row(case_id="b", repeat=1, outcome="failed", error="AssertionError: wrong answer", wall_s=9.0),
        ]
    )

    with Results(results_dir) as results:
        _, rows = results.sql(
            "SELECT case_id, repeats, passed, warmups, not_passed, outcome, median_wall_s, median_peak_memory_bytes, "
            "first_error FROM case_summary ORDER BY case_id"
        )

    assert rows == [  # the warm-up is counted as a warm-up, never in the medians
        ("a", 3, 3, 1, 0, "passed", 2.0, 200.0, None),
        ("b", 2, 1, 0, 1, "failed", 5.0, 100 * 2**20, "AssertionError: wrong answer"),
    ]


def test_a_failing_warm_up_fails_its_case(results_dir, case_row, write_run):
    write_run([case_row(case_id="a", phase="warmup", outcome="error", error="ImportError: zarr", wall_s=0.1)])

    with Results(results_dir) as results:
        _, rows = results.sql("SELECT repeats, passed, warmups, not_passed, outcome, first_error FROM case_summary")

    assert rows == [(0, 0, 1, 1, "error", "ImportError: zarr")]


def test_latest_returns_only_the_newest_run_of_each_runtime_hardware_case(results_dir, case_row, write_run):
    write_run([case_row(run_id="run-1", run_started_at=RUN_1, case_id=case) for case in ("a", "b")])
    write_run([case_row(run_id="run-2", run_started_at=RUN_2, case_id="a", wall_s=2.0)])
    write_run([case_row(run_id="run-2", run_started_at=RUN_2, case_id="a", runtime="stable", wall_s=3.0)])
    write_run([case_row(run_id="run-0", run_started_at="2025-12-31T00:00:00+00:00", case_id="a", hardware="big")])
    write_run([case_row(run_id="run-3", run_started_at="2026-01-03T00:00:00+00:00", case_id="a", phase="warmup")])

    with Results(results_dir) as results:
        _, rows = results.sql("SELECT runtime, hardware, case_id, run_id FROM latest ORDER BY ALL")

    assert rows == [
        ("latest", "big", "a", "run-0"),
        ("latest", "local", "a", "run-2"),
        ("latest", "local", "b", "run-1"),
        ("stable", "local", "a", "run-2"),
    ]


def test_files_of_an_older_schema_version_are_read_with_missing_columns_null(results_dir, case_row, write_run):
    """An older release wrote fewer columns and schema_version 0; both kinds of file are queried together."""
    old = pa.table(
        {
            "schema_version": pa.array([0, 0], pa.int32()),
            "run_id": ["run-old", "run-old"],
            "run_started_at": pa.array(
                [dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)] * 2, pa.timestamp("us", "UTC")
            ),
            "case_id": ["a", "a"],
            "phase": ["measure", "measure"],
            "outcome": ["passed", "passed"],
            "wall_s": [4.0, 6.0],
            "runtime": ["latest", "latest"],
            "hardware": ["local", "local"],
        }
    )
    (results_dir / "cases").mkdir()
    pq.write_table(old, results_dir / "cases" / "run-old__latest__local.parquet")
    write_run([case_row(run_id="run-new", case_id="a", wall_s=1.0, peak_memory_bytes=123)])

    with Results(results_dir) as results:
        columns, rows = results.sql(
            "SELECT run_id, schema_version, wall_s, peak_memory_bytes, tags, dask_version FROM cases "
            "ORDER BY run_id, wall_s"
        )
        assert [name for name, _ in results.views()["rows"]] == list(CASE_COLUMNS)
        _, summary = results.sql("SELECT run_id, median_wall_s FROM case_summary ORDER BY run_id")

    assert columns == ["run_id", "schema_version", "wall_s", "peak_memory_bytes", "tags", "dask_version"]
    assert rows == [
        ("run-new", SCHEMA_VERSION, 1.0, 123, ["smoke", "dataframe"], "2026.1.0"),
        ("run-old", 0, 4.0, None, None, None),
        ("run-old", 0, 6.0, None, None, None),
    ]
    assert summary == [("run-new", 1.0), ("run-old", 5.0)]


def test_environments_view_reads_recorded_environments(results_dir):
    from framework.results import ResultsStore

    ResultsStore(results_dir).record_environment(
        {
            "env_hash": "abc",
            "runtime": "latest",
            "runtime_hash": "r",
            "python": "3.11",
            "built_at": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
            "requirements": ["dask"],
            "lock": "dask==2026.1.0\n",
        }
    )

    with Results(results_dir) as results:
        assert results.sql("SELECT env_hash, lock FROM environments")[1] == [("abc", "dask==2026.1.0\n")]


# --- read-only enforcement --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "kind"),
    [
        ("COPY (SELECT 1) TO '{root}/out.csv'", "COPY"),
        ("CREATE TABLE t AS SELECT 1", "CREATE"),
        ("CREATE VIEW v AS SELECT 1", "CREATE"),
        ("INSERT INTO rows (run_id) VALUES ('x')", "INSERT"),
        ("ATTACH '{root}/db.duckdb' AS other", "ATTACH"),
        ("SET enable_external_access = true", "SET"),
        ("RESET lock_configuration", "RESET"),
        ("PRAGMA threads = 1", "PRAGMA threads"),
        ("EXPORT DATABASE '{root}/export'", "EXPORT"),
        ("IMPORT DATABASE '{root}'", "IMPORT"),
        ("PRAGMA import_database('{root}')", "PRAGMA import_database"),
        ("INSTALL httpfs", "INSTALL"),
        ("DROP VIEW rows", "DROP"),
    ],
)
def test_statements_that_write_or_reconfigure_are_refused(results, results_dir, query, kind):
    with pytest.raises(QueryError) as caught:
        results.sql(query.format(root=results_dir))

    assert str(caught.value) == (
        f"SQL: {kind} statements are not allowed — the results are read-only; use SELECT, EXPLAIN SELECT or PRAGMA "
        "collations, database_size, functions, platform, show_databases, show_tables, show_tables_expanded, "
        "table_info, user_agent, version"
    )
    assert sorted(path.name for path in results_dir.iterdir()) == []


@pytest.mark.parametrize(
    "query",
    [
        "EXPLAIN ANALYZE COPY (SELECT 1) TO '{root}/out.csv'",
        "/* sneaky */ explain analyse COPY (SELECT 1) TO '{root}/out.csv'",
        "EXPLAIN (FORMAT json, ANALYZE) COPY (SELECT 1) TO '{root}/out.csv'",
        "EXPLAIN ANALYZE CREATE TABLE t AS SELECT 1",
    ],
)
def test_explain_analyze_cannot_run_a_write(results, results_dir, query):
    with pytest.raises(QueryError, match="only SELECT statements can be explained"):
        results.sql(query.format(root=results_dir))

    assert list(results_dir.iterdir()) == []
    assert results.sql("SELECT count(*) FROM duckdb_tables()")[1] == [(0,)]


@pytest.mark.parametrize(
    "query",
    ["EXPLAIN SELECT * FROM cases", "EXPLAIN ANALYZE SELECT count(*) FROM rows", "EXPLAIN (FORMAT json) SELECT 1"],
)
def test_explain_of_a_select_is_allowed(results, query):
    columns, rows = results.sql(query)

    assert len(columns) == 2
    assert len(rows) == 1


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('{root}/../../../../etc/passwd')",
        "SELECT * FROM glob('/etc/*')",
    ],
)
def test_reading_files_outside_results_is_refused(results, results_dir, query):
    with pytest.raises(QueryError, match="Permission Error") as caught:
        results.sql(query.format(root=results_dir))

    assert "\n" not in str(caught.value)


def test_reading_a_file_inside_results_directly_is_allowed(results_dir, case_row, write_run):
    path = write_run([case_row()])

    with Results(results_dir) as results:
        assert results.sql(f"SELECT count(*) FROM read_parquet('{path}')")[1] == [(1,)]


def test_multiple_statements_are_refused(results):
    with pytest.raises(QueryError, match="expected one statement, got 2 — run them one at a time"):
        results.sql("SELECT 1; SELECT 2")


def test_syntax_error_is_one_line_with_the_fix(results):
    with pytest.raises(QueryError) as caught:
        results.sql("SELEC wall_s\nFROM cases")

    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith('SQL: Parser Error: syntax error at or near "SELEC"')
    assert message.endswith("check the query's syntax")


def test_binder_error_is_one_line(results):
    with pytest.raises(QueryError) as caught:
        results.sql("SELECT no_such_column FROM cases")

    assert "\n" not in str(caught.value)
    assert "no_such_column" in str(caught.value)


# --- arrow and parameters ---------------------------------------------------------------------------------------


def test_arrow_returns_a_pyarrow_table(results_dir, case_row, write_run):
    write_run([case_row(repeat=n, wall_s=float(n)) for n in range(3)])

    with Results(results_dir) as results:
        table = results.arrow("SELECT repeat, wall_s FROM cases WHERE wall_s >= ? ORDER BY repeat", [1.0])

    assert isinstance(table, pa.Table)
    assert table.column_names == ["repeat", "wall_s"]
    assert table.column("wall_s").to_pylist() == [1.0, 2.0]


@pytest.mark.parametrize(
    "query", ["COPY (SELECT 1) TO '{root}/out.csv'", "CREATE TABLE t AS SELECT 1", "SELECT 1; SELECT 2"]
)
def test_arrow_is_read_only_too(results, results_dir, query):
    with pytest.raises(QueryError):
        results.arrow(query.format(root=results_dir))

    assert list(results_dir.iterdir()) == []
    assert results.sql("SELECT count(*) FROM duckdb_tables()")[1] == [(0,)]


def test_arrow_error_is_a_query_error(results):
    with pytest.raises(QueryError, match="no_such_column"):
        results.arrow("SELECT no_such_column FROM cases")


def test_list_and_dict_parameters(results_dir, case_row, write_run):
    write_run([case_row(case_id=case, wall_s=wall) for case, wall in (("a", 1.0), ("b", 2.0))])

    with Results(results_dir) as results:
        assert results.sql("SELECT case_id FROM cases WHERE wall_s > ?", [1.5])[1] == [("b",)]
        assert results.sql("SELECT case_id FROM cases WHERE case_id = $case", {"case": "a"})[1] == [("a",)]
        assert results.arrow("SELECT count(*) AS n FROM cases WHERE case_id = $case", {"case": "b"}).to_pylist() == [
            {"n": 1}
        ]
