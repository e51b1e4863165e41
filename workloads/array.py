"""Array workloads with closed-form answers."""

from __future__ import annotations

from typing import Optional


def mean_var_reduction(
    rows: int, cols: int, chunk_rows: int, chunk_cols: int, split_every: Optional[int] = None
) -> dict[str, float]:
    """Mean and variance along axis 0 of ``a[i, j] = i + j``, plus the total — all against closed forms.

    Column j holds j, j+1, …, j+rows-1: its mean is j + (rows-1)/2 and its variance (rows²-1)/12;
    the total is rows·cols·(rows+cols-2)/2.
    """
    import dask
    import dask.array as da
    import numpy as np

    from framework.checks import check_close

    a = da.fromfunction(lambda i, j: i + j, shape=(rows, cols), chunks=(chunk_rows, chunk_cols), dtype="float64")
    mean, var, total = dask.compute(
        a.mean(axis=0, split_every=split_every),
        a.var(axis=0, split_every=split_every),
        a.sum(split_every=split_every),
    )
    check_close(mean, np.arange(cols) + (rows - 1) / 2, "column means", rtol=1e-12)
    check_close(var, np.full(cols, (rows**2 - 1) / 12), "column variances", rtol=1e-9)
    check_close(total, rows * cols * (rows + cols - 2) / 2, "total", rtol=1e-12)
    return {"elements": float(rows * cols)}
