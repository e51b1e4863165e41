"""Recorded failures for the signature tests: real ones (tests/resources/failures/recorded.json, copied from this
machine's results store on 2026-12-06) and the stability fuzzer's thread-leak teardown failure, written as
``LeakWatch.check`` and ``format_traceback`` write it (the error line, then each leaked thread's stack as a note)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RECORDED = Path(__file__).resolve().parents[1] / "resources" / "failures" / "recorded.json"


def recorded() -> dict[str, dict[str, Any]]:
    return dict(json.loads(RECORDED.read_text(encoding="utf-8")))


def leak_failure(
    *, env: str, python: str, line: int, pid: int, via_worker_client: bool, root: str = "/work/main"
) -> tuple[str, str]:
    """The row ``error`` and ``traceback`` of a thread left waiting in ``rejoin()`` after its worker closed."""
    site = f"{root}/.blessing/envs/{env}/lib/python{python}/site-packages"
    stdlib = f"/root/.local/share/uv/python/cpython-{python}.7-linux-x86_64-gnu/lib/python{python}"
    thread = f"0-Dask-Default-Threads-{pid}-0"
    caller = "worker_client (distributed/worker_client.py:66)" if via_worker_client else "task (chaos/graphs.py:131)"
    where = f"{thread} in rejoin (distributed/threadpoolexecutor.py:{line}) ← {caller}"
    message = f"left running 10 s after the cluster closed: thread '{thread}' — where the threads wait: {where}"
    error = f"teardown: TeardownError: {message}"
    frames = [
        (f"{stdlib}/threading.py", 1002, "_bootstrap"),
        (f"{stdlib}/threading.py", 1045, "_bootstrap_inner"),
        (f"{site}/distributed/threadpoolexecutor.py", 57, "_worker"),
        (f"{site}/distributed/worker.py", 2981, "apply_function_simple"),
        (f"{root}/framework/chaos/graphs.py", 131, "task"),
    ]
    if via_worker_client:
        frames += [
            (f"{stdlib}/contextlib.py", 144, "__exit__"),
            (f"{site}/distributed/worker_client.py", 66, "worker_client"),
        ]
    frames += [
        (f"{site}/distributed/threadpoolexecutor.py", line, "rejoin"),
        (f"{stdlib}/threading.py", 629, "wait"),
        (f"{stdlib}/threading.py", 327, "wait"),
    ]
    stack = "".join(f'  File "{path}", line {number}, in {name}\n    pass\n' for path, number, name in frames)
    traceback = (
        "Traceback (most recent call last):\n"
        f'  File "{root}/framework/chaos/machine.py", line 349, in teardown\n    outcomes = executor.finish()\n'
        f'  File "{root}/framework/chaos/executor.py", line 488, in finish\n    self.leak_watch.check()\n'
        f'  File "{root}/framework/chaos/invariants.py", line 203, in check\n    raise error\n'
        f"framework.chaos.invariants.TeardownError: {message}\n"
        f"stack of thread {thread}:\n{stack}"
    )
    return error, traceback


LEAK_SIGNATURE = "teardown: TeardownError; threads wait in rejoin (distributed/threadpoolexecutor.py)"
