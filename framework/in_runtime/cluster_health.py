"""Scheduler and worker health over one execution: event-loop stalls, GC pauses, the scheduler's CPU and memory.

Runs inside runtime environments (standard library, ``distributed`` and ``psutil``, a dependency of distributed;
Python ≥ 3.10, distributed ≥ 2022.10). Hooks are installed on each server when an execution starts and removed
when it ends, so nothing stays behind in the processes between cases.

- **Event loop** (scheduler and each worker): distributed's own tick monitoring. Every server runs
  ``Server._measure_tick`` each ``distributed.admin.tick.interval`` (20 ms by default) and keeps the time of the
  previous tick in ``_last_tick`` (the source of its "Event loop was unresponsive" warning). The hook wraps that
  periodic callback and reads, before each tick, how late it came: ``now - _last_tick - interval``. A tick late
  by *d* means nothing else ran on the loop for *d* — no message handled, no heartbeat. ``*_loop_max_s`` is the
  largest such lateness over the execution (and at its end, for a stall still going on); ``*_loop_blocked_s`` the
  sum of the latenesses of at least ``BLOCKED_MIN_S`` (a busy loop's ordinary delays and the OS scheduler's
  jitter stay out of the total). Every release the project runs has the tick (it is older than 2022.10); a
  server without it is reported missing, never 0.
- **GC pauses** (scheduler and workers): a ``gc.callbacks`` hook times every collection of the process; a
  collection holds the GIL, so every Python thread of that process waits for it.
- **Scheduler CPU**: user + system CPU time of the scheduler's threads — its event loop's thread and distributed's
  offload thread (``Dask-Offload``, where newer releases unpack and order graphs) — from psutil's per-thread
  times. Not the process's: a ``LocalCluster`` runs the scheduler in the runner's process, beside the client
  that builds the graphs and the workload's own code.
- **Scheduler RSS**: the peak resident memory of the scheduler's process, sampled every ``RSS_INTERVAL_S`` by a
  thread. In a ``LocalCluster`` that process is the runner's: the client's data (what the workload gathers), and
  in-process workers' data, count too.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Union

from framework.in_runtime.metrics import ship_by_value

COLUMNS = (
    "scheduler_loop_max_s",
    "scheduler_loop_blocked_s",
    "worker_loop_max_s",
    "worker_loop_blocked_s",
    "scheduler_cpu_s",
    "scheduler_peak_rss_bytes",
    "scheduler_gc_s",
    "worker_gc_s",
)
BLOCKED_MIN_S = 0.1  # a tick this late counts towards the blocked total: a stall, not a busy loop's turn-taking
RSS_INTERVAL_S = 0.05
OFFLOAD_THREAD_PREFIX = "Dask-Offload"  # distributed.utils._offload_executor's threads
_ATTRIBUTE = "_dask_blessing_health"

# What one server reports when its execution ends (see _read): a mapping, or why nothing could be read.
Reading = Union[dict[str, Any], str]


def _watch(server: Any, scheduler: bool, clock: Optional[Callable[[], float]] = None) -> dict[str, Any]:
    """Install the hooks on one server (again, reset, if they are there); return ``{"pid", "problems"}``.

    ``problems``: what this server cannot measure (``loop``, ``gc``, ``cpu``, ``rss``) → why."""
    import gc
    import os
    import threading
    import time

    previous = getattr(server, _ATTRIBUTE, None)
    if previous is not None:
        _unhook(previous)
    if clock is None:
        from distributed.metrics import time as distributed_time  # the clock distributed stamps _last_tick with

        clock = distributed_time
    now = clock
    state: dict[str, Any] = {"pid": os.getpid(), "problems": {}, "clock": now, "server": server}
    callbacks = getattr(server, "periodic_callbacks", None) or {}
    tick = callbacks.get("tick")
    if tick is None or not hasattr(server, "_last_tick") or not callable(getattr(tick, "callback", None)):
        state["problems"]["loop"] = f"{type(server).__name__} has no tick monitoring (periodic_callbacks['tick'])"
    else:
        interval = float(getattr(server, "_tick_interval", tick.callback_time / 1000))
        loop = {"max": 0.0, "blocked": 0.0, "ticks": 0, "interval": interval}
        original = tick.callback

        def measured_tick() -> Any:
            _observe(loop, now() - server._last_tick - interval)
            return original()

        tick.callback = measured_tick
        state["loop"], state["tick"] = loop, (tick, original)

    pauses: dict[str, float] = {"total": 0.0, "max": 0.0, "started": -1.0}  # started: -1 outside a collection

    def on_gc(phase: str, info: Any) -> None:
        if phase == "start":
            pauses["started"] = time.perf_counter()
        elif pauses["started"] >= 0:
            pause = time.perf_counter() - pauses["started"]
            pauses["started"] = -1.0
            pauses["total"] += pause
            pauses["max"] = max(pauses["max"], pause)

    gc.callbacks.append(on_gc)
    state["gc"], state["on_gc"] = pauses, on_gc

    if scheduler:
        _watch_process(state, threading.get_native_id())
    setattr(server, _ATTRIBUTE, state)
    return {"pid": state["pid"], "problems": dict(state["problems"])}


def _observe(loop: dict[str, Any], late_s: float) -> None:
    """One tick's lateness into the running figures of a loop."""
    loop["ticks"] += 1
    loop["max"] = max(loop["max"], late_s)
    if late_s >= BLOCKED_MIN_S:
        loop["blocked"] += late_s


def _watch_process(state: dict[str, Any], loop_thread: int) -> None:
    """The scheduler's process: CPU of its threads now, and a thread sampling its RSS until ``_read``."""
    import threading

    try:
        import psutil

        process = psutil.Process()
        state["cpu_before"] = _thread_cpu(process, loop_thread)
        rss = {"peak": int(process.memory_info().rss)}
    except Exception as error:  # psutil missing, or a platform without per-thread times
        state["problems"]["cpu"] = state["problems"]["rss"] = f"psutil: {type(error).__name__}: {error}"
        return
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(RSS_INTERVAL_S):
            value = int(process.memory_info().rss)
            rss["peak"] = max(rss["peak"], value)

    sampler = threading.Thread(target=sample, name="dask-blessing-scheduler-rss", daemon=True)
    sampler.start()
    state.update(process=process, loop_thread=loop_thread, rss=rss, stop=stop, sampler=sampler)


def _thread_cpu(process: Any, loop_thread: int) -> dict[int, float]:
    """Native thread id → user + system CPU seconds, for the event loop's thread and the offload threads."""
    import threading

    wanted = {loop_thread} | {
        thread.native_id
        for thread in threading.enumerate()
        if thread.name.startswith(OFFLOAD_THREAD_PREFIX) and thread.native_id is not None
    }
    return {t.id: t.user_time + t.system_time for t in process.threads() if t.id in wanted}


def _unhook(state: dict[str, Any]) -> None:
    """Remove a server's hooks: its tick callback as distributed made it, the GC callback, the RSS thread."""
    import gc

    if "tick" in state:
        tick, original = state.pop("tick")
        tick.callback = original
    if state.get("on_gc") in gc.callbacks:
        gc.callbacks.remove(state["on_gc"])
    if "stop" in state:
        state["stop"].set()
        state["sampler"].join(timeout=5)
    server = state.pop("server", None)
    if server is not None and getattr(server, _ATTRIBUTE, None) is state:
        delattr(server, _ATTRIBUTE)


def _read(server: Any) -> Reading:
    """Remove the hooks of one server; its figures since ``_watch``, or why there are none."""
    state = getattr(server, _ATTRIBUTE, None)
    if state is None:
        return "not watched since the execution started (the server started during it: a restart?)"
    loop = state.get("loop")
    if loop is not None:  # a stall still going on when the execution ended (this runs on the same loop)
        _observe(loop, state["clock"]() - server._last_tick - loop["interval"])
    process = state.get("process")
    _unhook(state)
    reading: dict[str, Any] = {"pid": state["pid"], "problems": dict(state["problems"])}
    if loop is not None:
        reading.update(loop_max_s=max(loop["max"], 0.0), loop_blocked_s=loop["blocked"], ticks=loop["ticks"])
    reading["gc_s"], reading["gc_max_s"] = state["gc"]["total"], state["gc"]["max"]
    if process is not None:
        try:
            after = _thread_cpu(process, state["loop_thread"])
            before = state["cpu_before"]
            # a thread that started during the execution (the offload thread's first use) counts from zero
            reading["cpu_s"] = sum(max(cpu - before.get(tid, 0.0), 0.0) for tid, cpu in after.items())
            reading["peak_rss_bytes"] = max(state["rss"]["peak"], int(process.memory_info().rss))
        except Exception as error:
            reading["problems"]["cpu"] = reading["problems"]["rss"] = f"psutil: {type(error).__name__}: {error}"
    return reading


def _watch_scheduler(dask_scheduler: Any) -> dict[str, Any]:
    return _watch(dask_scheduler, scheduler=True)


def _watch_worker(dask_worker: Any) -> dict[str, Any]:
    return _watch(dask_worker, scheduler=False)


def _read_scheduler(dask_scheduler: Any) -> Reading:
    return _read(dask_scheduler)


def _read_worker(dask_worker: Any) -> Reading:
    return _read(dask_worker)


def summarise(
    scheduler: Reading, workers_watched: Union[set[str], str], workers: Union[dict[str, Reading], str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The eight columns and, for each that is None, why.

    ``scheduler``: the scheduler's reading (or why it could not be read); ``workers_watched``: the workers hooked
    when the execution started (or why none could be); ``workers``: each worker's reading at its end, by address
    (or why none could be read). Worker loops: the largest stall of any worker, and the sum of their blocked
    times; worker GC: the sum over worker *processes* (in-process workers share one, counted once)."""
    values: dict[str, Any] = dict.fromkeys(COLUMNS)
    missing: dict[str, str] = {}
    _scheduler_values(scheduler, values, missing)
    problem = _workers_problem(workers_watched, workers)
    if problem is not None:
        missing.update(dict.fromkeys(("worker_loop_max_s", "worker_loop_blocked_s", "worker_gc_s"), problem))
        return values, missing
    assert isinstance(workers, dict)
    readings = [(address, reading) for address, reading in sorted(workers.items()) if isinstance(reading, dict)]
    loop_problem = next((f"worker {a}: {r['problems']['loop']}" for a, r in readings if "loop" in r["problems"]), None)
    if loop_problem is not None:
        missing["worker_loop_max_s"] = missing["worker_loop_blocked_s"] = loop_problem
    else:
        values["worker_loop_max_s"] = max(reading["loop_max_s"] for _, reading in readings)
        values["worker_loop_blocked_s"] = sum(reading["loop_blocked_s"] for _, reading in readings)
    by_process: dict[int, float] = {}
    for _, reading in readings:
        by_process[reading["pid"]] = max(by_process.get(reading["pid"], 0.0), reading["gc_s"])
    values["worker_gc_s"] = sum(by_process.values())
    return values, missing


def _scheduler_values(scheduler: Reading, values: dict[str, Any], missing: dict[str, str]) -> None:
    columns = {
        "scheduler_loop_max_s": ("loop", "loop_max_s"),
        "scheduler_loop_blocked_s": ("loop", "loop_blocked_s"),
        "scheduler_cpu_s": ("cpu", "cpu_s"),
        "scheduler_peak_rss_bytes": ("rss", "peak_rss_bytes"),
        "scheduler_gc_s": ("gc", "gc_s"),
    }
    for column, (hook, key) in columns.items():
        if isinstance(scheduler, str):
            missing[column] = f"scheduler: {scheduler}"
        elif hook in scheduler["problems"]:
            missing[column] = f"scheduler: {scheduler['problems'][hook]}"
        else:
            values[column] = scheduler[key]


def _workers_problem(watched: Union[set[str], str], workers: Union[dict[str, Reading], str]) -> Optional[str]:
    """Why the workers' figures cannot be given, or None."""
    if isinstance(watched, str):
        return f"workers: {watched}"
    if isinstance(workers, str):
        return f"workers: {workers}"
    if not watched:
        return "the cluster had no workers when the execution started"
    left = sorted(watched - set(workers))
    if left:
        return f"{len(left)} worker(s) left during the execution (e.g. {left[0]}): their figures went with them"
    for address, reading in sorted(workers.items()):
        if isinstance(reading, str):
            return f"worker {address}: {reading}"
    return None


def _one_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}".replace("\n", " ")[:500]


class HealthWatch:
    """``with HealthWatch(client) as watch: ...`` then ``watch.values`` (the eight columns), ``watch.missing``."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.values: dict[str, Any] = dict.fromkeys(COLUMNS)
        self.missing: dict[str, str] = {}

    def __enter__(self) -> HealthWatch:
        ship_by_value(__name__)  # a remote cluster has the runtime's packages, not this project
        self._scheduler_problem: Optional[str] = None
        self._watched: Union[set[str], str]
        try:
            self.client.run_on_scheduler(_watch_scheduler)
        except Exception as error:
            self._scheduler_problem = f"hooks could not be installed: {_one_line(error)}"
        try:
            self._watched = set(self.client.run(_watch_worker))
        except Exception as error:
            self._watched = f"hooks could not be installed: {_one_line(error)}"
        return self

    def __exit__(self, *exc: object) -> None:
        scheduler: Reading
        workers: Union[dict[str, Reading], str]
        try:
            scheduler = self._scheduler_problem or self.client.run_on_scheduler(_read_scheduler)
        except Exception as error:
            scheduler = f"could not be read: {_one_line(error)}"
        try:
            # on_error="return" (distributed ≥ 2022.10): one unreachable worker does not hide the others
            returned = self.client.run(_read_worker, on_error="return")
            workers = {
                address: (f"could not be read: {_one_line(r)}" if isinstance(r, BaseException) else r)
                for address, r in returned.items()
            }
        except Exception as error:
            workers = f"could not be read: {_one_line(error)}"
        self.values, self.missing = summarise(scheduler, self._watched, workers)


def not_measured(reason: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The eight columns of a row that measured no execution: None each, with the reason."""
    return dict.fromkeys(COLUMNS), dict.fromkeys(COLUMNS, reason)
