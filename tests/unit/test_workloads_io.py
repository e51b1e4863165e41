"""The Parquet / CSV / DuckDB / S3 workloads (workloads/io.py, workloads/s3.py): each passes at its tiny size, and
its own check fails — with a message that says what is wrong — when Dask writes, reads or computes a wrong answer."""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from workload_testing import in_process_client, tiny_params, workload_function

from framework.config import load_catalog
from framework.in_runtime.checks import WorkloadCheckFailed
from framework.in_runtime.runner import load_function
from workloads.io import _days
from workloads.synthetic import timeseries

# dask's pyarrow engine calls set_index/reset_index(inplace=True), deprecated in pandas 3.1: dask's to fix, not ours.
pytestmark = pytest.mark.filterwarnings(r"ignore:The inplace keyword in DataFrame\.\w+ is deprecated")

TINY_ROWS = 3 * 86_400 // 10  # 3 days at 10 s
HIVE_ROWS = 2 * 86_400 // 10  # the hive-partitioned workloads' tiny size: 2 days at 10 s
# Threads that outlive every cluster by design: distributed's offload pool; fsspec's event loop and its default
# executor (aiohttp resolves host names there), which serve every s3fs instance of the process.
PROCESS_WIDE_THREADS = ("Dask-Offload", "fsspecIO", "asyncio_")


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    """One in-process cluster; afterwards no thread of it (or of an S3 server) may be left running."""
    with in_process_client(PROCESS_WIDE_THREADS) as dask_client:
        yield dask_client


@contextlib.contextmanager
def workload_fixture(workload: str) -> Iterator[dict[str, Any]]:
    """The workload's fixture driven as the runner drives it: a generator function made a context manager."""
    fixture = load_catalog().workloads[workload].fixture
    assert fixture is not None
    with contextlib.contextmanager(load_function(fixture))() as provided:
        yield provided


@pytest.fixture
def private_tempdir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Where the workloads' temporary directories go, to show they are removed (passed or failed)."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


Reader = Callable[..., Any]


def wrap_reader(monkeypatch: pytest.MonkeyPatch, name: str, replacement: Callable[..., Any]) -> list[dict[str, Any]]:
    """Make ``dask.dataframe.<name>`` (read_parquet, read_csv) a buggy reader: ``replacement(original, *args,
    **kwargs)``. Returns the keyword arguments of each call, so a test can tell the bug was reached."""
    import dask.dataframe as dd

    original = getattr(dd, name)
    calls: list[dict[str, Any]] = []

    def buggy(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return replacement(original, *args, **kwargs)

    monkeypatch.setattr(dd, name, buggy)
    return calls


def per_partition(change: Callable[[pd.DataFrame], pd.DataFrame], only_filtered: bool = False) -> Callable[..., Any]:
    """A reader bug that changes the rows of every partition it returns (only of filtered reads, if asked)."""

    def replacement(original: Reader, *args: Any, **kwargs: Any) -> Any:
        collection = original(*args, **kwargs)
        if only_filtered and "filters" not in kwargs:
            return collection
        return collection.map_partitions(change, meta=change(collection._meta))

    return replacement


def ignoring(name: str) -> Callable[..., Any]:
    """A reader bug that ignores one keyword argument."""

    def replacement(original: Reader, *args: Any, **kwargs: Any) -> Any:
        kwargs.pop(name, None)
        return original(*args, **kwargs)

    return replacement


def _starts_the_data(frame: pd.DataFrame) -> bool:
    """True for the partition that holds the data's first row (2000-01-01 00:00), by index or column."""
    timestamps = pd.Index(frame["timestamp"]) if "timestamp" in frame.columns else frame.index
    return bool(len(frame)) and timestamps[0] == pd.Timestamp("2000-01-01")


def _set_first(column: str, value: Any) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """Set ``column`` of the data's first row to ``value``."""

    def change(frame: pd.DataFrame) -> pd.DataFrame:
        if _starts_the_data(frame):
            frame = frame.copy()
            frame.iloc[0, frame.columns.get_loc(column)] = value
        return frame

    return change


def _drop_first_row(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.iloc[1:] if _starts_the_data(frame) else frame


def _set_first_selected(column: str, value: Any) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """Set ``column`` of the first row of every partition to ``value`` (the filtered read has one partition)."""

    def change(frame: pd.DataFrame) -> pd.DataFrame:
        if len(frame):
            frame = frame.copy()
            frame.iloc[0, frame.columns.get_loc(column)] = value
        return frame

    return change


# ---------------------------------------------------------------------------------------------------------------
# Sizes


def test_days_come_from_days_or_from_bytes_in_memory() -> None:
    assert _days(5, None, "1s") == 5
    assert _days(None, 45 * 8_640 * 2, "10s") == 2  # 8,640 rows a day at 10 s, 45 bytes a row
    assert _days(None, 45 * 8_640 * 2 + 1, "10s") == 3
    assert _days(None, 1, "1s") == 1
    with pytest.raises(ValueError, match=r"^give either days or target_bytes, not both$"):
        _days(5, 1000, "1s")
    with pytest.raises(ValueError, match=r"^give either days or target_bytes, not neither$"):
        _days(None, None, "1s")


# ---------------------------------------------------------------------------------------------------------------
# parquet_hive_partitioned


@pytest.fixture(scope="module")
def hive_counts(client: Any) -> pd.Series:
    """Rows per name in the data of parquet_hive_partitioned at tiny size (its seed)."""
    params = tiny_params("parquet_hive_partitioned")
    data = timeseries(params["days"], params["freq"], "1D", seed=11).compute()
    return data["name"].value_counts()


@pytest.mark.cluster
def test_parquet_hive_partitioned_passes_at_tiny_size(client: Any, private_tempdir: Path) -> None:
    extra = workload_function("parquet_hive_partitioned")(**tiny_params("parquet_hive_partitioned"))

    assert extra == {"rows": float(HIVE_ROWS), "partitions": 26.0, "files": 52.0}  # 26 names × 2 daily partitions
    assert list(private_tempdir.iterdir()) == []


def _to_parquet_relabelled(monkeypatch: pytest.MonkeyPatch, relabel: Callable[[Any], Any]) -> None:
    """A writer bug: ``to_parquet`` writes ``relabel(the name column)`` instead of the names."""
    import dask.dataframe as dd

    to_parquet = dd.DataFrame.to_parquet

    def relabelled(self: Any, *args: Any, **kwargs: Any) -> Any:
        return to_parquet(self.assign(name=relabel(self["name"])), *args, **kwargs)

    monkeypatch.setattr(dd.DataFrame, "to_parquet", relabelled)


@pytest.mark.cluster
def test_parquet_hive_partitioned_fails_when_a_partition_is_written_under_another_name(
    client: Any, monkeypatch: pytest.MonkeyPatch, private_tempdir: Path
) -> None:
    _to_parquet_relabelled(monkeypatch, lambda names: names.where(names != "Bob", "Alice"))

    with pytest.raises(
        WorkloadCheckFailed,
        match=r"^partition directories do not match the values of name: missing \['Bob'\], unexpected \[\]$",
    ):
        workload_function("parquet_hive_partitioned")(**tiny_params("parquet_hive_partitioned"))
    assert list(private_tempdir.iterdir()) == []  # a failed check still cleans up


@pytest.mark.cluster
def test_parquet_hive_partitioned_fails_when_a_row_is_written_to_another_partition(
    client: Any, monkeypatch: pytest.MonkeyPatch, hive_counts: pd.Series
) -> None:
    def one_alice_to_bob(names: Any) -> Any:
        def change(series: pd.Series) -> pd.Series:
            if len(series) and series.index[0] == pd.Timestamp("2000-01-01"):  # the first partition only
                series = series.copy()
                series.iloc[(series == "Alice").to_numpy().nonzero()[0][0]] = "Bob"
            return series

        return names.map_partitions(change, meta=names._meta)

    _to_parquet_relabelled(monkeypatch, one_alice_to_bob)
    alice = int(hive_counts["Alice"])

    with pytest.raises(
        WorkloadCheckFailed, match=rf"^name=Alice holds {alice - 1} rows on disk, the data has {alice}$"
    ):
        workload_function("parquet_hive_partitioned")(**tiny_params("parquet_hive_partitioned"))


@pytest.mark.cluster
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_drop_first_row, rf"^read {HIVE_ROWS - 1} rows, wrote {HIVE_ROWS}$"),
        (_set_first("x", 0.123), r"^row hashes differ: some rows changed in the round trip$"),
    ],
)
def test_parquet_hive_partitioned_fails_when_the_read_changes_rows(
    client: Any, monkeypatch: pytest.MonkeyPatch, change: Callable[[pd.DataFrame], pd.DataFrame], message: str
) -> None:
    calls = wrap_reader(monkeypatch, "read_parquet", per_partition(change))

    with pytest.raises(WorkloadCheckFailed, match=message):
        workload_function("parquet_hive_partitioned")(**tiny_params("parquet_hive_partitioned"))
    assert len(calls) == 1


@pytest.mark.cluster
def test_parquet_hive_partitioned_fails_when_the_read_mislabels_a_row(
    client: Any, monkeypatch: pytest.MonkeyPatch, hive_counts: pd.Series
) -> None:
    def mislabel(frame: pd.DataFrame) -> pd.DataFrame:
        # Each partition of the read holds one name and one day: relabel the first row of Alice's first day.
        if len(frame) and frame["name"].iloc[0] == "Alice" and frame.index[0] < pd.Timestamp("2000-01-02"):
            frame = frame.copy()
            frame.iloc[0, frame.columns.get_loc("name")] = "Bob"
        return frame

    wrap_reader(monkeypatch, "read_parquet", per_partition(mislabel))
    alice = int(hive_counts["Alice"])

    with pytest.raises(WorkloadCheckFailed, match=rf"^read {alice - 1} rows with name=Alice, the data has {alice}$"):
        workload_function("parquet_hive_partitioned")(**tiny_params("parquet_hive_partitioned"))


# ---------------------------------------------------------------------------------------------------------------
# parquet_filter_pushdown


@pytest.mark.cluster
def test_parquet_filter_pushdown_passes_at_tiny_size(client: Any, private_tempdir: Path) -> None:
    extra = workload_function("parquet_filter_pushdown")(**tiny_params("parquet_filter_pushdown"))

    # The last quarter of 3 days lies in the last of 3 daily files; x > 0.5 keeps about a quarter of those rows.
    assert extra["rows_total"] == TINY_ROWS
    assert 0.2 * TINY_ROWS / 4 < extra["rows_selected"] < 0.3 * TINY_ROWS / 4
    assert (extra["partitions_read"], extra["partitions_total"]) == (1, 3)
    assert list(private_tempdir.iterdir()) == []


@pytest.mark.cluster
@pytest.mark.parametrize(
    ("ignored", "message"),
    [
        ("columns", r"^read columns \['name', 'id', 'x', 'y'\], asked for \['name', 'y'\]$"),
        ("filters", rf"^the filtered read has {TINY_ROWS} rows, filtering after a full read gives \d+$"),
    ],
)
def test_parquet_filter_pushdown_fails_when_an_argument_is_ignored(
    client: Any, monkeypatch: pytest.MonkeyPatch, ignored: str, message: str
) -> None:
    calls = wrap_reader(monkeypatch, "read_parquet", ignoring(ignored))

    with pytest.raises(WorkloadCheckFailed, match=message):
        workload_function("parquet_filter_pushdown")(**tiny_params("parquet_filter_pushdown"))
    assert [ignored in kwargs for kwargs in calls] == [False, True]  # the full read, then the filtered read


def _filters_after_a_full_read(original: Reader, *args: Any, **kwargs: Any) -> Any:
    """The right rows, but every file read: the filters applied after reading instead of pushed down."""
    filters, columns = kwargs.pop("filters", None), kwargs.pop("columns", None)
    full = original(*args, **kwargs)
    if filters is None:
        return full
    [(_, _, since), (_, _, x_above)] = filters

    def select(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[(frame.index >= since) & (frame["x"] > x_above)][columns]

    return full.map_partitions(select, meta=select(full._meta))


@pytest.mark.cluster
def test_parquet_filter_pushdown_fails_when_no_file_is_skipped(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    wrap_reader(monkeypatch, "read_parquet", _filters_after_a_full_read)

    with pytest.raises(
        WorkloadCheckFailed,
        match=r"^the filtered read has 3 partitions, as many as the full read: no file before 2000-01-03 06:00:00 was"
        r" skipped by its statistics$",
    ):
        workload_function("parquet_filter_pushdown")(**tiny_params("parquet_filter_pushdown"))


@pytest.mark.cluster
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_set_first_selected("y", 5.0), r"^sums of \['y'\] of the selection: 1 of 1 values differ"),
        (_set_first_selected("name", "Nobody"), r"^row hashes differ: the filtered read returned other rows$"),
    ],
)
def test_parquet_filter_pushdown_fails_when_the_selection_has_other_values(
    client: Any, monkeypatch: pytest.MonkeyPatch, change: Callable[[pd.DataFrame], pd.DataFrame], message: str
) -> None:
    wrap_reader(monkeypatch, "read_parquet", per_partition(change, only_filtered=True))

    with pytest.raises(WorkloadCheckFailed, match=message):
        workload_function("parquet_filter_pushdown")(**tiny_params("parquet_filter_pushdown"))


# ---------------------------------------------------------------------------------------------------------------
# csv_to_parquet


@pytest.mark.cluster
def test_csv_to_parquet_passes_at_tiny_size(client: Any, private_tempdir: Path) -> None:
    extra = workload_function("csv_to_parquet")(**tiny_params("csv_to_parquet"))

    assert extra == {"rows": float(TINY_ROWS), "csv_files": 3.0}
    assert list(private_tempdir.iterdir()) == []


def _round_x(frame: pd.DataFrame) -> pd.DataFrame:
    """A lossy float parser: x keeps 12 decimals."""
    return frame.assign(x=frame["x"].round(12))


@pytest.mark.cluster
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_drop_first_row, rf"^read {TINY_ROWS - 1} rows, wrote {TINY_ROWS}$"),
        (_round_x, r"^row hashes differ: some rows changed in the conversion$"),
        (lambda frame: frame.drop(columns=["y"]), r"^columns \['timestamp', 'name', 'id', 'x'\] after the conversion"),
    ],
)
def test_csv_to_parquet_fails_when_read_csv_changes_the_data(
    client: Any, monkeypatch: pytest.MonkeyPatch, change: Callable[[pd.DataFrame], pd.DataFrame], message: str
) -> None:
    calls = wrap_reader(monkeypatch, "read_csv", per_partition(change))

    with pytest.raises(WorkloadCheckFailed, match=message):
        workload_function("csv_to_parquet")(**tiny_params("csv_to_parquet"))
    assert len(calls) == 1


# ---------------------------------------------------------------------------------------------------------------
# duckdb_parquet_groupby


@pytest.mark.cluster
def test_duckdb_parquet_groupby_passes_at_tiny_size(client: Any, private_tempdir: Path) -> None:
    extra = workload_function("duckdb_parquet_groupby")(**tiny_params("duckdb_parquet_groupby"))

    assert extra["groups"] == 26
    assert 0.45 * TINY_ROWS < extra["rows_selected"] < 0.55 * TINY_ROWS  # x > 0 keeps half the rows
    assert extra["dask_s"] > 0 and extra["duckdb_s"] > 0
    assert list(private_tempdir.iterdir()) == []


def _nudge(column: str, amount: float) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def perturb(got: pd.DataFrame) -> pd.DataFrame:
        got = got.sort_index().copy()
        got.iloc[3, got.columns.get_loc(column)] += amount
        return got

    return perturb


def _one_more_row(sizes: pd.Series) -> pd.Series:
    sizes = sizes.sort_index().copy()
    sizes.iloc[0] += 1
    return sizes


@pytest.mark.cluster
@pytest.mark.parametrize(
    ("which", "perturb", "message"),
    [
        (0, lambda got: got.drop(index="Bob"), r"^Dask found 25 groups, DuckDB 26: \['Bob'\] differ$"),
        (1, _one_more_row, r"^rows per group, Dask vs DuckDB: 1 of 26 values differ; first at \(0,\)"),
        (0, _nudge("x", 1e-3), r"^sum of x per group, Dask vs DuckDB: 1 of 26 values differ; first at \(3,\)"),
        (0, _nudge("y", 1e-6), r"^mean of y per group, Dask vs DuckDB: 1 of 26 values differ; first at \(3,\)"),
        (0, _nudge("id", 1), r"^max of id per group, Dask vs DuckDB: 1 of 26 values differ; first at \(3,\)"),
    ],
)
def test_duckdb_parquet_groupby_fails_when_dask_disagrees_with_duckdb(
    client: Any, monkeypatch: pytest.MonkeyPatch, which: int, perturb: Callable[[Any], Any], message: str
) -> None:
    import dask

    compute = dask.compute
    calls: list[int] = []

    def compute_wrongly(*args: Any, **kwargs: Any) -> tuple[Any, ...]:
        results = compute(*args, **kwargs)
        calls.append(len(results))
        return tuple(perturb(value) if i == which else value for i, value in enumerate(results))

    monkeypatch.setattr(dask, "compute", compute_wrongly)

    with pytest.raises(WorkloadCheckFailed, match=message):
        workload_function("duckdb_parquet_groupby")(**tiny_params("duckdb_parquet_groupby"))
    assert calls == [2]  # one compute of (aggregates, group sizes)


# ---------------------------------------------------------------------------------------------------------------
# S3: the fixture and the workloads through s3://


def _listening(endpoint_url: str) -> bool:
    host, port = endpoint_url.removeprefix("http://").split(":")
    with contextlib.suppress(OSError), socket.create_connection((host, int(port)), timeout=1):
        return True
    return False


def test_s3_server_fixture_serves_a_bucket_then_stops_and_forgets_it() -> None:
    import boto3

    environ = dict(os.environ)
    with workload_fixture("s3_parquet_hive_partitioned") as provided:
        assert sorted(provided) == ["bucket", "endpoint_url", "key", "secret"]
        assert provided["endpoint_url"].startswith("http://127.0.0.1:")
        s3 = boto3.client(
            "s3",
            endpoint_url=provided["endpoint_url"],
            region_name="us-east-1",
            aws_access_key_id=provided["key"],
            aws_secret_access_key=provided["secret"],
        )
        try:
            assert [bucket["Name"] for bucket in s3.list_buckets()["Buckets"]] == [provided["bucket"]]
            s3.put_object(Bucket=provided["bucket"], Key="kept", Body=b"x")
        finally:
            s3.close()
        assert os.environ == environ  # credentials travel in parameters, never in AWS_* variables
    assert not _listening(provided["endpoint_url"])
    assert not [thread.name for thread in threading.enumerate() if "process_request_thread" in thread.name]

    from moto.s3.models import s3_backends

    assert not any(backend.buckets for _, _, backend in s3_backends.iter_backends())  # the objects are dropped


def test_s3_server_fixture_stops_the_server_when_the_case_raises() -> None:
    with (
        pytest.raises(RuntimeError, match=r"^the case broke$"),
        workload_fixture("s3_parquet_hive_partitioned") as provided,
    ):
        assert _listening(provided["endpoint_url"])
        raise RuntimeError("the case broke")
    assert not _listening(provided["endpoint_url"])


@pytest.mark.cluster
@pytest.mark.parametrize(
    ("workload", "expected"),
    [
        ("s3_parquet_hive_partitioned", {"rows": float(HIVE_ROWS), "partitions": 26.0, "files": 26.0}),
        (
            "s3_parquet_filter_pushdown",
            {"rows_total": float(TINY_ROWS), "partitions_total": 3.0, "partitions_read": 1.0},
        ),
    ],
)
def test_s3_workloads_pass_at_tiny_size_and_remove_their_objects(
    client: Any, workload: str, expected: dict[str, float]
) -> None:
    import s3fs

    with workload_fixture(workload) as provided:
        extra = workload_function(workload)(**tiny_params(workload), **provided)

        fs = s3fs.S3FileSystem(
            key=provided["key"],
            secret=provided["secret"],
            client_kwargs={"endpoint_url": provided["endpoint_url"], "region_name": "us-east-1"},
        )
        fs.invalidate_cache()
        assert fs.ls(provided["bucket"]) == []
    assert {key: extra[key] for key in expected} == expected


@pytest.mark.cluster
@pytest.mark.parametrize(
    ("workload", "alter", "message"),
    [
        (
            "s3_parquet_hive_partitioned",
            per_partition(_drop_first_row),
            rf"^read {HIVE_ROWS - 1} rows, wrote {HIVE_ROWS}$",
        ),
        (
            "s3_parquet_filter_pushdown",
            ignoring("columns"),
            r"^read columns \['name', 'id', 'x', 'y'\], asked for \['name', 'y'\]$",
        ),
    ],
)
def test_s3_workloads_fail_when_the_read_is_wrong(
    client: Any,
    monkeypatch: pytest.MonkeyPatch,
    workload: str,
    alter: Callable[..., Any],
    message: str,
) -> None:
    calls = wrap_reader(monkeypatch, "read_parquet", alter)

    with workload_fixture(workload) as provided, pytest.raises(WorkloadCheckFailed, match=message):
        workload_function(workload)(**tiny_params(workload), **provided)
    assert calls  # the buggy reader was used
