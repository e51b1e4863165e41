"""Cluster memory while a case runs: peak and mean of the summed resident memory of the worker processes.

Two ways, best first:

- ``rss-probe``: a thread in each worker process reads its own RSS (psutil) every 10 ms into time buckets
  aligned across workers; the client sums the workers bucket by bucket (a worker's last value carried
  forward), so the peak is the peak of the *sum*, at 10 ms resolution. In-process workers share one process
  and are counted once.
- ``memory-sampler``: ``distributed.diagnostics.MemorySampler``, the scheduler's view, refreshed only by
  worker heartbeats (≈ 0.5 s) — too coarse for short cases; used when the probe cannot start.

Standard library, ``distributed`` and ``psutil`` (a dependency of distributed) only: runs in any runtime.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any, Optional

from framework.in_runtime.metrics import ship_by_value

PROBE_INTERVAL_S = 0.01
SAMPLER_INTERVAL_S = 0.1
_ATTRIBUTE = "_dask_blessing_rss_probe"


def _start_probe(dask_worker: Any, interval: float) -> int:
    """Start sampling this worker process's RSS into ``interval``-wide buckets of wall-clock time."""
    import os
    import threading
    import time

    import psutil

    previous = getattr(dask_worker, _ATTRIBUTE, None)
    if previous is not None:
        previous["stop"].set()
    process = psutil.Process()
    # Readers copy the table under the lock: copying a dict is not atomic on Python 3.11 — a garbage collection
    # inside the copy runs gc.callbacks (the health watch installs one), which can hand the GIL to this thread.
    state: dict[str, Any] = {"stop": threading.Event(), "buckets": {}, "pid": os.getpid(), "lock": threading.Lock()}

    def sample() -> None:
        buckets = state["buckets"]
        while True:
            bucket = int(time.time() / interval)
            rss = process.memory_info().rss
            with state["lock"]:
                if rss > buckets.get(bucket, 0):
                    buckets[bucket] = rss
            if state["stop"].wait(interval):
                return

    state["thread"] = threading.Thread(target=sample, name="dask-blessing-rss-probe", daemon=True)
    state["thread"].start()
    setattr(dask_worker, _ATTRIBUTE, state)
    return int(state["pid"])


def _stop_probe(dask_worker: Any) -> Optional[dict[str, Any]]:
    """Stop the probe; return ``{"pid", "buckets"}`` (bucket index → peak RSS in it), or None if none ran."""
    state = getattr(dask_worker, _ATTRIBUTE, None)
    if state is None:
        return None
    state["stop"].set()
    state["thread"].join(timeout=5)
    delattr(dask_worker, _ATTRIBUTE)
    with state["lock"]:
        buckets = dict(state["buckets"])
    return {"pid": state["pid"], "buckets": buckets}


def combine_probes(probes: list[dict[str, Any]]) -> list[int]:
    """Per-process bucketed RSS → the cluster's total per bucket, in time order.

    Each process counts once (in-process workers share one); between its own samples a process keeps its last
    value, and before its first sample it is counted at that first value.
    """
    by_pid: dict[int, dict[int, int]] = {}
    for probe in probes:
        by_pid.setdefault(int(probe["pid"]), {}).update({int(k): int(v) for k, v in probe["buckets"].items()})
    by_pid = {pid: buckets for pid, buckets in by_pid.items() if buckets}
    if not by_pid:
        return []
    timeline = sorted({bucket for buckets in by_pid.values() for bucket in buckets})
    totals = [0] * len(timeline)
    for buckets in by_pid.values():
        current = buckets[min(buckets)]
        for index, bucket in enumerate(timeline):
            current = buckets.get(bucket, current)
            totals[index] += current
    return totals


def memory_summary(samples: list[float], method: str) -> dict[str, Any]:
    """Peak and mean of cluster memory samples (bytes); only the count when there are none."""
    finite = [value for value in samples if value is not None and not math.isnan(value)]
    if not finite:
        return {"memory_samples": 0, "memory_method": method}
    return {
        "peak_memory_bytes": int(max(finite)),
        "mean_memory_bytes": int(sum(finite) / len(finite)),
        "memory_samples": len(finite),
        "memory_method": method,
    }


@contextlib.contextmanager
def sample_memory(client: Any, result: dict[str, Any], missing: dict[str, str]) -> Iterator[None]:
    """Measure cluster memory while the block runs; put peak, mean, sample count and method in ``result``."""
    ship_by_value(__name__)
    probe_problem: Optional[str] = None
    try:
        client.run(_start_probe, interval=PROBE_INTERVAL_S)
    except Exception as error:
        probe_problem = f"{type(error).__name__}: {error}"
    if probe_problem is None:
        try:
            yield
        finally:
            try:
                probes = [p for p in client.run(_stop_probe).values() if p is not None]
            except Exception as error:
                missing["peak_memory_bytes"] = missing["mean_memory_bytes"] = (
                    f"memory probe could not be read: {type(error).__name__}: {error}"
                )
            else:
                result.update(memory_summary([float(v) for v in combine_probes(probes)], "rss-probe"))
                if not result.get("memory_samples"):
                    missing["peak_memory_bytes"] = missing["mean_memory_bytes"] = "memory probe took no sample"
        return
    with _memory_sampler(client, result, missing, probe_problem):
        yield


@contextlib.contextmanager
def _memory_sampler(client: Any, result: dict[str, Any], missing: dict[str, str], why: str) -> Iterator[None]:
    """The fallback: the scheduler's heartbeat-fed view of worker memory."""
    from distributed.diagnostics.memory_sampler import MemorySampler

    sampler = MemorySampler()
    try:
        context = sampler.sample("case", client=client, measure="process", interval=SAMPLER_INTERVAL_S)
        context.__enter__()
    except Exception as error:
        missing["peak_memory_bytes"] = missing["mean_memory_bytes"] = (
            f"memory probe failed ({why}) and MemorySampler failed to start: {error}"
        )
        yield
        return
    try:
        yield
    finally:
        try:
            context.__exit__(None, None, None)
            samples = [float(value) for _, value in sampler.samples.get("case", [])]
        except Exception as error:
            samples = []
            reason = f"MemorySampler failed to stop: {type(error).__name__}: {error}"
        else:
            reason = "no MemorySampler sample: the case ended before the first worker heartbeat"
        result.update(memory_summary(samples, "memory-sampler"))
        if not samples:
            missing["peak_memory_bytes"] = missing["mean_memory_bytes"] = reason


def probe_bytes(dask_worker: Any) -> int:
    """Bytes the probe's own samples hold in this worker's process now (0 when no probe runs).

    Its table grows by one entry every ``PROBE_INTERVAL_S`` while a case runs: ~6 KiB a second, which a soak
    measuring memory growth over minutes subtracts (``workloads/soak.py``) rather than report as the runtime's."""
    import sys

    state = getattr(dask_worker, _ATTRIBUTE, None)
    if state is None:
        return 0
    buckets = state["buckets"]
    with state["lock"]:  # see _start_probe: the copy is not atomic on 3.11
        entries = list(buckets.items())
    return sys.getsizeof(buckets) + sum(sys.getsizeof(key) + sys.getsizeof(value) for key, value in entries)
