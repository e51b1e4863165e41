"""``nox -s sql`` given statements that would write, reconfigure, reach outside results/ or hide a second statement.

Guarantee: each is refused in one line (exit 2, no traceback) and nothing under results/ changes — not a byte —
while the read-only PRAGMAs still answer."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from framework import cli
from framework.query import READ_ONLY_PRAGMAS
from framework.results import ResultsStore, case_table, write_atomic
from tests.unit.conftest import _case_row

ALLOWED = "use SELECT, EXPLAIN SELECT or PRAGMA " + ", ".join(READ_ONLY_PRAGMAS)

# Statement (run from the directory holding results/, as --results=results) → the start of its one-line refusal.
REFUSED = [
    ("PRAGMA import_database('results')", "SQL: PRAGMA import_database statements are not allowed"),
    ("pragma Import_Database('results')", "SQL: PRAGMA Import_Database statements are not allowed"),
    ("PRAGMA \"import_database\"('results')", "SQL: PRAGMA import_database statements are not allowed"),
    ("/* PRAGMA version */ PRAGMA import_database('results')", "SQL: PRAGMA import_database statements"),
    ("IMPORT DATABASE 'results'", "SQL: IMPORT statements are not allowed"),
    ("EXPORT DATABASE 'results/export'", "SQL: EXPORT statements are not allowed"),
    ("COPY rows TO 'results/x.csv'", "SQL: COPY statements are not allowed"),
    ("COPY (SELECT 1 AS x) TO 'results/cases/x.parquet' (FORMAT parquet)", "SQL: COPY statements are not allowed"),
    ("COPY rows FROM 'results/x.csv'", "SQL: COPY statements are not allowed"),
    ("ATTACH 'results/db.duckdb' AS other", "SQL: ATTACH statements are not allowed"),
    ("ATTACH ':memory:' AS other", "SQL: ATTACH statements are not allowed"),
    ("DETACH memory", "SQL: DETACH statements are not allowed"),
    ("INSTALL httpfs", "SQL: INSTALL statements are not allowed"),
    ("FORCE INSTALL httpfs", "SQL: FORCE statements are not allowed"),
    ("LOAD httpfs", "SQL: LOAD statements are not allowed"),
    ("UPDATE EXTENSIONS", "SQL: UPDATE statements are not allowed"),
    ("SET enable_external_access = true", "SQL: SET statements are not allowed"),
    ("SET allowed_directories = ['/']", "SQL: SET statements are not allowed"),
    ("RESET lock_configuration", "SQL: RESET statements are not allowed"),
    ("SET VARIABLE x = 1", "SQL: SET statements are not allowed"),
    ("PRAGMA threads = 1", "SQL: PRAGMA threads statements are not allowed"),
    ("PRAGMA enable_profiling", "SQL: PRAGMA enable_profiling statements are not allowed"),
    ("PRAGMA profile_output = 'results/profile.json'", "SQL: PRAGMA profile_output statements are not allowed"),
    ("PRAGMA storage_info('rows')", "SQL: PRAGMA storage_info statements are not allowed"),
    ("CALL pragma_version()", "SQL: CALL statements are not allowed"),
    ("CHECKPOINT", "SQL: CHECKPOINT statements are not allowed"),
    ("VACUUM", "SQL: VACUUM statements are not allowed"),
    ("CREATE TABLE t AS SELECT 1", "SQL: CREATE statements are not allowed"),
    ("CREATE OR REPLACE VIEW rows AS SELECT 1", "SQL: CREATE statements are not allowed"),
    ("CREATE MACRO m() AS 1", "SQL: CREATE statements are not allowed"),
    ("CREATE SECRET (TYPE s3, KEY_ID 'x', SECRET 'y')", "SQL: CREATE statements are not allowed"),
    ("INSERT INTO rows (run_id) VALUES ('x')", "SQL: INSERT statements are not allowed"),
    ("UPDATE rows SET wall_s = 0", "SQL: UPDATE statements are not allowed"),
    ("DELETE FROM rows", "SQL: DELETE statements are not allowed"),
    ("TRUNCATE rows", "SQL: TRUNCATE statements are not allowed"),
    ("DROP VIEW rows", "SQL: DROP statements are not allowed"),
    ("ALTER VIEW rows RENAME TO r", "SQL: ALTER statements are not allowed"),
    ("COMMENT ON VIEW rows IS 'x'", "SQL: COMMENT statements are not allowed"),
    ("BEGIN TRANSACTION", "SQL: BEGIN statements are not allowed"),
    ("USE memory", "SQL: USE statements are not allowed"),
    ("PREPARE p AS SELECT 1", "SQL: PREPARE statements are not allowed"),
    ("SELECT 1; DROP VIEW rows", "SQL: expected one statement, got 2 — run them one at a time"),
    ("SELECT 1; -- only a comment\nCOPY rows TO 'results/y.csv'", "SQL: expected one statement, got 2"),
    ("SELECT 1 /* ; */ ; PRAGMA import_database('results')", "SQL: expected one statement, got 2"),
    ("EXPLAIN ANALYZE COPY (SELECT 1) TO 'results/out.csv'", "SQL: only SELECT statements can be explained"),
    ("SELECT * FROM read_csv('/etc/passwd')", 'SQL: Permission Error: Cannot access file "/etc/passwd"'),
    ("SELECT * FROM read_text('results/../../../../etc/passwd')", "SQL: Permission Error: Cannot access file"),
    ("SELECT * FROM read_parquet('{outside}')", "SQL: Permission Error: Cannot access file"),
    ("SELECT * FROM glob('/etc/*')", 'SQL: Permission Error: Cannot access file "/etc/*"'),
    ("SELECT * FROM sniff_csv('/etc/passwd')", "SQL: Permission Error: Cannot access file"),
    ("SELECT * FROM query('COPY (SELECT 1) TO ''results/q.csv''')", "SQL: Parser Error: Expected a single SELECT"),
    (
        "SELECT * FROM read_xlsx('results/x.xlsx')",
        'SQL: Catalog Error: Table Function with name "read_xlsx" is not in the catalog',
    ),
    ("SELECT * FROM 'https://example.com/x.parquet'", "SQL: Permission Error: Cannot access file"),
]

# The PRAGMAs allowed (a statement each, whatever the case of its name) → a piece of their answer.
PRAGMAS = [
    ("PRAGMA version", "v"),
    ("PRAGMA platform", "linux"),
    ("PRAGMA user_agent", "duckdb/"),
    ("PRAGMA show_tables", "case_summary"),
    ("PRAGMA show_tables_expanded", "rows"),
    ("PRAGMA show_databases", "memory"),
    ("PRAGMA table_info('rows')", "run_id"),
    ("pragma TABLE_INFO('cases')", "wall_s"),
    ("PRAGMA database_size", "memory"),
    ("PRAGMA functions", "median"),
    ("PRAGMA collations", "nocase"),
]


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """results/ with one run, and the schema.sql / load.sql that PRAGMA import_database would run: its load.sql
    writes results/pwned.csv."""
    root = tmp_path / "results"
    write_atomic(case_table([_case_row()]), ResultsStore(root).cases_dir / "run__latest__local.parquet")
    (root / "schema.sql").write_text("CREATE TABLE planted (x INTEGER);\n")
    (root / "load.sql").write_text(f"COPY (SELECT 42 AS x) TO '{root}/pwned.csv';\n")
    pq.write_table(pa.table({"x": [1]}), tmp_path / "outside.parquet")
    monkeypatch.chdir(tmp_path)
    return root


def test_the_table_is_long_enough():
    assert len(REFUSED) >= 30


@pytest.mark.parametrize(("statement", "refusal"), REFUSED)
def test_a_statement_that_could_write_or_reach_outside_is_refused_in_one_line(store, capsys, statement, refusal):
    before = _snapshot(store)

    code = cli.main(["sql", "--results=results", statement.format(outside=store.parent / "outside.parquet")])

    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    [line] = err.splitlines()
    assert line.startswith(refusal)
    if "not allowed" in refusal:
        assert line.endswith(f"— the results are read-only; {ALLOWED}")
    assert _snapshot(store) == before
    assert not (store / "pwned.csv").exists()


@pytest.mark.parametrize(("pragma", "answer"), PRAGMAS)
def test_the_read_only_pragmas_answer(store, capsys, pragma, answer):
    before = _snapshot(store)

    code = cli.main(["sql", "--results=results", "--json", pragma])

    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    assert answer in out
    assert _snapshot(store) == before


def test_every_read_only_pragma_is_tested():
    assert {pragma.split()[1].split("(")[0].lower() for pragma, _ in PRAGMAS} == set(READ_ONLY_PRAGMAS)
