"""Array workloads after coiled/benchmarks' array and rechunk tests, each checked against numpy or a closed form.

Sizes come in bytes (``target_bytes``, usually ``{fraction_of_cluster_memory: ...}`` in the YAML); each function
derives its shape from them — but the smoke workload's mean and variance, given in rows and columns. The checks are
built to scale: exact identities over the whole result (sums that telescope, products of sums), a closed form
evaluated block by block, and numpy on the client for samples.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Callable, Optional

from framework.in_runtime.checks import check, check_close

# Functions that run on the workers are nested in the workload, not module-level: distributed pickles a graph
# with the standard pickle when it can — a module-level function by reference, as `workloads.arrays.name`, which a
# remote cluster cannot import — and falls back to cloudpickle (which the runner tells to send this module's code
# by value) only for what the standard pickle refuses, such as nested functions.


def square_side(target_bytes: int, itemsize: int = 8) -> int:
    """The side of a square array of ``itemsize``-byte elements that holds about ``target_bytes``."""
    return max(2, math.isqrt(max(0, int(target_bytes)) // itemsize))


def from_index_function(function: Callable[..., Any], shape: tuple[int, ...], chunks: Any, dtype: Any) -> Any:
    """A dask array whose element at (i, j, …) is ``function(i, j, …)``, evaluated per block on integer indices.

    Unlike ``da.fromfunction`` (indices in the output dtype), the indices are exact int64 open grids.
    """
    import dask.array as da
    import numpy as np

    def block(block_info: Any = None) -> Any:
        location = block_info[None]["array-location"]
        grids = np.ogrid[tuple(slice(start, stop) for start, stop in location)]
        sizes = tuple(stop - start for start, stop in location)
        return np.broadcast_to(function(*grids), sizes).astype(dtype)

    normalized = da.core.normalize_chunks(chunks, shape, dtype=np.dtype(dtype))
    return da.map_blocks(block, chunks=normalized, dtype=dtype, meta=np.empty((0,) * len(shape), dtype=dtype))


# ----------------------------------------------------------------------------------------------------------------
# mean and variance


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


# ----------------------------------------------------------------------------------------------------------------
# anom_mean


def anom_mean(
    target_bytes: int,
    days: int,
    period_days: int = 365,
    time_chunk: int = 1,
    sample_columns: int = 4,
    seed: int = 0,
) -> dict[str, float]:
    """Climatology, anomaly and time-mean of the anomaly of daily random data by xarray groupby.

    xarray uses flox for the groupby where it is installed (no runtime here has it), else its own per-group
    reductions; the installed packages are recorded with each result.

    The array is (time, x) with ``days`` daily steps in chunks of ``time_chunk`` steps and x sized so the whole is
    ``target_bytes``; a step's climatology group is its day in a ``period_days``-day year (a no-leap calendar at
    365). The time-mean of the anomalies is zero for every x (each group's anomalies sum to zero); the climatology
    and the anomalies at a few columns are recomputed in numpy (bincount) from the same values.
    """
    import dask
    import dask.array as da
    import numpy as np
    import pandas as pd
    import xarray as xr

    nx = max(1, int(target_bytes) // (8 * days))
    data = da.random.default_rng(seed).random((days, nx), chunks=(time_chunk, nx))
    day_of_year = np.arange(days) % period_days
    array = xr.DataArray(
        data,
        dims=("time", "x"),
        coords={"time": pd.date_range("2000-01-01", periods=days, freq="D"), "dayofyear": ("time", day_of_year)},
    )
    climatology = array.groupby("dayofyear").mean("time")
    anomaly = array.groupby("dayofyear") - climatology
    mean = anomaly.mean("time")

    columns = np.unique(np.linspace(0, nx - 1, sample_columns).astype(int))
    got_mean, got_climatology, got_anomaly, sample = dask.compute(
        mean.data, climatology.data[:, columns], anomaly.data[:, columns], data[:, columns]
    )

    groups, group_of_step = np.unique(day_of_year, return_inverse=True)
    counts = np.bincount(group_of_step)
    expected_climatology = np.stack(
        [np.bincount(group_of_step, weights=sample[:, c]) / counts for c in range(len(columns))], axis=1
    )
    check_close(got_climatology, expected_climatology, "climatology at sampled columns", rtol=1e-9)
    check_close(got_anomaly, sample - expected_climatology[group_of_step], "anomalies at sampled columns", atol=1e-9)
    check_close(got_mean, np.zeros(nx), "time-mean of the anomalies", atol=1e-9)
    return {"elements": float(days * nx), "groups": float(len(groups))}


# ----------------------------------------------------------------------------------------------------------------
# vorticity


def _velocity_amplitudes(t: Any) -> tuple[Any, Any]:
    import numpy as np

    return 1.0 + 0.5 * np.sin(0.1 * t), 1.0 + 0.5 * np.cos(0.1 * t)


def _exact_vorticity(j: Any, i: Any, t: Any, ny: int, nx: int, ky: int, kx: int) -> Any:
    """Forward-difference vorticity of u = A(t)·sin(ky·y), v = B(t)·cos(kx·x) on a periodic 2π × 2π grid.

    cos(b(i+1)) − cos(bi) = −2·sin(b(i+½))·sin(b/2) and sin(a(j+1)) − sin(aj) = 2·cos(a(j+½))·sin(a/2).
    """
    import numpy as np

    dy, dx = 2 * np.pi / ny, 2 * np.pi / nx
    a, b = ky * dy, kx * dx
    amplitude_u, amplitude_v = _velocity_amplitudes(t)
    dv_dx = amplitude_v * (-2.0 * np.sin(b * (i + 0.5)) * np.sin(b / 2)) / dx
    du_dy = amplitude_u * (2.0 * np.cos(a * (j + 0.5)) * np.sin(a / 2)) / dy
    return dv_dx - du_dy


def _pad_rechunk(field: Any, axis: int) -> Any:
    """Wrap one element onto the end of ``axis``, then merge that 1-element chunk back in (as xgcm does)."""
    import dask.array as da

    pad_width = [(0, 0)] * field.ndim
    pad_width[axis] = (0, 1)
    padded = da.pad(field, pad_width, mode="wrap")
    chunks = list(padded.chunks)
    chunks[axis] = padded.shape[axis]
    return padded.rechunk(tuple(chunks))


def vorticity(target_bytes: int, ny: int, nx: int, ky: int = 3, kx: int = 2, samples: int = 3) -> dict[str, float]:
    """Vorticity ∂v/∂x − ∂u/∂y of analytic fields by pad (wrap) + rechunk + forward differences.

    u and v are (ny, nx, t) fields of ``target_bytes`` each, one (ny, nx) slice per chunk. Checked three ways:
    the largest difference from the closed form (evaluated blockwise without pad or rechunk), the total (zero:
    differences telescope on a periodic grid) and a strided sample against the closed form in numpy.
    """
    import dask
    import numpy as np

    steps = max(1, int(target_bytes) // (8 * ny * nx))
    shape, chunks = (ny, nx, steps), (ny, nx, 1)
    dy, dx = 2 * np.pi / ny, 2 * np.pi / nx

    def u_field(j: Any, i: Any, t: Any) -> Any:
        return _velocity_amplitudes(t)[0] * np.sin(ky * dy * j)

    def v_field(j: Any, i: Any, t: Any) -> Any:
        return _velocity_amplitudes(t)[1] * np.cos(kx * dx * i)

    u = from_index_function(u_field, shape, chunks, "float64")
    v = from_index_function(v_field, shape, chunks, "float64")
    up, vp = _pad_rechunk(u, axis=0), _pad_rechunk(v, axis=1)
    zeta = (vp[:, 1:] - vp[:, :-1]) / dx - (up[1:] - up[:-1]) / dy
    check(zeta.shape == shape, f"vorticity has shape {zeta.shape}, expected {shape}")

    exact = from_index_function(lambda j, i, t: _exact_vorticity(j, i, t, ny, nx, ky, kx), shape, zeta.chunks, "f8")
    rows = np.unique(np.append(np.arange(0, ny, max(1, ny // 32)), ny - 1))
    columns = np.unique(np.append(np.arange(0, nx, max(1, nx // 32)), nx - 1))
    steps_sampled = np.unique(np.linspace(0, steps - 1, samples).astype(int))
    max_error, total, sample = dask.compute(
        abs(zeta - exact).max(), zeta.sum(), zeta[rows][:, columns][:, :, steps_sampled]
    )

    check_close(max_error, 0.0, "largest difference from the closed-form vorticity", atol=1e-9)
    check_close(total, 0.0, "total vorticity over the periodic domain", atol=1e-10 * zeta.size)
    expected = _exact_vorticity(rows[:, None, None], columns[None, :, None], steps_sampled, ny, nx, ky, kx)
    check_close(sample, expected, "sampled vorticity", rtol=1e-9, atol=1e-9)
    return {"elements": float(zeta.size), "steps": float(steps)}


# ----------------------------------------------------------------------------------------------------------------
# double_diff


def double_diff(target_bytes: int, chunk_side: int, window: int = 8, seed: int = 0) -> dict[str, float]:
    """The mixed second difference ``diff(diff(x, axis=0), axis=1)`` of a square random array.

    Its row sums telescope to ``(x[i+1, -1] − x[i, -1]) − (x[i+1, 0] − x[i, 0])`` and its column sums likewise, so
    both are checked in numpy from the array's edges; a window across the first chunk corner is checked against
    ``np.diff`` of the same values.
    """
    import dask
    import dask.array as da
    import numpy as np

    n = square_side(target_bytes)
    x = da.random.default_rng(seed).random((n, n), chunks=chunk_side)
    d = da.diff(da.diff(x, axis=0), axis=1)
    start = max(0, min(chunk_side, n - 1) - window // 2)
    stop = min(n - 1, start + window)
    row_sums, column_sums, got_window, first_column, last_column, first_row, last_row, values = dask.compute(
        d.sum(axis=1),
        d.sum(axis=0),
        d[start:stop, start:stop],
        x[:, 0],
        x[:, -1],
        x[0, :],
        x[-1, :],
        x[start : stop + 1, start : stop + 1],
    )
    check_close(row_sums, np.diff(last_column) - np.diff(first_column), "row sums of the double difference", atol=1e-9)
    check_close(column_sums, np.diff(last_row) - np.diff(first_row), "column sums of the double difference", atol=1e-9)
    check_close(got_window, np.diff(np.diff(values, axis=0), axis=1), "window across a chunk corner", rtol=1e-12)
    return {"elements": float(n * n)}


# ----------------------------------------------------------------------------------------------------------------
# dot_product


def dot_product(target_bytes: int, chunk_side: int) -> dict[str, float]:
    """``(a @ a.T).sum()`` and the row sums of ``a @ a.T`` for ``a[i, j] = cos(i) + sin(j)``, against closed forms.

    With f = cos(i), g = sin(j), F = Σf, G = Σg and S = Σg² over n: row i of a·aᵀ sums to
    n·f_i·(F + G) + F·G + n·S and the whole product to n·F² + 2n·F·G + n²·S.
    """
    import dask
    import numpy as np

    n = square_side(target_bytes)
    a = from_index_function(lambda i, j: np.cos(i) + np.sin(j), (n, n), chunk_side, "float64")
    product = a @ a.T
    total, row_sums = dask.compute(product.sum(), product.sum(axis=1))

    f, g = np.cos(np.arange(n)), np.sin(np.arange(n))
    big_f, big_g, big_s = f.sum(), g.sum(), (g * g).sum()
    check_close(row_sums, n * f * (big_f + big_g) + big_f * big_g + n * big_s, "row sums of a @ a.T", rtol=1e-9)
    check_close(total, n * big_f**2 + 2 * n * big_f * big_g + n**2 * big_s, "(a @ a.T).sum()", rtol=1e-9)
    return {"elements": float(n * n), "flops": 2.0 * n**3}


# ----------------------------------------------------------------------------------------------------------------
# map_overlap


def box_filter(padded: Any, radius: int) -> Any:
    """Mean over the (2·radius+1)² box around each element of ``padded`` that has ``radius`` neighbours each side.

    Returns an array of ``padded``'s shape whose outer ``radius`` ring is left as in ``padded``.
    """
    import numpy as np

    out = np.array(padded, dtype="float64", copy=True)
    rows, columns = padded.shape[0] - 2 * radius, padded.shape[1] - 2 * radius
    total = np.zeros((rows, columns))
    for di in range(2 * radius + 1):
        for dj in range(2 * radius + 1):
            total += padded[di : di + rows, dj : dj + columns]
    out[radius : radius + rows, radius : radius + columns] = total / (2 * radius + 1) ** 2
    return out


def map_overlap(target_bytes: int, chunk_side: int, depth: int = 1, window: int = 6, seed: int = 0) -> dict[str, float]:
    """A (2·depth+1)² box filter with ``da.map_overlap`` and periodic boundaries on a square random array.

    Checked: the total is unchanged (a periodic box mean keeps the sum) and windows at a chunk corner and at the
    array's corners (where the boundary wraps) match numpy slicing of the same values.
    """
    import dask
    import dask.array as da
    import numpy as np

    n = square_side(target_bytes)
    x = da.random.default_rng(seed).random((n, n), chunks=chunk_side)

    def filter_block(block: Any) -> Any:
        return box_filter(block, depth)

    filtered = da.map_overlap(filter_block, x, depth=depth, boundary="periodic", dtype="float64")

    corners = sorted({0, min(chunk_side, n - 1), n - 1})
    windows = [(r, c) for r in corners for c in corners]
    got_and_values = []
    for r, c in windows:
        out_rows = np.arange(r - window // 2, r - window // 2 + window) % n
        out_columns = np.arange(c - window // 2, c - window // 2 + window) % n
        in_rows = np.arange(r - window // 2 - depth, r - window // 2 + window + depth) % n
        in_columns = np.arange(c - window // 2 - depth, c - window // 2 + window + depth) % n
        got_and_values += [filtered[out_rows][:, out_columns], x[in_rows][:, in_columns]]
    total_in, total_out, *pieces = dask.compute(x.sum(), filtered.sum(), *got_and_values)

    check_close(total_out, total_in, "sum after the box filter", rtol=1e-9)
    for (r, c), got, values in zip(windows, pieces[0::2], pieces[1::2]):
        expected = box_filter(values, depth)[depth:-depth, depth:-depth]
        check_close(got, expected, f"box filter around ({r}, {c})", rtol=1e-12)
    return {"elements": float(n * n)}


# ----------------------------------------------------------------------------------------------------------------
# rechunk


def _rechunk(x: Any, chunks: Any, method: str) -> Any:
    """``da.rechunk(x, chunks, method=method)``, or the ``array.rechunk.method`` config where the keyword is absent."""
    import dask
    import dask.array as da

    if "method" in inspect.signature(da.rechunk).parameters:
        return da.rechunk(x, chunks, method=method)
    with dask.config.set({"array.rechunk.method": method}):
        return da.rechunk(x, chunks)


def _split(total: int, size: int) -> tuple[int, ...]:
    size = max(1, min(size, total))
    return (size,) * (total // size) + ((total % size,) if total % size else ())


def _mismatches(block: Any, n: int, block_info: Any = None) -> Any:
    """How many elements of a rechunked block differ from ``i·n + j`` (all of them when its shape is wrong)."""
    import numpy as np

    (r0, r1), (c0, c1) = block_info[0]["array-location"]
    i, j = np.ogrid[r0:r1, c0:c1]
    expected = (i * n + j).astype(block.dtype)
    wrong = int(np.count_nonzero(block != expected)) if block.shape == expected.shape else expected.size
    return np.array([[wrong]], dtype="int64")


def rechunk(
    target_bytes: int, chunk_bytes: int, pattern: str = "tiles_to_rows", method: str = "tasks"
) -> dict[str, float]:
    """Rechunk a square array of ``i·n + j`` by ``method`` (tasks or p2p), after coiled/benchmarks' test_rechunk.

    ``pattern``: ``tiles_to_rows`` — square tiles of ``chunk_bytes`` become blocks of whole rows (independent
    groups); ``swap_axes`` — blocks of whole columns become blocks of whole rows (all-to-all). Checked: the chunks
    are the ones asked for, and every element of every output block is its own index (counted block by block).
    """
    import dask
    import numpy as np

    check(pattern in ("tiles_to_rows", "swap_axes"), f"pattern {pattern!r}: use 'tiles_to_rows' or 'swap_axes'")
    check(method in ("tasks", "p2p"), f"method {method!r}: use 'tasks' or 'p2p'")
    n = square_side(target_bytes)
    line = max(1, int(chunk_bytes) // (8 * n))  # rows (or columns) per chunk of whole rows (or columns)
    if pattern == "tiles_to_rows":
        side = square_side(chunk_bytes)
        before = (_split(n, side), _split(n, side))
    else:
        before = ((n,), _split(n, line))
    after = (_split(n, line), (n,))

    x = from_index_function(lambda i, j: i * n + j, (n, n), before, "float64")
    with dask.config.set({"array.rechunk.method": method}):
        y = _rechunk(x, after, method)
        check(y.chunks == after, f"chunks after rechunking: {_shown(y.chunks)}, expected {_shown(after)}")

        def mismatches(block: Any, block_info: Any = None) -> Any:
            return _mismatches(block, n, block_info)

        counts = y.map_blocks(
            mismatches, chunks=tuple((1,) * len(c) for c in y.chunks), dtype="int64", meta=np.empty((0, 0), "i8")
        )
        (wrong,) = dask.compute(counts.sum())
    check(int(wrong) == 0, f"{int(wrong)} of {n * n} elements differ from the input after rechunking")
    p2p_stages = _p2p_stages(y)
    # A silent fallback would measure the other method under this case's name.
    check(
        (p2p_stages > 0) == (method == "p2p"),
        f"method {method!r} asked, but the graph has {p2p_stages} P2P rechunk stages",
    )
    return {
        "p2p_stages": float(p2p_stages),
        "elements": float(n * n),
        "input_chunks": float(len(before[0]) * len(before[1])),
        "output_chunks": float(len(after[0])),
    }


def _p2p_stages(array: Any) -> int:
    """How many P2P transfer stages the array's graph holds (layer names; task keys where there are no layers)."""
    from dask.utils import key_split

    graph = array.__dask_graph__()
    names = list(graph.layers) if hasattr(graph, "layers") else list({key_split(key) for key in graph})
    return sum(1 for name in names if str(name).startswith(("rechunk-p2p", "rechunk-transfer")))


def _shown(chunks: tuple[tuple[int, ...], ...]) -> str:
    """Chunks in short: ``(3×100 + 40, 1×340)``."""
    parts = []
    for sizes in chunks:
        runs: list[str] = []
        i = 0
        while i < len(sizes):
            j = i
            while j < len(sizes) and sizes[j] == sizes[i]:
                j += 1
            runs.append(f"{j - i}×{sizes[i]}")
            i = j
        parts.append(" + ".join(runs))
    return "(" + ", ".join(parts) + ")"
