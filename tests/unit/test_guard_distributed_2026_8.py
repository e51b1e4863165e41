"""The guard of the rejoin thread leak the stability fuzzer met on distributed 2026.8 (workloads/guards/) and its
standalone reproducer (workloads/reproducers/).

A task waiting in ``rejoin()`` when its worker closes is never woken once a task that rejoined after the close has
left its dead entry on the executor's rejoin list. The guard plays that deterministically: it fails — naming the
thread and ``rejoin (distributed/threadpoolexecutor.py:LINE)`` — on this suite's distributed (2026.8.0) and on the
``stable`` runtime's 2026.3.0 alike (measured on every release from 2022.10.1 to 2026.8.0: not a 2026.8
regression), and passes once ``rejoin`` is fixed (a candidate fix, patched in here: a rejoin the executor refuses
takes its entry off the list again). Whatever it finds, it leaves no thread behind.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from guard_testing import run_python, runtime_python

from framework.in_runtime.checks import WorkloadCheckFailed
from workloads.guards.rejoin_thread_leak import FINDING, rejoin_thread_leak

ROOT = Path(__file__).resolve().parents[2]
REPRODUCER = ROOT / "workloads" / "reproducers" / "rejoin_thread_leak.py"
TINY = {"repetitions": 2}  # the tiny size proposed for workloads/guards.yaml
SUBPROCESS_TIMEOUT_S = 40
# distributed's offload executor is a process-wide pool that outlives every cluster, by design.
ALWAYS_ALLOWED_THREADS = ("Dask-Offload",)
LEAK_MESSAGE = (
    r"^thread '(\d+-)?Dask-Default-Threads-\d+-\d+' \(waiter\) still blocked in rejoin"
    r" \(distributed/threadpoolexecutor\.py:\d+\) 2 s after its worker closed \(in 2 of 2 repetitions\): "
)

# Runs the guard in another environment: prints the versions, then the outcome.
GUARD_SCRIPT = """
import distributed
from framework.in_runtime.checks import WorkloadCheckFailed
from workloads.guards.rejoin_thread_leak import rejoin_thread_leak

print("distributed", distributed.__version__)
try:
    extra = rejoin_thread_leak(repetitions=2)
except WorkloadCheckFailed as error:
    print("WorkloadCheckFailed:", error)
else:
    print("passed:", sorted(extra))
"""

# distributed's rejoin as a fix could make it: a rejoin the executor refuses takes its entry off the list again.
FIXED_REJOIN = """
import threading
import distributed.threadpoolexecutor as tpe

def rejoin():
    thread, event, executor = threading.current_thread(), threading.Event(), tpe.thread_state.executor
    with executor._rejoin_lock:
        executor._rejoin_list.append((thread, event))
    try:
        executor.submit(lambda: None)
    except RuntimeError:
        with executor._rejoin_lock:
            executor._rejoin_list.remove((thread, event))
        raise
    event.wait()
    tpe.thread_state.proceed = True
"""
# Runs the script given as its first argument with the fixed rejoin patched in.
RUN_WITH_FIXED_REJOIN = (
    FIXED_REJOIN
    + """
import runpy, sys
import distributed
tpe.rejoin = distributed.rejoin = rejoin
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""
)


def fixed_rejoin() -> Callable[[], None]:
    namespace: dict[str, Any] = {}
    exec(FIXED_REJOIN, namespace)
    rejoin: Callable[[], None] = namespace["rejoin"]
    return rejoin


@pytest.fixture
def no_threads_left() -> Iterator[None]:
    """Whatever the guard finds, every thread it started has ended within 10 s of its return."""
    before = {thread.ident for thread in threading.enumerate()}
    yield
    deadline = time.monotonic() + 10
    while True:
        left = [
            thread.name
            for thread in threading.enumerate()
            if thread.ident not in before and not thread.name.startswith(ALWAYS_ALLOWED_THREADS)
        ]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not left, f"threads left running after the guard returned: {left}"


@pytest.fixture(scope="module")
def stable_python() -> Path:
    """The python of the ``stable`` runtime (distributed 2026.3.0), built once if no environment of it exists yet."""
    return runtime_python("stable")


# --------------------------------------------------------------------------------------------------
# The guard


@pytest.mark.cluster(deadline=40)
def test_guard_fails_naming_the_thread_blocked_in_rejoin(no_threads_left: None) -> None:
    import distributed

    assert distributed.__version__ == "2026.8.0"  # the release the fuzzer met it on

    with pytest.raises(WorkloadCheckFailed) as failed:
        rejoin_thread_leak(**TINY)

    message = str(failed.value)
    assert failed.match(LEAK_MESSAGE), message
    assert message.endswith(f"handed its slot to that entry — {FINDING}")


@pytest.mark.cluster(deadline=40)
def test_guard_passes_where_rejoin_is_fixed(monkeypatch: pytest.MonkeyPatch, no_threads_left: None) -> None:
    import distributed
    import distributed.threadpoolexecutor

    rejoin = fixed_rejoin()
    monkeypatch.setattr(distributed, "rejoin", rejoin)
    monkeypatch.setattr(distributed.threadpoolexecutor, "rejoin", rejoin)

    extra = rejoin_thread_leak(**TINY)

    assert extra["repetitions"] == 2.0
    assert 0 < extra["seconds"] < 30


def test_guard_refuses_no_repetitions() -> None:
    with pytest.raises(ValueError, match=r"^rejoin_thread_leak needs repetitions >= 1, got 0$"):
        rejoin_thread_leak(repetitions=0)


@pytest.mark.environment
@pytest.mark.cluster(deadline=60)
def test_guard_fails_on_distributed_2026_3_too(stable_python: Path) -> None:
    # Measured: the leak is no 2026.8 regression; every release since 2022.10.1 has it.
    result = run_python(stable_python, "-c", GUARD_SCRIPT, timeout=SUBPROCESS_TIMEOUT_S)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("distributed 2026.3.0\n"), result.stdout
    outcome = result.stdout.splitlines()[-1]
    assert outcome.startswith("WorkloadCheckFailed: thread 'Dask-Default-Threads-"), result.stdout + result.stderr
    assert "(waiter) still blocked in rejoin (distributed/threadpoolexecutor.py:142) 2 s after" in outcome
    assert outcome.endswith(FINDING)


# --------------------------------------------------------------------------------------------------
# The reproducer


@pytest.mark.cluster(deadline=40)
def test_reproducer_exits_1_on_this_suites_distributed() -> None:
    result = run_python(Path(sys.executable), str(REPRODUCER))

    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("dask 2026.8.0, distributed 2026.8.0, python "), result.stdout
    assert lines[1].endswith("is still blocked in rejoin() 2 s after its worker closed:"), result.stdout
    assert 'distributed/threadpoolexecutor.py", line 141, in rejoin' in result.stdout


@pytest.mark.cluster(deadline=40)
def test_reproducer_exits_0_where_rejoin_is_fixed() -> None:
    result = run_python(Path(sys.executable), "-c", RUN_WITH_FIXED_REJOIN, str(REPRODUCER))

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == "the waiting task's thread ended after its worker closed: no leak"
