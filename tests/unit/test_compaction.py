"""Compaction: a month's files merged into one, with the same answers to every query, whenever it stops."""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from framework import compaction
from framework.cli import main
from framework.compaction import compact, compact_if_due, loose_files
from framework.in_runtime.errors import ResultsError
from framework.query import Results
from framework.records import write_record
from framework.results import (
    ResultsStore,
    case_table,
    compacted_files,
    read_sources,
    store_lock,
    write_atomic,
)
from tests.unit.conftest import _case_row

EVERYTHING = "SELECT * EXCLUDE (tags) FROM rows ORDER BY run_id, runtime, case_id, phase, repeat"


def _write_runs(root: Path, days: Sequence[tuple[int, int]], first: int = 0) -> list[Path]:
    """One file per (month, day) of 2026: two cases × two repeats, distinct values (runs numbered from ``first``)."""
    written = []
    for n, (month, day) in enumerate(days, start=first):
        when = dt.datetime(2026, month, day, 3, tzinfo=dt.timezone.utc).isoformat()
        run_id = f"2026{month:02d}{day:02d}T030000Z-{n:06d}"
        rows = [
            _case_row(
                run_id=run_id,
                run_started_at=when,
                case_id=case_id,
                repeat=repeat,
                wall_s=1.0 + n + repeat / 10,
                peak_memory_bytes=1000 * n + repeat,
            )
            for case_id in ("groupby_agg[by=id]", "groupby_agg[by=name]")
            for repeat in range(2)
        ]
        name = f"{run_id}__latest__local.parquet"
        written.append(write_atomic(case_table(rows), ResultsStore(root).cases_dir / name))
    return written


def _everything(root: Path) -> list[tuple[Any, ...]]:
    with Results(root) as results:
        return results.sql(EVERYTHING)[1]


def test_each_month_becomes_one_sorted_file_listing_what_it_merged_and_every_answer_is_the_same(tmp_path):
    written = _write_runs(tmp_path, [(1, 3), (1, 9), (1, 20), (2, 1), (2, 2), (3, 5)])
    before = _everything(tmp_path)

    report = compact(tmp_path)

    cases = tmp_path / "cases"
    merged = compacted_files(cases)
    assert [path.name.split("__")[1] for path in merged] == ["2026-01", "2026-02"]
    assert loose_files(cases) == [written[-1]]  # alone in March: nothing to merge it with
    assert [source["name"] for source in read_sources(merged[0])] == [path.name for path in written[:3]]
    assert all(source["rows"] == 4 for source in read_sources(merged[0]))
    january = pq.read_table(merged[0])
    assert january.column("case_id").to_pylist() == sorted(january.column("case_id").to_pylist())
    assert _everything(tmp_path) == before
    assert report.directories[0].merged == 5 and report.directories[0].rows == 20
    assert report.lines()[-1].startswith(f"compaction of {tmp_path}: 5 files merged in ")


def test_a_month_compacted_before_is_merged_again_with_its_new_files(tmp_path):
    _write_runs(tmp_path, [(1, 3), (1, 9)])
    compact(tmp_path)
    first = compacted_files(tmp_path / "cases")
    later = _write_runs(tmp_path, [(1, 25), (1, 26)], first=2)
    before = _everything(tmp_path)

    compact(tmp_path)

    [merged] = compacted_files(tmp_path / "cases")
    assert [source["name"] for source in read_sources(merged)] == [*(path.name for path in later), first[0].name]
    assert pq.read_metadata(merged).num_rows == 16
    assert loose_files(tmp_path / "cases") == []
    assert _everything(tmp_path) == before


def test_older_schema_versions_are_merged_with_their_missing_columns_null(tmp_path):
    old = pa.table(
        {
            "schema_version": pa.array([0], pa.int32()),
            "run_id": ["run-old"],
            "run_started_at": pa.array([dt.datetime(2026, 1, 2, tzinfo=dt.timezone.utc)], pa.timestamp("us", "UTC")),
            "case_id": ["a"],
            "phase": ["measure"],
            "outcome": ["passed"],
            "wall_s": [4.0],
            "runtime": ["latest"],
            "hardware": ["local"],
        }
    )
    (tmp_path / "cases").mkdir()
    pq.write_table(old, tmp_path / "cases" / "run-old__latest__local.parquet")
    _write_runs(tmp_path, [(1, 3)])
    before = _everything(tmp_path)

    compact(tmp_path)

    assert loose_files(tmp_path / "cases") == []
    assert _everything(tmp_path) == before
    with Results(tmp_path) as results:
        assert results.sql("SELECT schema_version, peak_memory_bytes FROM rows WHERE run_id = 'run-old'")[1] == [
            (0, None)
        ]


def test_unreadable_files_are_quarantined_and_newer_ones_left_as_they_are_each_named(tmp_path, capsys):
    _write_runs(tmp_path, [(1, 3), (1, 4)])
    cases = tmp_path / "cases"
    (cases / "earlier.parquet").write_bytes(b"a file from an earlier run")
    newer = case_table([_case_row(run_id="run-newer", run_started_at="2026-01-05T00:00:00+00:00")])
    newer = newer.append_column("gpu_memory_bytes", pa.array([1], pa.int64()))
    pq.write_table(newer, cases / "run-newer__latest__local.parquet")

    code = main(["compact", f"--results={tmp_path}"])

    out = capsys.readouterr().out
    assert code == 1
    assert sorted(path.name for path in loose_files(cases)) == ["run-newer__latest__local.parquet"]
    moved = tmp_path / "quarantine" / "cases" / "earlier.parquet"
    assert moved.read_bytes() == b"a file from an earlier run"
    assert f"  moved to quarantine: {cases / 'earlier.parquet'} → {moved}: not a Parquet file (" in out
    assert f"  left as it is: {cases / 'run-newer__latest__local.parquet'}: " in out
    assert "gpu_memory_bytes) — written by a newer dask-blessing?" in out
    assert len(compacted_files(cases)) == 1


class _Crash(BaseException):
    """The process dying: not an Exception, nothing catches it."""


@settings(max_examples=25, deadline=None)
@given(
    days=st.lists(st.tuples(st.integers(1, 3), st.integers(1, 28)), min_size=2, max_size=7),
    crash_at=st.integers(0, 8),
    twice=st.booleans(),
)
def test_whenever_a_compaction_dies_no_row_is_lost_or_counted_twice_and_the_next_one_finishes(days, crash_at, twice):
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        _write_runs(root, days[: len(days) // 2] if twice else days)
        if twice:  # a second compaction merges an earlier compacted file too
            compact(root)
            _write_runs(root, days[len(days) // 2 :], first=len(days))
        before = _everything(root)
        reader = Results(root)  # opened before: it must see the change as well
        unlinks = []
        real_unlink = Path.unlink

        def dying_unlink(self: Path, missing_ok: bool = False) -> None:
            if not self.name.startswith(".") and self.suffix == ".parquet":
                if len(unlinks) == crash_at:
                    raise _Crash
                unlinks.append(self.name)
            real_unlink(self, missing_ok=missing_ok)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(Path, "unlink", dying_unlink)
            try:
                compact(root)
            except _Crash:
                pass
        assert _everything(root) == before
        assert reader.sql(EVERYTHING)[1] == before
        assert not [path for path in (root / "cases").iterdir() if path.name.endswith(".partial")]

        compact(root)

        assert _everything(root) == before
        assert reader.sql(EVERYTHING)[1] == before
        reader.close()
        merged = {source["name"] for path in compacted_files(root / "cases") for source in read_sources(path)}
        assert not merged & {path.name for path in (root / "cases").iterdir()}
        assert not list((root / "cases").glob(".*compacting"))


def test_a_compaction_that_dies_before_publishing_changes_nothing(tmp_path, monkeypatch):
    written = _write_runs(tmp_path, [(1, 3), (1, 4)])
    before = _everything(tmp_path)

    def no_link(*args: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "link", no_link)
    with pytest.raises(OSError):
        compact(tmp_path)

    assert sorted((tmp_path / "cases").iterdir()) == written
    assert _everything(tmp_path) == before


def test_no_new_file_can_take_a_merged_name_and_a_merged_environment_is_not_recorded_twice(tmp_path):
    written = _write_runs(tmp_path, [(1, 3), (1, 4)])
    store = ResultsStore(tmp_path)
    environment = {"env_hash": "e" * 16, "runtime": "latest", "runtime_hash": "r" * 16, "python": "3.11"}
    store.record_environment({**environment, "built_at": dt.datetime(2026, 1, 3, tzinfo=dt.timezone.utc)})
    store.record_environment({**environment, "env_hash": "f" * 16, "built_at": dt.datetime(2026, 1, 4)})
    compact(tmp_path)

    with pytest.raises(ResultsError, match=r"already exists, merged into compacted__2026-01__\d+T\d+Z\.parquet"):
        write_atomic(case_table([_case_row()]), written[0])
    assert store.record_environment({**environment, "built_at": dt.datetime(2026, 2, 1)}) is None
    with Results(tmp_path) as results:
        assert results.sql("SELECT count(*) FROM environments")[1] == [(2,)]


def test_records_of_every_kind_are_merged_and_still_read(tmp_path):
    for n in range(3):
        write_record(
            tmp_path,
            "verdicts",
            f"v{n}",
            [{"verdict_id": f"v{n}", "decided_at": dt.datetime(2026, 1, n + 1, tzinfo=dt.timezone.utc)}],
        )

    compact(tmp_path)

    assert loose_files(tmp_path / "verdicts") == []
    with Results(tmp_path) as results:
        assert results.sql("SELECT verdict_id FROM verdicts ORDER BY verdict_id")[1] == [("v0",), ("v1",), ("v2",)]


def test_queries_hold_the_lock_that_a_compaction_swaps_under(tmp_path):
    _write_runs(tmp_path, [(1, 3)])
    (tmp_path / ".lock").touch()
    with (
        store_lock(tmp_path, exclusive=False),
        pytest.raises(ResultsError) as raised,
        store_lock(tmp_path, exclusive=True, timeout_s=0.1),
    ):
        pass
    assert str(raised.value) == (
        f"{tmp_path / '.lock'}: still locked after 0 s by another process's query — wait for it to finish, then"
        " run again"
    )
    with store_lock(tmp_path, exclusive=True, timeout_s=0.1) as held:
        assert held


def test_one_compaction_at_a_time(tmp_path):
    _write_runs(tmp_path, [(1, 3), (1, 4)])
    with compaction._only_compaction(tmp_path, dry_run=False), pytest.raises(ResultsError, match="another compaction"):
        compact(tmp_path)


def test_a_dry_run_says_what_it_would_merge_and_changes_nothing(tmp_path):
    written = _write_runs(tmp_path, [(1, 3), (1, 4), (2, 1)])

    report = compact(tmp_path, dry_run=True)

    assert sorted((tmp_path / "cases").iterdir()) == written
    assert report.lines()[0] == f"{tmp_path.name}/cases: would merge 2 files into 1 (8 rows)"


def test_commands_compact_only_when_a_directory_holds_many_loose_files(tmp_path):
    _write_runs(tmp_path, [(1, day) for day in range(1, 5)])

    assert compact_if_due(tmp_path, threshold=5) == []
    assert len(loose_files(tmp_path / "cases")) == 4
    lines = compact_if_due(tmp_path, threshold=4)

    assert lines[0] == f"{tmp_path.name}/cases: merged 4 files into 1 (16 rows)"
    assert loose_files(tmp_path / "cases") == []


def test_a_compacted_file_without_its_list_is_skipped_by_queries_in_one_line_then_quarantined(tmp_path, capsys):
    _write_runs(tmp_path, [(1, 3)])
    broken = tmp_path / "cases" / "compacted__2026-01__x.parquet"
    pq.write_table(case_table([_case_row()]), broken)  # no list of what it merged: it may hold rows twice

    with Results(tmp_path) as results:
        assert results.sql("SELECT count(*) FROM rows")[1] == [(4,)]  # the loose file's rows only

    assert capsys.readouterr().err == (
        f"{broken}: skipped — a compacted file without a readable list of the files it merged; "
        f"nox -s compact -- --results={tmp_path} moves it to {tmp_path}/quarantine/\n"
    )
    compact(tmp_path)
    assert (tmp_path / "quarantine" / "cases" / broken.name).exists()
    assert not broken.exists()


def test_compact_command_refuses_a_missing_results_directory_in_one_line(tmp_path, capsys):
    assert main(["compact", f"--results={tmp_path / 'missing'}"]) == 2
    assert capsys.readouterr().err == (
        f"--results={tmp_path / 'missing'}: no such directory — pass the results directory of your runs\n"
    )


def test_a_full_month_file_is_left_as_it_is_and_the_month_gets_another(tmp_path, monkeypatch):
    _write_runs(tmp_path, [(1, 3), (1, 4)])
    compact(tmp_path)
    [full] = compacted_files(tmp_path / "cases")
    monkeypatch.setattr(compaction, "FULL_ROWS", 8)  # the 8 rows it holds
    _write_runs(tmp_path, [(1, 5), (1, 6)], first=2)
    before = _everything(tmp_path)

    compact(tmp_path)

    files = compacted_files(tmp_path / "cases")
    assert len(files) == 2 and files[0] == full  # untouched; the new one merged only the new files
    assert [source["name"] for source in read_sources(files[1])] == [
        "20260105T030000Z-000002__latest__local.parquet",
        "20260106T030000Z-000003__latest__local.parquet",
    ]
    assert _everything(tmp_path) == before


def test_new_files_of_a_month_whose_compacted_file_is_unreadable_are_left_and_say_why(tmp_path):
    _write_runs(tmp_path, [(1, 3), (1, 4)])
    compact(tmp_path)
    [merged] = compacted_files(tmp_path / "cases")
    later = _write_runs(tmp_path, [(1, 5), (1, 6)], first=2)
    table = pq.read_table(merged)  # same rows and list, and a column this version cannot merge
    pq.write_table(table.append_column("gpu_memory_bytes", pa.array([1] * table.num_rows, pa.int64())), merged)

    report = compact(tmp_path)

    assert loose_files(tmp_path / "cases") == later
    reasons = report.directories[0].left
    assert [reason.split(":")[0] for reason in reasons] == [path.name for path in later]
    assert reasons[0].startswith(f"{later[0].name}: not merged — {merged.name}, a compacted file of 2026-01, is ")
