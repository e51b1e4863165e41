"""A workload's fixture runs around its executions; scaled parameters are resolved for the cluster at hand."""

from __future__ import annotations

import pytest

from framework.in_runtime.runner import run_plan

GiB = 2**30


@pytest.mark.cluster(deadline=60)
def test_fixture_parameters_and_scaled_parameters_reach_the_workload(make_plan, make_case, local_hardware, read_rows):
    import fixtures_workloads

    fixtures_workloads.FIXTURE_EVENTS.clear()
    params = {"target_bytes": {"fraction_of_cluster_memory": 0.25}, "partitions": {"per_worker": 3}}
    case = make_case("fixtures_workloads:echoes", params, warmup=1, repeats=2)
    case["fixture"] = "fixtures_workloads:gives_a_token"
    plan = make_plan(local_hardware(processes=False, memory_limit=GiB), [case])

    assert run_plan(plan) == 0

    rows = read_rows(plan)
    assert [row["outcome"] for row in rows] == ["passed"] * 3
    for row in rows:
        # Two workers × 1 GiB: a quarter of cluster memory, three partitions per worker.
        assert row["extra_metrics"]["target_bytes"] == GiB // 2
        assert row["extra_metrics"]["partitions"] == 6
        # The fixture ran once for all three executions (set up, not yet torn down).
        assert row["extra_metrics"]["events"] == 1
        # Recorded parameters are the resolved ones, without what the fixture provided.
        assert row["params"] == {"target_bytes": GiB // 2, "partitions": 6}
    assert fixtures_workloads.FIXTURE_EVENTS == ["setup", "teardown"]


@pytest.mark.cluster(deadline=60)
def test_a_failing_fixture_is_a_setup_error_and_the_next_case_runs(make_plan, make_case, local_hardware, read_rows):
    broken = make_case("fixtures_workloads:passes", {"n": 1000, "chunk": 100}, repeats=1)
    broken["fixture"] = "fixtures_workloads:broken_fixture"
    broken["case_id"] = "broken"
    fine = make_case("fixtures_workloads:passes", {"n": 1000, "chunk": 100}, repeats=1)
    plan = make_plan(local_hardware(processes=False), [broken, fine])

    assert run_plan(plan) == 1

    rows = read_rows(plan)
    assert [(row["case_id"], row["phase"], row["outcome"]) for row in rows] == [
        ("broken", "setup", "error"),
        (fine["case_id"], "measure", "passed"),
    ]
    assert (
        "fixture fixtures_workloads:broken_fixture failed: RuntimeError: the server would not start" in rows[0]["error"]
    )


@pytest.mark.cluster(deadline=60)
def test_memory_scaling_on_workers_without_a_limit_is_a_setup_error(make_plan, make_case, local_hardware, read_rows):
    case = make_case("fixtures_workloads:passes", {"n": {"fraction_of_cluster_memory": 0.5}}, repeats=1)
    plan = make_plan(local_hardware(processes=False, memory_limit=0), [case])

    assert run_plan(plan) == 1

    [row] = read_rows(plan)
    assert (row["phase"], row["outcome"]) == ("setup", "error")
    assert "fraction_of_cluster_memory needs workers with a memory limit" in row["error"]
