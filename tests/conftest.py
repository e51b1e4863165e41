"""The guard of every test that starts a Dask cluster, wherever it lives (unit, integration, faults).

A test marked ``cluster`` runs under ``cluster_guard``: a hard deadline (``@pytest.mark.cluster(deadline=S)``,
default 60 s) and, afterwards, a check that it left no child process (multiprocessing's ``resource_tracker``
aside, which lives as long as the interpreter) and no non-daemon thread behind — the idea of distributed's
``gen_cluster`` + ``clean()``.

A test that is not marked and still creates a ``distributed.Scheduler`` or ``distributed.Client`` (a
LocalCluster, in process or not, or a client of a cluster it started some other way), or uses a fixture seen
creating one, fails, so no cluster test runs without a deadline. Clusters started only in a subprocess (a runner, a
reproducer) are not seen: mark those by hand.
"""

from __future__ import annotations

import faulthandler
import functools
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any, Callable, Optional

import psutil
import pytest

DEFAULT_DEADLINE_S = 60
# Past the deadline by this much, the test's own deadline failed to stop it: dump every stack and exit.
BACKSTOP_S = 60
LEAK_GRACE_S = 10.0

# What the running test created of distributed's (filled by the wrapped constructors, from any thread).
_cluster_starts: list[str] = []
# (name, baseid) of each fixture seen creating one: a module-scoped cluster is created for its first test only.
_cluster_fixtures: set[tuple[str, str]] = set()


def _recording_starts(cls: type) -> Callable[[], None]:
    """Make ``cls(...)`` note its name in ``_cluster_starts``; returns what undoes it."""
    original = vars(cls)["__init__"]

    @functools.wraps(original)
    def recording_init(self: Any, *args: Any, **kwargs: Any) -> None:
        _cluster_starts.append(f"{cls.__module__.partition('.')[0]}.{cls.__name__}")
        original(self, *args, **kwargs)

    cls.__init__ = recording_init
    return lambda: setattr(cls, "__init__", original)


def pytest_configure(config: pytest.Config) -> None:
    import distributed  # ~0.4 s, once: before any test module, so every later import sees the wrapped classes

    for cls in (distributed.Scheduler, distributed.Client):
        config.add_cleanup(_recording_starts(cls))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    _cluster_starts.clear()  # before any fixture: a wider-scoped fixture's cluster counts for the first test using it


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest) -> Iterator[Any]:
    created = len(_cluster_starts)
    try:
        return (yield)
    finally:
        if len(_cluster_starts) > created:
            _cluster_fixtures.add((fixturedef.argname, fixturedef.baseid))


def _cluster_fixtures_used(request: pytest.FixtureRequest) -> list[str]:
    nodeid = request.node.nodeid
    return sorted(
        name for name, baseid in _cluster_fixtures if name in request.fixturenames and nodeid.startswith(baseid)
    )


def _children() -> dict[int, psutil.Process]:
    found = {}
    for child in psutil.Process().children(recursive=True):
        try:
            if "resource_tracker" in " ".join(child.cmdline()):
                continue  # multiprocessing's, started with the first spawned worker; it lives as long as we do
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue
        found[child.pid] = child
    return found


def _non_daemon_threads() -> set[threading.Thread]:
    return {thread for thread in threading.enumerate() if thread.is_alive() and not thread.daemon}


def _running_schedulers() -> list[Any]:
    import distributed
    from distributed.core import Status

    # Scheduler._instances: a WeakSet distributed keeps of every scheduler in this process (its own tests use it).
    return [scheduler for scheduler in list(distributed.Scheduler._instances) if scheduler.status == Status.running]


def _worker_pids(schedulers: list[Any]) -> set[int]:
    """The worker processes of ``schedulers`` still running: a wider-scoped fixture's cluster may replace its workers
    during a test (a restart, a kill), and those are the cluster's, not leaked by the test."""
    from distributed.core import Status

    running = [scheduler for scheduler in schedulers if scheduler.status == Status.running]
    return {worker.pid for scheduler in running for worker in list(scheduler.workers.values())}


def _where(frame: Optional[FrameType], test_file: Path) -> str:
    """``file:line`` of the innermost frame in the test's own file (else the innermost frame): where it hung."""
    innermost = frame
    while frame is not None and Path(frame.f_code.co_filename) != test_file:
        frame = frame.f_back
    frame = frame or innermost
    return "?" if frame is None else f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno}"


@pytest.fixture(autouse=True)
def cluster_guard(request: pytest.FixtureRequest) -> Iterator[None]:
    """Deadline and leak check around every ``@pytest.mark.cluster`` test (and its fixtures' teardown); any other
    test fails if it creates a distributed Scheduler or Client, or uses a fixture that did."""
    marker = request.node.get_closest_marker("cluster")
    if marker is None:
        yield
        used = sorted(set(_cluster_starts)) + [f"fixture {name!r}" for name in _cluster_fixtures_used(request)]
        if used:
            pytest.fail(
                f"{request.node.nodeid} runs on a Dask cluster ({', '.join(used)}) but is not marked:"
                " add @pytest.mark.cluster(deadline=S), S a few times its measured duration",
                pytrace=False,
            )
        return
    deadline = int(marker.kwargs.get("deadline", DEFAULT_DEADLINE_S))
    children_before = set(_children())
    shared_schedulers = _running_schedulers()  # a module or session fixture's, started before this test
    threads_before = _non_daemon_threads()

    def past_deadline(signum: int, frame: Optional[FrameType]) -> None:
        # pytest.fail is a BaseException: no ``except Exception`` in the test or in distributed swallows it.
        where = _where(frame, request.node.path)
        pytest.fail(f"{request.node.nodeid} exceeded its deadline of {deadline} s (stopped at {where})", pytrace=False)

    previous_handler = signal.signal(signal.SIGALRM, past_deadline)
    signal.alarm(deadline)
    faulthandler.dump_traceback_later(deadline + BACKSTOP_S, exit=True)
    try:
        yield
    finally:
        signal.alarm(0)
        faulthandler.cancel_dump_traceback_later()
        signal.signal(signal.SIGALRM, previous_handler)

    # Closing a cluster returns before every process has been reaped and every thread has ended: give them time.
    give_up = time.monotonic() + LEAK_GRACE_S
    while True:
        not_leaked = children_before | _worker_pids(shared_schedulers)
        leaked_children = {pid: p for pid, p in _children().items() if pid not in not_leaked}
        leaked_threads = _non_daemon_threads() - threads_before
        if not (leaked_children or leaked_threads) or time.monotonic() > give_up:
            break
        time.sleep(0.1)
    descriptions = []
    for child in leaked_children.values():
        try:
            descriptions.append(f"process {child.pid}: {' '.join(child.cmdline())[:200]}")
            child.kill()  # ours, and would otherwise outlive the session
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    descriptions += [f"thread {thread.name!r}" for thread in leaked_threads]
    if descriptions:
        pytest.fail(f"{request.node.nodeid} leaked: " + "; ".join(descriptions), pytrace=False)
