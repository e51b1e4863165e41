"""DuckDB views over the results store, opened read-only. The only module that opens DuckDB.

Views:
    rows          every execution (warm-ups, measured repeats, setup failures), all schema versions
    cases         measured repeats only (phase = 'measure') — what statistics use
    runs          one line per run × runtime × hardware: when, where, which versions, how many passed
    run_groups    one line per run group × runtime × hardware: the shards of one split run (or one run) as a whole
    case_summary  one line per run × runtime × hardware × case: outcomes, warm-ups run, medians, repeats measured
                  overloaded
    latest        the measured repeats of the newest run of each runtime × hardware × case
    environments  each built environment's lock (exact package list)
    comparisons   A/B comparisons: one line per case × metric (nox -s compare)
    regressions   change points found by history scans (nox -s regressions)
    verdicts      blessing decisions with their reasons (nox -s bless)
    health        each health check of an environment: usable, or the one-line cause (WHERE NOT usable)
    lock_changes  what changed in a runtime's lock since its previous run (package, old → new version)

Tables added by the commands that need them (``nox -s sql`` adds both): ``findings`` (the findings ledger) and
``machines`` (each machine the rows name, its class by ``matrices/machines.yaml`` and its first run:
:func:`framework.machines.register`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from framework.footers import QUARANTINE, FooterChecks
from framework.in_runtime.errors import QueryError
from framework.metric_catalogue import METRICS
from framework.object_store import opened, remote_parquet
from framework.records import SCHEMAS as RECORD_SCHEMAS
from framework.results import CASE_SCHEMA, ENVIRONMENT_SCHEMA, store_lock
from framework.vocabulary import LEGACY_VERDICT_SQL

_ALLOWED_STATEMENTS = {"SELECT", "EXPLAIN", "PRAGMA"}
# The PRAGMAs that only read (the catalog, versions, sizes). Every other one is refused: import_database runs the
# SQL files of a directory (writing where COPY may write: results/ itself), most others change settings.
READ_ONLY_PRAGMAS = (
    "collations",
    "database_size",
    "functions",
    "platform",
    "show_databases",
    "show_tables",
    "show_tables_expanded",
    "table_info",
    "user_agent",
    "version",
)
_ALLOWED = f"use SELECT, EXPLAIN SELECT or PRAGMA {', '.join(READ_ONLY_PRAGMAS)}"

# case_summary's medians: every metric of the catalogue, then the task count (once, were it made a metric).
_CASE_MEDIANS = ",\n               ".join(
    f"median({column}) FILTER (WHERE phase = 'measure') AS median_{column}"
    for column in dict.fromkeys([*(spec.column for spec in METRICS.values()), "tasks"])
)

VIEWS: dict[str, str] = {
    "cases": "SELECT * FROM rows WHERE phase = 'measure'",
    "runs": """
        SELECT run_id, runtime, hardware,
               any_value(coalesce(run_group, run_id)) AS run_group, any_value(shard) AS shard,
               min(run_started_at) AS run_started_at, min(started_at) AS started_at, max(ended_at) AS ended_at,
               any_value(runtime_hash) AS runtime_hash, any_value(dask_version) AS dask_version,
               any_value(distributed_version) AS distributed_version, any_value(python_version) AS python_version,
               any_value(hostname) AS hostname, any_value(git_commit) AS git_commit, any_value(git_dirty) AS git_dirty,
               count(DISTINCT case_id) AS n_cases,
               count(*) FILTER (WHERE phase = 'measure') AS n_measured,
               count(*) FILTER (WHERE outcome = 'passed' AND phase = 'measure') AS n_passed,
               count(*) FILTER (WHERE outcome = 'failed') AS n_failed,
               count(*) FILTER (WHERE outcome = 'error') AS n_error,
               count(*) FILTER (WHERE outcome = 'timeout') AS n_timeout,
               count(*) FILTER (WHERE outcome = 'interrupted') AS n_interrupted
        FROM rows GROUP BY run_id, runtime, hardware""",
    # A run written before run groups (no run_group) is a group of its own; a shard's "K/N" says how many to expect.
    # shards_seen counts the shards of the whole group (a shard may hold no case of this runtime × hardware);
    # cases_in_several_runs > 0: a case ran in more than one of the group's runs — shards that disagreed on the split
    # (different history, options or day), or a shard run again.
    "run_groups": """
        WITH grouped AS (SELECT *, coalesce(run_group, run_id) AS group_id FROM rows),
        whole AS (
            SELECT group_id, count(DISTINCT coalesce(shard, run_id)) AS shards_seen,
                   max(coalesce(TRY_CAST(split_part(shard, '/', 2) AS INTEGER), 1)) AS shards_expected
            FROM grouped GROUP BY group_id
        ),
        per_case AS (
            SELECT group_id, runtime, hardware, case_id, count(DISTINCT run_id) AS runs
            FROM grouped GROUP BY group_id, runtime, hardware, case_id
        ),
        twice AS (
            SELECT group_id, runtime, hardware, count(*) FILTER (WHERE runs > 1) AS cases_in_several_runs
            FROM per_case GROUP BY group_id, runtime, hardware
        )
        SELECT g.group_id AS run_group, g.runtime, g.hardware,
               any_value(whole.shards_expected) AS shards_expected, any_value(whole.shards_seen) AS shards_seen,
               any_value(whole.shards_seen) >= any_value(whole.shards_expected) AS complete,
               coalesce(list_sort(list(DISTINCT g.shard) FILTER (WHERE g.shard IS NOT NULL)), []) AS shards,
               list_sort(list(DISTINCT g.run_id)) AS run_ids,
               min(g.run_started_at) AS run_started_at, min(g.started_at) AS started_at, max(g.ended_at) AS ended_at,
               any_value(g.dask_version) AS dask_version, any_value(g.distributed_version) AS distributed_version,
               list_sort(list(DISTINCT g.hostname)) AS hostnames,
               count(DISTINCT g.case_id) AS n_cases,
               count(*) FILTER (WHERE g.phase = 'measure') AS n_measured,
               count(*) FILTER (WHERE g.outcome = 'passed' AND g.phase = 'measure') AS n_passed,
               count(*) FILTER (WHERE g.outcome = 'failed') AS n_failed,
               count(*) FILTER (WHERE g.outcome = 'error') AS n_error,
               count(*) FILTER (WHERE g.outcome = 'timeout') AS n_timeout,
               count(*) FILTER (WHERE g.outcome = 'interrupted') AS n_interrupted,
               any_value(twice.cases_in_several_runs) AS cases_in_several_runs
        FROM grouped g JOIN whole USING (group_id) JOIN twice USING (group_id, runtime, hardware)
        GROUP BY g.group_id, g.runtime, g.hardware""",
    "case_summary": f"""
        SELECT run_id, runtime, hardware, workload, case_id, size,
               any_value(coalesce(run_group, run_id)) AS run_group, any_value(shard) AS shard,
               any_value(params) AS params,
               any_value(dask_version) AS dask_version, min(started_at) AS started_at,
               count(*) FILTER (WHERE phase = 'measure') AS repeats,
               count(*) FILTER (WHERE outcome = 'passed' AND phase = 'measure') AS passed,
               count(*) FILTER (WHERE phase = 'warmup') AS warmups,
               count(*) FILTER (WHERE outcome <> 'passed') AS not_passed,
               CASE WHEN bool_or(outcome = 'timeout') THEN 'timeout'
                    WHEN bool_or(outcome = 'error') THEN 'error'
                    WHEN bool_or(outcome = 'failed') THEN 'failed'
                    WHEN bool_or(outcome = 'interrupted') THEN 'interrupted'
                    ELSE 'passed' END AS outcome,
               {_CASE_MEDIANS},
               any_value(error) FILTER (WHERE outcome <> 'passed') AS first_error,
               count(*) FILTER (WHERE phase = 'measure' AND overloaded) AS overloaded_repeats,
               max(load_avg_1m) FILTER (WHERE phase = 'measure') AS max_load_avg_1m,
               any_value(cpu_count) AS cpu_count
        FROM rows GROUP BY run_id, runtime, hardware, workload, case_id, size""",
    "latest": """
        SELECT * FROM cases
        QUALIFY run_started_at = max(run_started_at) OVER (PARTITION BY runtime, hardware, case_id, size)""",
}


# View → the store directory it reads, and the schema of its files.
_SOURCES = (("rows", "cases"), ("environments", "environments"), *((kind, kind) for kind in RECORD_SCHEMAS))
_SCHEMAS = {"rows": CASE_SCHEMA, "environments": ENVIRONMENT_SCHEMA, **RECORD_SCHEMAS}

# Lines said about skipped files: once per process, however many Results it opens (the report opens two at once).
_SAID: set[str] = set()
_SAID_LOCK = threading.Lock()


class Results:
    """Read-only SQL over a results directory. ``Results(path).sql("SELECT ...")`` → (columns, rows)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.connection = duckdb.connect(":memory:")
        # Every query of a connection reads the same footers (one per run file): read them once.
        self.connection.execute("SET parquet_metadata_cache = true")
        self.connection.execute("SET enable_progress_bar = false")  # a library prints nothing of its own
        self.skipped: dict[Path, str] = {}  # files the views leave out (unreadable or foreign) → why
        self._tables: list[str] = []  # added with add_table
        self._checks = FooterChecks()
        self._register_empty()
        # A URL store (framework.object_store): its files are read in place through its filesystem; files of its
        # work directory the URL does not hold yet (normally none) are read beside them. No lock: nothing is
        # swapped under a reader there (compaction refuses URL stores, and an object appears whole).
        store = opened(self.root)
        self._store = store.remote.reader() if store is not None else None
        allowed = [f"{_quote(str(self.root))}/"]
        if self._store is not None:
            self.connection.register_filesystem(self._store.fs)
            allowed.append(_quote(self._store.uri()))
        with store_lock(self.root, exclusive=False) if self._store is None else contextlib.nullcontext():
            self._listing: dict[str, tuple[str, ...]] = {}
            self._remote: dict[str, dict[str, tuple[int, str]]] = {}
            self._create_views(self._listing_now())
        # From here on, no statement may touch a file outside results/, write anything, or change that.
        quoted = ", ".join(f"'{path}'" for path in allowed)
        self.connection.execute(f"SET allowed_directories=[{quoted}]")
        self.connection.execute("SET enable_external_access=false")
        # Extensions this client does not link in are neither fetched nor loaded by a query (no network, no writes to
        # ~/.duckdb): parquet, json and icu are built in.
        self.connection.execute("SET autoinstall_known_extensions=false")
        self.connection.execute("SET autoload_known_extensions=false")
        self.connection.execute("SET lock_configuration=true")

    def _register_empty(self) -> None:
        con = self.connection
        con.register("_empty_rows", pa.Table.from_pylist([], schema=CASE_SCHEMA))
        con.register("_empty_environments", pa.Table.from_pylist([], schema=ENVIRONMENT_SCHEMA))
        for kind, schema in RECORD_SCHEMAS.items():
            con.register(f"_empty_{kind}", pa.Table.from_pylist([], schema=schema))

    def _listing_now(self) -> dict[str, tuple[str, ...]]:
        """The Parquet files of each view's directory: when they change (a run wrote, a compaction ran), that view
        is remade — new files are checked first."""
        listing = {}
        if self._store is not None:
            self._remote = remote_parquet(self._store)
        for view, name in _SOURCES:
            try:
                names = [entry.name for entry in os.scandir(self.root / name) if entry.name.endswith(".parquet")]
            except (FileNotFoundError, NotADirectoryError):
                names = []
            if self._store is not None:  # the URL's files, then the work directory's it does not hold yet
                remote = self._remote.get(name, {})
                names = [f"{name}@{size}@{tag}" for name, (size, tag) in remote.items()] + [
                    f"{name}@local" for name in names if name not in remote and not name.startswith(".")
                ]
            listing[view] = tuple(sorted(names))
        return listing

    def _create_views(self, listing: dict[str, tuple[str, ...]]) -> None:
        con = self.connection
        # Files of older schema versions lack newer columns: union_by_name fills them with NULL, and the empty
        # current-schema table guarantees every current column exists even when no file has it yet.
        remade = set()
        changed = [(v, n) for v, n in _SOURCES if v not in self._listing or listing[v] != self._listing[v]]
        if self._store is not None:  # the footers of every new object, in one concurrent batch
            self._prefetch({name: listing[view] for view, name in changed})
        for view, name in changed:
            source = self._source(view, self.root / name, listing[view])
            con.execute(f"CREATE OR REPLACE VIEW {view} AS {source}")
            remade.add(view)
        if "rows" in remade:  # a view stores the columns it was made with: the views over rows are remade too
            for view, body in VIEWS.items():
                con.execute(f"CREATE OR REPLACE VIEW {view} AS {body}")
        self._listing = listing

    def _source(self, view: str, directory: Path, names: Sequence[str]) -> str:
        """The query a view reads its directory with: every file but those it cannot read (said once on stderr)
        and those a compacted file merged (a compaction that died before deleting them: the next one will)."""
        if self._store is not None:
            return self._remote_source(view, directory, names)
        schema = _SCHEMAS[view]
        readable: list[Path] = []
        casts: set[str] = set()
        merged: set[str] = set()
        for name in names:
            path = directory / name
            footer = self._checks.check(path, schema)
            if footer is None:  # merged and deleted since it was listed
                continue
            if footer.problem is not None:
                self._skip(path, footer.problem)
                continue
            readable.append(path)
            casts |= footer.casts
            merged.update(footer.merged)
        kept = [path for path in readable if path.name not in merged]
        if not kept:
            return f"SELECT * FROM _empty_{view}"
        # A glob, not a list of thousands of names: binding a listed file costs DuckDB far more (opening a 2,733-file
        # history took 5.3 s listed, 0.5 s globbed). Listed instead: a directory whose name holds a glob character,
        # and one holding a file to leave out. Partial files end in .partial: the glob skips them.
        if len(kept) < len(names) or any(char in str(directory) for char in "*?[]{}"):
            pattern = "[" + ", ".join(f"'{_quote(str(path))}'" for path in kept) + "]"
        else:
            pattern = f"'{_quote(str(directory))}/*.parquet'"
        return self._union(view, pattern, casts)

    def _prefetch(self, entries: dict[str, Sequence[str]]) -> None:
        """Fetch the footers of the listed objects not checked yet, concurrently (small files whole)."""
        assert self._store is not None
        unchecked = {}
        for directory, names in entries.items():
            for entry in names:
                name, size_text, *tag = entry.split("@")
                relative = f"{directory}/{name}"
                if size_text == "local" or self._store.fetched(relative):
                    continue
                if not self._checks.known(self._store.uri(relative), int(size_text), tag[0]):
                    unchecked[relative] = int(size_text)
        self._store.prefetch(unchecked)

    def _remote_source(self, view: str, directory: Path, entries: Sequence[str]) -> str:
        """:meth:`_source` for a URL store: its objects (``name@size@tag``) read in place, and the work
        directory's files it does not hold yet (``name@local``)."""
        assert self._store is not None
        remote = self._store
        schema = _SCHEMAS[view]
        kept: dict[str, str] = {}  # name → where DuckDB reads it
        casts: set[str] = set()
        merged: set[str] = set()
        self._prefetch({directory.name: entries})  # (done already for the views made together)
        for entry in entries:
            name, size_text, *tag = entry.split("@")
            if size_text == "local":
                where = str(directory / name)
                footer = self._checks.check(directory / name, schema)
            else:
                relative = f"{directory.name}/{name}"
                where = remote.uri(relative)
                size = int(size_text)
                opener = functools.partial(remote.open_tail, relative, size)
                footer = self._checks.check_opened(where, size, tag[0], opener, schema)
            if footer is None:
                continue
            if footer.problem is not None:
                self._skip(Path(where) if size_text == "local" else Path(name), footer.problem, shown=where)
                continue
            kept[name] = where
            casts |= footer.casts
            merged.update(footer.merged)
        kept = {name: where for name, where in kept.items() if name not in merged}
        if not kept:
            return f"SELECT * FROM _empty_{view}"
        if len(kept) == len(entries) and all(entry.count("@") == 2 for entry in entries):
            pattern = f"'{_quote(remote.uri(directory.name))}/*.parquet'"  # one listing by DuckDB, not a list
        else:
            pattern = "[" + ", ".join(f"'{_quote(where)}'" for where in kept.values()) + "]"
        return self._union(view, pattern, casts)

    def _union(self, view: str, pattern: str, casts: set[str]) -> str:
        source = (
            f"SELECT * FROM read_parquet({pattern}, union_by_name = true) UNION ALL BY NAME SELECT * FROM _empty_{view}"
        )
        if casts:  # a file stores a column in a compatible type (int64 for int32 …): the view keeps the schema's
            types = dict(
                self.connection.execute(f"SELECT column_name, column_type FROM (DESCRIBE _empty_{view})").fetchall()
            )
            replaced = ", ".join(f'CAST("{column}" AS {types[column]}) AS "{column}"' for column in sorted(casts))
            source = f"SELECT * REPLACE ({replaced}) FROM ({source})"
        if view == "comparisons":  # older files say 'unchanged' where the data could not tell: today's words
            source = f"SELECT * REPLACE ({LEGACY_VERDICT_SQL} AS verdict) FROM ({source})"
        return source

    def _skip(self, path: Path, why: str, shown: str | None = None) -> None:
        """Leave a file out of the views, and say so in one line (once per process)."""
        from framework.config import DEFAULT_RESULTS  # the project's own store: nox -s compact needs no --results

        self.skipped[path] = why
        root = _shown(self.root)
        default = self.root == DEFAULT_RESULTS.resolve()
        compact = "nox -s compact" if default else f"nox -s compact -- --results={root}"
        line = f"{_shown(path)}: skipped — {why}; {compact} moves it to {root}/{QUARANTINE}/"
        if shown is not None:  # a URL store: compaction refuses it
            line = f"{shown}: skipped — {why}; move it out of the store (merge the store into a directory to compact)"
        with _SAID_LOCK:
            if line in _SAID:
                return
            _SAID.add(line)
        sys.stderr.write(line + "\n")

    @contextlib.contextmanager
    def _consistent(self) -> Iterator[None]:
        """Hold the store's lock shared while a statement runs (no compaction swaps files under it), and remake
        the views of the directories whose files changed since they were made (a compaction ran, a file came)."""
        with store_lock(self.root, exclusive=False) if self._store is None else contextlib.nullcontext():
            listing = self._listing_now()
            if listing != self._listing:
                self._create_views(listing)
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

    def add_table(self, name: str, table: pa.Table) -> None:
        """A table from outside the store (the findings ledger), queried like the views; listed by ``views``."""
        self.connection.register(name, table)  # a second table of one name replaces the first
        if name not in self._tables:
            self._tables.append(name)

    def views(self) -> dict[str, list[tuple[str, str]]]:
        """View → [(column, type)], for ``nox -s sql`` with no query."""
        described = {}
        for view in ("rows", *VIEWS, "environments", *RECORD_SCHEMAS, *self._tables):
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
    words = _leading_words(query)
    try:
        kind = statements[0].type.name
    except ValueError:  # a statement this duckdb's Python API has no name for (UPDATE EXTENSIONS …)
        kind = words[0]
    if kind == "PRAGMA" and words[0] == "PRAGMA" and words[1].lower() in READ_ONLY_PRAGMAS:
        return
    if kind not in _ALLOWED_STATEMENTS - {"PRAGMA"}:
        name = f"PRAGMA {words[1]}" if words[0] == "PRAGMA" else words[0]  # IMPORT DATABASE is a PRAGMA too
        raise QueryError(f"SQL: {name} statements are not allowed — the results are read-only; {_ALLOWED}")
    if kind == "EXPLAIN":
        try:
            explained = duckdb.extract_statements(_explained(query))
        except duckdb.Error:
            explained = []
        if len(explained) != 1 or explained[0].type.name != "SELECT":
            raise QueryError("SQL: only SELECT statements can be explained — the results are read-only")


def _leading_words(query: str) -> tuple[str, str]:
    """The first two words of a statement, comments skipped (``PRAGMA``, ``import_database``); quotes removed."""
    tokens = [(offset, kind) for offset, kind in duckdb.tokenize(query) if kind != duckdb.token_type.comment]
    words = []
    for index, (offset, _) in enumerate(tokens[:2]):
        end = tokens[index + 1][0] if index + 1 < len(tokens) else len(query)
        word = re.match(r'\s*("[^"]*"|\w*)', query[offset:end])
        words.append(word.group(1).strip('"') if word else "")
    words += ["", ""]
    return words[0].upper() or "?", words[1]


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


def _shown(path: Path) -> str:
    """A path as the user would type it: relative to the working directory when it lies under it."""
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _quote(text: str) -> str:
    return text.replace("'", "''")


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
