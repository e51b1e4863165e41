"""Network faults in chaos programs, on real clusters: a short explicit program with ``slow_link``, both scopes
of ``drop_links`` (and ``stop_worker`` in the process tier) passes every invariant, and each fault really
happened: the latency shows in the steps' time, the worker whose scheduler stream was dropped closed, the
stopped process was stopped, and the proxies' thread and sockets are gone after teardown."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from test_chaos_invariants import MiB, config

from framework.chaos.executor import Executor, run_program


def program(tier: str) -> list[dict[str, Any]]:
    memory = (256 if tier == "inprocess" else 768) * MiB
    steps: list[dict[str, Any]] = [
        {"op": "start", "config": config(tier, memory_limit=memory, network=True)},
        {"op": "submit", "graph": {"kind": "tree", "n": 10, "seed": 3, "ms_max": 20}},
        {"op": "slow_link", "which": 0, "ms": 300, "seed": 5},
        {"op": "submit", "graph": {"kind": "dag", "n": 10, "seed": 4, "ms_max": 5}},
        {"op": "drop_links", "which": 1, "scope": "peers", "refuse_ms": 200},
        {"op": "settle"},
        {"op": "submit", "graph": {"kind": "fanout", "n": 8, "seed": 6}},
        {"op": "drop_links", "which": 0, "scope": "all", "refuse_ms": 200},
    ]
    if tier == "process":
        steps.append({"op": "stop_worker", "which": 0, "ms": 500})
    return [*steps, {"op": "submit", "graph": {"kind": "chain", "n": 5, "seed": 9}}, {"op": "add_worker"}]


@pytest.mark.cluster(deadline=240)
@pytest.mark.parametrize("tier", ["inprocess", "process"])
def test_a_program_with_network_faults_passes_the_invariants(tier: str) -> None:
    executor: Executor = run_program(program(tier), settle_s=60.0)
    assert executor.network is not None
    links = [link for links in executor.network.links.values() for link in links]
    # connections went through the links: to each worker, and (process tier) from each to the scheduler
    roles = {"inbound", "to_scheduler"} if tier == "process" else {"inbound"}
    assert {link.role for link in links} == roles
    assert sum(link.connections for link in links) > 0
    # 300 ms each way on worker 0's links: the state checks after that step talked to it at least once
    assert executor.timings["validate"] >= 0.6
    if tier == "process":
        # the worker whose every link was dropped closed itself, and that was not the program's failure
        assert len(executor.dropped_workers) == 1
        assert "clos" in str(executor.dropped_workers[0].status)
        assert executor.timings["stop_worker"] >= 0.5
        assert not executor.stopped.pids
    else:
        assert not executor.dropped_workers  # in one process the scheduler stream is not proxied
    # teardown: the proxies' thread and listening sockets are gone
    assert not executor.network.thread.is_alive()
    assert not any(thread.name == "blessing-net" for thread in threading.enumerate())
    assert all(link.sock.fileno() == -1 and not link.transports for link in links)
    executor.cleanup()
