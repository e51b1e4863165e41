"""The chaos graphs and their oracle, without a cluster: shapes, determinism, order sensitivity, allowances."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from framework.chaos import graphs
from framework.chaos.strategies import graph_params

MiB = 2**20


def params(kind: str, n: int, **extra: object) -> dict[str, object]:
    return {"kind": kind, "n": n, "seed": 3, **extra}


@given(graph_params)
@settings(max_examples=200, deadline=None)
def test_every_drawn_graph_is_topologically_ordered_and_deterministic(drawn: dict[str, object]) -> None:
    nodes = graphs.build_graph(drawn, gid=4, memory_limit=MiB)
    seen: set[str] = set()
    for node in nodes:
        assert all(dep in seen for dep in node["deps"]), f"{node['key']} before its dependencies"
        assert node["key"] not in seen, f"duplicate key {node['key']}"
        seen.add(node["key"])
    assert graphs.build_graph(drawn, gid=4, memory_limit=MiB) == nodes
    assert graphs.evaluate(nodes) == graphs.evaluate(graphs.build_graph(drawn, gid=4, memory_limit=MiB))


@pytest.mark.parametrize(
    ("kind", "n", "expected_nodes", "expected_sinks"),
    [("chain", 5, 5, 1), ("tree", 8, 15, 1), ("fanout", 6, 6, 6), ("dag", 1, 1, 1), ("spill", 4, 5, 1)],
)
def test_shapes(kind: str, n: int, expected_nodes: int, expected_sinks: int) -> None:
    nodes = graphs.build_graph(params(kind, n), gid=0, memory_limit=MiB)
    assert len(nodes) == expected_nodes
    assert len(graphs.outputs(nodes)) == expected_sinks
    assert len(graphs.outputs(nodes, "all")) == expected_nodes


def test_fanout_keys_share_one_task_group_so_the_scheduler_can_queue_them() -> None:
    from dask.utils import key_split

    nodes = graphs.build_graph(params("nested", 10, nest=2, shared_dep=True), gid=7, memory_limit=MiB)
    groups = {key_split(node["key"]) for node in nodes if not node["key"].startswith("nested7src")}
    assert groups == {"nested7"}
    children = {key_split(graphs.child_key(node, j)) for node in nodes for j in range(node.get("nest", 0))}
    assert children == {"nested7c"}


def test_a_value_depends_on_the_order_of_its_inputs() -> None:
    node = {"key": "x-0", "salt": 5}
    assert graphs.node_value(node, [1, 2], []) != graphs.node_value(node, [2, 1], [])
    assert graphs.node_value(node, [1, 2], []) == graphs.node_value(node, [1, 2], [])


def test_spill_payloads_are_sized_from_the_memory_limit_and_incompressible() -> None:
    import zlib

    nodes = graphs.build_graph(params("spill", 3, spill_fraction=0.25), gid=0, memory_limit=4 * MiB)
    payloads = [node for node in nodes if node.get("bytes")]
    assert {node["bytes"] for node in payloads} == {MiB}
    data = graphs.payload(1, MiB)
    assert len(data) == MiB
    assert len(zlib.compress(data)) > 0.99 * MiB
    assert graphs.payload(1, 1000) == graphs.payload(1, 1000) != graphs.payload(2, 1000)


def test_faulty_keys_are_the_failing_node_and_everything_downstream() -> None:
    nodes = graphs.build_graph(
        params("chain", 4, faults=[{"index": 1, "mode": "attempts", "times": 1}]), gid=0, memory_limit=MiB
    )
    assert graphs.faulty(nodes) == {"chain0-1", "chain0-2", "chain0-3"}
    rescheduled = graphs.build_graph(
        params("chain", 4, faults=[{"index": 1, "mode": "reschedule", "times": 1}]), gid=0, memory_limit=MiB
    )
    assert graphs.faulty(rescheduled) == set(), "Reschedule is not an error: its keys must still succeed"


def test_gates_and_indices_wrap_around_the_graph() -> None:
    nodes = graphs.build_graph(params("fanout", 4, gated=[6]), gid=2, memory_limit=MiB)
    assert graphs.gates(nodes) == ["gate-fanout2-2"]


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown graph kind 'ring'"):
        graphs.build_graph(params("ring", 3), gid=0, memory_limit=MiB)


def test_attempts_are_counted_across_calls(tmp_path: object) -> None:
    scratch = str(tmp_path)
    assert [graphs._claim_attempt(scratch, "k-1") for _ in range(3)] == [0, 1, 2]
    assert graphs._claim_attempt(scratch, "k-2") == 0


def test_p2p_partition_check() -> None:
    good = [{"k": [1, 1, 2], "v": [0, 1, 2]}, {"k": [3], "v": [3]}]
    assert graphs.check_p2p_partitions(good, rows=4) is None
    split_key = [{"k": [1], "v": [0]}, {"k": [1], "v": [1]}]
    assert "key 1 in partitions 0 and 1" in str(graphs.check_p2p_partitions(split_key, rows=2))
    lost_row = [{"k": [1], "v": [0]}]
    assert "1 rows out" in str(graphs.check_p2p_partitions(lost_row, rows=2))


def test_a_loop_that_does_not_stop_names_what_its_pending_tasks_await() -> None:
    import asyncio
    import threading

    from framework.chaos.invariants import pending_tasks

    loop = asyncio.new_event_loop()
    started = threading.Event()

    async def finished(event: asyncio.Event) -> None:
        await event.wait()

    async def close() -> None:
        event = asyncio.Event()
        started.set()
        await finished(event)  # an earlier close that never ends

    def run() -> None:
        task = loop.create_task(close())
        loop.run_forever()
        task.cancel()
        loop.run_until_complete(asyncio.gather(task, return_exceptions=True))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(5)
    try:
        found = pending_tasks(loop)
        assert len(found) == 1
        assert found[0].startswith("wait (asyncio/locks.py:")
        assert "← finished (unit/test_chaos_graphs.py:" in found[0]
        assert "← close (unit/test_chaos_graphs.py:" in found[0]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
