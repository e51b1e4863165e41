"""Guard: a task waiting in ``distributed.rejoin()`` when its worker closes is never woken — its thread leaks.

``rejoin()`` puts ``(thread, event)`` on the executor's rejoin list and waits until a pool thread gives it its slot:
the next pool thread to finish a task pops the *last* entry, sets its event and leaves the pool. A task that
rejoins after its worker's executor shut down gets ``RuntimeError: cannot schedule new futures after shutdown`` but
its entry stays on the list. When the busy pool thread then finishes, it pops that dead entry instead of the task
that has been waiting since before the close, and leaves: no thread is left to wake the waiting one, which stays
blocked in ``rejoin`` (``event.wait()`` in distributed/threadpoolexecutor.py) for as long as the process lives.

Each repetition plays that with three tasks on a fresh one-thread in-process cluster (the leak is a thread of this
process): a waiter that secedes and later rejoins, a late rejoiner that secedes and rejoins once the worker is
closed, and a slot holder that keeps the pool's only thread busy until the late rejoiner has tried. The order is
fixed by ``threading.Event`` gates, not by timing, so a release with the bug leaks in every repetition.

The stability fuzzer met such threads on 2026.8.0; measured with this guard, every release from 2022.10.1 to 2026.8.0
has the bug (it is no 2026.8 regression), and a ``rejoin`` that takes its entry back when refused passes.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
import uuid
from typing import Any, Callable, Optional

from framework.in_runtime.checks import WorkloadCheckFailed

FINDING = "distributed bug, see matrices/findings.yaml guard rejoin_thread_leak"
# Tasks find their round's gates through sys.modules: a module shipped by value would carry copies of them.
MODULE = __name__
WAIT_S = 15.0  # any gate not reached by then is a broken set-up, reported as an error, never as the finding


class _Round:
    """The gates and threads of one repetition, shared by its tasks (they run in this process)."""

    def __init__(self) -> None:
        self.waiter_seceded = threading.Event()
        self.waiter_may_rejoin = threading.Event()
        self.waiter_rejoining = threading.Event()
        self.late_seceded = threading.Event()
        self.late_rejoining = threading.Event()
        self.late_rejoined = threading.Event()
        self.holder_running = threading.Event()
        self.holder_done = threading.Event()
        self.threads: dict[str, threading.Thread] = {}
        self.executor: Any = None


_ROUNDS: dict[str, _Round] = {}


def _round(token: str) -> _Round:
    rounds: dict[str, _Round] = sys.modules[MODULE]._ROUNDS
    return rounds[token]


# ---------------------------------------------------------------------------------------------------------------
# Tasks


def _waiter(token: str) -> str:
    """Secede, then rejoin while the pool's only thread is busy: this thread must be woken after the close."""
    from distributed import rejoin, secede
    from distributed.threadpoolexecutor import thread_state

    gates = _round(token)
    gates.threads["waiter"] = threading.current_thread()
    gates.executor = thread_state.executor
    secede()
    gates.waiter_seceded.set()
    gates.waiter_may_rejoin.wait(WAIT_S)
    gates.waiter_rejoining.set()
    rejoin()
    return "waiter"


def _late_rejoiner(token: str) -> str:
    """Secede, and rejoin once the worker has closed (its executor refuses the rejoin)."""
    from distributed import get_worker, rejoin, secede

    gates = _round(token)
    gates.threads["late"] = threading.current_thread()
    worker = get_worker()
    secede()
    gates.late_seceded.set()
    _wait_until(lambda: _status(worker) == "closed", "the worker did not close")
    gates.late_rejoining.set()
    try:
        rejoin()
    except RuntimeError:  # "cannot schedule new futures after shutdown": its entry stays on the rejoin list
        pass
    finally:
        gates.late_rejoined.set()
    return "late"


def _slot_holder(token: str) -> str:
    """Hold the pool's only thread until the late rejoiner has tried (its pool thread then picks the next rejoiner)."""
    gates = _round(token)
    gates.holder_running.set()
    gates.late_rejoining.wait(WAIT_S)
    gates.late_rejoined.wait(2.0)  # at once where the executor refuses the late rejoin; 2 s where it blocks it
    gates.holder_done.set()
    return "holder"


# ---------------------------------------------------------------------------------------------------------------
# Where a thread waits


def _status(worker: Any) -> str:
    return str(getattr(worker.status, "name", worker.status))


def _poll(condition: Callable[[], bool], timeout_s: float) -> bool:
    """Whether ``condition()`` became true within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def _wait_until(condition: Callable[[], bool], what: str) -> None:
    if not _poll(condition, WAIT_S):
        raise TimeoutError(f"rejoin_thread_leak set-up: {what} within {WAIT_S:g} s")


def _expect(gate: threading.Event, what: str) -> None:
    if not gate.wait(WAIT_S):
        raise TimeoutError(f"rejoin_thread_leak set-up: {what} within {WAIT_S:g} s")


def blocked_in_rejoin(thread: Optional[threading.Thread]) -> Optional[str]:
    """``rejoin (distributed/threadpoolexecutor.py:LINE)`` while ``thread`` waits in a ``rejoin`` call, else None."""
    if thread is None or not thread.is_alive():
        return None
    frame = sys._current_frames().get(thread.ident or -1)
    if frame is None:
        return None
    for summary in reversed(traceback.extract_stack(frame)):
        if summary.name == "rejoin":
            return f"rejoin ({_package_path(summary.filename)}:{summary.lineno})"
    return None


def _package_path(filename: str) -> str:
    """``distributed/threadpoolexecutor.py`` for a file under site-packages, else the file's name."""
    parts = filename.replace(os.sep, "/").split("/")
    for package in ("distributed", "dask"):
        if package in parts:
            return "/".join(parts[len(parts) - 1 - parts[::-1].index(package) :])
    return parts[-1]


def _open_everything(gates: _Round) -> None:
    """Open every gate and wake every thread waiting on the executor's rejoin list (a leak found must not outlive
    the guard); call while the cluster's loop still runs, so the woken tasks can report."""
    for value in vars(gates).values():
        if isinstance(value, threading.Event):
            value.set()
    for _thread, event in list(getattr(gates.executor, "_rejoin_list", ())):
        event.set()


# ---------------------------------------------------------------------------------------------------------------
# The guard


def _play_round(grace_s: float, close_timeout_s: float) -> list[str]:
    """One repetition on a fresh cluster; returns ``thread 'NAME' still blocked in rejoin (…)`` per leaked thread."""
    import logging

    from distributed import Client, LocalCluster

    token = uuid.uuid4().hex
    gates = _ROUNDS[token] = _Round()
    cluster = client = None
    leaked: list[str] = []
    try:
        cluster = LocalCluster(
            n_workers=1,
            threads_per_worker=1,
            processes=False,
            dashboard_address=":0",  # any free port: a fixed one may be taken by another cluster
            scheduler_kwargs={"dashboard": False},
            silence_logs=logging.ERROR,
        )
        client = Client(cluster, set_as_default=False)  # never the runner's client
        (worker,) = cluster.workers.values()
        futures = [client.submit(_waiter, token, pure=False)]
        _expect(gates.waiter_seceded, "the waiter did not secede")
        futures.append(client.submit(_late_rejoiner, token, pure=False))
        _expect(gates.late_seceded, "the late rejoiner did not secede")
        futures.append(client.submit(_slot_holder, token, pure=False))
        _expect(gates.holder_running, "the slot holder did not start")
        gates.waiter_may_rejoin.set()
        _expect(gates.waiter_rejoining, "the waiter did not rejoin")
        # It is queued behind the slot holder within microseconds: seen in its stack, or given 2 s.
        _poll(lambda: blocked_in_rejoin(gates.threads["waiter"]) is not None, 2.0)
        # The slot holder keeps the pool thread busy: the close waits close_timeout_s for it, then goes on.
        cluster.sync(worker.close, timeout=close_timeout_s)
        _expect(gates.holder_done, "the slot holder did not finish")
        for thread in gates.threads.values():
            thread.join(grace_s)
        for role, thread in sorted(gates.threads.items()):
            where = blocked_in_rejoin(thread)
            if where is not None:
                leaked.append(f"thread {thread.name!r} ({role}) still blocked in {where}")
    finally:
        _open_everything(gates)
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
        for thread in gates.threads.values():
            thread.join(5.0)
        _ROUNDS.pop(token, None)
    return leaked


def rejoin_thread_leak(repetitions: int, grace_s: float = 2.0, close_timeout_s: float = 1.0) -> dict[str, float]:
    """Play the pattern ``repetitions`` times, each on its own one-worker in-process cluster; fail if any leaks.

    Args:
        grace_s: how long a rejoined task's thread may take to end after the close before it counts as leaked.
        close_timeout_s: the worker's close timeout (it waits that long for the busy pool thread, then goes on).
    """
    if repetitions < 1:
        raise ValueError(f"rejoin_thread_leak needs repetitions >= 1, got {repetitions}")
    started = time.perf_counter()
    leaks = [_play_round(grace_s, close_timeout_s) for _ in range(repetitions)]
    leaking = [found for found in leaks if found]
    if leaking:
        raise WorkloadCheckFailed(
            f"{leaking[0][0]} {grace_s:g} s after its worker closed (in {len(leaking)} of {repetitions}"
            " repetitions): a task that rejoined after the close left its entry on the executor's rejoin list and"
            f" the last pool thread handed its slot to that entry — {FINDING}"
        )
    return {"repetitions": float(repetitions), "seconds": time.perf_counter() - started}
