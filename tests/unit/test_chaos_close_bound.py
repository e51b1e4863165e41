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


def test_a_worker_the_scheduler_drops_while_it_registers_fails_with_what_the_scheduler_failed_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The scheduler logs the exception it dropped the new worker on: that, not "never arrived", is the class (two
    different distributed bugs gave the same message on 2022.10.2 and 2024.6.1) — the first it logged, not a later
    one that follows from it."""
    import logging

    from framework.chaos.executor import LivenessError, LogTail

    class Cluster:
        def __init__(self) -> None:
            self.worker_spec: dict[str, Any] = {"0": {}}

        def scale(self, n: int) -> None:
            self.worker_spec["1"] = {}
            try:
                assert not "a priority", "ts"
            except AssertionError:
                logging.getLogger("distributed.scheduler").exception("Error transitioning 'x' from 'no-worker'")
            try:  # what follows from it: releasing the task it failed on fails too
                set().remove("x")
            except KeyError:
                logging.getLogger("distributed.scheduler").exception("Error transitioning 'x' from 'queued'")

    monkeypatch.setattr(chaos_executor, "bounded", lambda function, timeout, what: function())
    monkeypatch.setattr(chaos_executor, "STEP_TIMEOUT_S", 0.2)
    executor = Executor.__new__(Executor)
    executor.cluster = Cluster()  # type: ignore[assignment]
    executor.log_tail = LogTail()
    logging.getLogger("distributed").addHandler(executor.log_tail)
    try:
        monkeypatch.setattr(executor, "live_workers", lambda: [("0", "inproc://0")])
        with pytest.raises(LivenessError) as raised:
            executor._op_add_worker({"op": "add_worker"})
    finally:
        logging.getLogger("distributed").removeHandler(executor.log_tail)
    failed_on = 'AssertionError `assert not "a priority", "ts"` in scale (unit/test_chaos_close_bound.py)'
    assert str(raised.value).startswith(f"the scheduler failed {failed_on}; "), raised.value
    assert str(raised.value).endswith("the worker added by scaling up (1) never arrived")


def test_a_hang_with_no_running_worker_is_named_by_the_first_thing_the_scheduler_failed_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No worker left: what the scheduler failed on first (a worker's registration refused over a task without
    priority) names the hang — not a KeyError that followed from it, nor the stuck keys' states."""
    import logging
    from types import SimpleNamespace

    from framework.chaos import invariants
    from framework.chaos.executor import LogTail
    from framework.failure_signatures import signature

    answers = {invariants.stuck_keys: {"a": "queued"}, invariants.stuck_causes: [invariants.NO_WORKER],
               invariants.transition_counter: 7}  # fmt: skip
    executor = Executor.__new__(Executor)
    executor.client = SimpleNamespace(run_on_scheduler=lambda function, **kwargs: answers[function])  # type: ignore[assignment]
    executor.ledger = SimpleNamespace(pending_keys=lambda: {"a"})  # type: ignore[assignment]
    executor.settle_s = 40
    executor.log_tail = LogTail()
    monkeypatch.setattr(executor, "worker_statuses", dict)
    monkeypatch.setattr(chaos_executor.time, "sleep", lambda seconds: None)
    logger = logging.getLogger("distributed.scheduler")
    logger.addHandler(executor.log_tail)
    try:
        for error in (AssertionError("ts"), KeyError("x")):
            try:
                raise error
            except Exception:
                logger.exception("Error transitioning 'a'")
    finally:
        logger.removeHandler(executor.log_tail)
    failure = executor._liveness_failure()
    assert str(failure).startswith(
        "the scheduler failed AssertionError `raise error` in test_a_hang_with_no_running"
    ), failure
    assert "; stuck on: no running worker; workers: none; deadlock" in str(failure)
    assert signature("liveness", f"LivenessError: {failure}", "").causes == ("no running worker",)


def test_a_hang_nothing_explains_is_named_by_a_scheduler_handler_that_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing seceded or missing, yet tasks stuck: the scheduler's stream handler failed first, logged by
    ``distributed.core`` with an empty message (2022.10.2 dropped three workers over ``assert ts not in
    self.long_running`` in calibration run 7; #7224's ``assert len(recommendations) <= 1``, used here, is logged alike).
    An exception raised through the scheduler's code names the hang; a worker's handler failing does not."""
    import logging
    from types import SimpleNamespace

    from framework.chaos import invariants
    from framework.chaos.executor import LogTail
    from framework.failure_signatures import signature

    answers = {invariants.stuck_keys: {"a": "processing", "b": "queued"},
               invariants.stuck_causes: [invariants.NO_CAUSE], invariants.transition_counter: 7}  # fmt: skip
    executor = Executor.__new__(Executor)
    executor.client = SimpleNamespace(run_on_scheduler=lambda function, **kwargs: answers[function])  # type: ignore[assignment]
    executor.ledger = SimpleNamespace(pending_keys=lambda: {"a", "b"})  # type: ignore[assignment]
    executor.settle_s = 40
    executor.log_tail = LogTail()
    monkeypatch.setattr(executor, "worker_statuses", lambda: {"3": "running"})
    monkeypatch.setattr(chaos_executor.time, "sleep", lambda seconds: None)
    import linecache

    source, filename = (
        "def handle_long_running(recommendations):\n    assert len(recommendations) <= 1\n",
        ("/env/site-packages/distributed/scheduler.py"),
    )
    monkeypatch.setitem(linecache.cache, filename, (len(source), None, source.splitlines(True), filename))
    scheduler_code: dict[str, Any] = {}
    exec(compile(source, filename, "exec"), scheduler_code)
    logger = logging.getLogger("distributed.core")
    logger.addHandler(executor.log_tail)
    try:
        try:
            raise ValueError("a worker's handler")  # raised here, not in distributed/scheduler.py: not the scheduler's
        except ValueError:
            logger.exception("")
        assert executor.log_tail.first_error == ""
        try:
            scheduler_code["handle_long_running"]([1, 2])
        except AssertionError:
            logger.exception("")
    finally:
        logger.removeHandler(executor.log_tail)
    failure = str(executor._liveness_failure())
    failed_on = "AssertionError `assert len(recommendations) <= 1` in handle_long_running (distributed/scheduler.py)"
    assert failure.startswith(f"the scheduler failed {failed_on}; 2 future(s)"), failure
    text = signature("liveness", f"LivenessError: {failure}", "").text
    assert text == (
        "liveness: LivenessError; stuck (nothing seceded or missing);"
        ' "the scheduler failed AssertionError `assert len(recommendations) <= N in handle_long_running"'
    ), text


def test_the_known_failure_of_7224_matches_the_message_the_fuzzer_writes() -> None:
    """Its signature once ended at ``<= N``, which no failure written since the first error got its frame matches."""
    from framework import known_failures
    from framework.failure_signatures import signature

    message = (
        "LivenessError: the scheduler failed AssertionError `assert len(recommendations) <= 1` in handle_long_running"
        " (distributed/scheduler.py); the worker added by scaling up (1) never arrived"
    )
    found = known_failures.match(known_failures.load_known_failures(), signature("liveness", message, "").text)
    assert found is not None and found.name == "distributed_7224_long_running_two_slots"
