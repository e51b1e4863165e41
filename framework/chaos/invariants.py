"""The invariants a chaos program is held to, and what checks them.

- violations: one exception class per invariant (``kind`` names it in results and failure records);
- ``bounded``: every cluster call gets a deadline, so a hang is a LivenessError rather than a stuck fuzzer;
- probes run on the scheduler / workers: ``validate_state``, the transition counter, stuck keys' states;
- ``LeakWatch``: child processes and threads started during a program must be gone after teardown.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import sys
import threading
import time
import traceback
from typing import Any, Callable, Optional

# Threads a library keeps for the life of the process, by design (not leaks).
ALLOWED_THREADS = ("Dask-Offload", "asyncio_", "ThreadPoolExecutor", "blessing-step", "fsspec", "Profile")
LEAK_GRACE_S = 10.0


class InvariantViolation(AssertionError):  # noqa: N818 - the names read as what was violated
    """An invariant did not hold. ``kind`` names which: liveness, result, validate, livelock, teardown."""

    kind = "invariant"


class LivenessError(InvariantViolation):
    kind = "liveness"


class ResultError(InvariantViolation):
    kind = "result"


class StateValidationError(InvariantViolation):
    kind = "validate"


class LivelockError(InvariantViolation):
    kind = "livelock"


class TeardownError(InvariantViolation):
    kind = "teardown"


def bounded(function: Callable[[], Any], timeout: float, what: str) -> Any:
    """``function()`` in a daemon thread; its result, its exception, or LivenessError after ``timeout`` s."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = function()
        except BaseException as error:
            box["error"] = error

    thread = threading.Thread(target=target, name="blessing-step", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise LivenessError(f"{what} did not return within {timeout:g} s")
    if "error" in box:
        raise box["error"]
    return box.get("value")


def class_names(error: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(error).__mro__}


def is_comm_error(error: BaseException) -> bool:
    """A worker going away while we talk to it: expected under churn, not an invariant violation."""
    names = class_names(error)
    return bool(
        names & {"CommClosedError", "OSError", "StreamClosedError", "TimeoutError", "KeyError", "CancelledError"}
        or "No workers found" in str(error)
        or "not found" in str(error)
    )


# ---------------------------------------------------------------------------------------------------------------
# Functions run on the scheduler / workers (module level: pickled by reference)


def validate_scheduler(dask_scheduler: Any) -> Optional[str]:
    validate = getattr(dask_scheduler, "validate_state", None)
    if validate is None:
        return "Scheduler.validate_state is not available in this version"
    validate()
    return None


def validate_worker(dask_worker: Any) -> Optional[str]:
    validate = getattr(dask_worker, "validate_state", None)
    if validate is None:
        validate = getattr(getattr(dask_worker, "state", None), "validate_state", None)
    if validate is None:
        return "the worker has no validate_state in this version"
    validate()
    return None


def transition_counter(dask_scheduler: Any) -> Optional[int]:
    counter = getattr(dask_scheduler, "transition_counter", None)
    return None if counter is None else int(counter)


def stuck_keys(dask_scheduler: Any, keys: list[str]) -> dict[str, str]:
    """Scheduler state of each key (and where it is processing), for the liveness message."""
    states = {}
    for key in keys:
        ts = dask_scheduler.tasks.get(key)
        if ts is None:
            states[key] = "forgotten"
            continue
        where = getattr(getattr(ts, "processing_on", None), "address", None)
        states[key] = ts.state + (f" on {where}" if where else "")
    return states


NO_WORKER = "no running worker"
NO_CAUSE = "nothing seceded or missing"


def stuck_causes(dask_scheduler: Any) -> list[str]:
    """What a hang's tasks wait on, read from the scheduler — it tells hangs with the same stuck states apart:

    * ``queued on missing data``: a queued task with a dependency not in memory (queued tasks must have every input
      in memory; distributed#8702 left dependents of lost data queued);
    * ``seceded``: a task processing after ``secede()`` (distributed#7223's queued tasks waited behind such tasks);
    * ``no running worker``: no worker the scheduler would send a task to — then nothing can run, and this alone is
      the answer (what else the tasks wait on is beside the point);
    * ``nothing seceded or missing``: none of these — the stuck states alone describe the hang, and its class is
      kept apart from classes named before causes were read.
    """
    if not any(str(ws.status).rsplit(".", 1)[-1] == "running" for ws in dask_scheduler.workers.values()):
        return [NO_WORKER]
    causes = set()
    for ts in list(dask_scheduler.tasks.values()):
        if ts.state == "queued" and any(dts.state != "memory" or not dts.who_has for dts in ts.dependencies):
            causes.add("queued on missing data")
        worker = getattr(ts, "processing_on", None)
        if ts.state == "processing" and worker is not None and ts in getattr(worker, "long_running", ()):
            causes.add("seceded")
    return sorted(causes) or [NO_CAUSE]


# A queued dependent counts most: queued tasks waiting on lost data are what the scheduler got wrong (distributed#8702).
HOLDER_WEIGHTS = {"queued": 10, "waiting": 1, "processing": 1, "no-worker": 1}


def sole_holders(dask_scheduler: Any, queued_only: bool = False) -> dict[str, int]:
    """Worker address → a score of the tasks still to run that depend on data whose only copy that worker holds
    (``HOLDER_WEIGHTS`` per dependent, by its state): the worker whose loss forces the most recomputation. With
    ``queued_only``, only queued dependents count."""
    counts: dict[str, int] = {}
    for ts in list(dask_scheduler.tasks.values()):
        if queued_only and ts.state != "queued":
            continue
        weight = HOLDER_WEIGHTS.get(ts.state)
        if weight is None:
            continue
        for dts in ts.dependencies:
            holders = dts.who_has or ()  # a set of WorkerState (None when empty on some releases)
            if len(holders) == 1:
                address = next(iter(holders)).address
                counts[address] = counts.get(address, 0) + weight
    return counts


def worker_pid() -> int:
    return os.getpid()


class LeakWatch:
    """What was running before a program; after its teardown, whatever it started must have ended.

    ``missing`` receives the reason when part of the check cannot apply to this release.
    """

    def __init__(self, missing: dict[str, str]) -> None:
        warm_up()
        self.missing = missing
        self.threads_before = {thread.ident for thread in threading.enumerate()}
        self.children_before = self.children()

    @staticmethod
    def children() -> set[int]:
        import psutil

        found = set()
        for child in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if "resource_tracker" not in " ".join(child.cmdline()):
                    found.add(child.pid)
        return found

    def allowed_threads(self) -> tuple[str, ...]:
        import distributed

        major = int(distributed.__version__.split(".")[0])
        if major < 2023:
            # Measured: on 2022.x every synchronous LocalCluster leaves its "IO loop" thread running after close.
            # A real leak of those releases, but one per cluster regardless of the program: not counted.
            self.missing["thread_leak_check"] = (
                f"distributed {distributed.__version__} leaves each sync cluster's 'IO loop' thread running;"
                " those threads are not counted as the program's leaks"
            )
            return (*ALLOWED_THREADS, "IO loop")
        return ALLOWED_THREADS

    def leaked_threads(self) -> list[threading.Thread]:
        allowed = self.allowed_threads()
        return [
            thread
            for thread in threading.enumerate()
            if thread.ident not in self.threads_before and thread.is_alive() and not thread.name.startswith(allowed)
        ]

    def found(self) -> list[str]:
        """Processes and threads started during this program that are still alive."""
        found = [f"child process {pid}" for pid in sorted(self.children() - self.children_before)]
        return found + [f"thread {thread.name!r}" for thread in self.leaked_threads()]

    def check(self) -> None:
        deadline = time.monotonic() + LEAK_GRACE_S
        while True:
            gc.collect()
            found = self.found()
            if not found or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        if found:
            self.kill_children()
            stacks = thread_stacks(self.leaked_threads())
            where = "; ".join(f"{name} {summary}" for name, (summary, _) in stacks.items())
            error = TeardownError(
                f"left running {LEAK_GRACE_S:g} s after the cluster closed: {', '.join(found)}"
                + (f" — where the threads wait: {where}" if where else "")
            )
            # The whole stack of each, in the recorded traceback (the message keeps the innermost frames).
            error.__notes__ = [f"stack of thread {name}:\n{stack}" for name, (_, stack) in stacks.items()]
            raise error

    def kill_children(self) -> None:
        for pid in self.children() - self.children_before:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def thread_stacks(threads: list[threading.Thread]) -> dict[str, tuple[str, str]]:
    """Thread name → (its innermost frames in one line, ``in f (file:line) ← g (file:line)``; its whole stack)."""
    frames = sys._current_frames()
    stacks = {}
    for thread in threads:
        frame = frames.get(thread.ident or -1)
        if frame is None:
            continue
        summary = traceback.extract_stack(frame)
        # The innermost frames outside the standard library's threading, queue and contextlib modules say what it
        # waits for (leaving a `with worker_client():` block passes through contextlib).
        plumbing = ("threading.py", "queue.py", "contextlib.py")
        own = [entry for entry in summary if not entry.filename.endswith(plumbing)] or summary
        where = " ← ".join(f"{entry.name} ({_short(entry.filename)}:{entry.lineno})" for entry in reversed(own[-3:]))
        stacks[thread.name] = (f"in {where}", "".join(traceback.format_list(summary)))
    return stacks


def pending_tasks(loop: Any, limit: int = 5) -> list[str]:
    """The asyncio tasks still pending on ``loop`` (another thread's: read only, for a diagnosis), each as its
    innermost awaits, ``inner (file:line) ← outer (file:line)``: what a loop that does not stop is waiting for."""
    import asyncio

    try:
        tasks = [task for task in asyncio.all_tasks(loop) if not task.done()]
    except Exception:  # the loop is gone, or changed while read
        return []
    found = []
    for task in tasks[:limit]:
        chain: list[str] = []
        awaited: Any = task.get_coro()
        while awaited is not None and len(chain) < 8:
            frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
            if frame is not None:
                chain.append(f"{frame.f_code.co_name} ({_short(frame.f_code.co_filename)}:{frame.f_lineno})")
            awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
        found.append(" ← ".join(reversed(chain[-3:])) or repr(task))
    return found


def _short(filename: str) -> str:
    """``…/site-packages/distributed/worker.py`` → ``distributed/worker.py``; a project file from its package."""
    parts = filename.replace("\\", "/").split("/")
    for anchor in ("site-packages", "dist-packages"):
        if anchor in parts:
            return "/".join(parts[parts.index(anchor) + 1 :])
    return "/".join(parts[-2:])


_WARMED: list[bool] = []


def warm_up() -> None:
    """Start and close one small cluster, once per process, before the first program takes its baseline.

    Some releases keep process-wide helpers that the first cluster creates (distributed ≤ 2022's shared
    "IO loop" thread, the offload executor): they are not a program's leaks. Whatever a later program leaves
    beyond them is.
    """
    if _WARMED:
        return
    _WARMED.append(True)
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=1,
            processes=False,
            dashboard_address=None,
            scheduler_kwargs={"dashboard": False},
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        client.submit(sum, [1, 2]).result()


def describe(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}".replace("\n", " ")
    return text[:600]


def format_traceback(error: BaseException) -> str:
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    if sys.version_info < (3, 11):  # older Pythons do not print an exception's notes
        text += "".join(f"{note}\n" for note in getattr(error, "__notes__", []))
    return text[-4000:]
