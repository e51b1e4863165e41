"""The fuzzer's rules as steps: what each rule asks the executor to do (no cluster: a recording executor)."""

from __future__ import annotations

from typing import Any

from framework.chaos.machine import ChaosMachine, close_targets, targets


class Recording:
    def __init__(self) -> None:
        self.steps: list[dict[str, Any]] = []
        self.workers_model = 2
        self.submissions = {0: object()}

    def apply(self, step: dict[str, Any]) -> None:
        self.steps.append(step)


def machine() -> tuple[ChaosMachine, Recording]:
    made = ChaosMachine()
    recording = Recording()
    made.executor = recording  # type: ignore[assignment]
    return made, recording


def test_losing_a_queued_tasks_input_is_a_rule_of_its_own() -> None:
    """Swarm testing switches whole rules off per example: the aim at queued work must not depend on close_worker
    being switched on (one seed drew 1 close in 24 examples and never met distributed#8702)."""
    made, recording = machine()
    made.lose_queued_input(which=7)
    made.close_worker(which=3, aim="holder")
    assert recording.steps == [
        {"op": "close_worker", "which": 7, "target": "queued"},
        {"op": "close_worker", "which": 3, "target": "holder"},
    ]


def test_close_worker_draws_any_or_holder_and_kill_worker_every_aim() -> None:
    assert set(close_targets.elements) == {"any", "holder"}  # type: ignore[attr-defined]
    assert set(targets.elements) == {"any", "holder", "queued"}  # type: ignore[attr-defined]
