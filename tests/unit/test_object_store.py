"""Results at a URL (framework/object_store.py) against a real S3-compatible server on 127.0.0.1 (moto's, as the
s3 workloads start it): writes, reads in place, two writers, a reader during writes, a killed writer, bad input."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from conftest import locked_environment

from framework import object_store
from framework.cli import main
from framework.query import Results
from framework.records import write_record
from framework.results import ResultsStore, case_table, write_atomic
from workloads.s3 import s3_server

SECRET = "never-written-s3cr3t-value"
WRITER = Path(__file__).with_name("store_writer.py")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server() -> Iterator[dict[str, str]]:
    with contextlib.contextmanager(s3_server)() as provided:
        yield provided


@pytest.fixture
def s3(server: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Credentials and the endpoint in the usual AWS variables; a fresh prefix; work directories under tmp_path."""
    variables = {
        "AWS_ACCESS_KEY_ID": server["key"],
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_ENDPOINT_URL": server["endpoint_url"],
        "AWS_DEFAULT_REGION": "us-east-1",
        object_store.STORES_VARIABLE: str(tmp_path / "stores"),
    }
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    url = f"s3://{server['bucket']}/{uuid.uuid4().hex[:8]}"
    yield {"url": url, "env": {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'tests' / 'unit'}"}, **server}
    for work_dir in list(object_store._OPEN):  # what a verb's end does; the store's registry is per process
        object_store._OPEN.pop(work_dir).release()


def _objects(s3: dict[str, Any]) -> dict[str, bytes]:
    fs, root = object_store.open_filesystem(s3["url"])
    return {key[len(root) + 1 :]: fs.cat_file(key) for key in fs.find(root)}


def _writer(
    s3: dict[str, Any], run: str, files: int, *options: str, stores: str | None = None
) -> subprocess.Popen[str]:
    env = dict(s3["env"])
    if stores:  # another machine: its own work directory
        env[object_store.STORES_VARIABLE] = stores
    command = [sys.executable, str(WRITER), s3["url"], run, str(files), *options]
    return subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_run_written_to_a_url_is_read_in_place_through_duckdb(s3: dict[str, Any], case_row: Any) -> None:
    root = object_store.open_store(s3["url"])
    store = ResultsStore(root)
    store.record_environment(locked_environment(dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)))
    write_atomic(case_table([case_row(wall_s=2.5)]), store.cases_dir / "r1__latest__local.parquet")
    write_record(root, "health", "r1__latest", [{"run_id": "r1", "usable": True}])
    assert sorted(_objects(s3)) == ["cases/r1__latest__local.parquet", "environments/" + "e" * 16 + ".parquet",
                                    "health/r1__latest.parquet"]  # fmt: skip
    for path in (root / "cases").iterdir():  # the work directory's copies gone: the reads come from the URL
        path.unlink()
    with Results(root) as results:
        assert results.sql("SELECT wall_s, env_hash FROM rows")[1] == [(2.5, "e" * 16)]
        assert results.sql("SELECT count(*) FROM environments")[1] == [(1,)]
        with pytest.raises(Exception, match="disabled by configuration"):  # nothing but the store is readable
            results.sql("SELECT * FROM read_csv('/etc/passwd')")
        elsewhere = f"s3://{s3['bucket']}/elsewhere/cases/x.parquet"  # nor another prefix of the bucket
        with pytest.raises(Exception, match="disabled by configuration"):
            results.sql(f"SELECT * FROM read_parquet('{elsewhere}')")
    assert "url" in (root / object_store.MARKER).read_text() and SECRET not in (root / object_store.MARKER).read_text()


def test_sql_verb_on_a_url_and_every_url_mistake_in_one_line(
    s3: dict[str, Any], capsys: pytest.CaptureFixture[str], case_row: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = object_store.open_store(s3["url"])
    write_atomic(case_table([case_row(run_id="r9")]), ResultsStore(root).cases_dir / "r9__latest__local.parquet")
    object_store._OPEN.pop(root).release()
    assert main(["sql", f"--results={s3['url']}", "SELECT run_id FROM rows"]) == 0
    assert "r9" in capsys.readouterr().out
    bucket = "no-such-bucket-" + uuid.uuid4().hex[:6]
    for argv, expected in (
        (["sql", f"--results=s3://{bucket}/p", "SELECT 1"], f"bucket {bucket} does not exist — create it or fix"),
        (["sql", "--results=nosuch://b/p", "SELECT 1"], "nosuch://b/p: cannot open this URL (Protocol not known"),
        (["compact", f"--results={s3['url']}"], "compaction does not run on a URL store"),
    ):
        with pytest.raises(SystemExit) if argv[0] == "sql" else contextlib.nullcontext():
            assert main(argv) == 2
        err = capsys.readouterr().err
        assert expected in err and len(err.strip().splitlines()) == 1, err
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(SystemExit):
        main(["sql", f"--results=s3://{bucket}/elsewhere", "SELECT 1"])
    err = capsys.readouterr().err
    assert "unreachable (Could not connect to the endpoint URL" in err and "check AWS_ENDPOINT_URL" in err, err
    assert len(err.strip().splitlines()) == 1


def test_bad_credentials_are_one_line_naming_the_variables(s3: dict[str, Any]) -> None:
    object_store.open_store(s3["url"])  # the prefix exists
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def auth(count: bytes) -> None:  # moto checks access keys once its count of free requests is used up
        request = urllib.request.Request(
            f"{s3['endpoint_url']}/moto-api/reset-auth",
            data=count,
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        direct.open(request, timeout=10).close()

    auth(b"0")
    try:
        result = subprocess.run(
            [sys.executable, "-m", "framework.cli", "sql", f"--results={s3['url']}", "SELECT 1"],
            env={**s3["env"], object_store.STORES_VARIABLE: str(Path(s3["env"][object_store.STORES_VARIABLE]) / "b")},
            cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    finally:
        auth(b"inf")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"nox -s sql --: --results: {s3['url']}: access denied (InvalidAccessKeyId) — check"
        " AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_PROFILE (and that they may list and write this prefix)"
    ]
    assert SECRET not in result.stderr + result.stdout


def test_two_writers_at_once_and_a_reader_during_their_writes(s3: dict[str, Any], tmp_path: Path) -> None:
    writers = [
        _writer(s3, "a", 6, "--pause=0.02", "--built-at=2026-01-01T00:00:00+00:00", stores=str(tmp_path / "m1")),
        _writer(s3, "b", 6, "--pause=0.02", "--built-at=2026-02-02T00:00:00+00:00", stores=str(tmp_path / "m2")),
    ]
    root = object_store.open_store(s3["url"], writes=False)
    seen = []
    with Results(root) as results:
        while any(writer.poll() is None for writer in writers):  # a reader meanwhile: never an error, never less
            seen.append(results.sql("SELECT count(*) FROM rows")[1][0][0])
            time.sleep(0.1)  # the server runs in this process: leave it the interpreter
        for writer in writers:
            assert writer.wait(60) == 0, writer.stderr.read() if writer.stderr else ""
        runs = results.sql("SELECT DISTINCT split_part(run_id, '-', 1) FROM rows ORDER BY 1")[1]
        total = results.sql("SELECT count(*) FROM rows")[1][0][0]
    assert runs == [("a",), ("b",)] and total == 12
    assert len(seen) >= 2 and seen == sorted(seen), seen
    objects = _objects(s3)
    assert [key for key in objects if key.startswith("environments/")] == ["environments/" + "e" * 16 + ".parquet"]
    assert {"stability/logs/a__latest.log", "stability/logs/b__latest.log"} <= set(objects)


def test_a_killed_writer_leaves_nothing_corrupt_and_the_next_run_uploads_its_files(
    s3: dict[str, Any], tmp_path: Path
) -> None:
    killed = _writer(s3, "k", 4, "--kill-before-upload=3")  # environment, k-000, then killed before k-001's PUT
    assert killed.wait(60) == -9
    work_dir = object_store.work_dir_of(s3["url"])
    assert (work_dir / "cases" / "k-001__latest__local.parquet").exists()
    assert sorted(key for key in _objects(s3) if key.startswith("cases/")) == ["cases/k-000__latest__local.parquet"]
    root = object_store.open_store(s3["url"], writes=False)  # a verb that only reads: the leftover beside the URL's
    with Results(root) as results:
        assert results.sql("SELECT run_id FROM rows ORDER BY 1")[1] == [("k-000",), ("k-001",)]
    object_store._OPEN.pop(root).release()
    object_store.open_store(s3["url"])  # the next verb that writes, on this machine
    objects = _objects(s3)
    assert sorted(key for key in objects if key.startswith("cases/")) == [
        "cases/k-000__latest__local.parquet",
        "cases/k-001__latest__local.parquet",
    ]
    for key, data in objects.items():
        if key.endswith(".parquet"):
            assert pq.read_table(pa_buffer(data)).num_rows >= 1


def pa_buffer(data: bytes) -> Any:
    import pyarrow as pa

    return pa.BufferReader(data)


def test_a_different_file_under_an_existing_key_is_refused_naming_both(s3: dict[str, Any], case_row: Any) -> None:
    root = object_store.open_store(s3["url"])
    target = ResultsStore(root).cases_dir / "x__latest__local.parquet"
    write_atomic(case_table([case_row(wall_s=1.0)]), target)
    target.unlink()
    with pytest.raises(object_store.ConflictError, match=r"x__latest__local.parquet: already holds different") as error:
        write_atomic(case_table([case_row(wall_s=2.0)]), target)
    assert str(target) in str(error.value) and s3["url"] in str(error.value)
    # A writer that saw the key free and lost the race to it (a conditional PUT): refused, the first file kept.
    first = _objects(s3)["cases/x__latest__local.parquet"]
    remote = object_store.location(s3["url"])
    with pytest.raises(object_store.ConflictError, match="already holds different content"):
        object_store.place(b"other bytes", "cases/x__latest__local.parquet", remote, None)
    assert object_store.place(first, "cases/x__latest__local.parquet", remote, None) == "same"
    assert _objects(s3)["cases/x__latest__local.parquet"] == first


def test_no_secret_is_written_to_the_store_or_the_work_directory(s3: dict[str, Any], tmp_path: Path) -> None:
    writer = _writer(s3, "s", 2)
    assert writer.wait(60) == 0, writer.stderr.read() if writer.stderr else ""
    objects = _objects(s3)
    assert len(objects) >= 5
    leaks = [key for key, data in objects.items() if SECRET.encode() in data]
    leaks += [
        str(path)
        for path in Path(s3["env"][object_store.STORES_VARIABLE]).rglob("*")
        if path.is_file() and SECRET.encode() in path.read_bytes()
    ]
    assert not leaks


def test_a_store_out_of_reach_mid_verb_defers_the_upload_to_the_verbs_end(
    s3: dict[str, Any], case_row: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = object_store.open_store(s3["url"])
    write = object_store.RemoteLocation.write

    def unreachable(self: object_store.RemoteLocation, relative: str, data: bytes) -> None:
        raise ConnectionError("Could not connect to the endpoint URL")

    monkeypatch.setattr(object_store.RemoteLocation, "write", unreachable)
    target = write_atomic(case_table([case_row()]), ResultsStore(root).cases_dir / "o__latest__local.parquet")
    err = capsys.readouterr().err
    assert err.startswith(f"not uploaded yet: {s3['url']}: unreachable (Could not connect") and str(target) in err
    assert "cases/o__latest__local.parquet" not in _objects(s3)
    monkeypatch.setattr(object_store.RemoteLocation, "write", write)
    assert object_store.close_store(root) == ["cases/o__latest__local.parquet"]  # the verb's end
    assert "cases/o__latest__local.parquet" in _objects(s3)


def test_report_of_a_url_store(
    s3: dict[str, Any], case_row: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = object_store.open_store(s3["url"])
    store = ResultsStore(root)
    store.record_environment(locked_environment(dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)))
    run = "20260301T000000Z-c0ffee"
    write_atomic(
        case_table([case_row(run_id=run, repeat=r) for r in range(3)]), store.cases_dir / f"{run}__l__h.parquet"
    )
    object_store._OPEN.pop(root).release()
    assert main(["report", f"--results={s3['url']}", f"--out={tmp_path / 'site'}"]) == 0
    assert "report: " in capsys.readouterr().out
    assert run in "".join(path.read_text() for path in (tmp_path / "site").rglob("*.html"))
    assert not any(key.startswith("report/") for key in _objects(s3))  # the site is written locally only
    header = (tmp_path / "site" / "index.html").read_text()  # it names the store as the user did, not a work dir
    assert f"from <code>{s3['url']}</code>" in header and f"--results={s3['url']}" in header
    assert str(root) not in header


def test_a_second_process_reads_small_files_from_its_cache_and_never_a_stale_copy(
    s3: dict[str, Any], case_row: Any
) -> None:
    from unittest import mock

    from framework import locations

    root = object_store.open_store(s3["url"])
    write_atomic(case_table([case_row(run_id="r1", wall_s=1.5)]), ResultsStore(root).cases_dir / "r1__l__h.parquet")
    size = (root / "cases" / "r1__l__h.parquet").stat().st_size
    (root / "cases" / "r1__l__h.parquet").unlink()  # only the URL holds it now
    with Results(root) as results:
        assert results.sql("SELECT wall_s FROM rows")[1] == [(1.5,)]
    [copy] = (root / ".cache" / "cases").iterdir()
    assert copy.name.startswith(f"r1__l__h.parquet@{size}@") and copy.stat().st_size == size

    def reopened() -> Path:  # what a new verb process does: a new session, the store checked and opened again
        object_store._OPEN.pop(root).release()
        locations._CHECKED.clear()
        return object_store.open_store(s3["url"])

    def no_fetch(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("fetched from the server, not from the cache")

    root = reopened()
    fs = object_store.opened(root).remote.fs  # type: ignore[union-attr]
    with mock.patch.object(fs, "cat_ranges", no_fetch), Results(root) as results:
        assert results.sql("SELECT wall_s FROM rows")[1] == [(1.5,)]
    copy.write_bytes(copy.read_bytes()[:-10])  # a copy cut short is not the object: fetched again, kept whole again
    root = reopened()
    with Results(root) as results:
        assert results.sql("SELECT wall_s FROM rows")[1] == [(1.5,)]
    assert copy.stat().st_size == size
