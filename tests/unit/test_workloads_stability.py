"""workloads/stability.py and workloads/recovery.py: each scenario passes at its tiny size on a two-worker cluster and
leaves the cluster as it found it; its checks fail — with a message that says what is wrong — when an answer is wrong,
and a slot that stays busy (the symptom of distributed#5497) is reported instead of passing.

Every test starts a cluster (marked ``cluster``): scenarios that restart or kill workers run on worker processes, the
rest on in-process workers.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from workload_testing import in_process_client, tiny_params, workload_function

from framework.in_runtime.checks import WorkloadCheckFailed
from framework.in_runtime.scaling import resolve_params
from workloads import recovery, stability

pytestmark = [
    # A worker started while the machine is busy may warn through distributed's SystemMonitor (gilknocker); under
    # filterwarnings=error that would stop the replacement workers these scenarios start.
    pytest.mark.filterwarnings("ignore:timed out waiting on channel:UserWarning"),
    pytest.mark.cluster(deadline=30),  # in-process workers: each test took under 4 s (measured)
]

QUICK_TIMEOUT_S = 30.0  # each scenario's own waits; a healthy tiny run needs a few seconds


def _shape(client: Any) -> dict[str, Any]:
    workers = client.scheduler_info()["workers"].values()
    return {
        "cluster_workers": len(workers),
        "cluster_threads": sum(w["nthreads"] for w in workers),
        "cluster_memory_limit_bytes": sum(w["memory_limit"] for w in workers),
    }


def run(workload: str, client: Any, grid: dict[str, Any] | None = None, **overrides: Any) -> dict[str, float]:
    """Run ``workload`` at tiny (scaled for ``client``'s cluster, as the runner does) with ``client`` as default."""
    params = {**resolve_params(tiny_params(workload, **(grid or {})), _shape(client)), "timeout_s": QUICK_TIMEOUT_S}
    with client.as_current():
        return workload_function(workload)(**{**params, **overrides})


def _saturation(client: Any) -> float:
    return float(client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.WORKER_SATURATION))


def _assert_cluster_intact(client: Any, saturation: float) -> None:
    """Two running workers, both in the LocalCluster's spec, and the scheduler's queuing threshold as it was."""
    workers = client.scheduler_info()["workers"]
    assert len(workers) == len(client.cluster.worker_spec) == 2
    assert {info["status"] for info in workers.values()} == {"running"}
    assert _saturation(client) == saturation


@pytest.fixture
def client() -> Iterator[Any]:
    """Two in-process workers × 1 thread, fresh per test: several scenarios remove and replace a worker."""
    with in_process_client() as dask_client:
        yield dask_client


@pytest.fixture(scope="module")
def process_client() -> Iterator[Any]:
    """Two worker processes with nannies × 1 thread × 1 GiB; afterwards no thread and no child process may be left."""
    import dask
    import distributed  # noqa: F401 - loads its config defaults: else config.set below deletes them all on exit
    import psutil

    def children() -> set[int]:
        return {child.pid for child in psutil.Process().children(recursive=True)}

    before = children()
    # distributed#8534 (open): 15 s after a worker leaves, a LocalCluster closes its nanny for good if no worker of
    # that name is registered right then — as during a later restart or kill here. Not what these tests are about.
    with (
        dask.config.set({"distributed.deploy.lost-worker-timeout": "1h"}),
        in_process_client(processes=True, memory_limit="1GiB") as dask_client,
    ):
        yield dask_client
    deadline = time.monotonic() + 10
    while True:
        leaked = []
        for pid in children() - before:
            try:
                command = " ".join(psutil.Process(pid).cmdline())
            except psutil.NoSuchProcess:
                continue
            if "resource_tracker" not in command:  # multiprocessing's, process-wide by design
                leaked.append(command)
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not leaked, f"processes left running after the cluster closed: {leaked}"


def _wrong_square(index: int) -> int:
    """What a buggy cluster might hand back: ``index²``, one too high for index 3."""
    return index * index + (index == 3)


# ---------------------------------------------------------------------------------------------------------------
# Restarts and worker death: workloads/recovery.py (worker processes: each test under 9 s measured, deadline 60 s)


@pytest.mark.cluster(deadline=60)
def test_merge_spill_after_restarts_passes_at_tiny_size(process_client: Any) -> None:
    pids_before = set(process_client.run(os.getpid).values())

    extra = run("merge_spill_after_restarts", process_client)

    rows = extra["rows_per_side"]
    assert extra["restarts"] == 2
    assert extra["merged_rows"] == (rows + 1) // 2
    assert extra["data_bytes"] == 2 * rows * 8 * 6  # key, x|y and 4 payload columns of 8 bytes
    assert 0 < extra["restart_seconds_max"] <= extra["restart_seconds_total"]
    assert extra["spilled_bytes"] == 0  # tiny is ~11 MiB, far below two 1 GiB workers' spill thresholds
    assert not pids_before & set(process_client.run(os.getpid).values())  # really restarted
    assert len(process_client.scheduler_info()["workers"]) == 2


@pytest.mark.cluster(deadline=60)
def test_merge_spill_after_restarts_check_fails_on_a_wrong_merge(
    process_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dask

    compute = dask.compute

    def compute_one_row_too_many(*args: Any, **kwargs: Any) -> tuple[Any, ...]:
        count, *rest = compute(*args, **kwargs)
        return (count + 1, *rest)

    monkeypatch.setattr(dask, "compute", compute_one_row_too_many)

    with pytest.raises(WorkloadCheckFailed, match=r"^merged rows: got (\d+), expected (\d+) \(even keys below \d+\)$"):
        run("merge_spill_after_restarts", process_client, restarts=0)


@pytest.mark.cluster(deadline=60)
def test_merge_spill_after_restarts_check_fails_when_an_expected_spill_does_not_happen(process_client: Any) -> None:
    with pytest.raises(WorkloadCheckFailed, match=r"but nothing was spilled to disk: raise target_bytes"):
        run("merge_spill_after_restarts", process_client, restarts=0, expect_spill=True)


@pytest.mark.cluster(deadline=60)
def test_merge_spill_after_restarts_mends_the_cluster_when_a_restart_loses_a_worker(
    process_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """distributed#8534, simulated: a nanny closes for good during a restart, which then times out."""
    cluster = process_client.cluster
    lost = sorted(cluster.workers)[0]

    def restart_losing_a_worker(*args: Any, **kwargs: Any) -> None:
        cluster.sync(cluster.workers[lost].close)
        while len(process_client.scheduler_info()["workers"]) != 1:
            time.sleep(0.05)
        raise TimeoutError("Waited for 2 worker(s) to reconnect after restarting but, after 1s, 1 have not returned.")

    monkeypatch.setattr(process_client, "restart", restart_losing_a_worker)

    with pytest.raises(
        RuntimeError,
        match=rf"^client\.restart\(\) 1 of 2 failed \(TimeoutError: Waited for 2 .*\); 1 of 2 workers came back .*"
        rf"distributed#8534.*; workers \[{lost}\] were replaced so the next cases have a whole cluster$",
    ):
        run("merge_spill_after_restarts", process_client)
    assert len(process_client.scheduler_info()["workers"]) == len(cluster.worker_spec) == 2


def test_merge_spill_after_restarts_refuses_workers_without_nannies(client: Any) -> None:
    with pytest.raises(RuntimeError, match=r"restarts the workers, which needs workers with nannies"):
        run("merge_spill_after_restarts", client)


@pytest.mark.cluster(deadline=60)
def test_worker_death_in_flight_passes_at_tiny_size(process_client: Any) -> None:
    pids_before = set(process_client.run(os.getpid).values())

    extra = run("worker_death_in_flight", process_client)

    assert extra == {
        "kills": 1.0,
        "tasks": 100.0,
        "recover_seconds_max": pytest.approx(extra["recover_seconds_max"]),
        "worker_restart_seconds_max": pytest.approx(extra["worker_restart_seconds_max"]),
    }
    assert 0 < extra["recover_seconds_max"] <= extra["worker_restart_seconds_max"] < QUICK_TIMEOUT_S
    pids_after = set(process_client.run(os.getpid).values())
    assert len(pids_after) == 2
    assert len(pids_before & pids_after) == 1  # one worker process was killed and replaced by its nanny


@pytest.mark.cluster(deadline=60)
def test_worker_death_in_flight_check_fails_when_lost_results_come_back_wrong(
    process_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    gather = type(process_client).gather

    def gather_wrongly(self: Any, futures: Any, *args: Any, **kwargs: Any) -> Any:
        return [value + (index == 7) for index, value in enumerate(gather(self, futures, *args, **kwargs))]

    monkeypatch.setattr(type(process_client), "gather", gather_wrongly)

    with pytest.raises(WorkloadCheckFailed) as raised:
        run("worker_death_in_flight", process_client, tasks=20)
    assert str(raised.value) == "Σ i² for i < 20 after the kill: got 2471, expected 2470"


@pytest.mark.cluster(deadline=60)
def test_worker_death_in_flight_mends_the_cluster_when_the_nanny_does_not_restart_the_worker(
    process_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Instead of SIGKILL, close the victim's nanny for good (as distributed#8534 can): the case must fail and leave
    a whole cluster behind."""
    cluster = process_client.cluster
    kill = os.kill

    def close_the_nanny_instead(pid: int, signal_number: int) -> None:
        names = {info["name"]: address for address, info in process_client.scheduler_info()["workers"].items()}
        pids = process_client.run(os.getpid)
        [name] = [name for name, address in names.items() if pids[address] == pid]
        cluster.sync(cluster.workers[name].close)

    monkeypatch.setattr(os, "kill", close_the_nanny_instead)
    try:
        with pytest.raises(RuntimeError, match=r"the nanny did not restart tcp://.* workers \[\d+\] were replaced"):
            run("worker_death_in_flight", process_client, tasks=20, timeout_s=3)
    finally:
        monkeypatch.setattr(os, "kill", kill)
    assert len(process_client.scheduler_info()["workers"]) == len(cluster.worker_spec) == 2


def test_worker_death_in_flight_refuses_in_process_workers(client: Any) -> None:
    # Killing an in-process worker's "process" would kill this test: the scenario must refuse before that.
    with pytest.raises(RuntimeError, match=r"needs worker processes with nannies .* the workers run in this process"):
        run("worker_death_in_flight", client)


# ---------------------------------------------------------------------------------------------------------------
# Deadlock classes: workloads/stability.py (in-process workers)


def test_cancelled_task_errors_passes_at_tiny_size(client: Any) -> None:
    saturation = _saturation(client)

    extra = run("cancelled_task_errors", client)

    assert extra["rounds"] == 1
    assert extra["cancelled_tasks"] == 2  # one per thread slot
    assert extra["tasks"] == 100
    assert 0 < extra["recover_seconds_max"] < QUICK_TIMEOUT_S
    _assert_cluster_intact(client, saturation)


def test_cancelled_task_errors_reports_a_slot_that_stays_busy(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The #5497 symptom, simulated: the first cancelled task keeps its thread after the gate opens."""
    from distributed import Event

    hold = f"test-hold-{time.monotonic_ns()}"

    def raise_but_hold_the_first_slot(index: int, gate: str, started: str, gate_timeout: float) -> int:
        recovery.pass_gate(gate, started, gate_timeout)
        if index == 0:
            Event(hold).wait(timeout=60)
        raise RuntimeError("cancelled task raises")

    monkeypatch.setattr(stability, "_raise_after_gate", raise_but_hold_the_first_slot)
    try:
        with pytest.raises(TimeoutError, match=r"not all 2 thread slots took new work: a slot stayed busy"):
            run("cancelled_task_errors", client, timeout_s=2)
    finally:
        with client.as_current():
            Event(hold).set()  # free the thread before the cluster closes


def test_reschedule_once_passes_at_tiny_size(client: Any) -> None:
    extra = run("reschedule_once", client)

    assert extra["tasks"] == extra["rescheduled"] == 20  # each task raised Reschedule exactly once
    assert extra["pinned_tasks"] == 10
    assert 0 < extra["seconds"] <= extra["total_seconds"]


def test_reschedule_once_check_fails_when_a_task_is_never_rescheduled(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    reschedule_once = stability._reschedule_once

    def reschedule_all_but_task_3(index: int, marker: str) -> int:
        return index * index if index == 3 else reschedule_once(index, marker)

    monkeypatch.setattr(stability, "_reschedule_once", reschedule_all_but_task_3)

    with pytest.raises(WorkloadCheckFailed) as raised:
        run("reschedule_once", client)
    assert str(raised.value) == "19 of 20 tasks raised Reschedule on their first attempt"


def test_retire_during_compute_passes_at_tiny_size_and_restores_the_cluster(client: Any) -> None:
    saturation = _saturation(client)
    before = set(client.scheduler_info()["workers"])

    extra = run("retire_during_compute", client)

    assert extra["rounds"] == 1
    assert extra["tasks"] == 50
    assert extra["retire_seconds_max"] > 0
    assert extra["finish_seconds_max"] > 0
    _assert_cluster_intact(client, saturation)
    assert sorted(before)[0] not in client.scheduler_info()["workers"]  # the first worker was retired and replaced


def test_retire_during_compute_reports_a_worker_stuck_closing(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The #6223 symptom, simulated: retire_workers never returns."""

    def never_returns(*args: Any, **kwargs: Any) -> Any:
        time.sleep(3)
        return {}

    monkeypatch.setattr(client, "retire_workers", never_returns)

    with pytest.raises(TimeoutError, match=r"did not return within 1 s: the worker is stuck closing gracefully"):
        run("retire_during_compute", client, timeout_s=1)
    monkeypatch.undo()
    assert len(client.scheduler_info()["workers"]) == 2


def test_seceding_under_queuing_passes_at_tiny_size_and_restores_saturation(client: Any) -> None:
    saturation = _saturation(client)
    assert saturation != 1.0  # the default (1.1 or inf) — so restoring it is visible

    extra = run("seceding_under_queuing", client)

    assert extra["tasks"] == 20
    assert extra["worker_saturation"] == 1.0
    assert extra["worker_saturation_set_on_scheduler"] == 1.0
    assert extra["queued_tasks_at_gate"] == 18  # 20 root-ish parents, 2 running at the gate
    _assert_cluster_intact(client, saturation)


def test_resubmit_while_queued_passes_at_tiny_size(client: Any) -> None:
    saturation = _saturation(client)

    extra = run("resubmit_while_queued", client)

    assert extra["tasks"] == 50
    assert extra["resubmissions"] == 6
    assert extra["queued_tasks_at_gate"] == 48
    _assert_cluster_intact(client, saturation)


@pytest.mark.parametrize("operation", ["shuffle", "merge"])
def test_p2p_worker_replaced_passes_at_tiny_size_and_restores_the_cluster(client: Any, operation: str) -> None:
    saturation = _saturation(client)
    first = sorted(client.scheduler_info()["workers"])[0]

    extra = run("p2p_worker_replaced", client, {"operation": operation})

    assert extra["rows"] == 20000
    assert extra["partitions"] == 8
    assert extra["retire_seconds"] > 0
    assert extra["finish_seconds"] > 0
    _assert_cluster_intact(client, saturation)
    assert first not in client.scheduler_info()["workers"]


@pytest.mark.parametrize("operation", ["shuffle", "merge"])
def test_p2p_worker_replaced_check_fails_on_a_wrong_row(
    client: Any, monkeypatch: pytest.MonkeyPatch, operation: str
) -> None:
    keyed_partition = stability._keyed_partition

    def one_x_too_high(index: int, rows_per_partition: int, keys: int) -> Any:
        frame = keyed_partition(index, rows_per_partition, keys)
        if index == 0 and len(frame):
            frame.loc[0, "x"] += 1  # row j = 0, key 0
        return frame

    monkeypatch.setattr(stability, "_keyed_partition", one_x_too_high)

    # key 0 holds j = 0, 100, …, 19900: 200 rows, Σ x = 100 · 200 · 199 / 2.
    with pytest.raises(WorkloadCheckFailed) as raised:
        run("p2p_worker_replaced", client, {"operation": operation})
    assert str(raised.value) == (
        f"Σ x per key after the P2P {operation}: 1 of 100 wrong; first at 0: got 1990001, expected 1990000"
    )
    assert len(client.scheduler_info()["workers"]) == 2


def test_queued_dependency_released_passes_at_tiny_size_and_restores_the_cluster(client: Any) -> None:
    saturation = _saturation(client)
    first = sorted(client.scheduler_info()["workers"])[0]

    extra = run("queued_dependency_released", client)

    assert extra["tasks"] == 20
    assert extra["queued_tasks_at_gate"] == 19  # the other worker is held by a blocker: one dependent runs
    assert extra["worker_saturation_set_on_scheduler"] == 1.0
    assert extra["seconds"] > 0
    _assert_cluster_intact(client, saturation)
    assert first not in client.scheduler_info()["workers"]


# What each scenario says when ``square`` hands back 3² + 1 (see ``_wrong_square``).
WRONG_RESULT_MESSAGES = {
    "cancelled_task_errors": "fan-out after the cancellation: 1 of 100 wrong; first at 3: got 10, expected 9",
    "reschedule_once": "rescheduled tasks: 1 of 20 wrong; first at 3: got 10, expected 9",
    "retire_during_compute": "i² + 1 after retiring a worker: 1 of 50 wrong; first at 3: got 11, expected 10",
    "seceding_under_queuing": "seceding parents: 1 of 20 wrong; first at 3: got 13, expected 12",
    "resubmit_while_queued": "resubmitted keys: 1 of 50 wrong; first at 3: got 10, expected 9",
    "queued_dependency_released": (
        "7² + i² after the worker was removed: 1 of 20 wrong; first at 3: got 59, expected 58"
    ),
}


@pytest.mark.parametrize("workload", list(WRONG_RESULT_MESSAGES))
def test_deadlock_scenario_checks_fail_on_a_wrong_result(
    client: Any, monkeypatch: pytest.MonkeyPatch, workload: str
) -> None:
    saturation = _saturation(client)
    # stability imports square from workloads.recovery: patch the name its scenarios look up.
    monkeypatch.setattr(stability, "square", _wrong_square)

    with pytest.raises(WorkloadCheckFailed) as raised:
        run(workload, client)
    assert str(raised.value) == WRONG_RESULT_MESSAGES[workload]
    _assert_cluster_intact(client, saturation)  # restored even when the check fails
