"""One bad file in the store: a zero-byte, truncated, non-Parquet or foreign file among the results.

Guarantee: every reader answers from the other files with the project's column types and says, in one line on
stderr, which file it skipped and why; ``nox -s compact`` moves the file to ``results/quarantine/`` (never
deletes it) and loses no good row."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from framework import cli, results
from framework.compaction import compact
from framework.query import Results
from framework.records import SCHEMAS as RECORD_SCHEMAS
from framework.results import ENVIRONMENT_SCHEMA, ResultsStore, case_table, write_atomic
from framework.summary import run_summary
from tests.unit.conftest import _case_row

RUNS = ("20260101T000000Z-aaaaaa", "20260102T000000Z-bbbbbb", "20260103T000000Z-cccccc")
GOOD_ROWS = len(RUNS) * 3


def _parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def _foreign(good: bytes) -> bytes:
    return _parquet(
        pa.table({"schema_version": pa.array([2], pa.int32()), "run_id": [7], "wall_s": ["slow"], "phase": ["x"]})
    )


def _without_version(good: bytes) -> bytes:
    table = pq.read_table(io.BytesIO(good))
    return _parquet(table.drop_columns([table.column_names[0]]))  # schema_version, or record_version


# Bad file → (its bytes, made from a good file's bytes; what the warning says of it).
BAD: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    "zero-byte": (lambda good: b"", "empty (0 bytes)"),
    "truncated": (lambda good: good[: len(good) // 2], "truncated Parquet file (its footer is missing"),
    "text": (lambda good: b"run_id,wall_s\nx,1.0\n", "not a Parquet file (it starts with b'run_'"),
    "foreign": (_foreign, "foreign schema: run_id int64 (this store: string), wall_s string (this store: double)"),
    "no-version": (_without_version, "no schema_version column"),
}


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A results directory with three good runs of three executions each, distinct wall times."""
    root = tmp_path / "results"
    for n, run_id in enumerate(RUNS):
        started = f"2026-01-0{n + 1}T00:00:00+00:00"
        rows = [
            _case_row(run_id=run_id, run_started_at=started, repeat=repeat, wall_s=1.0 + n + repeat / 4)
            for repeat in range(3)
        ]
        write_atomic(case_table(rows), ResultsStore(root).cases_dir / f"{run_id}__latest__local.parquet")
    return root


def _plant(store: Path, kind: str, directory: str = "cases") -> Path:
    make, _ = BAD[kind]
    good = next((store / "cases").glob("*.parquet")).read_bytes()
    path = store / directory / f"planted-{kind}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(make(good))
    return path


def _checksum(root: Path) -> tuple[int, float, list[str]]:
    with Results(root) as opened:
        _, [(count, total)] = opened.sql("SELECT count(*), sum(wall_s) FROM rows")
        _, ids = opened.sql("SELECT run_id FROM rows ORDER BY run_id, repeat")
    return count, total, [run_id for (run_id,) in ids]


def _warning(path: Path, kind: str) -> str:
    """The start of the line a reader says when it skips ``path``."""
    return f"{path}: skipped — {BAD[kind][1]}"


@pytest.mark.parametrize("kind", BAD)
def test_a_query_answers_from_the_good_rows_with_one_line_naming_the_file(store, kind, capsys):
    path = _plant(store, kind)

    with Results(store) as opened:
        _, [(count, mean)] = opened.sql("SELECT count(*), avg(wall_s) FROM rows")
        types = dict(opened.views()["rows"])
        assert opened.skipped == {path: opened.skipped[path]}

    assert (count, mean) == (GOOD_ROWS, pytest.approx(2.25))
    assert (types["run_id"], types["wall_s"], types["schema_version"]) == ("VARCHAR", "DOUBLE", "INTEGER")
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(_warning(path, kind))
    assert line.endswith(f"; nox -s compact -- --results={store} moves it to {store}/quarantine/")


@pytest.mark.parametrize("kind", BAD)
def test_the_sql_command_exits_0_with_the_warning_and_no_traceback(store, kind):
    path = _plant(store, kind)

    done = subprocess.run(
        [sys.executable, "-m", "framework.cli", "sql", "SELECT count(*) FROM rows", f"--results={store}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[2].strip() == str(GOOD_ROWS)
    [line] = done.stderr.splitlines()
    assert line.startswith(_warning(path, kind))


@pytest.mark.parametrize("kind", BAD)
def test_the_matrix_summary_reads_the_other_rows(store, kind, capsys):
    _plant(store, kind)

    with Results(store) as opened:
        summary = run_summary(opened, RUNS[1])

    [case] = [line.split() for line in summary.splitlines() if line.strip().startswith("groupby_agg")]
    assert case[:5] == ["groupby_agg[by=id]", "passed", "3/3", "2.25", "s"]
    assert summary.endswith("1 case: 1 passed, 0 failed, 0 error, 0 timeout")
    assert len(capsys.readouterr().err.splitlines()) == 1


@pytest.mark.parametrize("kind", BAD)
def test_compact_quarantines_the_file_and_keeps_every_good_row(store, kind, capsys):
    path = _plant(store, kind)
    content = path.read_bytes()
    before = _checksum(store)
    capsys.readouterr()

    code = cli.main(["compact", f"--results={store}"])

    out = capsys.readouterr().out
    moved = store / "quarantine" / "cases" / path.name
    assert code == 1  # a file needs a look
    assert not path.exists()
    assert moved.read_bytes() == content
    assert f"  moved to quarantine: {path} → {moved}: {BAD[kind][1]}" in out
    assert _checksum(store) == before == (GOOD_ROWS, pytest.approx(20.25), sorted([*RUNS] * 3))
    assert capsys.readouterr().err == ""  # nothing left to skip
    assert cli.main(["compact", f"--results={store}"]) == 0


def test_a_taken_name_in_the_quarantine_is_never_replaced(store):
    first = _plant(store, "zero-byte")
    compact(store)
    first.write_bytes(b"a second file of the same name")

    compact(store)

    place = store / "quarantine" / "cases"
    assert (place / first.name).read_bytes() == b""
    assert (place / f"{first.stem}.1.parquet").read_bytes() == b"a second file of the same name"


def test_the_report_builds_from_the_other_rows_and_names_the_file_once(store, tmp_path):
    path = _plant(store, "foreign")

    done = subprocess.run(
        [sys.executable, "-m", "framework.cli", "report", f"--results={store}", f"--out={tmp_path / 'site'}"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert (tmp_path / "site" / "index.html").exists()
    [line] = done.stderr.splitlines()  # the report opens two Results: the line is said once
    assert line.startswith(_warning(path, "foreign"))


def _good_record(kind: str) -> pa.Table:
    schema = ENVIRONMENT_SCHEMA if kind == "environments" else RECORD_SCHEMAS[kind]
    version = schema.names[0]
    return pa.Table.from_pylist([{version: 1}, {version: 1}], schema=schema)


@pytest.mark.parametrize("kind", ["environments", *RECORD_SCHEMAS])
@pytest.mark.parametrize("bad", ["zero-byte", "truncated", "no-version"])
def test_every_record_view_skips_a_bad_file_of_its_directory(store, kind, bad, capsys):
    write_atomic(_good_record(kind), store / kind / "good.parquet")
    make, why = BAD[bad]
    path = store / kind / f"planted-{bad}.parquet"
    path.write_bytes(make((store / kind / "good.parquet").read_bytes()))

    with Results(store) as opened:
        assert opened.sql(f"SELECT count(*) FROM {kind}")[1] == [(2,)]
        assert opened.sql("SELECT count(*) FROM rows")[1] == [(GOOD_ROWS,)]

    [line] = capsys.readouterr().err.splitlines()
    version = "schema_version" if kind == "environments" else "record_version"
    assert line.startswith(f"{path}: skipped — {why.replace('schema_version', version)}")
    compact(store)
    assert (store / "quarantine" / kind / path.name).exists()


def test_a_file_of_compatible_types_is_read_in_the_project_s_types(store, capsys):
    table = case_table([_case_row(run_id="run-wide", wall_s=4.0)])
    wide = table.set_column(
        table.schema.get_field_index("repeat"), "repeat", table.column("repeat").cast(pa.int64())
    ).set_column(table.schema.get_field_index("wall_s"), "wall_s", table.column("wall_s").cast(pa.float32()))
    pq.write_table(wide, store / "cases" / "run-wide__latest__local.parquet")

    with Results(store) as opened:
        types = dict(opened.views()["rows"])
        assert opened.sql("SELECT count(*), max(wall_s) FROM rows")[1] == [(GOOD_ROWS + 1, 4.0)]

    assert (types["repeat"], types["wall_s"]) == ("INTEGER", "DOUBLE")
    assert capsys.readouterr().err == ""


def test_files_of_one_schema_are_judged_once(store, monkeypatch):
    for n in range(20):
        write_atomic(case_table([_case_row(run_id=f"run-{n}")]), store / "cases" / f"run-{n}__latest__local.parquet")
    _plant(store, "foreign")
    read = []
    real = results.pq.read_schema
    monkeypatch.setattr(results.pq, "read_schema", lambda path, **kw: read.append(path) or real(path, **kw))

    with Results(store) as opened:
        assert opened.sql("SELECT count(*) FROM rows")[1] == [(GOOD_ROWS + 20,)]
        assert opened.sql("SELECT count(*) FROM cases")[1] == [(GOOD_ROWS + 20,)]

    assert len(read) == 2  # one good schema, one foreign: 23 case files, 2 footers parsed


def test_a_bad_file_that_arrives_after_opening_is_skipped_at_the_next_query(store, capsys):
    with Results(store) as opened:
        assert opened.sql("SELECT count(*) FROM rows")[1] == [(GOOD_ROWS,)]
        path = _plant(store, "text")
        assert opened.sql("SELECT count(*) FROM rows")[1] == [(GOOD_ROWS,)]

    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(_warning(path, "text"))


def test_a_foreign_column_is_found_whatever_the_case_of_its_name(store, capsys):
    path = store / "cases" / "shouting.parquet"
    pq.write_table(pa.table({"SCHEMA_VERSION": pa.array([2], pa.int32()), "WALL_S": ["slow"]}), path)

    with Results(store) as opened:  # DuckDB matches names whatever their case: WALL_S would turn wall_s into text
        assert opened.sql("SELECT count(*), avg(wall_s) FROM rows")[1] == [(GOOD_ROWS, 2.25)]

    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"{path}: skipped — foreign schema: WALL_S string (this store: double)")
