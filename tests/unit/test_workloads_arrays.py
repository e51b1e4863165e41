"""workloads/arrays.py: each array workload passes at its tiny size, and its own check fails — with a message that
says what is wrong — when Dask hands it a wrong answer (a wrong value, a wrong boundary, a wrong chunking)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from workload_testing import in_process_client, tiny_params, workload_function

from framework.config import load_catalog
from framework.in_runtime.checks import WorkloadCheckFailed
from framework.matrix import expand_workload

pytestmark = pytest.mark.filterwarnings(
    # distributed's system monitor on these machines (gilknocker) warns from its own thread; not ours.
    "ignore:timed out waiting on channel:UserWarning",
)

MiB = 2**20


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    """One in-process cluster for the module; afterwards no thread of it may be left running."""
    with in_process_client() as dask_client:
        yield dask_client


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


def nudge(index: Any, amount: float) -> Callable[[Any], Any]:
    def perturb(value: Any) -> Any:
        value = np.array(value, dtype="float64")  # a copy: never alter what dask returned
        value[index] += amount
        return value

    return perturb


# ---------------------------------------------------------------------------------------------------------------
# Helpers


def test_from_index_function_matches_numpy_on_uneven_chunks() -> None:
    from workloads.arrays import from_index_function

    array = from_index_function(lambda i, j: i * 100 + j, (7, 5), ((3, 4), (2, 2, 1)), "int64")

    assert array.dtype == np.dtype("int64")
    np.testing.assert_array_equal(array.compute(scheduler="sync"), np.fromfunction(lambda i, j: i * 100 + j, (7, 5)))


def test_square_side_holds_the_target_bytes() -> None:
    from workloads.arrays import square_side

    assert square_side(8 * MiB) == 1024
    assert square_side(8 * 1025**2 - 1) == 1024
    assert square_side(0) == 2


def test_box_filter_of_a_constant_plus_a_linear_ramp_is_itself() -> None:
    from workloads.arrays import box_filter

    i, j = np.ogrid[0:6, 0:7]
    ramp = 3.0 + 2.0 * i - 0.5 * j

    np.testing.assert_allclose(box_filter(ramp, 1), ramp, rtol=1e-12)
    np.testing.assert_allclose(box_filter(ramp, 2)[2:-2, 2:-2], ramp[2:-2, 2:-2], rtol=1e-12)


def test_rechunk_falls_back_to_the_config_where_da_rechunk_has_no_method_keyword(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import dask
    import dask.array as da

    from workloads.arrays import _rechunk

    seen: list[Any] = []

    def old_rechunk(x: Any, chunks: Any = "auto", threshold: Any = None, block_size_limit: Any = None) -> Any:
        seen.append(dask.config.get("array.rechunk.method"))
        return x

    monkeypatch.setattr(da, "rechunk", old_rechunk)
    _rechunk(da.ones(4, chunks=2), (4,), "p2p")
    assert seen == ["p2p"]


# ---------------------------------------------------------------------------------------------------------------
# Each workload at its tiny size

CASES = [
    ("array_mean_var", {}),
    ("anom_mean", {}),
    ("vorticity", {}),
    ("double_diff", {}),
    ("dot_product", {}),
    ("map_overlap", {}),
    ("rechunk", {"pattern": "tiles_to_rows", "method": "tasks"}),
    ("rechunk", {"pattern": "tiles_to_rows", "method": "p2p"}),
    ("rechunk", {"pattern": "swap_axes", "method": "tasks"}),
    ("rechunk", {"pattern": "swap_axes", "method": "p2p"}),
]


def test_every_array_workload_and_grid_case_is_covered_here() -> None:
    catalog = load_catalog()
    declared = {
        (case.workload.name, tuple(sorted((k, case.params[k]) for k in case.workload.grid)))
        for workload in catalog.workloads.values()
        if workload.function.startswith("workloads.arrays:")
        for case in expand_workload(workload, "tiny")[0]
    }
    assert declared == {(name, tuple(sorted(grid.items()))) for name, grid in CASES}


@pytest.mark.cluster
@pytest.mark.parametrize(("workload", "grid"), CASES, ids=[f"{w}{g or ''}" for w, g in CASES])
def test_array_workload_passes_at_tiny_size(client: Any, workload: str, grid: dict[str, str]) -> None:
    params = tiny_params(workload, **grid)

    extra = workload_function(workload)(**params)

    assert extra["elements"] > 0
    if workload == "rechunk":
        assert (extra["p2p_stages"] > 0) == (grid["method"] == "p2p")
    if workload == "anom_mean":
        assert extra["groups"] == params["period_days"]


# ---------------------------------------------------------------------------------------------------------------
# Each check fails on a wrong answer. Sizes below tiny where the workload is slow: the checks do not depend on size.

SMALL_ANOM = {"target_bytes": MiB, "days": 48, "period_days": 12}


@pytest.mark.cluster
@pytest.mark.parametrize(
    ("which", "perturb", "message"),
    [
        (1, nudge((3, 1), 1e-6), r"^climatology at sampled columns: 1 of 48 values differ; first at \(3, 1\)"),
        (2, nudge((40, 0), 1e-6), r"^anomalies at sampled columns: 1 of 192 values differ; first at \(40, 0\)"),
        (
            0,
            nudge(17, 1e-6),
            r"^time-mean of the anomalies: 1 of 2730 values differ; first at \(17,\): got 1\.?\d*e-06",
        ),
    ],
)
def test_anom_mean_check_fails_on_a_wrong_answer(
    client: Any, monkeypatch: pytest.MonkeyPatch, which: int, perturb: Callable[[Any], Any], message: str
) -> None:
    calls = wrong_compute(monkeypatch, which, perturb)

    with pytest.raises(WorkloadCheckFailed, match=message):
        workload_function("anom_mean")(**SMALL_ANOM)
    assert calls == [4]


@pytest.mark.cluster
def test_vorticity_check_fails_when_the_padding_does_not_wrap(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import dask.array as da

    pad = da.pad
    monkeypatch.setattr(da, "pad", lambda array, pad_width, mode: pad(array, pad_width, mode="edge"))

    with pytest.raises(
        WorkloadCheckFailed,
        match=r"^largest difference from the closed-form vorticity: 1 of 1 values differ; first at \(\): got \d",
    ):
        workload_function("vorticity")(**tiny_params("vorticity"))


@pytest.mark.cluster
@pytest.mark.parametrize(
    ("which", "perturb", "message"),
    [
        (
            1,
            nudge((), 1.0),
            r"^total vorticity over the periodic domain: 1 of 1 values differ; first at \(\): got 0\.9999",
        ),
        (2, nudge((0, 32, 1), 1e-6), r"^sampled vorticity: 1 of 3675 values differ; first at \(0, 32, 1\)"),
    ],
)
def test_vorticity_check_fails_on_a_wrong_answer(
    client: Any, monkeypatch: pytest.MonkeyPatch, which: int, perturb: Callable[[Any], Any], message: str
) -> None:
    calls = wrong_compute(monkeypatch, which, perturb)

    with pytest.raises(WorkloadCheckFailed, match=message):
        workload_function("vorticity")(**tiny_params("vorticity"))
    assert calls == [3]


@pytest.mark.cluster
@pytest.mark.parametrize(
    ("which", "perturb", "message"),
    [
        (0, nudge(255, 1e-6), r"^row sums of the double difference: 1 of 1023 values differ; first at \(255,\)"),
        (1, nudge(-1, 1e-6), r"^column sums of the double difference: 1 of 1023 values differ; first at \(1022,\)"),
        (2, nudge((4, 4), 1e-9), r"^window across a chunk corner: 1 of 64 values differ; first at \(4, 4\)"),
    ],
)
def test_double_diff_check_fails_on_a_wrong_answer(
    client: Any, monkeypatch: pytest.MonkeyPatch, which: int, perturb: Callable[[Any], Any], message: str
) -> None:
    calls = wrong_compute(monkeypatch, which, perturb)

    with pytest.raises(WorkloadCheckFailed, match=message):
        workload_function("double_diff")(**tiny_params("double_diff"))
    assert calls == [8]


@pytest.mark.cluster
@pytest.mark.parametrize(
    ("which", "perturb", "message"),
    [
        (1, nudge(600, 1.0), r"^row sums of a @ a\.T: 1 of 1024 values differ; first at \(600,\)"),
        (0, lambda total: total * (1 + 1e-8), r"^\(a @ a\.T\)\.sum\(\): 1 of 1 values differ; first at \(\)"),
    ],
)
def test_dot_product_check_fails_on_a_wrong_answer(
    client: Any, monkeypatch: pytest.MonkeyPatch, which: int, perturb: Callable[[Any], Any], message: str
) -> None:
    calls = wrong_compute(monkeypatch, which, perturb)

    with pytest.raises(WorkloadCheckFailed, match=message):
        workload_function("dot_product")(**tiny_params("dot_product"))
    assert calls == [2]


@pytest.mark.cluster
def test_map_overlap_check_fails_with_the_wrong_boundary(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import dask.array as da

    map_overlap = da.map_overlap

    def reflecting(*args: Any, **kwargs: Any) -> Any:
        return map_overlap(*args, **{**kwargs, "boundary": "reflect"})

    monkeypatch.setattr(da, "map_overlap", reflecting)

    # A symmetric reflection keeps the sum too (each row still enters three windows): the windows tell.
    with pytest.raises(
        WorkloadCheckFailed, match=r"^box filter around \(0, 0\): 20 of 36 values differ; first at \(0, 2\): got"
    ):
        workload_function("map_overlap")(**tiny_params("map_overlap"))


@pytest.mark.cluster
@pytest.mark.parametrize(
    ("which", "perturb", "message"),
    [
        (1, nudge((), 1e-3), r"^sum after the box filter: 1 of 1 values differ; first at \(\)"),
        # Results: the two sums, then (filtered, values) for the windows around (0,0), (0,256), (0,1023), (256,0), …
        (2 + 2 * 4, nudge((3, 3), 1e-6), r"^box filter around \(256, 256\): 1 of 36 values differ; first at \(3, 3\)"),
    ],
)
def test_map_overlap_check_fails_on_a_wrong_answer(
    client: Any, monkeypatch: pytest.MonkeyPatch, which: int, perturb: Callable[[Any], Any], message: str
) -> None:
    calls = wrong_compute(monkeypatch, which, perturb)

    with pytest.raises(WorkloadCheckFailed, match=message):
        workload_function("map_overlap")(**tiny_params("map_overlap"))
    assert calls == [20]


@pytest.mark.cluster
def test_rechunk_check_fails_when_the_chunks_are_not_the_ones_asked_for(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dask.array as da

    rechunk = da.rechunk
    monkeypatch.setattr(da, "rechunk", lambda x, chunks, method=None: rechunk(x, (chunks[0], 724), method=method))

    with pytest.raises(
        WorkloadCheckFailed,
        match=r"^chunks after rechunking: \(32×45 \+ 1×8, 2×724\), expected \(32×45 \+ 1×8, 1×1448\)$",
    ):
        workload_function("rechunk")(**tiny_params("rechunk", pattern="tiles_to_rows", method="tasks"))


@pytest.mark.cluster
@pytest.mark.parametrize("method", ["tasks", "p2p"])
def test_rechunk_check_fails_when_an_element_moves(client: Any, monkeypatch: pytest.MonkeyPatch, method: str) -> None:
    import dask.array as da

    rechunk = da.rechunk

    def corrupting(x: Any, chunks: Any, method: Any = None) -> Any:
        y = rechunk(x, chunks, method=method)
        y[700, 3] = y[700, 4]  # one element overwritten by its neighbour
        return y

    monkeypatch.setattr(da, "rechunk", corrupting)

    with pytest.raises(WorkloadCheckFailed, match=r"^1 of 2096704 elements differ from the input after rechunking$"):
        workload_function("rechunk")(**tiny_params("rechunk", pattern="swap_axes", method=method))


@pytest.mark.cluster
def test_rechunk_check_fails_when_p2p_silently_falls_back_to_tasks(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dask.array as da

    rechunk = da.rechunk
    monkeypatch.setattr(da, "rechunk", lambda x, chunks, method=None: rechunk(x, chunks, method="tasks"))

    with pytest.raises(WorkloadCheckFailed, match=r"^method 'p2p' asked, but the graph has 0 P2P rechunk stages$"):
        workload_function("rechunk")(**tiny_params("rechunk", pattern="swap_axes", method="p2p"))
