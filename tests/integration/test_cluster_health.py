"""Scheduler and worker health through the runner: a stall of the scheduler's or the workers' event loop shows up
in the row, where it happened, and the hooks leave nothing behind."""

from __future__ import annotations

import gc

import pytest

from framework.in_runtime.cluster_health import COLUMNS
from framework.in_runtime.runner import run_plan


@pytest.mark.cluster(deadline=60)  # measured 6 s (two worker processes start, two cases of ~0.5 s)
def test_a_blocked_event_loop_shows_up_where_it_was_blocked(make_plan, make_case, local_hardware, read_rows):
    scheduler = make_case("fixtures_workloads:blocks_event_loop", {"where": "scheduler", "seconds": 0.5})
    scheduler["case_id"] = "blocks/scheduler"
    workers = make_case("fixtures_workloads:blocks_event_loop", {"where": "workers", "seconds": 0.5})
    workers["case_id"] = "blocks/workers"
    callbacks_before = list(gc.callbacks)
    plan = make_plan(local_hardware(processes=True), [scheduler, workers])

    assert run_plan(plan) == 0

    by_case = {row["case_id"]: row for row in read_rows(plan)}
    for row in by_case.values():
        assert not set(COLUMNS) & set(row["missing"]), row["missing"]
        assert all(row[column] is not None for column in COLUMNS)
        assert row["scheduler_cpu_s"] >= 0 and row["scheduler_gc_s"] >= 0 and row["worker_gc_s"] >= 0
        assert row["scheduler_peak_rss_bytes"] > 50 * 2**20  # the runner's process: Python, dask, distributed
    blocked = by_case["blocks/scheduler"]
    assert blocked["scheduler_loop_max_s"] >= 0.4 and blocked["scheduler_loop_blocked_s"] >= 0.4, blocked
    blocked = by_case["blocks/workers"]
    assert blocked["worker_loop_max_s"] >= 0.4, blocked
    assert blocked["worker_loop_blocked_s"] >= 0.8, blocked  # both workers, summed
    # the scheduler's hooks came off with the case (it shares this process): no GC callback stays behind
    assert gc.callbacks == callbacks_before
