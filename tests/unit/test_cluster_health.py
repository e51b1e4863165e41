"""framework/in_runtime/cluster_health.py: the hooks on one server (on a stand-in with distributed's tick), and
how the servers' readings become the row's eight columns — a value, or None with its reason, never 0."""

from __future__ import annotations

import gc
import threading
import time
from types import SimpleNamespace
from typing import Any

from framework.in_runtime import cluster_health
from framework.in_runtime.cluster_health import COLUMNS, _read, _watch, not_measured, summarise

WORKER_COLUMNS = ("worker_loop_max_s", "worker_loop_blocked_s", "worker_gc_s")
SCHEDULER_COLUMNS = tuple(column for column in COLUMNS if column not in WORKER_COLUMNS)


class Clock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Tick:
    """distributed's ``periodic_callbacks["tick"]`` (a tornado PeriodicCallback): ``callback`` and its period."""

    def __init__(self, server: Any) -> None:
        self.callback_time = 20.0  # ms
        self.callback = server.measure_tick


class Server:
    """What ``Server._measure_tick`` keeps: the time of the last tick, stamped by each tick."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._last_tick = clock()
        self._tick_interval = 0.02
        self.periodic_callbacks = {"tick": Tick(self)}

    def measure_tick(self) -> None:
        self._last_tick = self.clock()

    def tick_after(self, seconds: float) -> None:
        """The loop runs the tick ``seconds`` after the previous one."""
        self.clock.now += seconds
        self.periodic_callbacks["tick"].callback()


def test_a_tick_that_comes_late_is_a_stall_and_long_stalls_add_up():
    clock = Clock()
    server = Server(clock)
    original = server.periodic_callbacks["tick"].callback
    assert _watch(server, scheduler=False, clock=clock)["problems"] == {}
    for gap in (0.02, 0.03, 0.52, 0.02, 0.15, 0.021):  # late by 0, 0.01, 0.5, 0, 0.13, 0.001
        server.tick_after(gap)
    assert server._last_tick == clock.now  # distributed's own tick still ran each time

    reading = _read(server)

    assert isinstance(reading, dict)
    assert abs(reading["loop_max_s"] - 0.5) < 1e-9
    assert abs(reading["loop_blocked_s"] - (0.5 + 0.13)) < 1e-9  # only the stalls of ≥ 0.1 s
    assert reading["ticks"] == 7  # six, and the end of the execution
    assert server.periodic_callbacks["tick"].callback == original  # the hook is off again
    assert not hasattr(server, cluster_health._ATTRIBUTE)


def test_a_stall_still_going_on_when_the_execution_ends_is_counted():
    clock = Clock()
    server = Server(clock)
    _watch(server, scheduler=False, clock=clock)
    server.tick_after(0.02)
    clock.now += 2.02  # the loop ran nothing since: the last tick is 2 s overdue when the execution ends

    reading = _read(server)

    assert isinstance(reading, dict)
    assert abs(reading["loop_max_s"] - 2.0) < 1e-9 and abs(reading["loop_blocked_s"] - 2.0) < 1e-9


def test_watching_again_resets_the_figures_and_hooks_once():
    clock = Clock()
    server = Server(clock)
    original = server.periodic_callbacks["tick"].callback
    callbacks = len(gc.callbacks)
    _watch(server, scheduler=False, clock=clock)
    server.tick_after(1.02)
    _watch(server, scheduler=False, clock=clock)  # the next execution, without a read in between (a timeout)
    assert len(gc.callbacks) == callbacks + 1
    server.tick_after(0.02)

    reading = _read(server)

    assert isinstance(reading, dict) and reading["loop_max_s"] < 0.01
    assert server.periodic_callbacks["tick"].callback == original
    assert len(gc.callbacks) == callbacks


def test_garbage_collections_are_timed():
    server = Server(Clock())
    _watch(server, scheduler=False, clock=server.clock)
    for _ in range(3):
        gc.collect()
    reading = _read(server)
    assert isinstance(reading, dict)
    assert 0 < reading["gc_max_s"] <= reading["gc_s"] < 5


def test_the_scheduler_also_reports_the_cpu_of_its_loop_thread_and_its_peak_memory():
    server = Server(Clock())
    watched = _watch(server, scheduler=True, clock=server.clock)  # this thread plays the event loop's
    assert watched["problems"] == {}
    assert any(t.name == "dask-blessing-scheduler-rss" for t in threading.enumerate())
    busy_until = time.thread_time() + 0.05  # 50 ms of CPU on "the loop": five of the kernel's 10 ms ticks
    while time.thread_time() < busy_until:
        pass

    reading = _read(server)

    assert isinstance(reading, dict)
    assert reading["cpu_s"] > 0
    assert reading["peak_rss_bytes"] > 10 * 2**20
    assert not any(t.name == "dask-blessing-scheduler-rss" for t in threading.enumerate())  # the sampler stopped


def test_a_server_without_tick_monitoring_is_missing_its_loop_figures_not_zero():
    server = SimpleNamespace()
    watched = _watch(server, scheduler=False, clock=Clock())
    assert "no tick monitoring" in watched["problems"]["loop"]
    reading = _read(server)
    assert isinstance(reading, dict) and "loop_max_s" not in reading
    values, missing = summarise(_scheduler_reading(), {"tcp://w1"}, {"tcp://w1": reading})
    assert values["worker_loop_max_s"] is None and values["worker_loop_blocked_s"] is None
    assert "worker tcp://w1: SimpleNamespace has no tick monitoring" in missing["worker_loop_max_s"]
    assert values["worker_gc_s"] is not None and "worker_gc_s" not in missing


def test_a_server_that_was_never_watched_says_so():
    assert "not watched since the execution started" in str(_read(Server(Clock())))


def _scheduler_reading(**overrides: Any) -> dict[str, Any]:
    reading = {
        "pid": 1,
        "problems": {},
        "loop_max_s": 0.3,
        "loop_blocked_s": 0.5,
        "gc_s": 0.01,
        "cpu_s": 1.2,
        "peak_rss_bytes": 200 * 2**20,
    }
    reading.update(overrides)
    return reading


def _worker_reading(pid: int, loop_max_s: float, loop_blocked_s: float, gc_s: float) -> dict[str, Any]:
    return {"pid": pid, "problems": {}, "loop_max_s": loop_max_s, "loop_blocked_s": loop_blocked_s, "gc_s": gc_s}


def test_workers_give_their_longest_stall_the_sum_of_blocked_time_and_gc_once_per_process():
    workers = {
        "tcp://w1": _worker_reading(11, 0.2, 0.2, 0.03),
        "tcp://w2": _worker_reading(12, 0.6, 1.1, 0.05),
        "tcp://w3": _worker_reading(12, 0.1, 0.0, 0.05),  # in the same process as w2: its GC is w2's
    }
    values, missing = summarise(_scheduler_reading(), set(workers), workers)
    assert missing == {}
    assert values == {
        "scheduler_loop_max_s": 0.3,
        "scheduler_loop_blocked_s": 0.5,
        "scheduler_cpu_s": 1.2,
        "scheduler_peak_rss_bytes": 200 * 2**20,
        "scheduler_gc_s": 0.01,
        "worker_loop_max_s": 0.6,
        "worker_loop_blocked_s": 1.3,
        "worker_gc_s": 0.08,
    }


def _assert_missing(values: dict[str, Any], missing: dict[str, str], columns: tuple[str, ...], reason: str) -> None:
    for column in columns:
        assert values[column] is None, column
        assert reason in missing[column], (column, missing[column])


def test_a_worker_that_left_or_restarted_makes_the_worker_figures_missing():
    w1 = _worker_reading(11, 0.2, 0.2, 0.03)
    values, missing = summarise(_scheduler_reading(), {"tcp://w1", "tcp://w2"}, {"tcp://w1": w1})
    _assert_missing(values, missing, WORKER_COLUMNS, "1 worker(s) left during the execution (e.g. tcp://w2)")
    assert values["scheduler_loop_max_s"] == 0.3  # the scheduler's figures stand

    restarted = {"tcp://w1": w1, "tcp://w2": "not watched since the execution started (a restart?)"}
    values, missing = summarise(_scheduler_reading(), {"tcp://w1", "tcp://w2"}, restarted)
    _assert_missing(values, missing, WORKER_COLUMNS, "worker tcp://w2: not watched since the execution started")


def test_nothing_readable_is_missing_with_the_reason_never_zero():
    values, missing = summarise("could not be read: OSError: Timed out", "hooks could not be installed: X", {})
    _assert_missing(values, missing, SCHEDULER_COLUMNS, "scheduler: could not be read: OSError: Timed out")
    _assert_missing(values, missing, WORKER_COLUMNS, "workers: hooks could not be installed: X")
    values, missing = summarise(_scheduler_reading(), set(), {})
    _assert_missing(values, missing, WORKER_COLUMNS, "the cluster had no workers")
    values, missing = summarise(_scheduler_reading(), {"tcp://w1"}, "could not be read: CommClosedError")
    _assert_missing(values, missing, WORKER_COLUMNS, "workers: could not be read: CommClosedError")


def test_a_scheduler_without_psutil_is_missing_cpu_and_memory_only():
    reading = _scheduler_reading(problems={"cpu": "psutil: ImportError", "rss": "psutil: ImportError"})
    del reading["cpu_s"], reading["peak_rss_bytes"]
    values, missing = summarise(reading, {"tcp://w1"}, {"tcp://w1": _worker_reading(11, 0.1, 0.0, 0.0)})
    _assert_missing(values, missing, ("scheduler_cpu_s", "scheduler_peak_rss_bytes"), "scheduler: psutil")
    assert set(missing) == {"scheduler_cpu_s", "scheduler_peak_rss_bytes"}
    assert values["worker_gc_s"] == 0.0  # a worker that did not collect: a measured 0


def test_a_row_that_measured_nothing_has_every_column_missing():
    values, missing = not_measured("the case never ran")
    assert values == dict.fromkeys(COLUMNS)
    assert missing == dict.fromkeys(COLUMNS, "the case never ran")


class FakeClient:
    """run / run_on_scheduler over stand-in servers in this process, as distributed passes them."""

    def __init__(self, scheduler: Server, workers: dict[str, Server]) -> None:
        self.scheduler, self.workers = scheduler, workers
        self.broken = False

    def run_on_scheduler(self, function: Any) -> Any:
        if self.broken:
            raise OSError("Timed out trying to connect")
        return function(dask_scheduler=self.scheduler)

    def run(self, function: Any, on_error: str = "raise") -> dict[str, Any]:
        return {address: function(dask_worker=worker) for address, worker in self.workers.items()}


def test_the_watch_hooks_every_server_around_a_block_and_reads_them_after(monkeypatch):
    clock = Clock()
    monkeypatch.setattr("distributed.metrics.time", clock)
    scheduler, w1, w2 = Server(clock), Server(clock), Server(clock)
    client = FakeClient(scheduler, {"tcp://w1": w1, "tcp://w2": w2})
    with cluster_health.HealthWatch(client) as watch:
        scheduler.tick_after(0.62)
        w2.tick_after(0.32)
        client.workers.pop("tcp://w1")  # w1 leaves during the execution
    assert abs(watch.values["scheduler_loop_max_s"] - 0.6) < 1e-9
    _assert_missing(watch.values, watch.missing, WORKER_COLUMNS, "1 worker(s) left during the execution")
    assert not hasattr(scheduler, cluster_health._ATTRIBUTE)

    client.broken = True
    with cluster_health.HealthWatch(client) as watch:
        pass
    _assert_missing(watch.values, watch.missing, SCHEDULER_COLUMNS, "scheduler: hooks could not be installed: OSError")
    assert watch.values["worker_loop_max_s"] is not None
