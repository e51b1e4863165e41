"""Xarray + Zarr workloads on a generated daily climate dataset whose every value is a closed form of its indices.

The dataset has ``temperature`` (float64: a seasonal cycle, a latitude profile and noise) and ``precipitation``
(float32, exponentially distributed with mean 1) on (time, lat, lon), sized by ``target_bytes``. The noise is a
hash of the element's index, so numpy on the client can recompute any region without reading the store.

Zarr format: zarr-python 3 writes format 3 (``zarr_format=3``), zarr-python 2 its only format, 2; workloads
return the format used as the extra metric ``zarr_format``. Stores live under a local temporary directory: on a
cluster whose workers do not share this machine's disk, pass a ``path`` / ``scratch_dir`` they all see.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

from framework.in_runtime.checks import check, check_close
from workloads.arrays import from_index_function

BYTES_PER_CELL_AND_DAY = 8 + 4  # temperature (float64) + precipitation (float32)
START = "2000-01-01"


# ----------------------------------------------------------------------------------------------------------------
# The dataset: closed forms of (time, lat, lon) indices


def grid_shape(target_bytes: int, days: int) -> tuple[int, int]:
    """(lat, lon) sizes, lon = 2·lat, so that ``days`` of both variables take about ``target_bytes``."""
    cells = max(2, int(target_bytes) // (BYTES_PER_CELL_AND_DAY * days))
    ny = max(1, math.isqrt(cells // 2))
    return ny, 2 * ny


def _uniform_noise(t: Any, y: Any, x: Any, ny: int, nx: int, salt: int) -> Any:
    """A uniform number in [0, 1) per element: splitmix64 of the element's linear index (exact, any region)."""
    import numpy as np

    with np.errstate(over="ignore"):  # uint64 arithmetic wraps around on purpose (numpy warns for scalars only)
        return _splitmix64(np, t, y, x, ny, nx, salt)


def _splitmix64(np: Any, t: Any, y: Any, x: Any, ny: int, nx: int, salt: int) -> Any:
    index = (np.asarray(t, dtype="uint64") * np.uint64(ny) + np.asarray(y, dtype="uint64")) * np.uint64(nx)
    z = (index + np.asarray(x, dtype="uint64")) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(salt)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype("float64") * 2.0**-53


def latitudes(ny: int) -> Any:
    import numpy as np

    return -90.0 + (np.arange(ny) + 0.5) * (180.0 / ny)


def longitudes(nx: int) -> Any:
    import numpy as np

    return np.arange(nx) * (360.0 / nx)


def temperature(t: Any, y: Any, x: Any, ny: int, nx: int) -> Any:
    """°C: warmer at the equator, a seasonal cycle of opposite sign in each hemisphere, ±2.5 of noise."""
    import numpy as np

    latitude = np.deg2rad(-90.0 + (np.asarray(y) + 0.5) * (180.0 / ny))
    season = -10.0 * np.cos(2 * np.pi * (np.asarray(t) + 10) / 365.25) * np.sin(latitude)
    return 25.0 * np.cos(latitude) - 5.0 + season + 5.0 * (_uniform_noise(t, y, x, ny, nx, salt=1) - 0.5)


def precipitation(t: Any, y: Any, x: Any, ny: int, nx: int) -> Any:
    """mm/day, exponentially distributed with mean 1 (so the mean above c is c + 1), as float32."""
    import numpy as np

    return (-np.log1p(-_uniform_noise(t, y, x, ny, nx, salt=2))).astype("float32")


def climate_dataset(days: int, ny: int, nx: int, time_chunk: int, space_chunk: Optional[int] = None) -> Any:
    """The lazy xarray Dataset: daily from 2000-01-01, cell-centred latitudes, longitudes from 0."""
    import pandas as pd
    import xarray as xr

    shape = (days, ny, nx)
    chunks = (time_chunk, space_chunk or ny, space_chunk or nx)
    # Lambdas, not module-level functions: see workloads/arrays.py on how a graph reaches a remote cluster.
    variables = {
        "temperature": from_index_function(lambda t, y, x: temperature(t, y, x, ny, nx), shape, chunks, "float64"),
        "precipitation": from_index_function(lambda t, y, x: precipitation(t, y, x, ny, nx), shape, chunks, "float32"),
    }
    return xr.Dataset(
        {name: (("time", "lat", "lon"), data) for name, data in variables.items()},
        coords={
            "time": pd.date_range(START, periods=days, freq="D"),
            "lat": latitudes(ny),
            "lon": longitudes(nx),
        },
        attrs={"title": "dask-blessing generated climate", "days": days},
    )


# ----------------------------------------------------------------------------------------------------------------
# Zarr stores


def zarr_format_to_write() -> Optional[int]:
    """3 where zarr-python can write it (3.x), else None: the library's default (2 on zarr-python 2)."""
    import zarr

    return 3 if int(zarr.__version__.split(".")[0]) >= 3 else None


def write_zarr(dataset: Any, store: str) -> int:
    """Write ``dataset`` as a new store at ``store``; returns the Zarr format written."""
    zarr_format = zarr_format_to_write()
    keywords: dict[str, Any] = {"zarr_format": zarr_format} if zarr_format else {}
    # Consolidated metadata is not part of the Zarr 3 spec (zarr-python warns); with format 2 it is the norm.
    dataset.to_zarr(store, mode="w", consolidated=zarr_format is None, **keywords)
    return store_zarr_format(store) if Path(store).is_dir() else (zarr_format or 2)


def store_zarr_format(store: str) -> int:
    """The format of a local store, from its root metadata file (``zarr.json``: 3, ``.zgroup``: 2)."""
    if (Path(store) / "zarr.json").exists():
        return 3
    check((Path(store) / ".zgroup").exists(), f"{store} holds no Zarr group metadata")
    return 2


def open_store(store: str, zarr_format: int) -> Any:
    import xarray as xr

    return xr.open_zarr(store, consolidated=zarr_format == 2)


def _directory_bytes(path: str) -> int:
    return sum(file.stat().st_size for file in Path(path).rglob("*") if file.is_file())


def zarr_scratch() -> Iterator[dict[str, str]]:
    """Fixture: a scratch directory for the case's stores, kept across its repeats and removed afterwards."""
    directory = tempfile.mkdtemp(prefix="blessing-zarr-")
    try:
        yield {"scratch_dir": directory}
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def climate_store(
    scratch_dir: Optional[str], days: int, ny: int, nx: int, time_chunk: int, space_chunk: Optional[int]
) -> Iterator[tuple[str, int, bool]]:
    """(store, zarr format, written now): the dataset in a Zarr store, written unless ``scratch_dir`` has it.

    Without ``scratch_dir`` the store goes to a temporary directory removed on exit. With it (the ``zarr_scratch``
    fixture), the first execution of a case writes the store — normally the warm-up — and later ones only read.
    """
    key = f"climate-{days}d-{ny}x{nx}-t{time_chunk}-s{space_chunk or 0}"
    directory = Path(scratch_dir or tempfile.mkdtemp(prefix="blessing-zarr-"))
    store = directory / f"{key}.zarr"
    marker = directory / f"{key}.complete"  # written last: a store cut short (e.g. by a timeout) is rewritten
    try:
        written = not marker.exists()
        if written:
            shutil.rmtree(store, ignore_errors=True)
            zarr_format = write_zarr(climate_dataset(days, ny, nx, time_chunk, space_chunk), str(store))
            marker.write_text(str(zarr_format), encoding="utf-8")
        else:
            zarr_format = int(marker.read_text(encoding="utf-8"))
        yield str(store), zarr_format, written
    finally:
        if scratch_dir is None:
            shutil.rmtree(directory, ignore_errors=True)


# ----------------------------------------------------------------------------------------------------------------
# Workloads


def zarr_roundtrip(
    target_bytes: int,
    days: int,
    time_chunk: int,
    space_chunk: Optional[int] = None,
    path: Optional[str] = None,
) -> dict[str, float]:
    """Write the dataset to a new Zarr store, open it with xarray and compare everything with what was written.

    Checked: variables, dtypes, chunks and coordinates, then every value (counted block by block against the
    generator). ``path`` is the store (kept); by default a temporary directory, removed afterwards.
    """
    import dask
    import numpy as np

    ny, nx = grid_shape(target_bytes, days)
    dataset = climate_dataset(days, ny, nx, time_chunk, space_chunk)
    directory = None if path else tempfile.mkdtemp(prefix="blessing-zarr-")
    store = path or str(Path(str(directory)) / "climate.zarr")
    try:
        zarr_format = write_zarr(dataset, store)
        back = open_store(store, zarr_format)
        names = sorted(dataset.data_vars)
        check(sorted(back.data_vars) == names, f"variables {sorted(back.data_vars)}, expected {names}")
        for name in names:
            got, expected = back[name], dataset[name]
            check(got.dtype == expected.dtype, f"{name}: dtype {got.dtype}, expected {expected.dtype}")
            check(got.dims == expected.dims, f"{name}: dims {got.dims}, expected {expected.dims}")
            check(got.chunks == expected.chunks, f"{name}: chunks {got.chunks}, expected {expected.chunks}")
        for coordinate in ("time", "lat", "lon"):
            got_values, expected_values = back[coordinate].values, dataset[coordinate].values
            check(np.array_equal(got_values, expected_values), f"coordinate {coordinate} changed in the round trip")
        wrong = dask.compute(*[(back[name].data != dataset[name].data).sum() for name in names])
        for name, count in zip(names, wrong):
            check(int(count) == 0, f"{name}: {int(count)} of {dataset[name].size} values changed in the round trip")
        store_bytes = float(_directory_bytes(store)) if Path(store).is_dir() else math.nan
        extra = {"zarr_format": float(zarr_format), "elements": float(days * ny * nx)}
        return extra if math.isnan(store_bytes) else {**extra, "store_bytes": store_bytes}
    finally:
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)


def _sample_points(ny: int, nx: int, count: int) -> tuple[Any, Any]:
    """Grid cells spread over the globe, the four corners included."""
    import numpy as np

    rng = np.random.default_rng(0)
    ys = np.concatenate([[0, 0, ny - 1, ny - 1], rng.integers(0, ny, max(0, count - 4))])
    xs = np.concatenate([[0, nx - 1, 0, nx - 1], rng.integers(0, nx, max(0, count - 4))])
    return ys[:count], xs[:count]


def groupby_month(
    target_bytes: int,
    days: int,
    time_chunk: int,
    space_chunk: Optional[int] = None,
    points: int = 8,
    scratch_dir: Optional[str] = None,
) -> dict[str, float]:
    """Monthly means of temperature read from Zarr (``groupby("time.month").mean()``).

    Checked at sampled grid cells against pandas' groupby of the same values (recomputed in numpy), and over the
    whole grid by an identity: Σ over months of (days in month × monthly mean) equals the sum over time.
    """
    import dask
    import numpy as np
    import pandas as pd
    import xarray as xr

    ny, nx = grid_shape(target_bytes, days)
    with climate_store(scratch_dir, days, ny, nx, time_chunk, space_chunk) as (store, zarr_format, written):
        temperatures = open_store(store, zarr_format)["temperature"]
        monthly = temperatures.groupby("time.month").mean()
        times = pd.date_range(START, periods=days, freq="D")
        days_in_month = times.month.value_counts().sort_index()
        weights = xr.DataArray(
            days_in_month.to_numpy().astype("float64"), dims="month", coords={"month": monthly.month}
        )
        total = temperatures.sum("time")
        ys, xs = _sample_points(ny, nx, points)
        sample = monthly.isel(lat=xr.DataArray(ys, dims="point"), lon=xr.DataArray(xs, dims="point"))
        got_sample, identity_error, scale = dask.compute(
            sample, abs((monthly * weights).sum("month") - total).max(), abs(total).max()
        )

    check(
        list(got_sample.month.values) == list(days_in_month.index),
        f"months {list(got_sample.month.values)}, expected {list(days_in_month.index)}",
    )
    values = temperature(np.arange(days)[:, None], ys[None, :], xs[None, :], ny, nx)
    expected = pd.DataFrame(values, index=times).groupby(times.month).mean()
    check_close(got_sample.transpose("month", "point").values, expected.to_numpy(), "monthly means at sampled cells")
    check_close(identity_error, 0.0, "Σ days × monthly mean − sum over time", atol=1e-9 * (float(scale) + 1.0))
    return {"zarr_format": float(zarr_format), "store_written": float(written), "elements": float(days * ny * nx)}


def slice_access(
    target_bytes: int,
    days: int,
    time_chunk: int,
    span: int,
    space_chunk: Optional[int] = None,
    scratch_dir: Optional[str] = None,
) -> dict[str, float]:
    """Read small regions of the Zarr store: ``isel`` of the first ``span`` along each dimension, ``sel`` of a
    month over a latitude/longitude box (both variables), and ``sel`` of one value by nearest coordinates.

    Each region's values and coordinates are compared with the generator's closed forms evaluated in numpy.
    """
    import dask
    import numpy as np
    import pandas as pd

    ny, nx = grid_shape(target_bytes, days)
    times, lats, lons = pd.date_range(START, periods=days, freq="D"), latitudes(ny), longitudes(nx)
    month_start = times[len(times) // 2].replace(day=1)
    month = (str(month_start.date()), str((month_start + pd.offsets.MonthEnd(0)).date()))
    box = {"lat": (-30.0, 30.0), "lon": (90.0, 180.0)}
    point = {"time": str(times[-1].date()), "lat": 45.0, "lon": 200.0}
    with climate_store(scratch_dir, days, ny, nx, time_chunk, space_chunk) as (store, zarr_format, written):
        dataset = open_store(store, zarr_format)
        first = dataset["temperature"].isel(time=slice(0, span), lat=slice(0, span), lon=slice(0, span))
        region = dataset.sel(time=slice(*month), lat=slice(*box["lat"]), lon=slice(*box["lon"]))
        single = dataset["temperature"].sel(point, method="nearest")
        first, region, single = dask.compute(first, region, single)

    t, y, x = np.arange(min(span, days)), np.arange(min(span, ny)), np.arange(min(span, nx))
    expected_first = temperature(t[:, None, None], y[None, :, None], x[None, None, :], ny, nx)
    check_close(first.values, expected_first, f"isel of the first {span} along each dimension", rtol=1e-12)

    t = np.flatnonzero((times >= pd.Timestamp(month[0])) & (times <= pd.Timestamp(month[1])))
    y = np.flatnonzero((lats >= box["lat"][0]) & (lats <= box["lat"][1]))
    x = np.flatnonzero((lons >= box["lon"][0]) & (lons <= box["lon"][1]))
    check(
        np.array_equal(region.time.values, times[t].values)
        and np.array_equal(region.lat.values, lats[y])
        and np.array_equal(region.lon.values, lons[x]),
        f"sel of {month} × {box}: coordinates of sizes {dict(region.sizes)}, expected {len(t)}×{len(y)}×{len(x)}",
    )
    grid = (t[:, None, None], y[None, :, None], x[None, None, :], ny, nx)
    check_close(region["temperature"].values, temperature(*grid), "temperature in the sel region", rtol=1e-12)
    check_close(region["precipitation"].values, precipitation(*grid), "precipitation in the sel region", rtol=0)

    t, y, x = len(times) - 1, int(np.abs(lats - point["lat"]).argmin()), int(np.abs(lons - point["lon"]).argmin())
    check_close(single.values, temperature(t, y, x, ny, nx), f"temperature at {point}", rtol=1e-12)
    elements = first.size + region["temperature"].size + region["precipitation"].size + 1
    return {"zarr_format": float(zarr_format), "store_written": float(written), "elements_read": float(elements)}


def filter_then_average(
    target_bytes: int,
    days: int,
    time_chunk: int,
    threshold: float,
    space_chunk: Optional[int] = None,
    scratch_dir: Optional[str] = None,
) -> dict[str, float]:
    """Mean of the precipitation above ``threshold`` read from Zarr, by boolean-mask indexing (unknown chunks).

    Checked: it equals the masked sum over the masked count (``where``: known chunks), and it lies within six
    standard errors of threshold + 1, the mean above c of an exponential distribution of mean 1; the count within
    six standard deviations of N·e^(−c).
    """
    import dask
    import dask.array as da

    ny, nx = grid_shape(target_bytes, days)
    with climate_store(scratch_dir, days, ny, nx, time_chunk, space_chunk) as (store, zarr_format, written):
        values = open_store(store, zarr_format)["precipitation"].data
        above = values > threshold
        mean, masked_sum, count = dask.compute(
            values[above].mean(), da.where(above, values, 0).sum(dtype="float64"), above.sum()
        )

    count, size = int(count), days * ny * nx
    check(count > 0, f"no value above {threshold} in {size}")
    check_close(mean, masked_sum / count, f"mean above {threshold} by mask vs by where", rtol=1e-5)
    expected_fraction = math.exp(-threshold)
    count_bound = 6 * math.sqrt(size * expected_fraction * (1 - expected_fraction))
    check(
        abs(count - size * expected_fraction) <= count_bound,
        f"{count} values above {threshold}, expected {size * expected_fraction:.0f} ± {count_bound:.0f}",
    )
    mean_bound = 6 / math.sqrt(count)  # the values above c are c + Exp(1): standard deviation 1
    check(
        abs(float(mean) - (threshold + 1)) <= mean_bound,
        f"mean above {threshold} is {float(mean):.6f}, expected {threshold + 1} ± {mean_bound:.6f}",
    )
    return {"zarr_format": float(zarr_format), "store_written": float(written), "selected": float(count)}
