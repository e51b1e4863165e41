"""System workloads: spilling to disk, work stealing, adaptive scaling and the futures API.

They exercise the scheduler and the workers more than any library: each checks its answer against a closed form
and returns what the system did (bytes spilled, how tasks spread over workers, seconds to scale) as extra numbers.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from typing import Any, Optional

from framework.in_runtime.checks import check, check_close, check_results

# ---------------------------------------------------------------------------------------------------------------
# Helpers run on the cluster (module-level functions: shipped by value to remote clusters with this module)


def _antithetic_block(seed: int, block_id: Optional[tuple[int, ...]] = None, length: int = 2) -> Any:
    """Random uniforms in pairs ``u, 1 - u``: incompressible bytes that sum to ``length / 2`` (to rounding)."""
    import numpy as np

    half = np.random.default_rng([seed, block_id[0] if block_id else 0]).random(length // 2)
    block = np.empty(length, dtype="float64")
    block[0::2] = half
    block[1::2] = 1.0 - half
    return block


def _block_sum(block: Any) -> Any:
    import numpy as np

    return np.array([block.sum()])


def _spill_state(dask_worker: Any) -> dict[str, Any]:
    """A worker's identity, its spill counters and how many bytes it keeps in memory before spilling."""
    data = dask_worker.data
    metrics = getattr(data, "cumulative_metrics", None)
    state: dict[str, Any] = {"id": str(dask_worker.id)}
    if metrics is None:
        state["missing"] = f"{type(data).__name__} keeps no cumulative spill counters"
        return state
    manager = getattr(dask_worker, "memory_manager", None)
    limit = getattr(manager, "memory_limit", None) or 0
    fraction = getattr(manager, "memory_target_fraction", False) or getattr(manager, "memory_spill_fraction", False)
    # The SpillBuffer's own target (zict.Buffer.n) and the process-memory threshold: spilling starts at the lower.
    capacity = min(getattr(data, "n", limit), int(limit * fraction)) if fraction else getattr(data, "n", 0)
    state.update(
        written_bytes=float(metrics.get(("disk-write", "bytes"), 0.0)),
        read_bytes=float(metrics.get(("disk-read", "bytes"), 0.0)),
        capacity_bytes=float(capacity),
    )
    return state


def _swap_allowed_failures(dask_scheduler: Any, value: int) -> int:
    """Set the scheduler's allowed_failures; return the previous value."""
    previous = int(dask_scheduler.allowed_failures)
    dask_scheduler.allowed_failures = value
    return previous


def _keys_held(dask_worker: Any, prefix: str) -> int:
    return sum(1 for key in list(dask_worker.data) if prefix in str(key))


def _worker_address() -> str:
    from distributed import get_worker

    return str(get_worker().address)


def _root(nbytes: int) -> bytes:
    return b"x" * nbytes


def _leaf(root: bytes, index: int) -> tuple[int, str]:
    return len(root) + index, _worker_address()


def _sleep_task(index: int, seconds: float) -> tuple[int, str]:
    time.sleep(seconds)
    return index, _worker_address()


def _straggling_task(index: int, seconds: float, straggler: str, slowdown: float) -> tuple[int, str]:
    where = _worker_address()
    time.sleep(seconds * (slowdown if where == straggler else 1.0))
    return index, where


def _gated_square(index: int, gate: str, seconds: float, gate_timeout: float) -> int:
    from distributed import Event

    Event(gate).wait(timeout=gate_timeout)
    time.sleep(seconds)
    return index * index


def _square(index: int) -> int:
    return index * index


def _total(values: list[int]) -> int:
    return sum(values)


# ---------------------------------------------------------------------------------------------------------------
# On the client


def _worker_ids(client: Any) -> dict[str, str]:
    """Worker address → ``Worker.id`` (unique per worker instance: a restarted worker gets a new one)."""
    return {address: str(worker_id) for address, worker_id in client.run(lambda dask_worker: dask_worker.id).items()}


def _check_same_workers(before: dict[str, str], after: dict[str, str]) -> None:
    lost = sorted(set(before.items()) - set(after.items()))
    joined = sorted(set(after.items()) - set(before.items()))
    check(
        not lost and not joined,
        f"workers changed during the case: lost {[a for a, _ in lost]}, joined {[a for a, _ in joined]}"
        " — a worker died or was replaced, so its data was recomputed instead of spilled and read back",
    )


def _shares(where: list[str], workers: list[str]) -> dict[str, float]:
    """Fraction of ``where`` (worker address per task) that each of ``workers`` ran (0 for an idle worker)."""
    counts = Counter(where)
    return {worker: counts.get(worker, 0) / max(len(where), 1) for worker in workers}


def _share_metrics(shares: dict[str, float]) -> dict[str, float]:
    return {
        "workers": float(len(shares)),
        "workers_used": float(sum(1 for share in shares.values() if share > 0)),
        "min_worker_share": min(shares.values()),
        "max_worker_share": max(shares.values()),
    }


def _check_sum_of_squares(total: int, n: int) -> None:
    """Σ i² for i < n is (n - 1) n (2n - 1) / 6, compared exactly (Python integers)."""
    expected = (n - 1) * n * (2 * n - 1) // 6
    check(total == expected, f"sum of squares of 0..{n - 1}: got {total}, expected {expected}")


def _check_every_worker_ran(shares: dict[str, float], min_share_of_even: float, what: str) -> None:
    even = 1 / len(shares)
    idle = {worker: share for worker, share in shares.items() if share < min_share_of_even * even}
    check(
        not idle,
        f"{what}: worker(s) {sorted(idle)} ran {', '.join(f'{s:.1%}' for _, s in sorted(idle.items()))} of the"
        f" tasks, below {min_share_of_even:g} × an even share ({even:.1%}): the load did not spread over all workers",
    )


def _workers(client: Any) -> list[str]:
    # client.nthreads() asks the scheduler now; scheduler_info() can return an identity its periodic refresh
    # just replaced with one that lists no workers (distributed 2026.x), so it is not used for worker lists here.
    return sorted(client.nthreads())


# ---------------------------------------------------------------------------------------------------------------
# Spill


def spill_reduce(
    target_bytes: int,
    chunk_bytes: Any = "64MiB",
    seed: int = 0,
    min_spill_ratio: float = 0.95,
    max_spill_ratio: float = 2.5,
) -> dict[str, float]:
    """Persist ``target_bytes`` of random data (more than the workers keep in memory), then reduce it in one pass.

    The data are uniforms in pairs ``u, 1 - u``: incompressible, yet every chunk sums to half its length (to
    rounding), so each chunk's sum and the total have closed forms. The scheduler's ``allowed_failures`` is 0 for
    the case, so a worker killed while computing is an error rather than a silent retry, and the workers must be the
    same ones afterwards (a worker restarted by its nanny has a new id).

    The spill counters (bytes written to disk, from each worker's SpillBuffer) must show that at least what cannot
    fit — the data minus the workers' spill thresholds, × ``min_spill_ratio`` — went to disk, and at most
    ``max_spill_ratio`` × the data: a chunk is written at most twice, once when persisting pushes it out of memory
    and once more if, read back for the reduction (which drops its disk copy), it is pushed out again by a later
    read. Where the workers keep no spill counters (no memory limit, or a distributed release without
    ``SpillBuffer.cumulative_metrics``) only the answer is checked.
    """
    import dask
    import dask.array as da
    import numpy as np
    from dask.utils import format_bytes, parse_bytes
    from distributed import futures_of, get_client, wait

    client = get_client()
    block_length = max(2, parse_bytes(chunk_bytes) // 8 // 2 * 2)  # even: whole pairs
    blocks = max(1, -(-int(target_bytes) // (block_length * 8)))
    x = da.map_blocks(
        _antithetic_block,
        seed,
        length=block_length,
        chunks=((block_length,) * blocks,),
        dtype="float64",
        meta=np.array((), dtype="float64"),
    )
    states_before = client.run(_spill_state)
    workers_before = _worker_ids(client)
    previous_allowed_failures = client.run_on_scheduler(_swap_allowed_failures, value=0)
    persisted = None
    try:
        started = time.perf_counter()
        persisted = x.persist()
        wait(persisted)
        persist_seconds = time.perf_counter() - started
        # One pass over the data: each chunk's sum, and their tree reduction (what persisted.sum() does inside).
        sums = persisted.map_blocks(_block_sum, chunks=((1,) * blocks,))
        block_sums, total = dask.compute(sums, sums.sum())
        reduce_seconds = time.perf_counter() - started - persist_seconds
        states_after = client.run(_spill_state)
        workers_after = _worker_ids(client)
    finally:
        client.run_on_scheduler(_swap_allowed_failures, value=previous_allowed_failures)
        if persisted is not None:
            # Cancel rather than drop references: derived collections (``sums``) still hold the futures.
            client.cancel(futures_of(persisted))
            _wait_released(client, x.name)

    _check_same_workers(workers_before, workers_after)
    check_close(block_sums, np.full(blocks, block_length / 2), "sum of each chunk", rtol=1e-9)
    check_close(total, blocks * block_length / 2, "total", rtol=1e-9)
    data_bytes = int(x.nbytes)
    timings = {"data_bytes": float(data_bytes), "persist_seconds": persist_seconds, "reduce_seconds": reduce_seconds}
    missing = sorted(
        {state["missing"] for state in [*states_before.values(), *states_after.values()] if "missing" in state}
    )
    if missing:
        # The answer is checked; the amount spilled cannot be. The runner records why in the row's `missing`.
        print(f"spill_reduce: spilled bytes not checked: {'; '.join(missing)}", file=sys.stderr)  # noqa: T201
        return timings
    written = int(sum(states_after[a]["written_bytes"] - states_before[a]["written_bytes"] for a in states_after))
    read = int(sum(states_after[a]["read_bytes"] - states_before[a]["read_bytes"] for a in states_after))
    capacity = int(sum(state["capacity_bytes"] for state in states_before.values()))
    must_spill = int(max(0, data_bytes - capacity) * min_spill_ratio)
    may_spill = int(max_spill_ratio * data_bytes)
    check(
        must_spill <= written <= may_spill,
        f"spilled {format_bytes(written)} ({written} B) of {format_bytes(data_bytes)} persisted, with"
        f" {format_bytes(capacity)} of spill thresholds: expected between {format_bytes(must_spill)} and"
        f" {format_bytes(may_spill)}",
    )
    return {
        **timings,
        "spilled_bytes": float(written),
        "unspilled_bytes": float(read),
        "spill_thresholds_bytes": float(capacity),
    }


def _wait_released(client: Any, name: str, timeout: float = 60.0) -> None:
    """Wait until no worker holds a chunk of ``name`` (so the next repeat starts with empty workers)."""
    deadline = time.monotonic() + timeout
    while sum(client.run(_keys_held, prefix=name).values()) and time.monotonic() < deadline:
        time.sleep(0.1)


# ---------------------------------------------------------------------------------------------------------------
# Work stealing


def stealing_fan_out(tasks: int, root_bytes: int = 2**20, min_share_of_even: float = 0.25) -> dict[str, float]:
    """Thousands of trivial tasks that all depend on one small root task: they must spread over every worker.

    Each task returns ``len(root) + i`` (checked exactly) and the address of the worker that ran it.
    """
    import dask
    from distributed import get_client

    client = get_client()
    workers = _workers(client)
    root = dask.delayed(_root)(root_bytes)
    leaves = [dask.delayed(_leaf)(root, i) for i in range(tasks)]
    results = dask.compute(*leaves)
    check_results([value for value, _ in results], [root_bytes + i for i in range(tasks)], "leaf results")
    shares = _shares([where for _, where in results], workers)
    _check_every_worker_ran(shares, min_share_of_even, "fan-out")
    return {"tasks": float(tasks), **_share_metrics(shares)}


def stealing_inhomogeneous(
    tasks: int, max_sleep_s: float = 0.05, seed: int = 0, min_share_of_even: float = 0.25
) -> dict[str, float]:
    """Independent tasks sleeping a seeded random 0 – ``max_sleep_s`` each: every worker must take a share.

    Returns the balance efficiency: total sleep ÷ (wall time × worker threads), 1.0 for a perfect balance.
    """
    import dask
    import numpy as np
    from distributed import get_client

    client = get_client()
    workers = _workers(client)
    threads = sum(int(n) for n in client.nthreads().values())
    durations = np.random.default_rng(seed).uniform(0.0, max_sleep_s, tasks)
    started = time.perf_counter()
    results = dask.compute(*[dask.delayed(_sleep_task)(i, float(d)) for i, d in enumerate(durations)])
    wall = time.perf_counter() - started
    check_results([index for index, _ in results], list(range(tasks)), "task results")
    shares = _shares([where for _, where in results], workers)
    _check_every_worker_ran(shares, min_share_of_even, "inhomogeneous tasks")
    return {
        "tasks": float(tasks),
        "balance_efficiency": float(durations.sum()) / (wall * threads),
        **_share_metrics(shares),
    }


def stealing_straggler(tasks: int, sleep_s: float = 0.02, slowdown: float = 10.0) -> dict[str, float]:
    """Equal tasks, but ``slowdown`` × slower on one worker: that worker must end up with fewer tasks than any other.

    The straggler is the first worker by address; each task finds where it runs with ``distributed.get_worker()``.
    """
    import dask
    from distributed import get_client

    client = get_client()
    workers = _workers(client)
    straggler = workers[0]
    results = dask.compute(*[dask.delayed(_straggling_task)(i, sleep_s, straggler, slowdown) for i in range(tasks)])
    check_results([index for index, _ in results], list(range(tasks)), "task results")
    shares = _shares([where for _, where in results], workers)
    others = {worker: share for worker, share in shares.items() if worker != straggler}
    fastest_least = min(others, key=others.__getitem__)
    check(
        shares[straggler] < others[fastest_least],
        f"the straggling worker {straggler} ran {shares[straggler]:.1%} of the tasks, no fewer than"
        f" {fastest_least} ({others[fastest_least]:.1%}): the load did not move away from it",
    )
    return {"tasks": float(tasks), "straggler_share": shares[straggler], **_share_metrics(shares)}


# ---------------------------------------------------------------------------------------------------------------
# Adaptive scaling


def adaptive_scale(
    tasks: int,
    task_seconds: float = 0.1,
    extra_workers: int = 2,
    interval: str = "200ms",
    wait_count: int = 3,
    target_duration: str = "1s",
    scale_timeout_s: float = 60.0,
) -> dict[str, float]:
    """Let a LocalCluster adapt (minimum 1, maximum its size + ``extra_workers``) to a burst of tasks, then idle.

    Tasks wait on a gate (a ``distributed.Event``) until the cluster has grown, so the burst always outlasts the
    scale-up however slowly workers start; then they sleep ``task_seconds`` and return ``i²``. Once all are done
    and the cluster is idle it must shrink to one worker — keeping every result (checked after the scale-down).
    Afterwards adapting stops and the cluster is brought back to its original size, which is checked too.
    """
    import uuid

    from distributed import Event, get_client

    client = get_client()
    cluster = getattr(client, "cluster", None)
    if cluster is None or not hasattr(cluster, "adapt"):
        raise RuntimeError("adaptive_scale needs a client created from a cluster object it can scale (LocalCluster)")
    initial = len(_workers(client))
    maximum = initial + extra_workers
    gate = Event(f"blessing-adaptive-gate-{uuid.uuid4().hex}")
    adaptive = cluster.adapt(
        minimum=1, maximum=maximum, interval=interval, wait_count=wait_count, target_duration=target_duration
    )
    try:
        started = time.perf_counter()
        futures = client.map(
            _gated_square, range(tasks), gate=gate.name, seconds=task_seconds, gate_timeout=scale_timeout_s, pure=False
        )
        peak = _wait_for_workers(client, lambda n: n > initial, scale_timeout_s)
        scale_up_s = time.perf_counter() - started
        gate.set()
        check(
            peak > initial,
            f"the cluster did not scale up within {scale_timeout_s:g} s: {peak} workers"
            f" (started with {initial}, maximum {maximum}) while {tasks} tasks waited",
        )
        while not all(future.done() for future in futures):
            peak = max(peak, len(client.nthreads()))
            time.sleep(0.05)
        done = time.perf_counter()
        low = _wait_for_workers(client, lambda n: n <= 1, scale_timeout_s)
        scale_down_s = time.perf_counter() - done
        check(low <= 1, f"the idle cluster did not scale down to 1 worker within {scale_timeout_s:g} s: {low} left")
        statuses = Counter(future.status for future in futures)
        check(
            statuses == Counter({"finished": tasks}),
            f"task states after scaling down: {dict(statuses)}, expected all {tasks} finished",
        )
        results = client.gather(futures)
        check_results(results, [i * i for i in range(tasks)], "results after scaling down")
        del futures
    finally:
        gate.set()
        restored = _stop_adapting_and_restore(client, cluster, adaptive, initial, scale_timeout_s)
    check(restored == initial, f"the cluster was not restored to {initial} workers after adapting: {restored}")
    return {
        "tasks": float(tasks),
        "scale_up_s": scale_up_s,
        "scale_down_s": scale_down_s,
        "peak_workers": float(peak),
        "initial_workers": float(initial),
    }


def _stop_adapting_and_restore(client: Any, cluster: Any, adaptive: Any, workers: int, timeout: float) -> int:
    """Stop adapting (on the cluster's event loop, and let a scaling step in flight finish), then scale back."""
    from distributed.utils import sync

    async def stop() -> None:
        adaptive.stop(reason="dask-blessing: adaptive_scale is done")

    sync(cluster.loop, stop)
    deadline = time.monotonic() + timeout
    while getattr(adaptive, "_adapting", False) and time.monotonic() < deadline:
        time.sleep(0.05)
    cluster.scale(workers)
    return _wait_for_workers(client, lambda n: n == workers and len(cluster.worker_spec) == workers, timeout)


def _wait_for_workers(client: Any, condition: Any, timeout: float) -> int:
    """Poll the scheduler's worker count until ``condition(count)`` holds or ``timeout``; return the last count."""
    deadline = time.monotonic() + timeout
    while True:
        count = len(client.nthreads())
        if condition(count) or time.monotonic() > deadline:
            return count
        time.sleep(0.05)


# ---------------------------------------------------------------------------------------------------------------
# Futures


def futures_submit(tasks: int) -> dict[str, float]:
    """``tasks`` separate ``client.submit`` calls of ``i²``, and one task summing them on the cluster.

    Each result is checked on the client, and the cluster's sum against the closed form (n - 1) n (2n - 1) / 6.
    """
    from distributed import get_client

    client = get_client()
    started = time.perf_counter()
    futures = [client.submit(_square, i, pure=False) for i in range(tasks)]
    total = client.submit(_total, futures, pure=False)
    results = client.gather(futures)
    total_value = total.result()
    seconds = time.perf_counter() - started
    check_results(results, [i * i for i in range(tasks)], "submitted squares")
    _check_sum_of_squares(total_value, tasks)
    return {"tasks": float(tasks), "tasks_per_second": tasks / seconds}


def futures_map(tasks: int, batch_size: Optional[int] = None) -> dict[str, float]:
    """One ``client.map`` of ``i²`` over ``tasks`` inputs, and one task summing them on the cluster.

    Each result is checked on the client, and the cluster's sum against the closed form (n - 1) n (2n - 1) / 6.
    """
    from distributed import get_client

    client = get_client()
    started = time.perf_counter()
    kwargs = {} if batch_size is None else {"batch_size": batch_size}
    futures = client.map(_square, range(tasks), pure=False, **kwargs)
    total = client.submit(_total, futures, pure=False)
    results = client.gather(futures)
    total_value = total.result()
    seconds = time.perf_counter() - started
    check_results(results, [i * i for i in range(tasks)], "mapped squares")
    _check_sum_of_squares(total_value, tasks)
    return {"tasks": float(tasks), "tasks_per_second": tasks / seconds}
