"""Recovery workloads: the cluster loses workers — restarted by the client, killed by a signal — and must come back
whole and still give the right answers.

Like the deadlock scenarios of ``workloads/stability.py`` (both are declared in ``workloads/stability.yaml``), each
orders its steps with ``distributed.Event`` gates rather than sleeps, checks every result against a closed form, and
returns what recovery cost (seconds, restarts). A wait that would hang has its own shorter ``timeout_s``, and a
cluster that does not come back is mended before the case fails: the runner runs the next cases on the same cluster.

The gates, bounded waits and cluster-size steps that both modules use live here, under public names.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any, Callable, Optional

from framework.in_runtime.checks import check
from framework.in_runtime.clusters import (
    scheduler_workers as cluster_workers,  # every worker, asked of the scheduler now
)

# ---------------------------------------------------------------------------------------------------------------
# Tasks (module-level functions: shipped by value to remote clusters with this module)


def square(index: int) -> int:
    return index * index


def pass_gate(gate: str, started: str, gate_timeout: float) -> None:
    """Say the task has started, then wait until the client opens ``gate`` (a ``distributed.Event``)."""
    from distributed import Event

    Event(started).set()
    if not Event(gate).wait(timeout=gate_timeout):
        raise TimeoutError(f"gate {gate} was not opened within {gate_timeout:g} s")


def _gated_where(index: int, gate: str, started: str, gate_timeout: float) -> tuple[int, str]:
    """``index²`` and the address of the worker that computed it."""
    from distributed import get_worker

    pass_gate(gate, started, gate_timeout)
    return square(index), str(get_worker().address)


def _merge_side(index: int, side: str, rows_per_partition: int, payload_columns: int, seed: int) -> Any:
    """Rows ``j`` of one side of the merge: left ``key = j, x = j``; right ``key = 2j, y = j``; random payload."""
    import numpy as np
    import pandas as pd

    rows = np.arange(index * rows_per_partition, (index + 1) * rows_per_partition, dtype="int64")
    columns: dict[str, Any] = {"key": rows if side == "left" else 2 * rows, "x" if side == "left" else "y": rows}
    payload = np.random.default_rng([seed, int(side == "left"), index]).random((len(rows), payload_columns))
    columns.update({f"{side}_{column}": payload[:, column] for column in range(payload_columns)})
    return pd.DataFrame(columns)


# Run on the workers


def _spill_written(dask_worker: Any) -> Optional[tuple[str, float]]:
    """(worker id, bytes this worker has spilled to disk), or None when it keeps no spill counters."""
    metrics = getattr(dask_worker.data, "cumulative_metrics", None)
    if metrics is None:
        return None
    return str(dask_worker.id), float(metrics.get(("disk-write", "bytes"), 0.0))


# ---------------------------------------------------------------------------------------------------------------
# On the client (the public steps are shared with workloads.stability)


def unique_name(what: str) -> str:
    """A name for an Event or a key, unique to this execution."""
    return f"blessing-{what}-{uuid.uuid4().hex}"


def enough_workers(client: Any, minimum: int, workload: str) -> dict[str, dict[str, Any]]:
    """The scheduler's workers; a clear error when there are fewer than ``minimum`` (e.g. a case before lost some)."""
    workers = cluster_workers(client)
    if len(workers) < minimum:
        raise RuntimeError(f"{workload} needs at least {minimum} workers; the cluster has {len(workers)}")
    return workers


def wait_until(condition: Callable[[], bool], timeout: float, message: str) -> float:
    """Poll ``condition`` until it holds; raise ``TimeoutError(message)`` after ``timeout`` s. Returns seconds."""
    started = time.perf_counter()
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{message} (waited {timeout:g} s)")
        time.sleep(0.02)
    return time.perf_counter() - started


def wait_futures(futures: Sequence[Any], timeout: float, message: str) -> float:
    """Wait for every future (finished or erred); raise ``TimeoutError`` naming how many were left. Returns seconds."""
    from distributed import wait

    started = time.perf_counter()
    try:
        wait(list(futures), timeout=timeout)
    except (TimeoutError, asyncio.TimeoutError) as error:
        pending = sum(1 for future in futures if not future.done())
        raise TimeoutError(f"{message}: {pending} of {len(futures)} tasks unfinished after {timeout:g} s") from error
    return time.perf_counter() - started


def wait_events(names: Sequence[str], timeout: float, message: str) -> None:
    from distributed import Event

    deadline = time.monotonic() + timeout
    for name in names:
        if not Event(name).wait(timeout=max(0.0, deadline - time.monotonic())):
            raise TimeoutError(f"{message} (waited {timeout:g} s)")


def frame_from_partitions(make_partition: Callable[..., Any], count: int, meta: Any, /, **params: Any) -> Any:
    """A Dask DataFrame of ``count`` partitions: partition ``i`` is ``make_partition(i, **params)``, like ``meta``."""
    import dask.dataframe as dd

    return dd.from_map(make_partition, range(count), meta=meta, enforce_metadata=False, **params)


def sum_of_squares(count: int) -> int:
    """Σ i² for i < ``count`` in closed form: (count - 1) count (2 count - 1) / 6."""
    return (count - 1) * count * (2 * count - 1) // 6


def worker_gone(client: Any, address: str) -> Callable[[], bool]:
    return lambda: address not in cluster_workers(client)


def restore_workers(client: Any, cluster: Any, removed_names: Sequence[Any], size: int, timeout: float) -> None:
    """Drop the removed workers from the cluster's spec (as Adaptive does after retiring), then scale back."""
    if removed_names:
        cluster.sync(cluster.scale_down, list(removed_names))
    cluster.scale(size)

    def restored() -> bool:
        workers = cluster_workers(client)
        running = all(info.get("status", "running") == "running" for info in workers.values())
        return len(cluster.worker_spec) == size and len(workers) == size and running

    wait_until(restored, timeout, f"the cluster did not come back to {size} running workers")


def _replace_lost_workers(client: Any, size: int, timeout: float) -> str:
    """After a restart (of the cluster, or of one worker by its nanny) that lost workers: replace them (LocalCluster).

    On a LocalCluster the usual cause is distributed#8534 (open): for every removed worker the cluster arms a
    ``distributed.deploy.lost-worker-timeout`` timer (15 s) that closes the worker's nanny for good if no worker of that
    name is registered when it fires — which a later restart's gap between removal and re-registration can be.
    """
    workers = cluster_workers(client)
    cluster = getattr(client, "cluster", None)
    if cluster is None or not hasattr(cluster, "worker_spec") or not hasattr(cluster, "scale_down"):
        return f"{len(workers)} of {size} workers came back"
    registered = {info.get("name") for info in workers.values()}
    missing = [name for name in list(cluster.worker_spec) if name not in registered]
    restore_workers(client, cluster, missing, size, timeout)
    return (
        f"{len(workers)} of {size} workers came back (on a LocalCluster most likely distributed#8534: a lost-worker"
        f" timer armed by an earlier removal closed a restarting nanny); workers {missing} were replaced so the next"
        " cases have a whole cluster"
    )


def _wait_for_nanny(client: Any, victim: str, size: int, timeout: float) -> None:
    """Wait until the killed worker's nanny has brought the cluster back to ``size``; else replace it and fail."""
    try:
        wait_until(lambda: len(cluster_workers(client)) == size, timeout, f"the nanny did not restart {victim}")
    except TimeoutError as error:
        raise RuntimeError(f"{error}; {_replace_lost_workers(client, size, timeout)}") from error


def _separate_local_processes(client: Any, workload: str) -> dict[str, int]:
    """Worker address → pid; refuses workers in this process, on another machine, or without a nanny."""
    pids: dict[str, int] = client.run(os.getpid)
    hosts: dict[str, str] = client.run(socket.gethostname)
    nannies = {address: info.get("nanny") for address, info in cluster_workers(client).items()}
    problem = None
    if os.getpid() in pids.values():
        problem = "the workers run in this process (processes: false)"
    elif set(hosts.values()) != {socket.gethostname()}:
        problem = f"workers run on {sorted(set(hosts.values()))}, not on this machine ({socket.gethostname()})"
    elif not all(nannies.values()):
        problem = "some workers have no nanny to restart them"
    if problem:
        raise RuntimeError(
            f"{workload} kills a worker process with SIGKILL: it needs worker processes with nannies on this machine"
            f" (a local profile with processes: true), but {problem}"
        )
    return pids


# ---------------------------------------------------------------------------------------------------------------
# Restarts, then a merge that spills


def _restart(client: Any, number: int, restarts: int, size: int, timeout: float) -> float:
    """``client.restart()``; seconds it took. A restart that loses workers is an error (and the cluster is mended)."""
    started = time.perf_counter()
    try:
        client.restart(timeout=timeout)
    except Exception as error:
        back = _replace_lost_workers(client, size, timeout)
        raise RuntimeError(
            f"client.restart() {number} of {restarts} failed ({type(error).__name__}: {error}); {back}"
        ) from error
    seconds = time.perf_counter() - started
    workers_now = len(cluster_workers(client))
    check(workers_now == size, f"after client.restart() the cluster has {workers_now} workers, expected {size}")
    return seconds


def _merge_frame(side: str, partitions: int, rows_per_partition: int, payload_columns: int, seed: int) -> Any:
    meta = _merge_side(0, side, 0, payload_columns, seed)
    params = {"side": side, "rows_per_partition": rows_per_partition, "payload_columns": payload_columns, "seed": seed}
    return frame_from_partitions(_merge_side, partitions, meta, **params)


def merge_spill_after_restarts(
    target_bytes: int,
    partitions: int,
    restarts: int = 2,
    payload_columns: int = 4,
    seed: int = 0,
    expect_spill: bool = False,
    timeout_s: float = 60.0,
) -> dict[str, float]:
    """``client.restart()`` ``restarts`` times, then persist two generated frames and merge them (coiled/benchmarks'
    ``repeated_merge_spill``).

    The frames total ``target_bytes``: left rows ``j`` have ``key = x = j``, right rows ``key = 2j, y = j``, both
    with ``payload_columns`` random floats. The inner merge on ``key`` keeps the ``c = ⌈L / 2⌉`` even keys below
    ``L`` (the rows per side), so its row count is ``c``, ``Σ x = c (c - 1)`` and ``Σ y = c (c - 1) / 2`` — compared
    exactly. With ``expect_spill`` the workers' spill counters must show bytes written to disk (sizes that persist
    more than the workers keep in memory); without counters (no memory limit) only the answer is checked.
    """
    import dask
    from distributed import futures_of, get_client

    client = get_client()
    nannies = [info.get("nanny") for info in enough_workers(client, 1, "merge_spill_after_restarts").values()]
    if not all(nannies):
        raise RuntimeError(
            "merge_spill_after_restarts restarts the workers, which needs workers with nannies: this cluster's"
            " workers have none (processes: false) — run it on a profile with worker processes"
        )
    size = len(nannies)
    restart_seconds = [_restart(client, number, restarts, size, timeout_s) for number in range(1, restarts + 1)]
    bytes_per_row = 8 * (2 + payload_columns)
    rows_per_partition = max(1, int(target_bytes) // 2 // bytes_per_row // partitions)
    rows = rows_per_partition * partitions
    frames = [_merge_frame(side, partitions, rows_per_partition, payload_columns, seed) for side in ("left", "right")]
    spill_before = client.run(_spill_written)
    persisted: list[Any] = []
    try:
        started = time.perf_counter()
        left, right = dask.persist(*frames)
        persisted = futures_of(left) + futures_of(right)
        wait_futures(persisted, timeout_s, "persisting the two frames after the restarts")
        persist_seconds = time.perf_counter() - started
        merged = left.merge(right, on="key", how="inner")
        count, x_sum, y_sum = dask.compute(merged.x.count(), merged.x.sum(), merged.y.sum())
        merge_seconds = time.perf_counter() - started - persist_seconds
        spill_after = client.run(_spill_written)
    finally:
        client.cancel(persisted)
    matches = (rows + 1) // 2
    check(int(count) == matches, f"merged rows: got {int(count)}, expected {matches} (even keys below {rows})")
    check(int(x_sum) == matches * (matches - 1), f"merged Σ x: got {int(x_sum)}, expected {matches * (matches - 1)}")
    expected_y = matches * (matches - 1) // 2
    check(int(y_sum) == expected_y, f"merged Σ y: got {int(y_sum)}, expected {expected_y}")
    metrics = {
        "restarts": float(restarts),
        "restart_seconds_max": max(restart_seconds, default=0.0),
        "restart_seconds_total": float(sum(restart_seconds)),
        "rows_per_side": float(rows),
        "merged_rows": float(matches),
        "data_bytes": float(2 * rows * bytes_per_row),
        "persist_seconds": persist_seconds,
        "merge_seconds": merge_seconds,
    }
    if any(value is None for value in [*spill_before.values(), *spill_after.values()]):
        print("merge_spill_after_restarts: workers keep no spill counters; spill not measured", file=sys.stderr)  # noqa: T201
        return metrics
    before = dict(spill_before.values())
    spilled = sum(written - before.get(worker_id, 0.0) for worker_id, written in spill_after.values())
    if expect_spill:
        check(
            spilled > 0,
            f"persisted {2 * rows * bytes_per_row} B in {size} workers and merged them, but nothing was spilled to"
            " disk: raise target_bytes above the workers' spill thresholds",
        )
    return {**metrics, "spilled_bytes": float(spilled)}


# ---------------------------------------------------------------------------------------------------------------
# A worker process killed while its task runs


def worker_death_in_flight(tasks: int, kills: int = 1, timeout_s: float = 60.0) -> dict[str, float]:
    """A task runs on a worker (it sets an Event and waits at a gate); the worker's process gets SIGKILL.

    ``tasks`` squares computed beforehand are held in memory across the workers, so the killed worker takes some
    of them with it. Once the scheduler has removed the dead worker the gate opens: the in-flight task must run again
    on another worker and return ``index²``, the lost squares must be recomputed (``Σ i²`` in closed form), and the
    nanny must bring the cluster back to its size. Repeated ``kills`` times.
    """
    import signal

    from distributed import Event, get_client

    client = get_client()
    enough_workers(client, 2, "worker_death_in_flight")
    pids = _separate_local_processes(client, "worker_death_in_flight")
    size = len(pids)
    recover_seconds, restart_seconds = [], []
    for kill in range(kills):
        squares = client.map(square, range(tasks), pure=False)
        wait_futures(squares, timeout_s, "computing the squares before the kill")
        gate, started = Event(unique_name("death-gate")), Event(unique_name("death-started"))
        index = 1000 + kill
        in_flight = client.submit(_gated_where, index, gate.name, started.name, timeout_s, pure=False)
        try:
            wait_events([started.name], timeout_s, "the in-flight task did not start")
            running_on = [address for address, keys in client.processing().items() if in_flight.key in keys]
            check(len(running_on) == 1, f"the in-flight task is processing on {running_on}, expected one worker")
            victim = running_on[0]
            pid = client.run(os.getpid, workers=[victim])[victim]
            killed_at = time.perf_counter()
            os.kill(pid, signal.SIGKILL)
            wait_until(worker_gone(client, victim), timeout_s, f"killed worker {victim} was not removed")
        finally:
            gate.set()
        try:
            value, where = in_flight.result(timeout=timeout_s)
            recover_seconds.append(time.perf_counter() - killed_at)
            wait_futures(squares, timeout_s, "recomputing the squares the killed worker held")
            total = sum(client.gather(squares))
        finally:  # the cluster is whole again before anything is judged
            _wait_for_nanny(client, victim, size, timeout_s)
            restart_seconds.append(time.perf_counter() - killed_at)
        check(value == index * index, f"in-flight task re-run after the kill: got {value}, expected {index * index}")
        check(where != victim, f"the in-flight task's result came from the killed worker {victim}")
        expected = sum_of_squares(tasks)
        check(total == expected, f"Σ i² for i < {tasks} after the kill: got {total}, expected {expected}")
        del squares, in_flight
    return {
        "kills": float(kills),
        "tasks": float(tasks),
        "recover_seconds_max": max(recover_seconds),
        "worker_restart_seconds_max": max(restart_seconds),
    }
