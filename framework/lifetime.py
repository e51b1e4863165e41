"""How long a controller lives: it stops cleanly on SIGTERM/SIGHUP and when its parent (nox, a shell) is gone.

A stop is raised in the main thread as ``Stopped`` (a BaseException, like KeyboardInterrupt, so no ``except
Exception`` swallows it). What is running then ends the way an interrupted run should: the runner's process group is
killed, the cases cut short and never started get ``interrupted`` rows naming the signal, the rows are published,
and the command exits ``128 + signal``. Writing a file (publishing rows) is never cut in half: a stop that arrives
inside ``uninterruptible()`` is raised when the block ends.

The runner side (it notices that its controller is gone) is ``framework.in_runtime.runner.watch_controller``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from types import FrameType

# How often the parent is looked at: a stop is noticed within this many seconds of the parent's death.
PARENT_POLL_S = 0.5
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Stopped(BaseException):
    """The controller was told to stop (a signal), or its parent is gone."""

    def __init__(self, signum: int, why: str = "") -> None:
        self.signum = signum
        self.why = why or f"stopped by {signal.Signals(signum).name}"
        super().__init__(self.why)

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


_state = {"critical": 0, "pending": None, "why": "", "installed": False}
_state_lock = threading.Lock()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    with _state_lock:
        if _state["critical"]:
            _state["pending"] = signum  # raised when the file being written is whole
            return
    raise Stopped(signum, str(_state["why"] or ""))


def install() -> None:
    """In the controller's main thread: stop on SIGTERM/SIGHUP, and stop (as SIGTERM) when the parent dies."""
    if _state["installed"]:
        return
    _state["installed"] = True
    for signum in STOP_SIGNALS:
        signal.signal(signum, _on_signal)
    parent = os.getppid()
    if parent <= 1:  # already orphaned (started by init, or in a container as PID 1's child): nothing to watch
        return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        _state["why"] = f"stopped: its parent process (pid {parent}) is gone"
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="blessing-parent-watch", daemon=True).start()


@contextlib.contextmanager
def uninterruptible() -> Iterator[None]:
    """A block a stop does not cut short (writing a results file): the stop is raised when it ends."""
    with _state_lock:
        _state["critical"] = int(_state["critical"] or 0) + 1
    try:
        yield
    finally:
        with _state_lock:
            _state["critical"] = int(_state["critical"] or 0) - 1
            pending = _state["pending"] if not _state["critical"] else None
            _state["pending"] = None if pending is not None else _state["pending"]
        if pending is not None:
            raise Stopped(int(pending), str(_state["why"] or ""))
