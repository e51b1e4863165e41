"""DuckDB views over the results store, opened read-only. The only module that opens DuckDB.

Views:
    rows          every execution (warm-ups, measured repeats, setup failures), all schema versions
    cases         measured repeats only (phase = 'measure') — what statistics use
    runs          one line per run × runtime × hardware: when, where, which versions, how many passed
    case_summary  one line per run × runtime × hardware × case: outcomes and medians
    latest        the measured repeats of the newest run of each runtime × hardware × case
    environments  each built environment's lock (exact package list)
    comparisons   A/B comparisons: one line per case × metric (nox -s compare)
    regressions   change points found by history scans (nox -s regressions)
    verdicts      blessing decisions with their reasons (nox -s bless)
    health        each health check of an environment: usable, or the one-line cause (WHERE NOT usable)
    lock_changes  what changed in a runtime's lock since its previous run (package, old → new version)
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from framework.errors import QueryError
from framework.records import SCHEMAS as RECORD_SCHEMAS
from framework.results import CASE_SCHEMA, ENVIRONMENT_SCHEMA, compacted_files, compacted_sources, store_lock

_ALLOWED_STATEMENTS = {"SELECT", "EXPLAIN", "PRAGMA"}

VIEWS: dict[str, str] = {
    "cases": "SELECT * FROM rows WHERE phase = 'measure'",
    "runs": """
        SELECT run_id, runtime, hardware,
               min(run_started_at) AS run_started_at, min(started_at) AS started_at, max(ended_at) AS ended_at,
               any_value(runtime_hash) AS runtime_hash, any_value(dask_version) AS dask_version,
               any_value(distributed_version) AS distributed_version, any_value(python_version) AS python_version,
               any_value(hostname) AS hostname, any_value(git_commit) AS git_commit, any_value(git_dirty) AS git_dirty,
               count(DISTINCT case_id) AS n_cases,
               count(*) FILTER (WHERE phase = 'measure') AS n_measured,
               count(*) FILTER (WHERE outcome = 'passed' AND phase = 'measure') AS n_passed,
               count(*) FILTER (WHERE outcome = 'failed') AS n_failed,
               count(*) FILTER (WHERE outcome = 'error') AS n_error,
               count(*) FILTER (WHERE outcome = 'timeout') AS n_timeout
        FROM rows GROUP BY run_id, runtime, hardware""",
    "case_summary": """
        SELECT run_id, runtime, hardware, workload, case_id, size,
               any_value(params) AS params,
               any_value(dask_version) AS dask_version, min(started_at) AS started_at,
               count(*) FILTER (WHERE phase = 'measure') AS repeats,
               count(*) FILTER (WHERE outcome = 'passed' AND phase = 'measure') AS passed,
               count(*) FILTER (WHERE outcome <> 'passed') AS not_passed,
               CASE WHEN bool_or(outcome = 'timeout') THEN 'timeout'
                    WHEN bool_or(outcome = 'error') THEN 'error'
                    WHEN bool_or(outcome = 'failed') THEN 'failed'
                    ELSE 'passed' END AS outcome,
               median(wall_s) FILTER (WHERE phase = 'measure') AS median_wall_s,
               median(peak_memory_bytes) FILTER (WHERE phase = 'measure') AS median_peak_memory_bytes,
               median(mean_memory_bytes) FILTER (WHERE phase = 'measure') AS median_mean_memory_bytes,
               median(spilled_bytes) FILTER (WHERE phase = 'measure') AS median_spilled_bytes,
               median(tasks) FILTER (WHERE phase = 'measure') AS median_tasks,
               any_value(error) FILTER (WHERE outcome <> 'passed') AS first_error
        FROM rows GROUP BY run_id, runtime, hardware, workload, case_id, size""",
    "latest": """
        SELECT * FROM cases
        QUALIFY run_started_at = max(run_started_at) OVER (PARTITION BY runtime, hardware, case_id, size)""",
}


# View → the store directory it reads.
_SOURCES = (("rows", "cases"), ("environments", "environments"), *((kind, kind) for kind in RECORD_SCHEMAS))


class Results:
    """Read-only SQL over a results directory. ``Results(path).sql("SELECT ...")`` → (columns, rows)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.connection = duckdb.connect(":memory:")
        # Every query of a connection reads the same footers (one per run file): read them once.
        self.connection.execute("SET parquet_metadata_cache = true")
        self.connection.execute("SET enable_progress_bar = false")  # a library prints nothing of its own
        self._register_empty()
        with store_lock(self.root, exclusive=False):
            self._compacted = self._compacted_now()
            self._create_views()
        # From here on, no statement may touch a file outside results/, write anything, or change that.
        self.connection.execute(f"SET allowed_directories=['{_quote(str(self.root))}/']")
        self.connection.execute("SET enable_external_access=false")
        self.connection.execute("SET lock_configuration=true")

    def _register_empty(self) -> None:
        con = self.connection
        con.register("_empty_rows", pa.Table.from_pylist([], schema=CASE_SCHEMA))
        con.register("_empty_environments", pa.Table.from_pylist([], schema=ENVIRONMENT_SCHEMA))
        for kind, schema in RECORD_SCHEMAS.items():
            con.register(f"_empty_{kind}", pa.Table.from_pylist([], schema=schema))

    def _compacted_now(self) -> tuple[tuple[str, ...], ...]:
        """The compacted files of each directory: when they change (a compaction ran), the views are remade."""
        return tuple(tuple(path.name for path in compacted_files(self.root / name)) for _, name in _SOURCES)

    def _create_views(self) -> None:
        con = self.connection
        # Files of older schema versions lack newer columns: union_by_name fills them with NULL, and the empty
        # current-schema table guarantees every current column exists even when no file has it yet.
        for view, name in _SOURCES:
            directory = self.root / name
            files = sorted(directory.glob("*.parquet"))
            merged = compacted_sources(directory) if any(path.name.startswith("compacted__") for path in files) else {}
            kept = [path for path in files if path.name not in merged]
            if kept:
                # A glob, not a list of thousands of names: binding a listed file costs DuckDB far more (opening
                # a 2,733-file history took 5.3 s listed, 0.5 s globbed). Listed instead: a directory whose name
                # holds a glob character, and one still holding files a compacted file merged (a compaction that
                # died before deleting them: the next one will). Partial files end in .partial: the glob skips them.
                if len(kept) < len(files) or any(char in str(directory) for char in "*?[]{}"):
                    pattern = "[" + ", ".join(f"'{_quote(str(path))}'" for path in kept) + "]"
                else:
                    pattern = f"'{_quote(str(directory))}/*.parquet'"
                source = (
                    f"SELECT * FROM read_parquet({pattern}, union_by_name = true) "
                    f"UNION ALL BY NAME SELECT * FROM _empty_{view}"
                )
            else:
                source = f"SELECT * FROM _empty_{view}"
            con.execute(f"CREATE OR REPLACE VIEW {view} AS {source}")
        for view, body in VIEWS.items():
            con.execute(f"CREATE OR REPLACE VIEW {view} AS {body}")

    @contextlib.contextmanager
    def _consistent(self) -> Iterator[None]:
        """Hold the store's lock shared while a statement runs (no compaction swaps files under it), and remake
        the views first if a compaction ran since they were made."""
        with store_lock(self.root, exclusive=False):
            compacted = self._compacted_now()
            if compacted != self._compacted:
                self._create_views()
                self._compacted = compacted
            yield

    def sql(
        self, query: str, parameters: list[Any] | dict[str, Any] | None = None
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run one read-only statement; return column names and rows."""
        _check(query)
        try:
            with self._consistent():
                cursor = self.connection.execute(query, parameters or [])
                columns = [column[0] for column in cursor.description or []]
                return columns, cursor.fetchall()
        except duckdb.Error as error:
            raise QueryError(f"SQL: {_first_line(error)}") from None

    def arrow(self, query: str, parameters: list[Any] | dict[str, Any] | None = None) -> pa.Table:
        """Like :meth:`sql`, as an Arrow table (for pandas: ``.to_pandas()``)."""
        _check(query)
        try:
            with self._consistent():
                relation = self.connection.sql(query, params=parameters or None)
                # DuckDB 2.0 renamed fetch_arrow_table() to to_arrow_table().
                fetch = getattr(relation, "to_arrow_table", None) or relation.fetch_arrow_table
                table: pa.Table = fetch()
        except duckdb.Error as error:
            raise QueryError(f"SQL: {_first_line(error)}") from None
        return table

    def views(self) -> dict[str, list[tuple[str, str]]]:
        """View → [(column, type)], for ``nox -s sql`` with no query."""
        described = {}
        for view in ("rows", *VIEWS, "environments", *RECORD_SCHEMAS):
            cursor = self.connection.execute(f"DESCRIBE {view}")
            described[view] = [(row[0], row[1]) for row in cursor.fetchall()]
        return described

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> Results:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _check(query: str) -> None:
    """Refuse anything but one statement that only reads (EXPLAIN ANALYZE runs what it explains)."""
    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error as error:
        raise QueryError(f"SQL: {_first_line(error)} — check the query's syntax") from None
    if len(statements) != 1:
        raise QueryError(f"SQL: expected one statement, got {len(statements)} — run them one at a time")
    kind = statements[0].type.name
    if kind not in _ALLOWED_STATEMENTS:
        raise QueryError(f"SQL: {kind} statements are not allowed — the results are read-only; use SELECT")
    if kind == "EXPLAIN":
        try:
            explained = duckdb.extract_statements(_explained(query))
        except duckdb.Error:
            explained = []
        if len(explained) != 1 or explained[0].type.name != "SELECT":
            raise QueryError("SQL: only SELECT statements can be explained — the results are read-only")


def _explained(query: str) -> str:
    """The statement after ``EXPLAIN [ANALYZE] [(options)]``; empty if there is none."""
    depth = 0
    for offset, kind in duckdb.tokenize(query):
        if kind == duckdb.token_type.comment:
            continue
        char = query[offset]
        if kind == duckdb.token_type.operator and char in "()":
            depth += 1 if char == "(" else -1
            continue
        word = re.match(r"\w*", query[offset:])
        if depth or (word and word.group().upper() in {"EXPLAIN", "ANALYZE", "ANALYSE"}):
            continue
        return query[offset:]
    return ""


def _quote(text: str) -> str:
    return text.replace("'", "''")


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
