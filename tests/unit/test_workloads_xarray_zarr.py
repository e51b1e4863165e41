"""workloads/xarray_zarr.py: each Xarray + Zarr workload passes at its tiny size and cleans up after itself, and its
own check fails — with a message that says what is wrong — when the store hands back something else than was
written (a changed value, a lost variable, shifted coordinates) or Dask a wrong reduction."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from workload_testing import in_process_client, tiny_params, workload_function

from framework.config import load_catalog
from framework.in_runtime.checks import WorkloadCheckFailed

pytestmark = pytest.mark.filterwarnings(
    # distributed's system monitor on these machines (gilknocker) warns from its own thread; not ours.
    "ignore:timed out waiting on channel:UserWarning",
)

# Pools that outlive every cluster by design: distributed's offload executor; zarr-python 3's I/O event loop
# ('zarr_io') and that loop's default executor ('asyncio_N'), started on the first store access.
PROCESS_WIDE_THREADS = ("Dask-Offload", "zarr_io", "asyncio_")
TINY_ELEMENTS = 730 * 30 * 60  # tiny: 16 MiB over 730 days → a 30 × 60 grid


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    """One in-process cluster for the module; afterwards no thread of it may be left running."""
    with in_process_client(PROCESS_WIDE_THREADS) as dask_client:
        yield dask_client


@pytest.fixture
def temp_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Where ``tempfile.mkdtemp`` puts the workloads' default stores: must be empty again after each call."""
    root = tmp_path / "temp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


@pytest.fixture
def scratch(tmp_path: Path) -> str:
    """A scratch directory as the ``zarr_scratch`` fixture gives one."""
    directory = tmp_path / "scratch"
    directory.mkdir()
    return str(directory)


def corrupt_reads(monkeypatch: pytest.MonkeyPatch, alter: Callable[[Any], Any]) -> list[int]:
    """Make ``xarray.open_zarr`` hand back an altered dataset, as a faulty store or codec would."""
    import xarray as xr

    open_zarr = xr.open_zarr
    calls: list[int] = []

    def open_corrupted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return alter(open_zarr(*args, **kwargs))

    monkeypatch.setattr(xr, "open_zarr", open_corrupted)
    return calls


def wrong_compute(monkeypatch: pytest.MonkeyPatch, which: int, perturb: Callable[[Any], Any]) -> list[int]:
    """Make ``dask.compute`` hand back one wrong result, as a buggy scheduler would; returns the calls seen."""
    import dask

    compute = dask.compute
    calls: list[int] = []

    def compute_wrongly(*args: Any, **kwargs: Any) -> tuple[Any, ...]:
        results = compute(*args, **kwargs)
        calls.append(len(results))
        return tuple(perturb(value) if i == which else value for i, value in enumerate(results))

    monkeypatch.setattr(dask, "compute", compute_wrongly)
    return calls


def _set_one_temperature(dataset: Any) -> Any:
    data = dataset["temperature"].data.copy()
    data[5, 3, 7] = -99.0
    return dataset.assign(temperature=dataset["temperature"].copy(data=data))


# ---------------------------------------------------------------------------------------------------------------
# The dataset and the stores


def test_noise_is_uniform_and_the_same_for_a_region_as_for_the_whole() -> None:
    from workloads.xarray_zarr import _uniform_noise

    t, y, x = np.ogrid[0:20, 0:30, 0:40]
    whole = _uniform_noise(t, y, x, 30, 40, salt=1)
    part = _uniform_noise(t[5:9], y[:, 10:12], x[:, :, 33:], 30, 40, salt=1)

    np.testing.assert_array_equal(part, whole[5:9, 10:12, 33:])
    assert whole.min() >= 0.0 and whole.max() < 1.0
    assert abs(whole.mean() - 0.5) < 0.01  # 24,000 values: 6 standard errors ≈ 0.011
    assert float(_uniform_noise(3, 4, 5, 30, 40, salt=1)) == whole[3, 4, 5]  # scalars: no overflow warning
    assert not np.array_equal(whole, _uniform_noise(t, y, x, 30, 40, salt=2))


def test_grid_shape_holds_the_target_bytes() -> None:
    from workloads.xarray_zarr import BYTES_PER_CELL_AND_DAY, grid_shape

    ny, nx = grid_shape(16 * 2**20, 730)

    assert (ny, nx) == (30, 60)
    assert 0.9 < ny * nx * 730 * BYTES_PER_CELL_AND_DAY / (16 * 2**20) <= 1.0


def test_climate_dataset_matches_its_closed_forms() -> None:
    from workloads.xarray_zarr import climate_dataset, precipitation, temperature

    dataset = climate_dataset(days=40, ny=4, nx=8, time_chunk=7).compute(scheduler="sync")

    t, y, x = np.ogrid[0:40, 0:4, 0:8]
    np.testing.assert_array_equal(dataset["temperature"].values, temperature(t, y, x, 4, 8))
    np.testing.assert_array_equal(dataset["precipitation"].values, precipitation(t, y, x, 4, 8))
    assert dataset["precipitation"].dtype == np.float32
    assert str(dataset.time.values[-1])[:10] == "2000-02-09"
    np.testing.assert_array_equal(dataset.lat.values, [-67.5, -22.5, 22.5, 67.5])


@pytest.mark.cluster
def test_climate_store_is_written_once_per_scratch_directory_and_rewritten_without_its_marker(
    client: Any, scratch: str
) -> None:
    import zarr

    from workloads.xarray_zarr import climate_store

    expected_format = 3 if int(zarr.__version__.split(".")[0]) >= 3 else 2
    with climate_store(scratch, 30, 4, 8, 10, None) as (store, zarr_format, written):
        assert (zarr_format, written) == (expected_format, True)
    with climate_store(scratch, 30, 4, 8, 10, None) as (again, _, written_again):
        assert (again, written_again) == (store, False)
    marker = Path(scratch) / "climate-30d-4x8-t10-s0.complete"
    assert marker.read_text(encoding="utf-8") == str(expected_format)

    marker.unlink()  # as if a timeout cut the write short
    with climate_store(scratch, 30, 4, 8, 10, None) as (_, _, rewritten):
        assert rewritten
    assert sorted(path.name for path in Path(scratch).iterdir()) == [marker.name, "climate-30d-4x8-t10-s0.zarr"]


def test_zarr_scratch_fixture_yields_a_directory_and_removes_it() -> None:
    from workloads.xarray_zarr import zarr_scratch

    fixture = zarr_scratch()
    provided = next(fixture)
    directory = Path(provided["scratch_dir"])
    (directory / "file").write_text("x", encoding="utf-8")
    with pytest.raises(StopIteration):
        next(fixture)
    assert not directory.exists()


# ---------------------------------------------------------------------------------------------------------------
# Each workload at its tiny size


@pytest.mark.cluster
def test_zarr_roundtrip_passes_at_tiny_size_and_removes_its_store(client: Any, temp_root: Path) -> None:
    import zarr

    extra = workload_function("zarr_roundtrip")(**tiny_params("zarr_roundtrip"))

    assert extra["zarr_format"] == (3.0 if int(zarr.__version__.split(".")[0]) >= 3 else 2.0)
    assert extra["elements"] == TINY_ELEMENTS
    assert 0.5 * TINY_ELEMENTS * 12 < extra["store_bytes"] < 1.5 * TINY_ELEMENTS * 12  # noise hardly compresses
    assert list(temp_root.iterdir()) == []


@pytest.mark.cluster
def test_zarr_roundtrip_keeps_the_store_at_a_given_path(client: Any, tmp_path: Path) -> None:
    target = tmp_path / "kept.zarr"

    extra = workload_function("zarr_roundtrip")(**tiny_params("zarr_roundtrip"), path=str(target))

    assert target.is_dir()
    assert (target / ("zarr.json" if extra["zarr_format"] == 3 else ".zgroup")).exists()


@pytest.mark.cluster
def test_groupby_month_writes_the_store_once_per_scratch_directory(client: Any, scratch: str) -> None:
    groupby_month = workload_function("xarray_groupby_month")
    params = tiny_params("xarray_groupby_month")

    first = groupby_month(**params, scratch_dir=scratch)
    second = groupby_month(**params, scratch_dir=scratch)

    assert (first["store_written"], second["store_written"]) == (1.0, 0.0)
    assert first["elements"] == TINY_ELEMENTS


@pytest.mark.cluster
@pytest.mark.parametrize(
    ("workload", "grid"),
    [
        ("xarray_groupby_month", {}),
        ("zarr_slice_access", {}),
        ("zarr_filter_then_average", {"threshold": 0.5}),
        ("zarr_filter_then_average", {"threshold": 3.0}),
    ],
)
def test_store_reading_workload_passes_at_tiny_size_without_a_scratch_directory(
    client: Any, temp_root: Path, workload: str, grid: dict[str, Any]
) -> None:
    extra = workload_function(workload)(**tiny_params(workload, **grid))

    assert extra["store_written"] == 1.0
    assert list(temp_root.iterdir()) == []
    if workload == "zarr_slice_access":
        # 10³ + December 2000 over 10 latitudes × 16 longitudes (90° to 180° every 6°), both variables + 1 value
        assert extra["elements_read"] == 1000 + 2 * 31 * 10 * 16 + 1
    if workload == "zarr_filter_then_average":
        assert abs(extra["selected"] / TINY_ELEMENTS - np.exp(-grid["threshold"])) < 0.01


def test_every_xarray_zarr_workload_is_covered_here() -> None:
    declared = {
        workload.name
        for workload in load_catalog().workloads.values()
        if workload.function.startswith("workloads.xarray_zarr:")
    }
    assert declared == {"zarr_roundtrip", "xarray_groupby_month", "zarr_slice_access", "zarr_filter_then_average"}


# ---------------------------------------------------------------------------------------------------------------
# Each check fails on a wrong answer


@pytest.mark.cluster
@pytest.mark.parametrize(
    ("alter", "message"),
    [
        (_set_one_temperature, rf"^temperature: 1 of {TINY_ELEMENTS} values changed in the round trip$"),
        (
            lambda dataset: dataset.drop_vars("precipitation"),
            r"^variables \['temperature'\], expected \['precipitation', 'temperature'\]$",
        ),
        (lambda dataset: dataset.assign_coords(lon=dataset.lon + 1e-9), r"^coordinate lon changed in the round trip$"),
        (lambda dataset: dataset.chunk({"time": 146}), r"^precipitation: chunks \(\(146, 146, 146, 146, 146\), "),
        (
            lambda dataset: dataset.assign(precipitation=dataset["precipitation"].astype("float64")),
            r"^precipitation: dtype float64, expected float32$",
        ),
    ],
)
def test_zarr_roundtrip_check_fails_when_the_store_reads_back_differently(
    client: Any, monkeypatch: pytest.MonkeyPatch, temp_root: Path, alter: Callable[[Any], Any], message: str
) -> None:
    calls = corrupt_reads(monkeypatch, alter)

    with pytest.raises(WorkloadCheckFailed, match=message):
        workload_function("zarr_roundtrip")(**tiny_params("zarr_roundtrip"))
    assert calls == [1]
    assert list(temp_root.iterdir()) == []  # a failed check still cleans up


@pytest.mark.cluster
def test_groupby_month_check_fails_when_a_cell_reads_back_wrong(
    client: Any, monkeypatch: pytest.MonkeyPatch, scratch: str
) -> None:
    params = {**tiny_params("xarray_groupby_month"), "scratch_dir": scratch}
    workload_function("xarray_groupby_month")(**params)  # writes the store
    corrupt_reads(monkeypatch, lambda ds: ds.assign(temperature=ds["temperature"] + 0.01 * (ds.lat == ds.lat[0])))

    # Sampled cells 0 and 1 are (lat 0, lon 0) and (lat 0, lon 59).
    with pytest.raises(WorkloadCheckFailed, match=r"^monthly means at sampled cells: 24 of 96 values differ; first at"):
        workload_function("xarray_groupby_month")(**params)


@pytest.mark.cluster
def test_groupby_month_check_fails_when_the_reduction_is_wrong_elsewhere(
    client: Any, monkeypatch: pytest.MonkeyPatch, scratch: str
) -> None:
    params = {**tiny_params("xarray_groupby_month"), "scratch_dir": scratch}
    workload_function("xarray_groupby_month")(**params)  # writes the store
    calls = wrong_compute(monkeypatch, 1, lambda error: error + 1e-3)

    with pytest.raises(WorkloadCheckFailed, match=r"^Σ days × monthly mean − sum over time: 1 of 1 values differ"):
        workload_function("xarray_groupby_month")(**params)
    assert calls == [3]


@pytest.mark.cluster
def test_slice_access_check_fails_when_values_read_back_wrong(
    client: Any, monkeypatch: pytest.MonkeyPatch, temp_root: Path
) -> None:
    corrupt_reads(monkeypatch, lambda ds: ds.assign(temperature=ds["temperature"] + 1e-6))

    with pytest.raises(
        WorkloadCheckFailed,
        match=r"^isel of the first 10 along each dimension: 1000 of 1000 values differ; first at \(0, 0, 0\)",
    ):
        workload_function("zarr_slice_access")(**tiny_params("zarr_slice_access"))


@pytest.mark.cluster
def test_slice_access_check_fails_when_coordinates_read_back_shifted(
    client: Any, monkeypatch: pytest.MonkeyPatch, temp_root: Path
) -> None:
    corrupt_reads(monkeypatch, lambda ds: ds.assign_coords(lat=ds.lat + 3.0))

    with pytest.raises(
        WorkloadCheckFailed,
        match=r"^sel of \('2000-12-01', '2000-12-31'\) × \{'lat': \(-30\.0, 30\.0\), 'lon': \(90\.0, 180\.0\)\}:"
        r" coordinates of sizes \{'time': 31, 'lat': 11, 'lon': 16\}, expected 31×10×16$",
    ):
        workload_function("zarr_slice_access")(**tiny_params("zarr_slice_access"))


@pytest.mark.cluster
def test_slice_access_check_fails_on_a_wrong_single_value(
    client: Any, monkeypatch: pytest.MonkeyPatch, scratch: str
) -> None:
    params = {**tiny_params("zarr_slice_access"), "scratch_dir": scratch}
    workload_function("zarr_slice_access")(**params)  # writes the store
    calls = wrong_compute(monkeypatch, 2, lambda single: single + 0.5)

    with pytest.raises(
        WorkloadCheckFailed,
        match=r"^temperature at \{'time': '2001-12-30', 'lat': 45\.0, 'lon': 200\.0\}: 1 of 1 values differ",
    ):
        workload_function("zarr_slice_access")(**params)
    assert calls == [3]


@pytest.mark.cluster
def test_filter_then_average_check_fails_when_the_two_ways_disagree(
    client: Any, monkeypatch: pytest.MonkeyPatch, scratch: str
) -> None:
    params = {**tiny_params("zarr_filter_then_average", threshold=0.5), "scratch_dir": scratch}
    workload_function("zarr_filter_then_average")(**params)  # writes the store
    calls = wrong_compute(monkeypatch, 0, lambda mean: mean * 1.001)

    with pytest.raises(WorkloadCheckFailed, match=r"^mean above 0\.5 by mask vs by where: 1 of 1 values differ"):
        workload_function("zarr_filter_then_average")(**params)
    assert calls == [3]


@pytest.mark.cluster
@pytest.mark.parametrize(
    ("threshold", "alter", "message"),
    [
        # Every value 2 % larger: more of them pass the threshold.
        (0.5, lambda p: p * 1.02, r"^\d+ values above 0\.5, expected 796\d\d\d ± \d+$"),
        # Values above 3 raised by 0.05: as many pass, their mean is off by 0.05 (six standard errors ≈ 0.023).
        (3.0, lambda p: p.where(p <= 3.0, p + 0.05), r"^mean above 3\.0 is 4\.0\d+, expected 4\.0 ± 0\.02\d+$"),
    ],
)
def test_filter_then_average_check_fails_when_the_values_are_off(
    client: Any,
    monkeypatch: pytest.MonkeyPatch,
    temp_root: Path,
    threshold: float,
    alter: Callable[[Any], Any],
    message: str,
) -> None:
    corrupt_reads(monkeypatch, lambda ds: ds.assign(precipitation=alter(ds["precipitation"])))

    with pytest.raises(WorkloadCheckFailed, match=message):
        workload_function("zarr_filter_then_average")(**tiny_params("zarr_filter_then_average", threshold=threshold))
