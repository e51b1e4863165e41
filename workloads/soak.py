"""Soak workloads: one cluster kept busy or idle for minutes, and what that does to its memory; and a graceful
scale-down under load that must lose no data.

``leak_slope`` repeats another workload's function for ``soak_seconds`` and measures memory after each repeat;
``idle_memory_growth`` leaves a cluster idle and samples its memory. Both return the Theil–Sen slope of each memory
series with its 95 % interval (``framework/in_runtime/trend.py``) as extra numbers, named
``{series}_slope_{unit}``, ``{series}_slope_low_{unit}`` and ``{series}_slope_high_{unit}``; ``series`` is

- ``unmanaged``: distributed's unmanaged memory (``MemoryState.unmanaged``: process memory − managed memory),
  summed over the workers, computed on each worker at the moment of the sample (the scheduler's copy lags a
  heartbeat and a system-monitor tick behind). A process holding several workers counts once, less all their
  managed bytes;
- ``worker_rss``: the resident memory of the worker processes, each process once;
- ``scheduler_rss``: the scheduler's process (on a LocalCluster the client's and the runner's process too).

They judge nothing: a slope is a measurement, and the criteria (``bless``) hold it against a limit. The case fails
only when the answer of a repeat is wrong or a worker was replaced during the soak (a nanny restarting a worker
that exceeded its memory limit is what a fast leak looks like, and it breaks the series).

``scale_down_keeps_data`` retires a worker, or scales the LocalCluster down, while a computation runs on scattered
data and computed results held by every worker (distributed#8522): each must still be held, unchanged and not
recomputed, and the computation's answer right.
"""

from __future__ import annotations

import concurrent.futures
import difflib
import importlib
import inspect
import os
import time
from collections.abc import Sequence
from typing import Any, Callable

from framework.in_runtime.checks import WorkloadCheckFailed, check
from framework.in_runtime.clusters import scheduler_workers
from framework.in_runtime.trend import Trend, TrendError, theil_sen
from workloads.recovery import (
    enough_workers,
    restore_workers,
    square,
    sum_of_squares,
    unique_name,
    wait_events,
    wait_futures,
    wait_until,
)

CONFIDENCE = 0.95
# What a data loss by a removal method is known to come from (said in the failure).
KNOWN_CAUSES = {
    "scale": "; LocalCluster.scale retires none of the workers it drops: distributed#4069, #5577 — a known finding,"
    " see matrices/findings.yaml guard scale_down_keeps_data"
}
SERIES = ("unmanaged", "worker_rss", "scheduler_rss")
_EXECUTIONS = "_dask_blessing_soak_executions"  # attribute of a worker: key token → times computed there

# ---------------------------------------------------------------------------------------------------------------
# Run on the workers and the scheduler (module-level: shipped by value to remote clusters with this module)


def _managed_bytes(dask_worker: Any) -> int:
    """Bytes of Dask data this worker holds in memory, as distributed counts them (spilled bytes excluded)."""
    state = getattr(dask_worker, "state", None)
    total = getattr(state, "nbytes", None)
    if total is None:  # distributed before the worker state machine (2022.6)
        total = sum(getattr(dask_worker, "nbytes", {}).values())
    try:
        spilled_memory, _ = dask_worker.data.spilled_total
    except AttributeError:  # no SpillBuffer: nothing is spilled
        spilled_memory = 0
    return max(0, int(total) - int(spilled_memory))


def _worker_memory(dask_worker: Any, collect_garbage: bool) -> dict[str, int]:
    """This worker's process (pid, RSS now), its managed bytes and what the runner's memory probe holds in it;
    after a full garbage collection if asked."""
    import gc

    import psutil

    from framework.in_runtime.memory import probe_bytes

    if collect_garbage:
        gc.collect()
    return {
        "pid": os.getpid(),
        "rss": int(psutil.Process().memory_info().rss),
        "managed": _managed_bytes(dask_worker),
        "probe": probe_bytes(dask_worker),
    }


def _process_rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def _worker_id(dask_worker: Any) -> str:
    return str(dask_worker.id)


# ---------------------------------------------------------------------------------------------------------------
# On the client: memory samples and their trends


def memory_sample(client: Any, collect_garbage: bool = False) -> dict[str, float]:
    """The cluster's memory now: ``unmanaged``, ``worker_rss`` and ``scheduler_rss`` in bytes (see the module)."""
    by_worker: dict[str, dict[str, int]] = client.run(_worker_memory, collect_garbage=collect_garbage)
    processes: dict[int, dict[str, int]] = {}
    for reading in by_worker.values():
        process = processes.setdefault(reading["pid"], {"rss": 0, "managed": 0, "probe": 0})
        process["rss"] = max(process["rss"], reading["rss"])
        process["managed"] += reading["managed"]
        process["probe"] += reading["probe"]
    # The runner's memory probe grows its table while the case runs: the harness's memory, not the runtime's.
    resident = [max(0, p["rss"] - p["probe"]) for p in processes.values()]
    managed = [p["managed"] for p in processes.values()]
    return {
        "unmanaged": float(sum(rss - min(rss, held) for rss, held in zip(resident, managed))),
        "worker_rss": float(sum(resident)),
        "scheduler_rss": float(client.run_on_scheduler(_process_rss)),
        "probe": float(sum(p["probe"] for p in processes.values())),
    }


def trend_metrics(x: Sequence[float], samples: Sequence[dict[str, float]], unit: str) -> dict[str, float]:
    """Each series' slope and interval, and its first and last value, named as the module says."""
    metrics: dict[str, float] = {}
    for series in SERIES:
        values = [sample[series] for sample in samples]
        trend: Trend = theil_sen(x, values, CONFIDENCE)
        metrics[f"{series}_slope_{unit}"] = trend.slope
        metrics[f"{series}_slope_low_{unit}"] = trend.low
        metrics[f"{series}_slope_high_{unit}"] = trend.high
        metrics[f"{series}_first_bytes"] = values[0]
        metrics[f"{series}_last_bytes"] = values[-1]
    metrics["probe_last_bytes"] = samples[-1]["probe"]
    metrics["interval_confidence"] = CONFIDENCE
    return metrics


def series_points(samples: Sequence[dict[str, float]]) -> dict[str, float]:
    """Every point of the ``unmanaged`` series, as extra metrics ``unmanaged_at_0000``, ``unmanaged_at_0001``, …"""
    return {f"unmanaged_at_{index:04d}": sample["unmanaged"] for index, sample in enumerate(samples)}


def _worker_ids(client: Any) -> dict[str, str]:
    return {address: str(worker_id) for address, worker_id in client.run(_worker_id).items()}


def _check_same_workers(before: dict[str, str], after: dict[str, str], what: str) -> None:
    """A worker replaced during a soak (its nanny restarted it: a memory limit hit?) breaks the memory series."""
    lost = sorted(address for address, worker_id in before.items() if after.get(address) != worker_id)
    joined = sorted(address for address, worker_id in after.items() if before.get(address) != worker_id)
    check(
        not lost and not joined,
        f"{what}: workers changed during the soak — lost {lost}, joined {joined}: a worker died or its nanny"
        " restarted it (a worker past its memory limit is restarted), so its memory series restarted too",
    )


def _load_case_function(path: str, params: dict[str, Any]) -> Callable[..., Any]:
    """The workload function to repeat, with ``params`` checked against its signature (the near miss named)."""
    module_name, _, name = path.partition(":")
    try:
        function: Callable[..., Any] = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as error:
        raise ValueError(
            f"soak_function {path!r}: {type(error).__name__}: {error} — give 'workloads.module:function'"
        ) from error
    try:
        inspect.signature(function).bind(**params)
    except TypeError as error:
        accepted = list(inspect.signature(function).parameters)
        unknown = [key for key in params if key not in accepted]
        hints = [f"{key!r} (did you mean {close[0]!r}?)" for key in unknown if (close := _close(key, accepted))]
        hint = f"; unknown: {', '.join(hints)}" if hints else ""
        raise ValueError(
            f"soak_function {path}: the case's parameters do not fit it ({error}){hint} — its parameters:"
            f" {', '.join(accepted)}"
        ) from error
    return function


def _close(key: str, accepted: list[str]) -> list[str]:
    return difflib.get_close_matches(key, accepted, n=1)


# ---------------------------------------------------------------------------------------------------------------
# A case repeated on one cluster: the leak slope


def leak_slope(
    soak_function: str,
    soak_seconds: float = 60.0,
    soak_min_repeats: int = 10,
    soak_max_repeats: int = 1000,
    soak_skip_repeats: int = 2,
    soak_collect_garbage: bool = True,
    soak_record_series: bool = False,
    **case_params: Any,
) -> dict[str, float]:
    """Repeat ``soak_function(**case_params)`` for ``soak_seconds`` on one cluster; memory's slope per repeat.

    Each repeat checks its own answer (a wrong one fails the case, naming the repeat). After each, every worker
    runs a full garbage collection (``soak_collect_garbage``: uncollected cycles are not a leak, and when they
    are collected is noise) and the cluster's memory is sampled. The first ``soak_skip_repeats`` repeats are run
    but left out of the series (imports, caches and the allocator's first pools grow memory once); it goes on
    until ``soak_seconds`` have passed and at least ``soak_min_repeats`` repeats are in the series, and at most
    ``soak_max_repeats``. Returns, per series of the module docstring, the slope in bytes per repeat with its
    interval (``*_slope_bytes_per_repeat``, ``*_slope_low_…``, ``*_slope_high_…``), the series' first and last
    values, ``series_repeats`` (its length), ``skipped_repeats`` and ``soak_seconds`` (wall time of the soak).
    ``soak_record_series`` adds every point (``unmanaged_at_0000``, …): the calibration benchmark resamples them.
    """
    from distributed import get_client

    if soak_min_repeats < 6:
        raise ValueError(f"soak_min_repeats {soak_min_repeats}: a 95 % interval needs a series of at least 6")
    if soak_max_repeats < soak_min_repeats:
        raise ValueError(f"soak_max_repeats {soak_max_repeats} is below soak_min_repeats {soak_min_repeats}")
    function = _load_case_function(soak_function, case_params)
    client = get_client()
    workers_before = _worker_ids(client)
    samples: list[dict[str, float]] = []
    started = time.monotonic()
    repeat = 0
    while len(samples) < soak_max_repeats and (
        len(samples) < soak_min_repeats or time.monotonic() - started < soak_seconds
    ):
        try:
            function(**case_params)
        except AssertionError as error:  # the case's own check (WorkloadCheckFailed): the case fails
            raise WorkloadCheckFailed(f"repeat {repeat + 1} of {soak_function}: {error}") from error
        sample = memory_sample(client, collect_garbage=soak_collect_garbage)
        if repeat >= soak_skip_repeats:
            samples.append(sample)
        repeat += 1
    soaked = time.monotonic() - started
    _check_same_workers(workers_before, _worker_ids(client), f"leak_slope of {soak_function}")
    metrics = trend_metrics(range(len(samples)), samples, "bytes_per_repeat")
    return {
        **metrics,
        **(series_points(samples) if soak_record_series else {}),
        "series_repeats": float(len(samples)),
        "skipped_repeats": float(repeat - len(samples)),
        "soak_seconds": soaked,
    }


# ---------------------------------------------------------------------------------------------------------------
# An idle cluster


def idle_memory_growth(
    idle_seconds: float = 60.0, sample_interval_s: float = 2.0, warmup_tasks: int = 100, record_series: bool = False
) -> dict[str, float]:
    """A small computation (``warmup_tasks`` squares, their sum checked), then nothing for ``idle_seconds``.

    The cluster's memory is sampled every ``sample_interval_s`` (no garbage collection: what an idle cluster does
    on its own is the point, dask#10328 / distributed#1795). Returns, per series of the module docstring, the slope
    in bytes per minute with its interval (``*_slope_bytes_per_minute``, ``*_slope_low_…``, ``*_slope_high_…``),
    the first and last values, ``series_samples`` and ``sampled_seconds`` (from the first sample to the last);
    with ``record_series`` every reading too (``unmanaged_at_0000``, …, and ``minute_at_0000``, …).
    """
    from distributed import get_client

    client = get_client()
    futures = client.map(square, range(warmup_tasks), pure=False)
    total = client.submit(sum, futures, pure=False).result()
    check(total == sum_of_squares(warmup_tasks), f"warm-up Σ i²: got {total}, expected {sum_of_squares(warmup_tasks)}")
    del futures
    workers_before = _worker_ids(client)
    minutes: list[float] = []
    samples: list[dict[str, float]] = []
    readings = int(idle_seconds / sample_interval_s + 1e-9) + 1  # at 0, one interval, … up to idle_seconds
    started = time.monotonic()
    for reading in range(readings):
        time.sleep(max(0.0, started + reading * sample_interval_s - time.monotonic()))
        minutes.append((time.monotonic() - started) / 60)
        samples.append(memory_sample(client))
    _check_same_workers(workers_before, _worker_ids(client), "idle_memory_growth")
    try:
        metrics = trend_metrics(minutes, samples, "bytes_per_minute")
    except TrendError as error:
        raise ValueError(f"idle_memory_growth: {error} — raise idle_seconds or lower sample_interval_s") from error
    points = {**series_points(samples), **{f"minute_at_{i:04d}": m for i, m in enumerate(minutes)}}
    return {
        **metrics,
        **(points if record_series else {}),
        "series_samples": float(len(samples)),
        "sample_interval_s": float(sample_interval_s),
        "sampled_seconds": minutes[-1] * 60,
    }


# ---------------------------------------------------------------------------------------------------------------
# Graceful scale-down under load: no data lost


def _payload(index: int, nbytes: int) -> bytes:
    """``nbytes`` bytes that only ``index`` gives: its 8-byte form, repeated."""
    return (index.to_bytes(8, "little") * (nbytes // 8 + 1))[:nbytes]


def _computed_item(index: int, token: str, nbytes: int) -> bytes:
    """``_payload(index)``, counting on the worker how often each ``token`` was computed there."""
    from distributed import get_worker

    counts = get_worker().__dict__.setdefault(_EXECUTIONS, {})
    counts[token] = counts.get(token, 0) + 1
    return _payload(index, nbytes)


def _executions(dask_worker: Any, prefix: str) -> dict[str, int]:
    counts: dict[str, int] = dask_worker.__dict__.get(_EXECUTIONS, {})
    return {token: count for token, count in counts.items() if token.startswith(prefix)}


def _forget_executions(dask_worker: Any, prefix: str) -> None:
    counts = dask_worker.__dict__.get(_EXECUTIONS, {})
    for token in [token for token in counts if token.startswith(prefix)]:
        del counts[token]


def _combine(scattered: bytes, computed: bytes, seconds: float, started: str) -> int:
    """The index each of the two payloads encodes, summed, after ``seconds`` of work; says it has started."""
    from distributed import Event

    Event(started).set()
    time.sleep(seconds)
    return int.from_bytes(scattered[:8], "little") + int.from_bytes(computed[:8], "little")


def _key_states(dask_scheduler: Any, keys: list[str]) -> dict[str, tuple[str, list[str]]]:
    """Each key's state on the scheduler and the workers holding it (``forgotten`` when the scheduler lost it)."""
    states = {}
    for key in keys:
        task = dask_scheduler.tasks.get(key)
        holders = sorted(w.address for w in task.who_has or ()) if task is not None else []  # None when empty (2024+)
        states[key] = (task.state if task is not None else "forgotten", holders)
    return states


def _scalable_local_cluster(client: Any) -> Any:
    cluster = getattr(client, "cluster", None)
    if cluster is None or not hasattr(cluster, "worker_spec") or not hasattr(cluster, "scale_down"):
        raise RuntimeError(
            "scale_down_keeps_data removes a worker and then restores the cluster's size: it needs a client created"
            " from a LocalCluster (declare requires: {backends: [local]})"
        )
    return cluster


def _retire_one(client: Any, address: str, timeout: float) -> None:
    """``client.retire_workers([address])``, bounded: a worker stuck closing gracefully is an error."""
    executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="blessing-soak-retire")
    try:
        retired = executor.submit(client.retire_workers, [address], close_workers=True).result(timeout=timeout)
    except concurrent.futures.TimeoutError as error:
        raise TimeoutError(f"retire_workers([{address!r}]) did not return within {timeout:g} s") from error
    finally:
        executor.shutdown(wait=False)
    check(address in retired, f"retire_workers did not retire {address}: it returned {sorted(retired)}")


def _shown(keys: Sequence[str], limit: int = 10) -> str:
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def scale_down_keeps_data(
    method: str,
    items_per_worker: int = 20,
    item_bytes: Any = "1MiB",
    task_seconds: float = 0.02,
    timeout_s: float = 60.0,
) -> dict[str, float]:
    """Remove one worker gracefully while a computation runs; no scattered or computed data may be lost.

    Every worker holds ``items_per_worker`` scattered payloads and as many computed results (futures of tasks
    placed on it), ``item_bytes`` each (a number or a string like ``"1MiB"``), so whichever worker leaves holds
    data only it has. A computation of one task per pair (``task_seconds`` each, ``scattered + computed`` index)
    starts; once it runs, one worker is removed by ``method``: ``retire_workers`` (``client.retire_workers``, the
    first worker by address) or ``scale`` (``LocalCluster.scale(n - 1)``, which should retire the worker it drops
    and then close it — the path of distributed#8522; it does not retire it, distributed#4069). Afterwards every
    scattered and computed key must be in memory on a remaining worker and hold its value, and no computed result
    may have been computed again (a count kept on each worker); the computation's sum must match the closed form.
    A lost, changed or recomputed key fails the case, naming the keys. The cluster is brought back to its size.
    """
    from dask.utils import parse_bytes
    from distributed import get_client

    if method not in ("retire_workers", "scale"):
        raise ValueError(f"method {method!r}: use 'retire_workers' or 'scale'")
    item_bytes = int(parse_bytes(item_bytes))
    client = get_client()
    cluster = _scalable_local_cluster(client)
    workers = enough_workers(client, 2, "scale_down_keeps_data")
    size = len(workers)
    token = unique_name("soak-scale-down")
    data = _DataOnEveryWorker(client, sorted(workers), items_per_worker, item_bytes, token)
    load: list[Any] = []
    removed_names: list[Any] = []
    results: list[int] = []
    try:
        data.place(timeout_s)
        executions_before: dict[str, dict[str, int]] = client.run(_executions, prefix=token)
        started = unique_name("soak-scale-down-started")
        load = client.map(_combine, data.scattered, data.computed, seconds=task_seconds, started=started, pure=False)
        wait_events([started], timeout_s, "the computation under load did not start")
        began = time.perf_counter()
        victim = _remove_one_worker(client, cluster, method, workers, timeout_s)
        if method == "retire_workers":  # LocalCluster.scale dropped its spec already
            removed_names.append(workers[victim]["name"])
        scale_down_seconds = time.perf_counter() - began
        # Judged at once: a graceful removal moved every key before the worker left. (A computation that needs a
        # lost scattered key would never finish: it is waited for only when nothing was lost.)
        lost, changed = data.lost_and_changed()
        if not lost:
            wait_futures(load, timeout_s, "the computation after the scale-down")
            results = client.gather(load)
        executions_after: dict[str, dict[str, int]] = client.run(_executions, prefix=token)
    finally:
        client.cancel(data.scattered + data.computed + load)
        client.run(_forget_executions, prefix=token)
        restore_workers(client, cluster, removed_names, size, timeout_s)
    recomputed = sorted(
        name
        for address, counts in executions_after.items()
        for name, count in counts.items()
        if count > executions_before.get(address, {}).get(name, 0)
    )
    lost_scattered = [key for key in lost if key in data.scattered_keys]
    lost_computed = [key for key in lost if key not in data.scattered_keys]
    check(
        not lost and not changed and not recomputed,
        f"{method} removed {victim} under load and data was lost: {len(lost_scattered)} of {len(data.scattered)}"
        f" scattered keys lost ({_shown(lost_scattered)}), {len(lost_computed)} of {len(data.computed)} computed"
        f" keys lost ({_shown(lost_computed)}), {len(changed)} with another value ({_shown(changed)}),"
        f" {len(recomputed)} computed results computed again ({_shown(recomputed)}) — a graceful scale-down must"
        f" move every key first (distributed#8522{KNOWN_CAUSES.get(method, '')})",
    )
    check(
        sum(results) == data.expected_total, f"the computation's Σ: got {sum(results)}, expected {data.expected_total}"
    )
    return {
        "workers": float(size),
        "scattered_keys": float(len(data.scattered)),
        "computed_keys": float(len(data.computed)),
        "data_bytes": float(2 * len(data.indices) * item_bytes),
        "scale_down_seconds": scale_down_seconds,
    }


class _DataOnEveryWorker:
    """Scattered payloads and computed results, ``per_worker`` of each placed on every worker; and their check."""

    COMPUTED_OFFSET = 1_000_000  # computed result i holds _payload(OFFSET + i): never a scattered payload's value

    def __init__(self, client: Any, workers: list[str], per_worker: int, nbytes: int, token: str) -> None:
        self.client, self.workers, self.per_worker, self.nbytes, self.token = client, workers, per_worker, nbytes, token
        self.scattered: list[Any] = []
        self.computed: list[Any] = []
        self.indices: list[int] = []

    def place(self, timeout: float) -> None:
        for number, address in enumerate(self.workers):
            batch = list(range(number * self.per_worker, (number + 1) * self.per_worker))
            self.indices += batch
            payloads = [_payload(i, self.nbytes) for i in batch]
            self.scattered += self.client.scatter(payloads, workers=[address], hash=False)
            self.computed += self.client.map(
                _computed_item,
                [self.COMPUTED_OFFSET + i for i in batch],
                [f"{self.token}-{i}" for i in batch],
                nbytes=self.nbytes,
                workers=[address],
                allow_other_workers=True,
                pure=False,
            )
        wait_futures(self.scattered + self.computed, timeout, "scattering and computing the data to be kept")
        held = self.client.has_what()
        keys = {future.key for future in self.scattered + self.computed}
        empty = sorted(address for address in self.workers if not keys & set(held.get(address, ())))
        if empty:
            raise RuntimeError(f"workers {empty} hold none of the data before the scale-down: nothing would move")

    @property
    def scattered_keys(self) -> set[str]:
        return {str(future.key) for future in self.scattered}

    @property
    def expected_total(self) -> int:
        return sum(2 * i + self.COMPUTED_OFFSET for i in self.indices)

    def lost_and_changed(self) -> tuple[list[str], list[str]]:
        """Keys not in memory on a worker the scheduler has now; keys held with another value than placed."""
        futures = self.scattered + self.computed
        states = self.client.run_on_scheduler(_key_states, keys=[str(future.key) for future in futures])
        present = set(scheduler_workers(self.client))
        lost = {key for key, (state, holders) in states.items() if state != "memory" or not set(holders) & present}
        readable = [future for future in futures if str(future.key) not in lost]
        expected = {str(f.key): _payload(i, self.nbytes) for f, i in zip(self.scattered, self.indices)}
        offset = self.COMPUTED_OFFSET
        expected.update({str(f.key): _payload(offset + i, self.nbytes) for f, i in zip(self.computed, self.indices)})
        values = self.client.gather(readable)
        changed = sorted(str(f.key) for f, value in zip(readable, values) if value != expected[str(f.key)])
        return sorted(lost), changed


def _remove_one_worker(client: Any, cluster: Any, method: str, workers: dict[str, Any], timeout: float) -> str:
    """Remove one worker by ``method``; return its address once the scheduler no longer lists it."""
    size = len(workers)
    if method == "retire_workers":
        victim = sorted(workers)[0]
        _retire_one(client, victim, timeout)
    else:
        cluster.scale(size - 1)
        wait_until(
            lambda: len(scheduler_workers(client)) == size - 1, timeout, f"LocalCluster.scale({size - 1}) removed none"
        )
        [victim] = sorted(set(workers) - set(scheduler_workers(client)))
    wait_until(lambda: victim not in scheduler_workers(client), timeout, f"removed worker {victim} stayed")
    return victim
