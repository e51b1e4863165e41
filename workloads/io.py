"""Parquet I/O workloads on generated time series: a round trip, hive partitioning, projection and filter pushdown,
CSV → Parquet, and DuckDB querying what Dask wrote.

Each writes under a fresh directory removed afterwards: a local temporary directory, or under ``path`` — any fsspec
URL every worker can reach (``s3://bucket/prefix`` with ``storage_options``), as a cluster of several machines needs.
The smoke workload's round trip writes into ``path`` itself and leaves it there.
Data sizes are ``days`` of rows at ``freq``, or ``target_bytes`` of rows in memory (e.g. a fraction of the cluster's).
"""

from __future__ import annotations

import contextlib
import math
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from typing import Any, Optional

from framework.in_runtime.checks import check, check_close
from workloads.synthetic import row_count, timeseries

# In-memory bytes of one dask.datasets.timeseries row (timestamp index, name, id, x, y): measured 45.3 with pandas
# 2.2 and 3.1 (pyarrow-backed strings); used to turn ``target_bytes`` into days of data.
ROW_BYTES = 45
COLUMNS = ["timestamp", "name", "id", "x", "y"]


def _days(days: Optional[int], target_bytes: Optional[int], freq: str) -> int:
    """Days of data to generate: ``days`` itself, or as many as hold about ``target_bytes`` in memory."""
    import pandas as pd

    if (days is None) == (target_bytes is None):
        raise ValueError(f"give either days or target_bytes, not {'both' if days else 'neither'}")
    if days is not None:
        return int(days)
    rows_per_day = pd.Timedelta("1D") / pd.Timedelta(freq)
    return max(1, math.ceil(int(target_bytes) / (ROW_BYTES * rows_per_day)))  # type: ignore[arg-type]


@contextlib.contextmanager
def scratch_directory(path: Optional[str], storage_options: Optional[dict[str, Any]]) -> Iterator[str]:
    """A fresh directory for one execution, removed afterwards: under ``path`` or in a local temporary directory."""
    if path is None:
        local = tempfile.mkdtemp(prefix="blessing-io-")
        try:
            yield local
        finally:
            shutil.rmtree(local, ignore_errors=True)
        return
    from fsspec.core import url_to_fs

    target = f"{path.rstrip('/')}/blessing-io-{uuid.uuid4().hex[:12]}"
    fs, stripped = url_to_fs(target, **(storage_options or {}))
    try:
        yield target
    finally:
        with contextlib.suppress(FileNotFoundError):
            fs.rm(stripped, recursive=True)


def _fingerprint(ddf: Any, columns: list[str]) -> Any:
    """Order-independent fingerprint of the rows' values in ``columns``: the sum of pandas' row hashes.

    Blind to dtypes that hold the same values (category, str, object; any datetime resolution): the timestamp is
    hashed as nanoseconds, and pandas hashes a categorical by its values.
    """
    import pandas as pd

    def fingerprint(frame: pd.DataFrame) -> pd.Series:
        values = frame[columns]
        if "timestamp" in columns:
            values = values.astype({"timestamp": "datetime64[ns]"})
        hashed = pd.util.hash_pandas_object(values, index=False)
        return pd.Series([int(hashed.sum())], dtype="uint64")

    return ddf.map_partitions(fingerprint, meta=pd.Series(dtype="uint64")).sum()


def _row_hash_total(ddf: Any) -> Any:
    """Order-independent fingerprint of every row (index included): the sum of pandas' row hashes."""
    import pandas as pd

    return ddf.map_partitions(
        lambda frame: pd.Series([int(pd.util.hash_pandas_object(frame, index=True).sum())], dtype="uint64"),
        meta=pd.Series(dtype="uint64"),
    ).sum()


def _value_counts_by_partition(ddf: Any, column: str) -> Any:
    """pandas ``value_counts`` of ``column`` in each partition, concatenated (combined on the client)."""
    import pandas as pd

    def counts(frame: pd.DataFrame) -> pd.Series:
        found = frame[column].value_counts()
        return pd.Series(found.to_numpy(dtype="int64"), index=found.index.astype(object), name="rows")

    return ddf.map_partitions(counts, meta=pd.Series(dtype="int64", name="rows", index=pd.Index([], dtype=object)))


def _footer_rows(fs: Any, files: list[str]) -> int:
    """Rows in ``files`` by their Parquet footers (no data pages read): what is really on disk."""
    import pyarrow.parquet as pq

    total = 0
    for file in files:
        with fs.open(file, "rb") as handle:
            total += pq.ParquetFile(handle).metadata.num_rows
    return total


def _partition_files(
    target: str, column: str, storage_options: Optional[dict[str, Any]]
) -> tuple[Any, dict[str, list[str]]]:
    """The filesystem and the data files under each ``column=value`` directory of a hive-partitioned dataset."""
    from fsspec.core import url_to_fs

    fs, root = url_to_fs(target, **(storage_options or {}))
    fs.invalidate_cache()  # the workers wrote these files: a listing cached before the write would miss them
    by_value: dict[str, list[str]] = {}
    for file in fs.find(root):
        relative = file[len(root.rstrip("/")) + 1 :]
        directory, _, name = relative.rpartition("/")
        if name.endswith(".parquet") and directory.startswith(f"{column}="):
            by_value.setdefault(directory[len(column) + 1 :], []).append(file)
    return fs, by_value


def parquet_roundtrip(
    days: int,
    freq: str = "1s",
    partition_freq: str = "1D",
    compression: str = "snappy",
    path: Optional[str] = None,
    seed: int = 7,
) -> dict[str, float]:
    """Write generated time series to Parquet with pyarrow, read it back, and check nothing changed.

    The check compares row count, per-column sums and an order-independent hash of every row and index.
    ``path`` must be visible to every worker; by default a temporary directory on this machine.
    """
    import dask
    import dask.dataframe as dd

    ddf = timeseries(days, freq, partition_freq, seed)
    target = path or tempfile.mkdtemp(prefix="blessing-parquet-")
    try:
        ddf.to_parquet(target, engine="pyarrow", compression=compression, write_index=True)
        back = dd.read_parquet(target, engine="pyarrow")
        check(list(back.columns) == list(ddf.columns), f"columns {list(back.columns)} != {list(ddf.columns)}")
        (rows_written, rows_read, sums_written, sums_read, hash_written, hash_read) = dask.compute(
            row_count(ddf),
            row_count(back),
            ddf[["id", "x", "y"]].sum(),
            back[["id", "x", "y"]].sum(),
            _row_hash_total(ddf),
            _row_hash_total(back),
        )
        check(int(rows_read) == int(rows_written), f"read {int(rows_read)} rows, wrote {int(rows_written)}")
        check_close(sums_read.to_numpy(), sums_written.to_numpy(), "column sums after the round trip", rtol=1e-12)
        check(int(hash_read) == int(hash_written), "row hashes differ: some rows changed in the round trip")
        return {"rows": float(rows_written), "files": float(back.npartitions)}
    finally:
        if path is None:
            shutil.rmtree(target, ignore_errors=True)


def parquet_hive_partitioned(
    days: Optional[int] = None,
    target_bytes: Optional[int] = None,
    freq: str = "1s",
    partition_freq: str = "1D",
    partition_on: str = "name",
    path: Optional[str] = None,
    storage_options: Optional[dict[str, Any]] = None,
    seed: int = 11,
) -> dict[str, float]:
    """Write generated time series as hive-partitioned Parquet (one directory per value of a low-cardinality column)
    and read the dataset back.

    Checked three ways: the rows under each ``column=value`` directory (by Parquet footers) and the rows read back per
    value both equal pandas' ``value_counts`` of the generated data; and every row (timestamp, values) comes back
    unchanged, by an order-independent hash of all rows.
    """
    import dask
    import dask.dataframe as dd

    ddf = timeseries(_days(days, target_bytes, freq), freq, partition_freq, seed)
    with scratch_directory(path, storage_options) as target:
        ddf.to_parquet(target, partition_on=[partition_on], write_index=True, storage_options=storage_options)
        back = dd.read_parquet(target, storage_options=storage_options)
        fs, files = _partition_files(target, partition_on, storage_options)
        # A compute of its own: from dask 2025.4.0, one compute that mixes delayed objects and DataFrame collections
        # returns its results out of order (dask/_expr.py _HLGExprSequence._tune_down regroups them). Guarded by
        # workloads/guards/mixed_compute_order.py (matrices/findings.yaml).
        (footer_rows,) = dask.compute({value: dask.delayed(_footer_rows)(fs, paths) for value, paths in files.items()})
        rows_written, rows_read, counts_by_partition, counts_read, hash_written, hash_read = dask.compute(
            row_count(ddf),
            row_count(back),
            _value_counts_by_partition(ddf, partition_on),
            back[partition_on].value_counts(),
            _fingerprint(ddf.reset_index(), COLUMNS),
            _fingerprint(back.reset_index(), COLUMNS),
        )
    expected = {str(value): int(n) for value, n in counts_by_partition.groupby(level=0).sum().items()}
    read = {str(value): int(n) for value, n in counts_read.items() if n}
    check(int(rows_read) == int(rows_written), f"read {int(rows_read)} rows, wrote {int(rows_written)}")
    missing, unexpected = sorted(set(expected) - set(footer_rows)), sorted(set(footer_rows) - set(expected))
    check(
        not missing and not unexpected,
        f"partition directories do not match the values of {partition_on}: missing {missing}, unexpected {unexpected}",
    )
    for value in sorted(expected):
        check(
            footer_rows[value] == expected[value],
            f"{partition_on}={value} holds {footer_rows[value]} rows on disk, the data has {expected[value]}",
        )
        check(
            read.get(value, 0) == expected[value],
            f"read {read.get(value, 0)} rows with {partition_on}={value}, the data has {expected[value]}",
        )
    check(int(hash_read) == int(hash_written), "row hashes differ: some rows changed in the round trip")
    return {
        "rows": float(rows_written),
        "partitions": float(len(expected)),
        "files": float(sum(len(paths) for paths in files.values())),
    }


def parquet_filter_pushdown(
    days: Optional[int] = None,
    target_bytes: Optional[int] = None,
    freq: str = "1s",
    partition_freq: str = "1D",
    columns: tuple[str, ...] = ("name", "y"),
    keep_fraction: float = 0.25,
    x_above: float = 0.5,
    path: Optional[str] = None,
    storage_options: Optional[dict[str, Any]] = None,
    seed: int = 13,
) -> dict[str, float]:
    """Write generated time series to Parquet, then read only some columns of the rows that pass filters on the
    timestamp (the last ``keep_fraction`` of the time range) and on ``x``, pushed down into ``read_parquet``.

    Checked against the same selection applied after a full read (row count, projected columns, row hashes, sums);
    and, the data being sorted by time, the timestamp filter must skip whole files by their statistics.
    """
    import dask
    import dask.dataframe as dd
    import pandas as pd

    columns = list(columns)
    ddf = timeseries(_days(days, target_bytes, freq), freq, partition_freq, seed)
    start, end = ddf.divisions[0], ddf.divisions[-1]
    since = start + (end - start) * (1 - keep_fraction)
    # Files whose time range reaches `since` (one file per generated partition); the others may be skipped unread.
    files_needed = sum(1 for upper in ddf.divisions[1:] if upper >= since)
    with scratch_directory(path, storage_options) as target:
        ddf.to_parquet(target, write_index=True, storage_options=storage_options)
        full = dd.read_parquet(target, index=False, storage_options=storage_options)  # the timestamp as a column
        selected = dd.read_parquet(
            target,
            columns=columns,
            filters=[("timestamp", ">=", pd.Timestamp(since)), ("x", ">", x_above)],
            storage_options=storage_options,
        )
        check(list(selected.columns) == columns, f"read columns {list(selected.columns)}, asked for {columns}")
        expected = full[(full.timestamp >= since) & (full.x > x_above)]
        numeric = [column for column in columns if column in ("id", "x", "y")]
        rows_total, rows_selected, rows_expected, hash_selected, hash_expected, sums_selected, sums_expected = (
            dask.compute(
                row_count(full),
                row_count(selected),
                row_count(expected),
                _fingerprint(selected.reset_index(), ["timestamp", *columns]),
                _fingerprint(expected, ["timestamp", *columns]),
                selected[numeric].sum(),
                expected[numeric].sum(),
            )
        )
    check(
        int(rows_selected) == int(rows_expected),
        f"the filtered read has {int(rows_selected)} rows, filtering after a full read gives {int(rows_expected)}",
    )
    check(int(rows_selected) < int(rows_total), f"the filters kept all {int(rows_total)} rows")
    if files_needed < ddf.npartitions:
        check(
            selected.npartitions < full.npartitions,
            f"the filtered read has {selected.npartitions} partitions, as many as the full read: no file before"
            f" {since} was skipped by its statistics",
        )
    check_close(sums_selected.to_numpy(), sums_expected.to_numpy(), f"sums of {numeric} of the selection", rtol=1e-9)
    check(int(hash_selected) == int(hash_expected), "row hashes differ: the filtered read returned other rows")
    return {
        "rows_total": float(rows_total),
        "rows_selected": float(rows_selected),
        "partitions_total": float(full.npartitions),
        "partitions_read": float(selected.npartitions),
    }


def csv_to_parquet(
    days: Optional[int] = None,
    target_bytes: Optional[int] = None,
    freq: str = "1s",
    partition_freq: str = "1D",
    path: Optional[str] = None,
    storage_options: Optional[dict[str, Any]] = None,
    seed: int = 17,
) -> dict[str, float]:
    """Write generated time series as CSV files, convert them with ``read_csv`` → ``to_parquet`` and read the Parquet
    back; checked against the generated data (row count, one CSV file per partition, column sums, row hashes)."""
    import dask
    import dask.dataframe as dd
    import pandas as pd

    # Before pandas 3.1 the default float parser may be one ulp off the value written ("round_trip" is exact);
    # pandas 3.1 parses exactly in every mode and deprecates the argument.
    pandas_version = tuple(int(part) for part in pd.__version__.split(".")[:2])
    exact_floats = {} if pandas_version >= (3, 1) else {"float_precision": "round_trip"}
    ddf = timeseries(_days(days, target_bytes, freq), freq, partition_freq, seed)
    with scratch_directory(path, storage_options) as target:
        csv_files = ddf.to_csv(f"{target}/csv/part-*.csv", storage_options=storage_options)
        csv = dd.read_csv(
            f"{target}/csv/part-*.csv", parse_dates=["timestamp"], storage_options=storage_options, **exact_floats
        )
        csv.to_parquet(f"{target}/parquet", write_index=False, storage_options=storage_options)
        back = dd.read_parquet(f"{target}/parquet", storage_options=storage_options)
        check(list(back.columns) == COLUMNS, f"columns {list(back.columns)} after the conversion, expected {COLUMNS}")
        rows_written, rows_read, sums_written, sums_read, hash_written, hash_read = dask.compute(
            row_count(ddf),
            row_count(back),
            ddf[["id", "x", "y"]].sum(),
            back[["id", "x", "y"]].sum(),
            _fingerprint(ddf.reset_index(), COLUMNS),
            _fingerprint(back, COLUMNS),
        )
    check(len(csv_files) == ddf.npartitions, f"wrote {len(csv_files)} CSV files for {ddf.npartitions} partitions")
    check(int(rows_read) == int(rows_written), f"read {int(rows_read)} rows, wrote {int(rows_written)}")
    check_close(sums_read.to_numpy(), sums_written.to_numpy(), "column sums after the conversion", rtol=1e-12)
    check(int(hash_read) == int(hash_written), "row hashes differ: some rows changed in the conversion")
    return {"rows": float(rows_written), "csv_files": float(len(csv_files))}


def duckdb_parquet_groupby(
    days: Optional[int] = None,
    target_bytes: Optional[int] = None,
    freq: str = "1s",
    partition_freq: str = "1D",
    x_above: float = 0.0,
    path: Optional[str] = None,
    seed: int = 19,
) -> dict[str, float]:
    """Write generated time series to Parquet with Dask; a filtered groupby (count, sum, mean, max) by Dask over that
    Parquet must agree with DuckDB's answer to the same SQL query on the same files.

    DuckDB runs in the client process and reads the files itself: ``path`` must be a local directory it can read.
    """
    import dask
    import dask.dataframe as dd
    import duckdb

    ddf = timeseries(_days(days, target_bytes, freq), freq, partition_freq, seed)
    with scratch_directory(path, None) as target:
        ddf.to_parquet(target, write_index=True)
        started = time.perf_counter()
        data = dd.read_parquet(target)
        grouped = data[data.x > x_above].groupby("name")
        got, sizes = dask.compute(grouped.agg({"x": "sum", "y": "mean", "id": "max"}), grouped.size())
        dask_s = time.perf_counter() - started

        started = time.perf_counter()
        connection = duckdb.connect()  # in memory
        try:
            rows = connection.execute(
                "SELECT name, count(*), sum(x), avg(y), max(id) FROM read_parquet(?) WHERE x > ? GROUP BY name"
                " ORDER BY name",
                [f"{target}/*.parquet", x_above],
            ).fetchall()
        finally:
            connection.close()
        duckdb_s = time.perf_counter() - started

    got = got.sort_index()
    sizes = sizes.sort_index()
    names = [row[0] for row in rows]
    check(
        [str(name) for name in got.index] == names,
        f"Dask found {len(got)} groups, DuckDB {len(names)}: {sorted(set(map(str, got.index)) ^ set(names))} differ",
    )
    check_close(sizes.to_numpy(), [row[1] for row in rows], "rows per group, Dask vs DuckDB", rtol=0)
    check_close(got["x"].to_numpy(), [row[2] for row in rows], "sum of x per group, Dask vs DuckDB", atol=1e-6)
    check_close(got["y"].to_numpy(), [row[3] for row in rows], "mean of y per group, Dask vs DuckDB", atol=1e-12)
    check_close(got["id"].to_numpy(), [row[4] for row in rows], "max of id per group, Dask vs DuckDB", rtol=0)
    return {"rows_selected": float(sizes.sum()), "groups": float(len(rows)), "dask_s": dask_s, "duckdb_s": duckdb_s}
