"""framework/results.py: row normalisation, atomic append-only Parquet files, staging → cases, salvage."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from framework.in_runtime.errors import ResultsError
from framework.in_runtime.runner import RowWriter
from framework.results import (
    CASE_COLUMNS,
    CASE_SCHEMA,
    ENVIRONMENT_SCHEMA,
    SCHEMA_VERSION,
    ResultsStore,
    _normalise,
    case_table,
    iter_columns,
    read_rows,
    write_atomic,
)
from framework.salvage import salvage

# --- case_table / _normalise ------------------------------------------------------------------------------------


def test_normalise_encodes_json_columns_as_sorted_text(case_row):
    row = _normalise(case_row(params={"b": 2, "a": [1, 2]}, missing={"spill": "no worker plugin"}))

    assert row["params"] == '{"a": [1, 2], "b": 2}'
    assert json.loads(row["missing"]) == {"spill": "no worker plugin"}
    assert json.loads(row["tasks_by_worker"]) == {"tcp://127.0.0.1:1": 6, "tcp://127.0.0.1:2": 4}


def test_normalise_keeps_json_text_as_is_and_none_as_null(case_row):
    row = _normalise(case_row(params='{"already": "text"}', dask_config=None))

    assert row["params"] == '{"already": "text"}'
    assert row["dask_config"] is None


def test_normalise_parses_iso_timestamps(case_row):
    row = _normalise(case_row(started_at="2026-03-04T05:06:07.123456+00:00"))

    assert row["started_at"] == dt.datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=dt.timezone.utc)
    assert isinstance(row["run_started_at"], dt.datetime)


def test_normalise_fills_missing_columns_with_none():
    row = _normalise({"run_id": "r", "outcome": "passed"})

    assert list(row) == list(CASE_COLUMNS)
    assert row["wall_s"] is None
    assert row["run_id"] == "r"


def test_unknown_column_is_refused_by_name_with_the_fix(case_row):
    with pytest.raises(ResultsError) as caught:
        case_table([case_row(), {**case_row(), "wall_seconds": 1.0, "zzz": 2}])

    message = str(caught.value)
    assert "wall_seconds" in message
    assert "zzz" in message
    assert "CASE_COLUMNS" in message


def test_case_table_has_the_case_schema_and_typed_values(case_row):
    table = case_table([case_row(), case_row(repeat=1, wall_s=2.5, tags=["a"])])

    assert table.schema.equals(CASE_SCHEMA)
    assert table.num_rows == 2
    assert table.column("wall_s").to_pylist() == [1.0, 2.5]
    assert table.column("tags").to_pylist() == [["smoke", "dataframe"], ["a"]]
    assert table.column("started_at").type == pa.timestamp("us", tz="UTC")
    assert table.column("schema_version").to_pylist() == [SCHEMA_VERSION, SCHEMA_VERSION]


def test_iter_columns_lists_every_case_column():
    pairs = dict(iter_columns())

    assert list(pairs) == list(CASE_COLUMNS)
    assert pairs["wall_s"] == "double"


# --- write_atomic -----------------------------------------------------------------------------------------------


def test_write_atomic_writes_a_readable_file(tmp_path, case_row):
    target = tmp_path / "cases" / "run__latest__local.parquet"

    assert write_atomic(case_table([case_row()]), target) == target

    assert pq.read_table(target).column("case_id").to_pylist() == ["groupby_agg[by=id]"]
    assert sorted(path.name for path in target.parent.iterdir()) == [target.name]


def test_write_atomic_writes_a_hidden_partial_file_first(tmp_path, case_row, monkeypatch):
    target = tmp_path / "run.parquet"
    written_to = []
    real_write_table = pq.write_table

    def spying_write_table(table, where, **kwargs):
        written_to.append(Path(where))
        assert not target.exists(), "the target must not appear before it is complete"
        real_write_table(table, where, **kwargs)

    monkeypatch.setattr(pq, "write_table", spying_write_table)
    write_atomic(case_table([case_row()]), target)

    [partial] = written_to
    assert partial.parent == target.parent
    assert partial.name.startswith(".")
    assert not partial.name.endswith(".parquet")
    assert not partial.exists()
    assert target.exists()


def test_write_atomic_refuses_to_overwrite(tmp_path, case_row):
    target = tmp_path / "run.parquet"
    write_atomic(case_table([case_row(wall_s=1.0)]), target)
    before = target.read_bytes()

    with pytest.raises(ResultsError, match=r"run\.parquet: already exists — results are append-only"):
        write_atomic(case_table([case_row(wall_s=2.0)]), target)

    assert target.read_bytes() == before


def test_write_atomic_loses_a_race_without_overwriting(tmp_path, case_row, monkeypatch):
    """Another writer creates the target between our existence check and our rename: theirs is kept."""
    target = tmp_path / "run.parquet"
    real_write_table = pq.write_table

    def write_then_race(table, where, **kwargs):
        real_write_table(table, where, **kwargs)
        target.write_bytes(b"the other writer's file")

    monkeypatch.setattr(pq, "write_table", write_then_race)
    with pytest.raises(ResultsError, match="append-only"):
        write_atomic(case_table([case_row()]), target)

    assert target.read_bytes() == b"the other writer's file"
    assert [path.name for path in tmp_path.iterdir()] == ["run.parquet"]


def test_crash_mid_write_leaves_no_parquet_and_earlier_files_intact(tmp_path, case_row, monkeypatch):
    cases = tmp_path / "cases"
    earlier = [
        write_atomic(case_table([case_row(run_id=f"run-{n}")]), cases / f"run-{n}__latest__local.parquet")
        for n in range(2)
    ]
    before = {path: path.read_bytes() for path in earlier}

    def crash_mid_write(table, where, **kwargs):
        Path(where).write_bytes(b"PAR1" + b"\0" * 100)  # the start of a Parquet file, then the disk fills up
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pq, "write_table", crash_mid_write)
    with pytest.raises(ResultsError, match=r"No space left on device.*nothing was written"):
        write_atomic(case_table([case_row(run_id="run-2")]), cases / "run-2__latest__local.parquet")

    assert sorted(cases.glob("*.parquet")) == sorted(earlier)
    assert sorted(cases.iterdir()) == sorted(earlier), "the partial file must be removed"
    assert {path: path.read_bytes() for path in earlier} == before


# --- read_rows --------------------------------------------------------------------------------------------------


def test_read_rows_drops_a_truncated_last_line(tmp_path, case_row):
    staging = tmp_path / "rows.jsonl"
    writer = RowWriter(staging)
    writer.write(case_row(repeat=0))
    writer.write(case_row(repeat=1))
    writer.close()
    with staging.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(case_row(repeat=2))[:40])  # the controller died mid-line

    rows = read_rows(staging)

    assert [row["repeat"] for row in rows] == [0, 1]
    assert rows[0]["params"] == {"by": "id"}


def test_read_rows_of_an_empty_file(tmp_path):
    staging = tmp_path / "rows.jsonl"
    staging.write_text("")

    assert read_rows(staging) == []


# --- ResultsStore -----------------------------------------------------------------------------------------------


def _stage(store: ResultsStore, pid: int, name: str, rows: list[dict]) -> Path:
    staging = store.staging_dir / f"{pid}__{name}.jsonl"
    writer = RowWriter(staging)
    for row in rows:
        writer.write(row)
    writer.close()
    return staging


def test_staging_file_is_named_by_this_process(tmp_path):
    store = ResultsStore(tmp_path)

    assert (
        store.staging_file("run__latest__local") == tmp_path / ".staging" / f"{os.getpid()}__run__latest__local.jsonl"
    )


def test_publish_turns_staging_lines_into_a_cases_file(tmp_path, case_row):
    store = ResultsStore(tmp_path)
    staging = _stage(store, os.getpid(), "run-1__latest__local", [case_row(repeat=0), case_row(repeat=1)])

    target = store.publish(staging)

    assert target == tmp_path / "cases" / "run-1__latest__local.parquet"
    assert store.case_files() == [target]
    assert pq.read_table(target).column("repeat").to_pylist() == [0, 1]
    assert not staging.exists()


def test_publish_of_an_empty_staging_file_writes_nothing(tmp_path):
    store = ResultsStore(tmp_path)
    staging = _stage(store, os.getpid(), "run-1__latest__local", [])

    assert store.publish(staging) is None
    assert store.case_files() == []
    assert not staging.exists()


def test_publish_keeps_the_staging_file_when_the_target_exists(tmp_path, case_row):
    store = ResultsStore(tmp_path)
    staging = _stage(store, os.getpid(), "run-1__latest__local", [case_row()])
    store.publish(_stage(store, 1, "run-1__latest__local", [case_row()]))

    with pytest.raises(ResultsError, match="already exists"):
        store.publish(staging)

    assert staging.exists(), "rows that could not be published must not be thrown away"


@pytest.fixture
def live_pid():
    """The pid of a process that stays alive for the test (ended by its pid afterwards)."""
    process = subprocess.Popen(["sleep", "60"])
    try:
        yield process.pid
    finally:
        process.kill()
        process.wait()


@pytest.fixture
def dead_pid():
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_salvage_publishes_dead_controllers_and_leaves_live_ones(tmp_path, case_row, live_pid, dead_pid):
    store = ResultsStore(tmp_path)
    dead = _stage(store, dead_pid, "run-dead__latest__local", [case_row(run_id="run-dead")])
    live = _stage(store, live_pid, "run-live__latest__local", [case_row(run_id="run-live")])
    live_before = live.read_bytes()

    published = salvage(store)

    assert published == [tmp_path / "cases" / "run-dead__latest__local.parquet"]
    assert pq.read_table(published[0]).column("run_id").to_pylist() == ["run-dead"]
    assert not dead.exists()
    assert live.read_bytes() == live_before
    assert store.case_files() == published


def test_salvage_with_no_staging_directory(tmp_path):
    assert salvage(ResultsStore(tmp_path)) == []


def _environment(env_hash: str = "abc123", lock: str = "dask==2026.1.0\n") -> dict:
    return {
        "env_hash": env_hash,
        "runtime": "latest",
        "runtime_hash": "r" * 16,
        "python": "3.11",
        "built_at": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
        "requirements": ["dask"],
        "lock": lock,
    }


def test_record_environment_writes_once(tmp_path):
    store = ResultsStore(tmp_path)

    first = store.record_environment(_environment(lock="dask==2026.1.0\n"))
    assert first == tmp_path / "environments" / "abc123.parquet"
    before = first.read_bytes()

    assert store.record_environment(_environment(lock="dask==2099.1.0\n")) is None
    assert first.read_bytes() == before
    table = pq.read_table(first)
    assert table.schema.equals(ENVIRONMENT_SCHEMA)
    assert table.to_pylist()[0]["lock"] == "dask==2026.1.0\n"
    assert table.to_pylist()[0]["schema_version"] == SCHEMA_VERSION


def test_salvage_ignores_files_that_are_not_staged_rows(tmp_path):
    store = ResultsStore(tmp_path)
    store.staging_dir.mkdir(parents=True)
    stray = store.staging_dir / "notes.jsonl"
    stray.write_text('{"not": "a row"}\n')

    assert salvage(store) == []
    assert stray.exists()


@pytest.mark.parametrize("compacted", [False, True], ids=["published", "published-then-compacted"])
def test_salvage_drops_a_staging_file_whose_rows_were_published_before_its_controller_died(
    tmp_path, case_row, dead_pid, compacted
):
    from framework.compaction import compact

    store = ResultsStore(tmp_path)
    rows = [case_row(run_id="run-0"), case_row(run_id="run-0", repeat=1)]
    store.publish(_stage(store, 1, "run-0__latest__local", rows))
    store.publish(_stage(store, 1, "run-1__latest__local", [case_row(run_id="run-1")]))
    if compacted:
        compact(tmp_path)
    staging = _stage(store, dead_pid, "run-0__latest__local", rows)  # as if its removal never ran
    different = _stage(store, dead_pid, "run-1__latest__local", [case_row(run_id="run-1")] * 2)

    with pytest.raises(ResultsError, match=r"run-1__latest__local\.parquet: already exists"):
        salvage(store)

    assert not staging.exists()  # its rows are in the store
    assert different.exists(), "rows that differ from what was published must never be thrown away"
