"""A close_worker step waits as long as teardown does for a worker to close (``CLOSE_TIMEOUT_S``), not a step's usual
60 s: in one process a worker with busy task threads takes up to its own close timeout (30 s) after any other closing
worker's, behind distributed's thread-pool lock — a close behind a retirement took over 60 s on 2022.10.2 (calibration
run 5, failure 20261207T012127Z-440ce9), a harness false alarm. The bound is checked here without a cluster."""

from __future__ import annotations

from typing import Any

import pytest

from framework.chaos import executor as chaos_executor
from framework.chaos.executor import CLOSE_TIMEOUT_S, STEP_TIMEOUT_S, Executor


class Ledger:
    def churn(self) -> None:
        pass


def test_closing_a_worker_is_bounded_by_the_close_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    bounds: list[tuple[float, str]] = []

    def recording(function: Any, timeout: float, what: str) -> Any:
        bounds.append((timeout, what))
        return None

    monkeypatch.setattr(chaos_executor, "bounded", recording)
    executor = Executor.__new__(Executor)
    executor.ledger = Ledger()  # type: ignore[assignment]
    executor.workers_model = 2
    monkeypatch.setattr(executor, "_pick_worker", lambda which, target="any": ("1", "inproc://worker-1"))
    monkeypatch.setattr(executor, "_forget_worker", lambda name: object())
    executor._op_close_worker({"op": "close_worker", "which": 0, "target": "any"})
    assert bounds == [(CLOSE_TIMEOUT_S, "closing worker 1")]
    assert CLOSE_TIMEOUT_S >= 2 * STEP_TIMEOUT_S  # two 30 s closes in a row, and then some
    assert executor.workers_model == 1
