"""Stability workloads: small deterministic scenarios that hang or fail on a Dask release with a known bug.

Each one replays the trigger of a historical deadlock class (the distributed issue is named in its docstring and in
``workloads/stability.yaml``) with public APIs, orders its steps with ``distributed.Event`` gates rather than
sleeps, checks every result against a closed form, and returns what recovery cost (seconds, tasks).
A release with the bug never finishes: the runner stops the case at its timeout and dumps the cluster state. Where a
wait inside the scenario gives a clearer message than the runner's timeout, it has its own shorter ``timeout_s``.

Scenarios that remove or retire workers restore the cluster to its size afterwards: the runner runs the next cases
on the same cluster. Restarts and killed workers are in ``workloads/recovery.py``, with the gates and waits both use.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
import time
import uuid
from typing import Any, Callable, Optional

from framework.in_runtime.checks import check, check_results
from workloads.dataframes import shuffle_keyword
from workloads.recovery import (
    cluster_workers,
    enough_workers,
    frame_from_partitions,
    pass_gate,
    restore_workers,
    square,
    sum_of_squares,
    unique_name,
    wait_events,
    wait_futures,
    wait_until,
    worker_gone,
)

# ---------------------------------------------------------------------------------------------------------------
# Tasks (module-level functions: shipped by value to remote clusters with this module)


def _gated_square(index: int, gate: str, started: str, gate_timeout: float) -> int:
    pass_gate(gate, started, gate_timeout)
    return square(index)


def _raise_after_gate(index: int, gate: str, started: str, gate_timeout: float) -> int:
    pass_gate(gate, started, gate_timeout)
    raise RuntimeError(f"task {index} raises on purpose after it was cancelled (distributed#5497)")


def _reschedule_once(index: int, marker: str) -> int:
    """Raise ``Reschedule`` on the first attempt (the marker Event is not yet set), compute ``index²`` after."""
    from distributed import Event, Reschedule

    first_attempt = Event(marker)
    if not first_attempt.is_set():
        first_attempt.set()
        raise Reschedule()
    return square(index)


def _seceding_parent(index: int, gate: str, started: str, gate_timeout: float) -> int:
    """Wait at the gate holding a thread, then secede (``worker_client``) and wait for a child task: ``i² + i``."""
    from distributed import worker_client

    pass_gate(gate, started, gate_timeout)
    with worker_client() as client:
        child = client.submit(square, index, pure=False)
        return int(child.result()) + index


def _gated_dependent(index: int, dependency: int, gate: str, started: str, gate_timeout: float) -> int:
    pass_gate(gate, started, gate_timeout)
    return dependency + square(index)


def _gated_increment(value: int, gate: str, started: str, gate_timeout: float) -> int:
    pass_gate(gate, started, gate_timeout)
    return value + 1


def _keyed_partition(index: int, rows_per_partition: int, keys: int) -> Any:
    """Rows ``j`` of partition ``index``: ``key = j % keys``, ``x = j``."""
    import numpy as np
    import pandas as pd

    rows = np.arange(index * rows_per_partition, (index + 1) * rows_per_partition, dtype="int64")
    return pd.DataFrame({"key": rows % keys, "x": rows})


def _key_table_partition(index: int, partitions: int, keys: int) -> Any:
    """One row per key (``y = key``), keys spread over ``partitions`` partitions."""
    import numpy as np
    import pandas as pd

    key = np.arange(index, keys, partitions, dtype="int64")
    return pd.DataFrame({"key": key, "y": key})


def _gated_key_summary(frame: Any, gate: str, started: str, gate_timeout: float) -> Any:
    """Per key of one shuffled partition: its rows and sums — once the gate is open."""
    pass_gate(gate, started, gate_timeout)
    return _key_summary(frame)


def _key_summary(frame: Any) -> Any:
    sums = {"rows": ("x", "size"), "x_sum": ("x", "sum")}
    if "y" in frame.columns:
        sums["y_sum"] = ("y", "sum")
    return frame.groupby("key").agg(**sums).reset_index()


# Run on the scheduler or the workers


def _swap_worker_saturation(dask_scheduler: Any, value: float) -> Optional[float]:
    """Set the scheduler's queuing threshold; return the previous value (None: this release has no queuing)."""
    if not hasattr(dask_scheduler, "WORKER_SATURATION"):
        return None
    previous = float(dask_scheduler.WORKER_SATURATION)
    dask_scheduler.WORKER_SATURATION = value
    return previous


def _queued_count(dask_scheduler: Any) -> int:
    return len(getattr(dask_scheduler, "queued", ()))


async def _remove_worker(dask_scheduler: Any, address: str) -> None:
    """Remove a worker abruptly (no replication of its data), as when its machine disappears."""
    await dask_scheduler.remove_worker(address=address, stimulus_id=f"dask-blessing-remove-{time.time()}", close=True)


def _task_states(dask_worker: Any, keys: list[str]) -> Optional[dict[str, str]]:
    """This worker's state of each of ``keys`` it knows (None: this release keeps no readable task states)."""
    tasks = getattr(getattr(dask_worker, "state", dask_worker), "tasks", None)
    if tasks is None:
        return None
    return {key: str(tasks[key].state) for key in keys if key in tasks}


# ---------------------------------------------------------------------------------------------------------------
# On the client


def _set_worker_saturation(client: Any, value: float) -> Optional[float]:
    previous: Optional[float] = client.run_on_scheduler(_swap_worker_saturation, value=value)
    if previous is None:
        print(  # noqa: T201 - the row's stderr says why the scenario ran without queuing
            "distributed.scheduler.worker-saturation: this scheduler has no WORKER_SATURATION (no queuing);"
            " the scenario runs without it",
            file=sys.stderr,
        )
    return previous


def _saturation_metrics(value: float, previous: Optional[float], queued: int) -> dict[str, float]:
    """How queuing was set up: on the running scheduler's attribute (1) or not at all (0), and what it queued."""
    return {
        "worker_saturation": value if previous is not None else -1.0,
        "worker_saturation_set_on_scheduler": 1.0 if previous is not None else 0.0,
        "queued_tasks_at_gate": float(queued),
    }


def _scalable_cluster(client: Any, workload: str) -> Any:
    """The LocalCluster behind ``client``: scenarios that remove a worker scale it back afterwards."""
    cluster = getattr(client, "cluster", None)
    if cluster is None or not hasattr(cluster, "worker_spec") or not hasattr(cluster, "scale_down"):
        raise RuntimeError(
            f"{workload} removes a worker and then restores the cluster's size: it needs a client created from a"
            " LocalCluster (declare requires: {backends: [local]})"
        )
    return cluster


def _cancelled_everywhere(client: Any, keys: list[str]) -> Callable[[], bool]:
    """True once every worker that knows one of ``keys`` has it cancelled (or cannot say)."""

    def cancelled() -> bool:
        states = client.run(_task_states, keys=keys).values()
        return all(known is None or set(known.values()) <= {"cancelled"} for known in states)

    return cancelled


def _retire(client: Any, address: str, timeout: float) -> float:
    """``client.retire_workers([address])``, bounded: a worker stuck closing gracefully (#6223) is an error."""
    started = time.perf_counter()
    executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="blessing-retire")
    try:
        retired = executor.submit(client.retire_workers, [address], close_workers=True).result(timeout=timeout)
    except concurrent.futures.TimeoutError as error:
        raise TimeoutError(
            f"retire_workers([{address!r}]) did not return within {timeout:g} s: the worker is stuck closing"
            " gracefully (the distributed#6223 class)"
        ) from error
    finally:
        executor.shutdown(wait=False)
    check(address in retired, f"retire_workers did not retire {address}: it returned {sorted(retired)}")
    wait_until(worker_gone(client, address), timeout, f"retired worker {address} did not leave")
    return time.perf_counter() - started


# ---------------------------------------------------------------------------------------------------------------
# Historical deadlock classes


def cancelled_task_errors(tasks: int, rounds: int = 1, timeout_s: float = 60.0) -> dict[str, float]:
    """distributed#5497: a task that raises after it was cancelled mid-execution kept its thread slot busy.

    One task per thread slot waits at a gate; they are cancelled while running (and the workers have marked them
    cancelled); then the gate opens and they raise. Every slot must then pick up new work: one gated task per slot
    must all be running at once, and a fan-out of ``tasks`` squares must finish with the right answers.
    """
    from distributed import Event, get_client

    client = get_client()
    workers = enough_workers(client, 1, "cancelled_task_errors")
    slots = [address for address, info in sorted(workers.items()) for _ in range(int(info["nthreads"]))]
    recover_seconds = []
    for _ in range(rounds):
        gate = Event(unique_name("cancel-gate"))
        started = [unique_name(f"cancel-started-{slot}") for slot in range(len(slots))]
        doomed = [
            client.submit(_raise_after_gate, slot, gate.name, started[slot], timeout_s, workers=[address], pure=False)
            for slot, address in enumerate(slots)
        ]
        keys = [future.key for future in doomed]
        try:
            wait_events(started, timeout_s, f"the {len(slots)} tasks to cancel did not all start")
            client.cancel(doomed)
            wait_until(_cancelled_everywhere(client, keys), timeout_s, "the workers did not cancel the running tasks")
        finally:
            gate.set()
        opened = time.perf_counter()
        # Every slot must be free again: one task per slot, all running at the same time.
        gate_again = Event(unique_name("cancel-gate-again"))
        started_again = [unique_name(f"cancel-restarted-{slot}") for slot in range(len(slots))]
        per_slot = [
            client.submit(_gated_square, slot, gate_again.name, started_again[slot], timeout_s, pure=False)
            for slot in range(len(slots))
        ]
        try:
            wait_events(
                started_again,
                timeout_s,
                f"after cancelled tasks raised, not all {len(slots)} thread slots took new work: a slot stayed busy"
                " (the distributed#5497 class)",
            )
        finally:
            gate_again.set()
        fan_out = client.map(square, range(tasks), pure=False)
        wait_futures([*per_slot, *fan_out], timeout_s, "the computation after the cancelled tasks raised")
        recover_seconds.append(time.perf_counter() - opened)
        statuses = sorted({future.status for future in doomed})
        check(statuses == ["cancelled"], f"cancelled tasks ended as {statuses}, expected all cancelled")
        check_results(client.gather(per_slot), [slot * slot for slot in range(len(slots))], "one task per slot")
        check_results(client.gather(fan_out), [i * i for i in range(tasks)], "fan-out after the cancellation")
    return {
        "rounds": float(rounds),
        "cancelled_tasks": float(rounds * len(slots)),
        "tasks": float(tasks),
        "recover_seconds_max": max(recover_seconds),
    }


def reschedule_once(tasks: int, timeout_s: float = 60.0) -> dict[str, float]:
    """distributed#6685: a task that raises ``distributed.Reschedule()`` on the worker that will run it again.

    Every task raises ``Reschedule`` on its first attempt (counted by one Event per task) and returns ``index²``
    after. Even-indexed tasks are pinned to one worker each, so they go back to the same worker. All must finish,
    each rescheduled exactly once.
    """
    from distributed import Event, get_client

    client = get_client()
    workers = sorted(enough_workers(client, 1, "reschedule_once"))
    prefix = unique_name("reschedule")
    markers = [f"{prefix}-{index}" for index in range(tasks)]
    started = time.perf_counter()
    futures = [
        client.submit(_reschedule_once, index, markers[index], pure=False, workers=[workers[index % len(workers)]])
        if index % 2 == 0
        else client.submit(_reschedule_once, index, markers[index], pure=False)
        for index in range(tasks)
    ]
    seconds = wait_futures(futures, timeout_s, "tasks that raised Reschedule (the distributed#6685 class)")
    check_results(client.gather(futures), [i * i for i in range(tasks)], "rescheduled tasks")
    rescheduled = 0
    for marker in markers:
        event = Event(marker)
        rescheduled += event.is_set()
        event.clear()  # lets the scheduler forget it
    check(rescheduled == tasks, f"{rescheduled} of {tasks} tasks raised Reschedule on their first attempt")
    return {
        "tasks": float(tasks),
        "rescheduled": float(rescheduled),
        "pinned_tasks": float((tasks + 1) // 2),
        "seconds": seconds,
        "total_seconds": time.perf_counter() - started,
    }


def retire_during_compute(tasks: int, rounds: int = 1, timeout_s: float = 60.0) -> dict[str, float]:
    """distributed#6223 class: ``client.retire_workers`` while a computation runs; the worker must really leave.

    ``tasks`` squares are in memory across the workers; their dependents (``i² + 1``) wait at a gate, so some run
    on the worker being retired. ``retire_workers`` must move that worker's data away and return (a worker stuck in
    ``closing_gracefully`` is an error); then the gate opens and every result must be right, ``Σ (i² + 1)`` in closed
    form. The cluster is scaled back to its size afterwards.
    """
    from distributed import Event, get_client

    client = get_client()
    cluster = _scalable_cluster(client, "retire_during_compute")
    size = len(enough_workers(client, 2, "retire_during_compute"))
    retire_seconds, finish_seconds = [], []
    for _ in range(rounds):
        workers = cluster_workers(client)
        victim = sorted(workers)[0]
        removed = []
        gate, started = Event(unique_name("retire-gate")), Event(unique_name("retire-started"))
        squares = client.map(square, range(tasks), pure=False)
        try:
            wait_futures(squares, timeout_s, "computing the squares before retiring")
            plus_one = client.map(
                _gated_increment, squares, gate=gate.name, started=started.name, gate_timeout=timeout_s
            )
            wait_events([started.name], timeout_s, "the dependents did not start")
            retire_seconds.append(_retire(client, victim, timeout_s))
            removed.append(workers[victim]["name"])
            opened = time.perf_counter()
            gate.set()
            wait_futures(plus_one, timeout_s, "the computation after retiring a worker")
            finish_seconds.append(time.perf_counter() - opened)
            results = client.gather(plus_one)
        finally:
            gate.set()
            restore_workers(client, cluster, removed, size, timeout_s)
        check_results(results, [i * i + 1 for i in range(tasks)], "i² + 1 after retiring a worker")
        total = sum(results)
        expected = sum_of_squares(tasks) + tasks
        check(total == expected, f"Σ (i² + 1) for i < {tasks}: got {total}, expected {expected}")
        del squares, plus_one
    return {
        "rounds": float(rounds),
        "tasks": float(tasks),
        "retire_seconds_max": max(retire_seconds),
        "finish_seconds_max": max(finish_seconds),
    }


def seceding_under_queuing(tasks: int, worker_saturation: float = 1.0, timeout_s: float = 60.0) -> dict[str, float]:
    """distributed#7223: root-ish tasks that ``secede`` under queuing; the freed thread slot must be used.

    Queuing is switched on at the running scheduler (``WORKER_SATURATION``, restored afterwards). A root-ish
    fan-out of ``tasks`` parents fills every thread and queues the rest; at the gate each parent enters
    ``worker_client()`` (secedes), submits a child ``i²`` and waits for it. All must finish with ``i² + i``.
    """
    from distributed import Event, get_client

    client = get_client()
    previous = _set_worker_saturation(client, worker_saturation)
    try:
        gate, started = Event(unique_name("secede-gate")), Event(unique_name("secede-started"))
        parents = client.map(
            _seceding_parent, range(tasks), gate=gate.name, started=started.name, gate_timeout=timeout_s, pure=False
        )
        try:
            wait_events([started.name], timeout_s, "the seceding tasks did not start")
            queued = int(client.run_on_scheduler(_queued_count))
        finally:
            gate.set()
        seconds = wait_futures(parents, timeout_s, "tasks that seceded under queuing (the distributed#7223 class)")
        check_results(client.gather(parents), [i * i + i for i in range(tasks)], "seceding parents")
    finally:
        if previous is not None:
            client.run_on_scheduler(_swap_worker_saturation, value=previous)
    return {"tasks": float(tasks), "seconds": seconds, **_saturation_metrics(worker_saturation, previous, queued)}


def resubmit_while_queued(
    tasks: int, rounds: int = 3, worker_saturation: float = 1.0, timeout_s: float = 60.0
) -> dict[str, float]:
    """distributed#7200: the same keys released and resubmitted quickly while queued.

    A root-ish fan-out with explicit keys, gated so every thread runs one and the rest are queued, is released
    (every reference dropped) and resubmitted with the same keys ``rounds`` times; then the gate opens and it is
    released and resubmitted ``rounds`` more times while tasks finish — the race of a worker's task-finished with
    the scheduler's free-keys. The last submission must finish with ``i²`` for every key.
    """
    from distributed import Event, get_client

    client = get_client()
    previous = _set_worker_saturation(client, worker_saturation)
    token = uuid.uuid4().hex
    keys = [f"blessing-resubmit-{index}-{token}" for index in range(tasks)]
    gate, started = Event(unique_name("resubmit-gate")), Event(unique_name("resubmit-started"))

    def submit() -> list[Any]:
        futures: list[Any] = client.map(
            _gated_square, range(tasks), key=keys, gate=gate.name, started=started.name, gate_timeout=timeout_s
        )
        return futures

    try:
        futures = submit()
        try:
            wait_events([started.name], timeout_s, "the fan-out did not start")
            queued = int(client.run_on_scheduler(_queued_count))
            for _ in range(rounds):
                del futures  # releases every key
                futures = submit()
        finally:
            gate.set()
        for _ in range(rounds):
            del futures
            futures = submit()
        seconds = wait_futures(futures, timeout_s, "keys resubmitted while queued (the distributed#7200 class)")
        check_results(client.gather(futures), [i * i for i in range(tasks)], "resubmitted keys")
    finally:
        gate.set()
        if previous is not None:
            client.run_on_scheduler(_swap_worker_saturation, value=previous)
    return {
        "tasks": float(tasks),
        "resubmissions": float(2 * rounds),
        "seconds": seconds,
        **_saturation_metrics(worker_saturation, previous, queued),
    }


def _p2p_collection(operation: str, rows_per_partition: int, partitions: int, keys: int) -> tuple[Any, Any]:
    """The P2P shuffle (or hash join) of the generated rows, and the pandas meta of its partitions."""
    meta = _keyed_partition(0, 0, keys)
    frame = frame_from_partitions(_keyed_partition, partitions, meta, rows_per_partition=rows_per_partition, keys=keys)
    if operation == "shuffle":
        return frame.shuffle("key", npartitions=partitions, **{shuffle_keyword(type(frame).shuffle): "p2p"}), meta
    table_meta = _key_table_partition(0, 1, 0)
    table = frame_from_partitions(_key_table_partition, partitions, table_meta, partitions=partitions, keys=keys)
    method = {shuffle_keyword(type(frame).merge): "p2p"}
    merged = frame.merge(table, on="key", how="inner", npartitions=partitions, broadcast=False, **method)
    return merged, meta.merge(table_meta, on="key", how="inner")


def _check_key_counts(counts: Any, rows: int, keys: int, operation: str) -> None:
    """Per-key summaries of every output partition against the closed forms (see ``p2p_worker_replaced``)."""
    import numpy as np

    split = counts["key"][counts["key"].duplicated()]
    check(split.empty, f"keys {sorted(set(split.tolist()))[:5]} are in more than one output partition")
    counts = counts.sort_values("key")
    every_key = np.arange(keys)
    per_key = rows // keys + (every_key < rows % keys)
    expected_x = per_key * every_key + keys * per_key * (per_key - 1) // 2
    got_keys = counts["key"].to_numpy()
    check(np.array_equal(got_keys, every_key), f"output keys: {len(got_keys)} distinct, expected {keys}")
    check_results(counts["rows"].tolist(), per_key.tolist(), f"rows per key after the P2P {operation}")
    check_results(counts["x_sum"].tolist(), expected_x.tolist(), f"Σ x per key after the P2P {operation}")
    if operation == "merge":
        check_results(counts["y_sum"].tolist(), (every_key * per_key).tolist(), "Σ y per key after the P2P merge")


def p2p_worker_replaced(
    operation: str, rows: int, partitions: int, keys: int = 100, timeout_s: float = 60.0
) -> dict[str, float]:
    """distributed#8088 / #8411 class: a worker replaced while a P2P shuffle (or P2P hash join) is in flight.

    ``rows`` rows ``j`` (``key = j % keys``, ``x = j``) are shuffled on ``key`` with the p2p method — or, with
    ``operation: merge``, joined by a P2P hash join to a table of one row per key (``y = key``). Each output
    partition is summarised per key behind a gate: once a summary has started, the transfers are done and outputs
    are being read, and the first worker is retired. The gate then opens and a replacement worker is added while the
    restarted shuffle runs. Every key must be in exactly one output partition with ``c(k)`` rows,
    ``Σ x = c k + keys · c (c - 1) / 2`` (and ``Σ y = k c``), where ``c(k)`` counts ``j < rows`` with ``j ≡ k``.
    """
    from distributed import Event, get_client

    if operation not in ("shuffle", "merge"):
        raise ValueError(f"operation must be 'shuffle' or 'merge', got {operation!r}")
    client = get_client()
    cluster = _scalable_cluster(client, "p2p_worker_replaced")
    workers = enough_workers(client, 2, "p2p_worker_replaced")
    size = len(workers)
    victim = sorted(workers)[0]
    rows_per_partition = max(1, rows // partitions)
    rows = rows_per_partition * partitions
    result, meta = _p2p_collection(operation, rows_per_partition, partitions, keys)
    gate, started = Event(unique_name("p2p-gate")), Event(unique_name("p2p-started"))
    summary = result.map_partitions(
        _gated_key_summary,
        gate=gate.name,
        started=started.name,
        gate_timeout=timeout_s,
        meta=_key_summary(meta),
        enforce_metadata=False,
    )
    removed: list[Any] = []
    restored = False
    try:
        future = client.compute(summary)
        wait_events([started.name], timeout_s, f"the P2P {operation} did not reach its outputs")
        retire_seconds = _retire(client, victim, timeout_s)
        removed.append(workers[victim]["name"])
        replaced = time.perf_counter()
        gate.set()
        restore_workers(client, cluster, removed, size, timeout_s)
        restored = True
        try:
            counts = future.result(timeout=timeout_s)
        except (TimeoutError, asyncio.TimeoutError) as error:
            raise TimeoutError(
                f"the P2P {operation} did not finish within {timeout_s:g} s after a worker was replaced (the"
                " distributed#8088 / #8411 class)"
            ) from error
        finish_seconds = time.perf_counter() - replaced
    finally:
        gate.set()
        if not restored:
            restore_workers(client, cluster, removed, size, timeout_s)
    _check_key_counts(counts, rows, keys, operation)
    return {
        "rows": float(rows),
        "partitions": float(partitions),
        "retire_seconds": retire_seconds,
        "finish_seconds": finish_seconds,
    }


def queued_dependency_released(tasks: int, worker_saturation: float = 1.0, timeout_s: float = 60.0) -> dict[str, float]:
    """distributed#8702: the dependency of queued tasks goes from memory to released when its worker is removed.

    Every other worker's threads are held by blockers at a gate, so only the first worker runs anything: it computes
    a dependency (``7²``) and starts ``tasks`` root-ish dependents (``7² + i²``) that wait at the gate, the rest
    queued — the dependency's only copy is on that worker. That worker is removed abruptly (its data lost), the
    client drops its reference to the dependency, the gate opens and a replacement worker joins. Everything must
    finish with the right answers.
    """
    from distributed import Event, get_client

    client = get_client()
    cluster = _scalable_cluster(client, "queued_dependency_released")
    workers = enough_workers(client, 2, "queued_dependency_released")
    size = len(workers)
    victim = sorted(workers)[0]
    removed: list[Any] = []
    restored = False
    gate, started = Event(unique_name("dependency-gate")), Event(unique_name("dependency-started"))
    previous = _set_worker_saturation(client, worker_saturation)
    try:
        others = [address for address in sorted(workers)[1:] for _ in range(int(workers[address]["nthreads"]))]
        blocked = [unique_name(f"dependency-blocker-{slot}") for slot in range(len(others))]
        blockers = [
            client.submit(_gated_square, slot, gate.name, blocked[slot], timeout_s, workers=[address], pure=False)
            for slot, address in enumerate(others)
        ]
        wait_events(blocked, timeout_s, "the blockers on the other workers did not start")
        # A loose restriction: it starts on the victim, and is computed again elsewhere once the victim is gone.
        dependency = client.submit(square, 7, workers=[victim], allow_other_workers=True, pure=False)
        wait_futures([dependency], timeout_s, "computing the dependency")
        dependents = client.map(
            _gated_dependent,
            range(tasks),
            dependency=dependency,
            gate=gate.name,
            started=started.name,
            gate_timeout=timeout_s,
            pure=False,
        )
        wait_events([started.name], timeout_s, "the dependents did not start")
        queued = int(client.run_on_scheduler(_queued_count))
        holders = client.who_has([dependency])[dependency.key]
        if list(holders) != [victim]:
            raise RuntimeError(f"set-up: the dependency should be on {victim} only, it is on {sorted(holders)}")
        client.run_on_scheduler(_remove_worker, address=victim)
        removed.append(workers[victim]["name"])
        del dependency
        opened = time.perf_counter()
        gate.set()
        try:
            restore_workers(client, cluster, removed, size, timeout_s)
        except TimeoutError as error:
            raise TimeoutError(f"{error} after the dependency's worker was removed (distributed#8702 class)") from error
        finally:
            restored = True
        wait_futures(dependents, timeout_s, "dependents of a released dependency (the distributed#8702 class)")
        seconds = time.perf_counter() - opened
        results = client.gather(dependents)
        wait_futures(blockers, timeout_s, "the blockers")
    finally:
        gate.set()
        if previous is not None:
            client.run_on_scheduler(_swap_worker_saturation, value=previous)
        if not restored:
            restore_workers(client, cluster, removed, size, timeout_s)
    check_results(results, [49 + i * i for i in range(tasks)], "7² + i² after the worker was removed")
    return {"tasks": float(tasks), "seconds": seconds, **_saturation_metrics(worker_saturation, previous, queued)}
