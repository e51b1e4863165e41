"""DataFrame workloads on generated data."""

from __future__ import annotations

from framework.checks import check, check_close
from workloads.synthetic import row_count, timeseries


def groupby_agg(
    days: int,
    freq: str = "1s",
    partition_freq: str = "1D",
    by: str = "name",
    split_out: int = 1,
    seed: int = 42,
) -> dict[str, float]:
    """Group generated time series by a key and aggregate sum / mean / count.

    The check recomputes the same aggregates by hand — per-partition partial sums combined in pandas on the
    client — which takes another code path (no shuffle, no tree reduction) to the same exact answer.
    """
    import dask
    import pandas as pd

    ddf = timeseries(days, freq, partition_freq, seed)
    result = ddf.groupby(by).agg({"x": "sum", "y": "mean", "id": "count"}, split_out=split_out)

    def partials(frame: pd.DataFrame) -> pd.DataFrame:
        grouped = frame.groupby(by)
        return pd.DataFrame({"x_sum": grouped.x.sum(), "y_sum": grouped.y.sum(), "n": grouped.id.count()})

    meta = pd.DataFrame(
        {
            "x_sum": pd.Series(dtype="float64"),
            "y_sum": pd.Series(dtype="float64"),
            "n": pd.Series(dtype="int64"),
        }
    )
    by_partition = ddf.map_partitions(partials, meta=meta)
    got, parts, rows = dask.compute(result, by_partition, row_count(ddf))

    expected = parts.groupby(level=0).sum()
    got = got.sort_index()
    expected = expected.sort_index()
    check(list(got.index) == list(expected.index), f"groups differ: {len(got)} vs {len(expected)} groups")
    check(int(got["id"].sum()) == int(rows), f"counts sum to {int(got['id'].sum())}, expected {int(rows)} rows")
    check_close(got["id"].to_numpy(), expected["n"].to_numpy(), "count per group", rtol=0)
    check_close(got["x"].to_numpy(), expected["x_sum"].to_numpy(), "sum of x per group", rtol=1e-9, atol=1e-6)
    check_close(got["y"].to_numpy(), (expected["y_sum"] / expected["n"]).to_numpy(), "mean of y per group", rtol=1e-9)
    return {"rows": float(rows), "groups": float(len(got))}
