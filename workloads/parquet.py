"""Parquet workloads (pyarrow engine) on generated data."""

from __future__ import annotations

import shutil
import tempfile
from typing import Any, Optional

from framework.checks import check, check_close
from workloads.synthetic import row_count, timeseries


def _row_hash_total(ddf: Any) -> Any:
    """Order-independent fingerprint of every row (index included): the sum of pandas' row hashes."""
    import pandas as pd

    return ddf.map_partitions(
        lambda frame: pd.Series([int(pd.util.hash_pandas_object(frame, index=True).sum())], dtype="uint64"),
        meta=pd.Series(dtype="uint64"),
    ).sum()


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
