"""nox -s merge (framework/merge.py): shard directories into one store — idempotent, environments deduplicated, a
conflict refused naming both files before anything is copied, shards of a run group checked; into a URL too."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import locked_environment

from framework import object_store
from framework.cli import main
from framework.compaction import compact
from framework.query import Results
from framework.results import ResultsStore, case_table, write_atomic
from workloads.s3 import s3_server

Row = dict[str, Any]


def _shard(root: Path, case_row: Callable[..., Row], shard: str, cases: list[str], built: int = 1) -> Path:
    """One shard's results directory: its cases of run group g1, and the environment (built on day ``built``)."""
    store = ResultsStore(root)
    store.record_environment(locked_environment(dt.datetime(2026, 1, built, tzinfo=dt.timezone.utc)))
    run_id = f"run-{shard.replace('/', 'of')}"
    rows = [case_row(run_id=run_id, run_group="g1", shard=shard, case_id=case) for case in cases]
    write_atomic(case_table(rows), store.cases_dir / f"{run_id}__latest__local.parquet")
    return root


def _files(root: Path) -> list[str]:
    return sorted(path.relative_to(root).as_posix() for path in root.rglob("*.parquet"))


def test_two_shards_merge_into_one_store_once(
    tmp_path: Path, case_row: Callable[..., Row], capsys: pytest.CaptureFixture[str]
) -> None:
    one = _shard(tmp_path / "s1", case_row, "1/2", ["a", "b"], built=1)
    two = _shard(tmp_path / "s2", case_row, "2/2", ["c"], built=2)  # the same environment, built another day
    into = tmp_path / "all"
    assert main(["merge", str(one), str(two), f"--into={into}"]) == 0
    out = capsys.readouterr().out
    assert "  cases: 2 copied" in out
    assert "  environments: 1 copied, 1 skipped (same environment lock)" in out
    assert f"merge into {into}: 3 copied, 1 skipped" in out
    assert "run group g1: shards 1, 2 of 2 — complete" in out
    assert _files(into) == ["cases/run-1of2__latest__local.parquet", "cases/run-2of2__latest__local.parquet",
                            "environments/" + "e" * 16 + ".parquet"]  # fmt: skip
    with Results(into) as results:
        assert results.sql("SELECT count(*) FROM rows")[1] == [(3,)]

    assert main(["merge", str(one), str(two), f"--into={into}"]) == 0  # again: nothing new
    out = capsys.readouterr().out
    assert f"merge into {into}: 0 copied, 4 skipped" in out and "cases: 0 copied, 2 skipped (already there)" in out

    compact(into)  # the target's case files merged into one, and deleted: the sources' are still not copied
    cases = [name for name in _files(into) if name.startswith("cases/")]
    assert len(cases) == 1 and cases[0].startswith("cases/compacted__"), cases
    assert main(["merge", str(one), str(two), f"--into={into}"]) == 0
    assert "cases: 0 copied, 2 skipped (merged by a compacted file)" in capsys.readouterr().out


def test_a_conflicting_file_is_refused_naming_both_and_nothing_is_copied(
    tmp_path: Path, case_row: Callable[..., Row], capsys: pytest.CaptureFixture[str]
) -> None:
    one = _shard(tmp_path / "s1", case_row, "1/2", ["a"])
    other = tmp_path / "s2"  # another file under the same name: not the same run
    write_atomic(
        case_table([case_row(run_id="run-1of2", wall_s=9.0)]),
        ResultsStore(other).cases_dir / "run-1of2__latest__local.parquet",
    )
    _shard(other, case_row, "2/2", ["b"])
    into = tmp_path / "all"
    assert main(["merge", str(one), str(other), f"--into={into}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"{other}/cases/run-1of2__latest__local.parquet conflicts with {one}/cases/run-1of2__latest__local.parquet:"
        " same name, different content — results are append-only; merge only one of them",
        f"nothing was copied into {into}",
    ]
    assert _files(into) == []
    assert main(["merge", str(one), f"--into={into}", "--allow-partial"]) == 0
    capsys.readouterr()
    assert main(["merge", str(other), f"--into={into}"]) == 2  # against the target's file this time
    assert f"{other}/cases/run-1of2__latest__local.parquet conflicts with {into}/cases/" in capsys.readouterr().err


def test_a_missing_shard_or_a_case_in_two_shards_fails_loudly(
    tmp_path: Path, case_row: Callable[..., Row], capsys: pytest.CaptureFixture[str]
) -> None:
    one = _shard(tmp_path / "s1", case_row, "1/3", ["a"])
    three = _shard(tmp_path / "s3", case_row, "3/3", ["a", "b"])  # a is in shard 1 too
    into = tmp_path / "all"
    assert main(["merge", str(one), str(three), f"--into={into}"]) == 1
    out = capsys.readouterr().out
    assert "run group g1: shards 1, 3 of 3 — MISSING shard 2/3: merge its results too, or pass --allow-partial" in out
    assert "run group g1: case a (size tiny, latest on local) is in shards 1/3, 3/3" in out
    assert main(["merge", str(one), f"--into={tmp_path / 'partial'}", "--allow-partial"]) == 0
    assert "shards 1 of 3 — missing 2, 3 (accepted: --allow-partial)" in capsys.readouterr().out


def test_merge_refuses_a_missing_source_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["merge", str(tmp_path / "nope"), f"--into={tmp_path / 'all'}"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"{tmp_path / 'nope'}: no such results directory — pass a store's directory (or URL) to merge"
    ]


@pytest.fixture
def s3_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with contextlib.contextmanager(s3_server)() as server:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", server["key"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", server["secret"])
        monkeypatch.setenv("AWS_ENDPOINT_URL", server["endpoint_url"])
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        monkeypatch.setenv(object_store.STORES_VARIABLE, str(tmp_path / "stores"))
        yield f"s3://{server['bucket']}/merged"
        for work_dir in list(object_store._OPEN):
            object_store._OPEN.pop(work_dir).release()


def test_shards_merge_into_a_url_once(
    tmp_path: Path, case_row: Callable[..., Row], capsys: pytest.CaptureFixture[str], s3_url: str
) -> None:
    one = _shard(tmp_path / "s1", case_row, "1/2", ["a"], built=1)
    two = _shard(tmp_path / "s2", case_row, "2/2", ["b"], built=2)
    assert main(["merge", str(one), str(two), f"--into={s3_url}"]) == 0
    assert f"merge into {s3_url}: 3 copied, 1 skipped" in capsys.readouterr().out
    assert main(["merge", str(one), str(two), f"--into={s3_url}"]) == 0
    assert f"merge into {s3_url}: 0 copied, 4 skipped" in capsys.readouterr().out
    fs, root = object_store.open_filesystem(s3_url)
    assert sorted(key[len(root) + 1 :] for key in fs.find(root)) == [
        "cases/run-1of2__latest__local.parquet",
        "cases/run-2of2__latest__local.parquet",
        "environments/" + "e" * 16 + ".parquet",
    ]
    assert main(["merge", s3_url, f"--into={tmp_path / 'back'}"]) == 0  # and out of a URL
    assert _files(tmp_path / "back") == _files(tmp_path / "s1")[:1] + _files(tmp_path / "s2")
