"""The fuzzer's rules as steps: what each rule asks the executor to do (no cluster: a recording executor)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings

from framework.chaos.graphs import build_graph
from framework.chaos.machine import ChaosMachine
from framework.chaos.strategies import close_targets, queued_fanouts, targets


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
    fanout = {"kind": "fanout", "n": 12, "shared_dep": True, "ms_max": 200}
    made.lose_queued_input(graph=fanout, which=7)
    made.close_worker(which=3, aim="holder")
    assert recording.steps == [
        {"op": "submit", "graph": fanout},
        {"op": "close_worker", "which": 7, "target": "queued"},
        {"op": "close_worker", "which": 3, "target": "holder"},
    ]


@settings(max_examples=200, deadline=None)
@given(queued_fanouts)
def test_the_fanouts_it_loses_queue_on_one_shared_input(graph: dict[str, Any]) -> None:
    """Wide enough to be root-ish on any cluster the fuzzer draws before scaling (3 workers × 2 threads: over 2 × 6
    is not guaranteed, so at least 8 and up to 24), over one shared input, slow enough to stay queued."""
    assert graph["kind"] == "fanout" and graph["shared_dep"] is True
    assert 8 <= graph["n"] <= 24 and graph["ms_max"] in (100, 200, 500)
    nodes = build_graph(graph, 0, 256 * 2**20)
    sources = [node["key"] for node in nodes if not node["deps"]]
    assert sources == ["fanout0src-0"]
    assert sum(1 for node in nodes if node["deps"] == ["fanout0src-0"]) == graph["n"]


def test_close_worker_draws_any_or_holder_and_kill_worker_every_aim() -> None:
    assert set(close_targets.elements) == {"any", "holder"}  # type: ignore[attr-defined]
    assert set(targets.elements) == {"any", "holder", "queued"}  # type: ignore[attr-defined]
