"""Generated data the DataFrame, Parquet and ML workloads compute on, and its size in rows.

``timeseries`` is dask's own generated time series over whole days. ``generated_frame`` builds a Dask DataFrame
from a function of ``(partition, first row, rows)``, so any task can regenerate any partition; its size is given in
``rows`` or in ``target_bytes`` (``row_total``). ``row_count`` counts the rows of either, lazily.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Optional


def timeseries(days: int, freq: str, partition_freq: str, seed: int) -> Any:
    """``dask.datasets.timeseries`` (timestamp index; name, id, x, y) from 2000-01-01 over ``days`` days."""
    import dask
    import pandas as pd

    end = str((pd.Timestamp("2000-01-01") + pd.Timedelta(days=days)).date())
    return dask.datasets.timeseries(start="2000-01-01", end=end, freq=freq, partition_freq=partition_freq, seed=seed)


def row_count(ddf: Any) -> Any:
    """Rows of a dask DataFrame, lazily. (``ddf.map_partitions(len).sum()`` breaks on dask 2024.12's dask-expr.)"""
    import pandas as pd

    return ddf.map_partitions(lambda frame: pd.Series([len(frame)], dtype="int64"), meta=pd.Series(dtype="int64")).sum()


def row_total(rows: Optional[int], target_bytes: Optional[int], bytes_per_row: int) -> int:
    """Rows to generate: ``rows`` itself, or as many rows of ``bytes_per_row`` as fit in ``target_bytes``."""
    if (rows is None) == (target_bytes is None):
        raise ValueError(f"give the size as rows or as target_bytes, not both or neither (rows={rows!r})")
    if rows is not None:
        return int(rows)
    return max(1, int(target_bytes or 0) // bytes_per_row)


def partition_specs(rows: int, partition_rows: int) -> list[tuple[int, int, int]]:
    """(partition, first row, rows) of ``rows`` split into near-equal partitions of at most ``partition_rows``."""
    count = max(1, math.ceil(rows / partition_rows))
    base, extra = divmod(rows, count)
    specs, start = [], 0
    for partition in range(count):
        size = base + (partition < extra)
        specs.append((partition, start, size))
        start += size
    return specs


def generated_frame(make: Callable[..., Any], rows: int, partition_rows: int, **options: Any) -> Any:
    """A Dask DataFrame whose partitions are ``make(spec, **options)``, one per spec of ``partition_specs``.

    ``make`` runs on the workers: a module-level function (pickled by reference, or by value on a remote cluster).
    """
    import dask.dataframe as dd

    make = functools.partial(make, **options)
    return dd.from_map(make, partition_specs(rows, partition_rows), meta=make((0, 0, 0)), label="generate")
