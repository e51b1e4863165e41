"""Cluster memory is measured at 10 ms resolution: a short allocation that heartbeats would miss is seen."""

from __future__ import annotations

import pytest

from framework.in_runtime.runner import run_plan

MiB = 2**20


@pytest.mark.cluster(deadline=60)
def test_a_short_allocation_raises_the_peak_by_its_size(make_plan, make_case, local_hardware, read_rows):
    # Baseline: tasks that hold nothing. Then 2 tasks (one per worker) each holding 300 MiB for 0.3 s —
    # shorter than the 0.5 s heartbeat that feeds distributed's MemorySampler.
    idle = make_case("fixtures_workloads:holds_memory", {"mib": 1, "seconds": 0.3, "tasks": 2}, repeats=2)
    held = make_case("fixtures_workloads:holds_memory", {"mib": 300, "seconds": 0.3, "tasks": 2}, repeats=2)
    held["case_id"] = "holds/300"
    plan = make_plan(local_hardware(processes=True, memory_limit=2 * 1024 * MiB), [idle, held])

    assert run_plan(plan) == 0

    rows = read_rows(plan)
    by_case: dict[str, list[dict]] = {}
    for row in rows:
        assert row["memory_method"] == "rss-probe"
        assert row["memory_samples"] >= 20, "0.3 s at 10 ms should give dozens of buckets"
        assert row["mean_memory_bytes"] <= row["peak_memory_bytes"]
        by_case.setdefault(row["case_id"], []).append(row)
    baseline = min(row["peak_memory_bytes"] for row in by_case[idle["case_id"]])
    peaks = [row["peak_memory_bytes"] for row in by_case["holds/300"]]
    # Two workers at once: the peak of the sum grows by ≈ 600 MiB (allow for allocator and timing slack: a fresh-clone
    # run on a loaded machine measured +486 MiB; an idle worker adds nothing).
    assert all(peak - baseline > 450 * MiB for peak in peaks), (baseline / MiB, [p / MiB for p in peaks])
    assert all(peak - baseline < 800 * MiB for peak in peaks), (baseline / MiB, [p / MiB for p in peaks])


@pytest.mark.cluster(deadline=60)
def test_in_process_workers_count_their_shared_process_once(make_plan, make_case, local_hardware, read_rows):
    import psutil

    case = make_case("fixtures_workloads:holds_memory", {"mib": 1, "seconds": 0.2, "tasks": 2}, repeats=1)
    plan = make_plan(local_hardware(processes=False), [case])

    assert run_plan(plan) == 0

    [row] = read_rows(plan)
    rss = psutil.Process().memory_info().rss
    # Two workers live in this process: counted twice, the figure would be about twice this process's RSS.
    assert row["peak_memory_bytes"] < 1.5 * rss
