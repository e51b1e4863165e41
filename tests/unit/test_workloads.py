"""The workload catalogue's functions and ``framework.in_runtime.checks``: each workload passes at its tiny size, and
its own check fails — with a message that says what is wrong — when Dask hands it a wrong answer."""

from __future__ import annotations

import importlib
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from workload_testing import in_process_client, tiny_params, workload_function

from framework.in_runtime.checks import WorkloadCheckFailed, check, check_close

# dask's pyarrow engine calls set_index/reset_index(inplace=True), deprecated in pandas 3.1: dask's to fix, not ours.
PANDAS_INPLACE = r"ignore:The inplace keyword in DataFrame\.\w+ is deprecated"
TINY_ROWS = 3 * 86_400 // 10  # 3 days at 10 s: the tiny size of both DataFrame workloads


# ---------------------------------------------------------------------------------------------------------------
# framework.in_runtime.checks


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    """One in-process cluster for the module (1 worker × 2 threads); afterwards no thread of it may be left running."""
    with in_process_client(n_workers=1, threads_per_worker=2, memory_limit="auto") as dask_client:
        yield dask_client


def test_check_passes_silently_when_the_condition_holds() -> None:
    check(True, "never shown")


def test_check_raises_workload_check_failed_with_the_message() -> None:
    with pytest.raises(WorkloadCheckFailed, match=r"^3 rows, expected 4$") as raised:
        check(False, "3 rows, expected 4")
    # The runner's classification relies on this: a failed check is an AssertionError, so `failed`, not `error`.
    assert isinstance(raised.value, AssertionError)


def test_check_still_fails_under_python_optimise() -> None:
    code = (
        "from framework.in_runtime.checks import check\ntry:\n check(False, 'x')\nexcept AssertionError:\n"
        " print('raised')"
    )
    result = subprocess.run([sys.executable, "-O", "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "raised"


@pytest.mark.parametrize(
    ("actual", "expected", "tolerances"),
    [
        (1.0, 1.0, {"rtol": 0}),
        (1.0 + 1e-10, 1.0, {}),  # default rtol 1e-9
        (100.0, 101.0, {"rtol": 0.01}),
        (0.0, 1e-7, {"atol": 1e-6}),
        (np.array([1.0, np.nan, 3.0]), np.array([1.0, np.nan, 3.0]), {"rtol": 0}),  # NaN where NaN is expected
        (pd.Series([1, 2, 3]), np.array([1.0, 2.0, 3.0]), {"rtol": 0}),
        (np.int64(7), 7, {"rtol": 0}),
    ],
)
def test_check_close_accepts_values_within_tolerance(actual: Any, expected: Any, tolerances: dict[str, float]) -> None:
    check_close(actual, expected, "value", **tolerances)


def test_check_close_scalar_message_shows_got_and_expected() -> None:
    with pytest.raises(WorkloadCheckFailed) as raised:
        check_close(1.5, 1.0, "total", rtol=1e-12)
    assert str(raised.value) == "total: 1 of 1 values differ; first at (): got 1.5, expected 1.0"


def test_check_close_array_message_counts_differences_and_shows_the_first() -> None:
    expected = np.arange(10.0)
    actual = expected.copy()
    actual[[3, 8]] += 1.0
    with pytest.raises(WorkloadCheckFailed) as raised:
        check_close(actual, expected, "column means", rtol=1e-12)
    assert str(raised.value) == "column means: 2 of 10 values differ; first at (3,): got 4.0, expected 3.0"


def test_check_close_two_dimensional_index_is_a_tuple_of_ints() -> None:
    expected = np.zeros((2, 3))
    actual = expected.copy()
    actual[1, 2] = 5.0
    with pytest.raises(WorkloadCheckFailed, match=r"^grid: 1 of 6 values differ; first at \(1, 2\): got 5\.0"):
        check_close(actual, expected, "grid")


def test_check_close_rejects_different_shapes() -> None:
    with pytest.raises(WorkloadCheckFailed, match=r"^groups: shape \(3,\), expected \(4,\)$"):
        check_close(np.ones(3), np.ones(4), "groups")


def test_check_close_rejects_nan_where_a_number_is_expected() -> None:
    with pytest.raises(WorkloadCheckFailed, match=r"^mean: 1 of 2 values differ; first at \(1,\): got nan"):
        check_close([1.0, float("nan")], [1.0, 2.0], "mean")


@pytest.mark.parametrize(
    ("actual", "expected", "tolerances"),
    [
        (1.0 + 1e-8, 1.0, {}),  # beyond the default rtol 1e-9
        (102.0, 100.0, {"rtol": 0.01}),
        (0.0, 1e-5, {"atol": 1e-6}),
        (3, 4, {"rtol": 0}),  # exact comparison of counts
    ],
)
def test_check_close_rejects_values_beyond_tolerance(actual: Any, expected: Any, tolerances: dict[str, float]) -> None:
    with pytest.raises(WorkloadCheckFailed, match=r"^value: 1 of 1 values differ"):
        check_close(actual, expected, "value", **tolerances)


# ---------------------------------------------------------------------------------------------------------------
# The workloads on an in-process cluster


def wrong_compute(monkeypatch: pytest.MonkeyPatch, perturb: Callable[[Any], Any], which: int = 0) -> list[int]:
    """Make ``dask.compute`` hand back one wrong result (the first by default), as a buggy scheduler would.

    Returns the list of calls seen, so a test can tell the wrong answer really reached the workload.
    """
    import dask

    compute = dask.compute
    calls: list[int] = []

    def compute_wrongly(*args: Any, **kwargs: Any) -> tuple[Any, ...]:
        results = compute(*args, **kwargs)
        calls.append(len(results))
        return tuple(perturb(value) if i == which else value for i, value in enumerate(results))

    monkeypatch.setattr(dask, "compute", compute_wrongly)
    return calls


# -- dataframe: groupby_agg


@pytest.mark.cluster
@pytest.mark.parametrize("by", ["name", "id"])
def test_groupby_agg_passes_at_tiny_size(client: Any, by: str) -> None:
    params = tiny_params("groupby_agg", by=by)
    assert workload_function("groupby_agg") is importlib.import_module("workloads.dataframes").groupby_agg

    extra = workload_function("groupby_agg")(**params)

    assert extra["rows"] == TINY_ROWS
    # dask.datasets.timeseries draws `name` from 26 first names and `id` around 1000 (Poisson).
    assert extra["groups"] == 26 if by == "name" else 26 < extra["groups"] < TINY_ROWS


def _drop_first_group(got: pd.DataFrame) -> pd.DataFrame:
    return got.iloc[1:]


def _count_one_more(got: pd.DataFrame) -> pd.DataFrame:
    got = got.copy()
    got.iloc[0, got.columns.get_loc("id")] += 1
    return got


def _shift_one_sum(got: pd.DataFrame) -> pd.DataFrame:
    got = got.copy()
    got.iloc[2, got.columns.get_loc("x")] += 1e-3
    return got


def _shift_one_mean(got: pd.DataFrame) -> pd.DataFrame:
    got = got.copy()
    got.iloc[-1, got.columns.get_loc("y")] += 1e-6
    return got


@pytest.mark.cluster
@pytest.mark.parametrize(
    ("perturb", "message"),
    [
        (_drop_first_group, r"^groups differ: 25 vs 26 groups$"),
        (_count_one_more, rf"^counts sum to {TINY_ROWS + 1}, expected {TINY_ROWS} rows$"),
        (_shift_one_sum, r"^sum of x per group: 1 of 26 values differ; first at \(\d+,\)"),
        (_shift_one_mean, r"^mean of y per group: 1 of 26 values differ; first at \(\d+,\)"),
    ],
)
def test_groupby_agg_check_fails_on_a_wrong_answer(
    client: Any, monkeypatch: pytest.MonkeyPatch, perturb: Callable[[Any], Any], message: str
) -> None:
    calls = wrong_compute(monkeypatch, perturb)

    with pytest.raises(WorkloadCheckFailed, match=message):
        workload_function("groupby_agg")(**tiny_params("groupby_agg", by="name"))
    assert calls == [3]  # one compute of (result, partials, rows)


# -- array: mean_var_reduction


@pytest.mark.cluster
def test_mean_var_reduction_passes_at_tiny_size(client: Any) -> None:
    params = tiny_params("array_mean_var")

    extra = workload_function("array_mean_var")(**params)

    assert extra == {"elements": float(params["rows"] * params["cols"])}


@pytest.mark.cluster
def test_mean_var_reduction_passes_with_a_tree_reduction(client: Any) -> None:
    extra = workload_function("array_mean_var")(rows=200, cols=7, chunk_rows=10, chunk_cols=3, split_every=2)
    assert extra == {"elements": 1400.0}


def _nudge(index: Any, amount: float) -> Callable[[Any], Any]:
    def perturb(value: Any) -> Any:
        value = np.array(value, dtype="float64")  # a copy: never alter what dask returned
        value[index] += amount
        return value

    return perturb


@pytest.mark.cluster
@pytest.mark.parametrize(
    ("which", "perturb", "message"),
    [
        (0, _nudge(7, 1e-6), r"^column means: 1 of 500 values differ; first at \(7,\)"),
        (1, _nudge(-1, 1.0), r"^column variances: 1 of 500 values differ; first at \(499,\)"),
        (2, _nudge((), 1.0), r"^total: 1 of 1 values differ; first at \(\): got 102490000001\.0"),
    ],
)
def test_mean_var_reduction_check_fails_on_a_wrong_answer(
    client: Any, monkeypatch: pytest.MonkeyPatch, which: int, perturb: Callable[[Any], Any], message: str
) -> None:
    calls = wrong_compute(monkeypatch, perturb, which)

    with pytest.raises(WorkloadCheckFailed, match=message):
        workload_function("array_mean_var")(**tiny_params("array_mean_var"))
    assert calls == [3]  # one compute of (mean, var, total)


# -- parquet: parquet_roundtrip

FIRST_ROW = pd.Timestamp("2000-01-01 00:00:00")
SECOND_ROW = pd.Timestamp("2000-01-01 00:00:10")


def _drop_row(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame.index != SECOND_ROW]


def _alter_value(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame.loc[frame.index == SECOND_ROW, "x"] += 0.25
    return frame


def _move_an_id(frame: pd.DataFrame) -> pd.DataFrame:
    """One id up, another down: row count and column sums unchanged — only the row hash can tell."""
    frame = frame.copy()
    frame.loc[frame.index == FIRST_ROW, "id"] += 1
    frame.loc[frame.index == SECOND_ROW, "id"] -= 1
    return frame


@pytest.mark.cluster
@pytest.mark.filterwarnings(PANDAS_INPLACE)
def test_parquet_roundtrip_passes_at_tiny_size_and_removes_its_temporary_directory(
    client: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where mkdtemp puts the default target

    extra = workload_function("parquet_roundtrip")(**tiny_params("parquet_roundtrip"))

    assert extra == {"rows": float(TINY_ROWS), "files": 3.0}  # partition_freq 1D over 3 days
    assert list(tmp_path.iterdir()) == []


@pytest.mark.cluster
@pytest.mark.filterwarnings(PANDAS_INPLACE)
def test_parquet_roundtrip_keeps_files_at_a_given_path(client: Any, tmp_path: Any) -> None:
    target = tmp_path / "shared"

    extra = workload_function("parquet_roundtrip")(**tiny_params("parquet_roundtrip"), path=str(target))

    assert len(list(target.glob("*.parquet"))) == extra["files"] == 3


@pytest.mark.cluster
@pytest.mark.filterwarnings(PANDAS_INPLACE)
@pytest.mark.parametrize(
    ("alter", "message"),
    [
        (_drop_row, rf"^read {TINY_ROWS - 1} rows, wrote {TINY_ROWS}$"),
        (_alter_value, r"^column sums after the round trip: 1 of 3 values differ; first at \(1,\)"),
        (_move_an_id, r"^row hashes differ: some rows changed in the round trip$"),
    ],
)
def test_parquet_roundtrip_check_fails_when_a_row_changes(
    client: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
    alter: Callable[[pd.DataFrame], pd.DataFrame],
    message: str,
) -> None:
    import dask.dataframe as dd

    read_parquet = dd.read_parquet
    calls: list[int] = []

    def lossy_read_parquet(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        back = read_parquet(*args, **kwargs)
        return back.map_partitions(alter, meta=back._meta)

    monkeypatch.setattr(dd, "read_parquet", lossy_read_parquet)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    with pytest.raises(WorkloadCheckFailed, match=message):
        workload_function("parquet_roundtrip")(**tiny_params("parquet_roundtrip"))
    assert calls == [1]
    assert list(tmp_path.iterdir()) == []  # a failed check still cleans up


@pytest.mark.cluster
@pytest.mark.filterwarnings(PANDAS_INPLACE)
def test_parquet_roundtrip_check_fails_when_a_column_is_lost(
    client: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    import dask.dataframe as dd

    read_parquet = dd.read_parquet
    monkeypatch.setattr(dd, "read_parquet", lambda *a, **k: read_parquet(*a, **k).drop(columns=["y"]))

    with pytest.raises(WorkloadCheckFailed, match=r"^columns \['name', 'id', 'x'\] != \['name', 'id', 'x', 'y'\]$"):
        workload_function("parquet_roundtrip")(**tiny_params("parquet_roundtrip"), path=str(tmp_path / "out"))
