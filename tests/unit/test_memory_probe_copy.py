"""The worker's RSS probe and its readers: a reader copies the probe's table while the probe's thread adds to it. On
Python 3.11 that copy is not atomic — a garbage collection inside it runs ``gc.callbacks`` (the health watch
installs one on every worker), which can hand the GIL to the probe's thread — and a soak once died of it
(``RuntimeError: dictionary changed size during iteration``). Forced here: a probe adding a key every iteration, a
callback that yields the GIL, the shortest switch interval; without the lock this raised thousands of times in 8 s."""

from __future__ import annotations

import gc
import sys
import time
import types
from collections.abc import Iterator

import pytest

from framework.in_runtime import memory


@pytest.fixture
def hostile() -> Iterator[None]:
    def yield_the_gil(phase: str, info: dict[str, int]) -> None:
        time.sleep(0)

    interval = sys.getswitchinterval()
    gc.callbacks.append(yield_the_gil)
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)
        gc.callbacks.remove(yield_the_gil)


def test_reading_the_probes_table_while_it_grows_never_fails(hostile: None) -> None:
    worker = types.SimpleNamespace()
    memory._start_probe(worker, 1e-7)  # a new bucket (a new key) almost every iteration
    state = getattr(worker, memory._ATTRIBUTE)
    state["buckets"].update({-index: 1 for index in range(1, 5000)})  # enough entries that a copy collects
    deadline = time.monotonic() + 2
    reads = 0
    try:
        while time.monotonic() < deadline:
            assert memory.probe_bytes(worker) > 0
            reads += 1
    finally:
        stopped = memory._stop_probe(worker)
    assert reads > 10 and stopped is not None and len(stopped["buckets"]) > 5000
