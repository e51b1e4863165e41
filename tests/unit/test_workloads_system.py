"""workloads/system.py: spill, work stealing, adaptive scaling and futures pass at their tiny size, and each of their
checks fails — with a message that says what is wrong — when the system misbehaves."""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from framework.config import load_catalog
from framework.in_runtime.checks import WorkloadCheckFailed
from framework.in_runtime.scaling import resolve_params
from framework.matrix import expand_workload
from workloads import system

pytestmark = [
    pytest.mark.cluster,
    # gilknocker's, raised through distributed's SystemMonitor when a worker starts on a busy machine; under
    # filterwarnings=error it would make a worker that adaptive scaling starts fail to start.
    pytest.mark.filterwarnings("ignore:timed out waiting on channel:UserWarning"),
]


def tiny_params(workload: str, client: Any, **overrides: Any) -> dict[str, Any]:
    """The tiny params of ``workload`` (workloads/system.yaml), scaled for ``client``'s cluster as the runner does."""
    cases, reason = expand_workload(load_catalog().workloads[workload], "tiny")
    assert reason is None, reason
    assert len(cases) == 1, f"{workload}: {len(cases)} tiny cases"
    workers = client.scheduler_info()["workers"].values()
    shape = {
        "cluster_workers": len(workers),
        "cluster_threads": sum(w["nthreads"] for w in workers),
        "cluster_memory_limit_bytes": sum(w["memory_limit"] for w in workers),
    }
    return {**resolve_params(cases[0].params, shape), **overrides}


def workload_function(workload: str) -> Callable[..., dict[str, float]]:
    module, _, name = load_catalog().workloads[workload].function.partition(":")
    function: Callable[..., dict[str, float]] = getattr(importlib.import_module(module), name)
    return function


def run(workload: str, client: Any, **overrides: Any) -> dict[str, float]:
    """Run ``workload`` at tiny on ``client`` (made the default client, as the runner's is)."""
    with client.as_current():
        return workload_function(workload)(**tiny_params(workload, client, **overrides))


def in_process_cluster(**kwargs: Any) -> Iterator[Any]:
    """A LocalCluster of in-process workers and its client; afterwards no thread of it may be left running."""
    from distributed import Client, LocalCluster

    threads_before = {thread.ident for thread in threading.enumerate()}
    cluster = LocalCluster(processes=False, threads_per_worker=1, dashboard_address=":0", **kwargs)
    dask_client = Client(cluster)
    try:
        yield dask_client
    finally:
        dask_client.close()
        cluster.close()
    deadline = time.monotonic() + 10
    while True:
        # distributed's offload executor is a process-wide pool that outlives every cluster, by design.
        leaked = [
            thread.name
            for thread in threading.enumerate()
            if thread.ident not in threads_before and not thread.name.startswith("Dask-Offload")
        ]
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not leaked, f"threads left running after the cluster closed: {leaked}"


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    """Two fixed workers for the stealing and futures workloads (never scaled: adaptive tests get their own)."""
    yield from in_process_cluster(n_workers=2, memory_limit="2GiB")


@pytest.fixture(scope="module")
def spill_client() -> Iterator[Any]:
    """Two workers of 256 MiB: tiny persists 0.7 × 512 MiB, above their 2 × 154 MiB spill thresholds.

    In-process workers share this test process, whose RSS would trip the process-memory thresholds (spill at 70 %,
    pause at 80 %) of so small a limit: only the managed-memory target (60 %) spills here, as it does first on a
    real worker.
    """
    import dask

    with dask.config.set(
        {
            "distributed.worker.memory.spill": False,
            "distributed.worker.memory.pause": False,
            "distributed.worker.memory.terminate": False,
        }
    ):
        yield from in_process_cluster(n_workers=2, memory_limit="256MiB")


@pytest.fixture
def adaptive_client() -> Iterator[Any]:
    """A fresh two-worker cluster per test: the adaptive workload scales it (and must restore it)."""
    yield from in_process_cluster(n_workers=2, memory_limit="1GiB")


def wrong_compute(monkeypatch: pytest.MonkeyPatch, perturb: Callable[[Any], Any], which: int = 0) -> list[int]:
    """Make ``dask.compute`` hand back one wrong result (the first by default), as a buggy scheduler would."""
    import dask

    compute = dask.compute
    calls: list[int] = []

    def compute_wrongly(*args: Any, **kwargs: Any) -> tuple[Any, ...]:
        results = compute(*args, **kwargs)
        calls.append(len(results))
        return tuple(perturb(value) if i == which else value for i, value in enumerate(results))

    monkeypatch.setattr(dask, "compute", compute_wrongly)
    return calls


def compute_on_one_worker(monkeypatch: pytest.MonkeyPatch, client: Any, pick: int = 0) -> None:
    """Make ``dask.compute`` restrict every task to one worker, as a scheduler that never spreads load would."""
    import dask

    compute = dask.compute
    # Asked of the scheduler now: scheduler_info() can return an identity cached without its worker list.
    worker = sorted(client.nthreads())[pick]
    monkeypatch.setattr(dask, "compute", lambda *args, **kwargs: compute(*args, workers=[worker], **kwargs))


# ---------------------------------------------------------------------------------------------------------------
# spill_reduce


def test_spill_reduce_passes_at_tiny_size_and_leaves_the_cluster_as_it_was(
    spill_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dask

    def allowed_failures() -> int:
        return int(spill_client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.allowed_failures))

    # A worker killed mid-case must be an error (KilledWorker), not a silent retry: allowed_failures is 0 meanwhile.
    compute = dask.compute
    during: list[int] = []

    def compute_and_look(*args: Any, **kwargs: Any) -> Any:
        during.append(allowed_failures())
        return compute(*args, **kwargs)

    monkeypatch.setattr(dask, "compute", compute_and_look)
    params = tiny_params("spill_reduce", spill_client)
    assert params["target_bytes"] == int(0.7 * 512 * 2**20)

    extra = run("spill_reduce", spill_client)

    data = extra["data_bytes"]
    assert data >= params["target_bytes"]
    assert extra["spill_thresholds_bytes"] == 2 * int(0.6 * 256 * 2**20)
    assert data - extra["spill_thresholds_bytes"] <= extra["spilled_bytes"] <= 2.5 * data
    assert 0 < extra["unspilled_bytes"] <= extra["spilled_bytes"]
    assert during == [0]
    assert allowed_failures() == 3  # distributed's default, restored
    held = spill_client.run(lambda dask_worker: len(dask_worker.data))
    assert set(held.values()) == {0}, f"persisted chunks left on the workers: {held}"


# Enough for the checks on the answer and the workers, which need no spilling: 8 chunks of 8 MiB.
SMALL_PERSIST = {"target_bytes": 64 * 2**20, "chunk_bytes": "8MiB"}


def _nudge_one(index: int) -> Callable[[Any], Any]:
    def perturb(value: Any) -> Any:
        import numpy as np

        value = np.array(value, dtype="float64")  # a copy: never alter what dask returned
        value[index] += 0.5
        return value

    return perturb


@pytest.mark.parametrize(
    ("which", "perturb", "message"),
    [
        pytest.param(
            0,
            _nudge_one(2),
            r"^sum of each chunk: 1 of 8 values differ; first at \(2,\): got 524288\.5, expected 524288\.0$",
            id="one chunk",
        ),
        pytest.param(
            1,
            _nudge_one(()),
            r"^total: 1 of 1 values differ; first at \(\): got 4194304\.5, expected 4194304\.0$",
            id="total",
        ),
    ],
)
def test_spill_reduce_check_fails_when_data_comes_back_wrong(
    spill_client: Any, monkeypatch: pytest.MonkeyPatch, which: int, perturb: Callable[[Any], Any], message: str
) -> None:
    calls = wrong_compute(monkeypatch, perturb, which)

    with pytest.raises(WorkloadCheckFailed, match=message):
        run("spill_reduce", spill_client, **SMALL_PERSIST)
    assert calls == [2]  # one compute of (chunk sums, total)


def _miscounted(field: str, factor: float) -> Callable[[Any], dict[str, Any]]:
    """``_spill_state`` with one counter off by ``factor``: the unit slip that makes a spill figure wrong."""
    spill_state = system._spill_state

    def state(dask_worker: Any) -> dict[str, Any]:
        values = spill_state(dask_worker)
        values[field] *= factor
        return values

    return state


@pytest.mark.parametrize(
    ("spill_state", "message"),
    [
        # Counted in MiB instead of bytes: far below what had to go to disk.
        pytest.param(
            _miscounted("written_bytes", 2**-20),
            r"^spilled \d+ B \(\d+ B\) of 384\.00 MiB persisted, with 307\.20 MiB of spill thresholds: expected"
            r" between \d+\.\d+ MiB and \d+\.\d+ (MiB|GiB)$",
            id="in MiB",
        ),
        # Counted in bits: more than the data could ever cost.
        pytest.param(
            _miscounted("written_bytes", 8), r"^spilled \d+\.\d+ GiB \(\d+ B\) of 384\.00 MiB persisted", id="in bits"
        ),
    ],
)
def test_spill_reduce_check_fails_when_the_spilled_amount_is_miscounted(
    spill_client: Any, monkeypatch: pytest.MonkeyPatch, spill_state: Callable[..., Any], message: str
) -> None:
    monkeypatch.setattr(system, "_spill_state", spill_state)

    with pytest.raises(WorkloadCheckFailed, match=message):
        run("spill_reduce", spill_client)


def test_spill_reduce_checks_only_the_answer_where_workers_keep_no_spill_counters(
    spill_client: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(
        system, "_spill_state", lambda dask_worker: {"id": dask_worker.id, "missing": "dict keeps no counters"}
    )

    extra = run("spill_reduce", spill_client, **SMALL_PERSIST)

    assert set(extra) == {"data_bytes", "persist_seconds", "reduce_seconds"}
    assert "spilled bytes not checked: dict keeps no counters" in capsys.readouterr().err


def test_spill_reduce_check_fails_when_a_worker_was_replaced(
    spill_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A nanny restarting a killed worker gives a new address and Worker.id: the data was recomputed, not spilled."""
    worker_ids = system._worker_ids
    calls: list[int] = []

    def one_replaced(client: Any) -> dict[str, str]:
        ids = worker_ids(client)
        calls.append(1)
        if len(calls) == 2:
            address = sorted(ids)[0]
            ids["inproc://replacement"] = "Worker-replacement"
            del ids[address]
        return ids

    monkeypatch.setattr(system, "_worker_ids", one_replaced)
    lost = sorted(spill_client.scheduler_info()["workers"])[0]

    with pytest.raises(WorkloadCheckFailed) as raised:
        run("spill_reduce", spill_client, **SMALL_PERSIST)
    assert str(raised.value) == (
        f"workers changed during the case: lost [{lost!r}], joined ['inproc://replacement'] — a worker died or was"
        " replaced, so its data was recomputed instead of spilled and read back"
    )


# ---------------------------------------------------------------------------------------------------------------
# Work stealing


def test_stealing_fan_out_passes_at_tiny_size(client: Any) -> None:
    extra = run("stealing_fan_out", client)

    assert extra["tasks"] == 1000
    assert extra["workers"] == extra["workers_used"] == 2
    assert 0.125 <= extra["min_worker_share"] <= 0.5 <= extra["max_worker_share"]
    assert extra["min_worker_share"] + extra["max_worker_share"] == pytest.approx(1.0)


def test_stealing_fan_out_check_fails_when_a_worker_gets_nothing(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    compute_on_one_worker(monkeypatch, client)
    idle = sorted(client.nthreads())[1]

    with pytest.raises(WorkloadCheckFailed) as raised:
        run("stealing_fan_out", client, tasks=200)
    assert str(raised.value) == (
        f"fan-out: worker(s) [{idle!r}] ran 0.0% of the tasks, below 0.25 × an even share (50.0%): the load did not"
        " spread over all workers"
    )


def _wrong_element(index: int) -> Callable[[Any], Any]:
    """``dask.compute(*leaves)`` returns one tuple per leaf: make leaf ``index`` return a value one too high."""

    def perturb(value: Any) -> Any:
        result, where = value
        return result + 1, where

    return perturb


@pytest.mark.parametrize(
    ("workload", "message"),
    [
        ("stealing_fan_out", r"^leaf results: 1 of 20 wrong; first at 3: got 1048580, expected 1048579$"),
        ("stealing_inhomogeneous", r"^task results: 1 of 20 wrong; first at 3: got 4, expected 3$"),
        ("stealing_straggler", r"^task results: 1 of 20 wrong; first at 3: got 4, expected 3$"),
    ],
    ids=["fan_out", "inhomogeneous", "straggler"],
)
def test_stealing_checks_fail_on_a_wrong_result(
    client: Any, monkeypatch: pytest.MonkeyPatch, workload: str, message: str
) -> None:
    calls = wrong_compute(monkeypatch, _wrong_element(3), which=3)

    with pytest.raises(WorkloadCheckFailed, match=message):
        run(workload, client, tasks=20)
    assert calls == [20]


def test_stealing_inhomogeneous_passes_at_tiny_size(client: Any) -> None:
    extra = run("stealing_inhomogeneous", client)

    assert extra["tasks"] == 100
    assert extra["workers"] == extra["workers_used"] == 2
    assert extra["min_worker_share"] >= 0.125
    assert 0 < extra["balance_efficiency"] <= 1.0


def test_stealing_inhomogeneous_check_fails_when_a_worker_gets_nothing(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    compute_on_one_worker(monkeypatch, client, pick=1)

    with pytest.raises(WorkloadCheckFailed, match=r"^inhomogeneous tasks: worker\(s\) \['inproc://[^']+'\] ran 0\.0%"):
        run("stealing_inhomogeneous", client, tasks=20)


def test_stealing_straggler_passes_at_tiny_size(client: Any) -> None:
    extra = run("stealing_straggler", client)

    assert extra["tasks"] == 100
    assert extra["straggler_share"] == extra["min_worker_share"] < 0.5 < extra["max_worker_share"]


def test_stealing_straggler_check_fails_when_the_load_stays_on_the_straggler(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    compute_on_one_worker(monkeypatch, client, pick=0)  # the straggler is the first worker by address
    straggler, other = sorted(client.scheduler_info()["workers"])

    with pytest.raises(WorkloadCheckFailed) as raised:
        run("stealing_straggler", client, sleep_s=0.001)
    assert str(raised.value) == (
        f"the straggling worker {straggler} ran 100.0% of the tasks, no fewer than {other} (0.0%): the load did not"
        " move away from it"
    )


# ---------------------------------------------------------------------------------------------------------------
# adaptive_scale


def test_adaptive_scale_passes_at_tiny_size_and_restores_the_cluster(adaptive_client: Any) -> None:
    cluster = adaptive_client.cluster

    extra = run("adaptive_scale", adaptive_client)

    assert extra["tasks"] == 50
    assert extra["initial_workers"] == 2
    assert 2 < extra["peak_workers"] <= 4
    assert extra["scale_up_s"] > 0
    assert extra["scale_down_s"] > 0
    assert len(adaptive_client.scheduler_info()["workers"]) == len(cluster.workers) == 2
    assert cluster._adaptive.state == "stopped"  # no adapting left behind for the next case


def _adapt_with(monkeypatch: pytest.MonkeyPatch, cluster: Any, **forced: Any) -> None:
    adapt = cluster.adapt
    monkeypatch.setattr(cluster, "adapt", lambda **kwargs: adapt(**{**kwargs, **forced}))


def test_adaptive_scale_check_fails_when_the_cluster_does_not_grow(
    adaptive_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _adapt_with(monkeypatch, adaptive_client.cluster, maximum=2)

    with pytest.raises(WorkloadCheckFailed) as raised:
        run("adaptive_scale", adaptive_client, scale_timeout_s=1.5)
    assert str(raised.value) == (
        "the cluster did not scale up within 1.5 s: 2 workers (started with 2, maximum 4) while 50 tasks waited"
    )
    assert len(adaptive_client.scheduler_info()["workers"]) == 2


def test_adaptive_scale_check_fails_when_the_idle_cluster_does_not_shrink(
    adaptive_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _adapt_with(monkeypatch, adaptive_client.cluster, minimum=3)

    with pytest.raises(
        WorkloadCheckFailed, match=r"^the idle cluster did not scale down to 1 worker within 3 s: [34] left$"
    ):
        run("adaptive_scale", adaptive_client, scale_timeout_s=3)
    assert len(adaptive_client.scheduler_info()["workers"]) == 2  # restored even so


def test_adaptive_scale_check_fails_when_a_result_changes(
    adaptive_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    gather = adaptive_client.gather

    def gather_wrongly(futures: Any, *args: Any, **kwargs: Any) -> Any:
        results = gather(futures, *args, **kwargs)
        return [value + (index == 7) for index, value in enumerate(results)]

    monkeypatch.setattr(adaptive_client, "gather", gather_wrongly)

    with pytest.raises(WorkloadCheckFailed, match=r"^results after scaling down: 1 of 50 wrong; first at 7: got 50,"):
        run("adaptive_scale", adaptive_client)


def test_adaptive_scale_check_fails_when_the_cluster_is_not_restored(
    adaptive_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = adaptive_client.cluster
    scale = cluster.scale

    def scale_from_the_event_loop_only(n: int) -> Any:
        # Adaptive scales from the cluster's event loop; the workload asks from its own thread — ignore that request.
        return None if threading.current_thread() is threading.main_thread() else scale(n)

    monkeypatch.setattr(cluster, "scale", scale_from_the_event_loop_only)

    # How many workers remain depends on how far adaptive got when the case ended: any count but 2 must fail.
    with pytest.raises(WorkloadCheckFailed, match=r"^the cluster was not restored to 2 workers after adapting: \d+$"):
        run("adaptive_scale", adaptive_client, scale_timeout_s=3)


# ---------------------------------------------------------------------------------------------------------------
# Futures


@pytest.mark.parametrize(("workload", "tasks"), [("futures_submit", 1000), ("futures_map", 2000)])
def test_futures_pass_at_tiny_size(client: Any, workload: str, tasks: int) -> None:
    extra = run(workload, client)

    assert extra["tasks"] == tasks
    assert extra["tasks_per_second"] > 0


@pytest.mark.parametrize(("workload", "what"), [("futures_submit", "submitted"), ("futures_map", "mapped")])
def test_futures_check_fails_when_a_result_changes(
    client: Any, monkeypatch: pytest.MonkeyPatch, workload: str, what: str
) -> None:
    gather = type(client).gather

    def gather_wrongly(self: Any, futures: Any, *args: Any, **kwargs: Any) -> Any:
        results = gather(self, futures, *args, **kwargs)
        return [value + (index == 7) for index, value in enumerate(results)]

    monkeypatch.setattr(type(client), "gather", gather_wrongly)

    with pytest.raises(
        WorkloadCheckFailed, match=rf"^{what} squares: 1 of 100 wrong; first at 7: got 50, expected 49$"
    ):
        run(workload, client, tasks=100)


@pytest.mark.parametrize("workload", ["futures_submit", "futures_map"])
def test_futures_check_fails_when_the_sum_on_the_cluster_is_wrong(
    client: Any, monkeypatch: pytest.MonkeyPatch, workload: str
) -> None:
    tasks = 100
    monkeypatch.setattr(system, "_total", lambda values: sum(values[:-1]))  # the last dependency lost on the way

    expected = (tasks - 1) * tasks * (2 * tasks - 1) // 6
    with pytest.raises(WorkloadCheckFailed) as raised:
        run(workload, client, tasks=tasks)
    assert str(raised.value) == (
        f"sum of squares of 0..{tasks - 1}: got {expected - (tasks - 1) ** 2}, expected {expected}"
    )
