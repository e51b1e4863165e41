"""``framework.in_runtime.runner.run_plan`` on real LocalClusters: one row per execution, each outcome recorded as
such."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from framework.in_runtime import provenance
from framework.in_runtime.runner import run_plan

MiB = 2**20
GiB = 2**30
# Every measure a row carries: either a value or an entry in ``missing`` saying why not — never both.
MEASURES = (
    "tasks",
    "compute_time_s",
    "transfer_time_s",
    "peak_memory_bytes",
    "mean_memory_bytes",
    "spilled_bytes",
    "spill_time_s",
)
SECRET = "s3cret-never-recorded"


def assert_measured_or_missing(row: dict[str, Any]) -> None:
    for name in MEASURES:
        reason = row["missing"].get(name)
        if reason is not None:
            assert reason.strip(), f"{name} is missing without a reason"
            assert row.get(name) is None, f"{name} is missing ({reason}) yet recorded as {row[name]!r}"
        else:
            assert row.get(name) is not None, f"{name} is neither recorded nor listed in missing"


def assert_passed_and_measured(row: dict[str, Any]) -> None:
    assert row["outcome"] == "passed", row.get("error")
    assert "error" not in row
    assert row["wall_s"] > 0
    assert row["tasks"] > 0
    assert row["compute_time_s"] >= 0
    assert sum(row["tasks_by_worker"].values()) == row["tasks"]
    assert_measured_or_missing(row)
    if "peak_memory_bytes" not in row["missing"]:
        assert row["peak_memory_bytes"] > 0
        assert 0 < row["mean_memory_bytes"] <= row["peak_memory_bytes"]
    assert dt.datetime.fromisoformat(row["started_at"]) <= dt.datetime.fromisoformat(row["ended_at"])


@pytest.mark.cluster(deadline=60)
@pytest.mark.parametrize("processes", [True, False], ids=["processes", "in-process"])
def test_a_passing_case_records_warmup_and_measured_rows(processes, make_plan, make_case, local_hardware, read_rows):
    case = make_case("fixtures_workloads:passes", {"n": 100_000, "chunk": 10_000}, warmup=1, repeats=2)
    plan = make_plan(local_hardware(processes=processes), [case])

    assert run_plan(plan) == 0

    rows = read_rows(plan)
    assert [(row["phase"], row["repeat"]) for row in rows] == [("warmup", 0), ("measure", 0), ("measure", 1)]
    for row in rows:
        assert_passed_and_measured(row)
        assert row["extra_metrics"] == {"elements": 100_000.0}
        assert (row["cluster_workers"], row["cluster_threads"]) == (2, 2)
        assert row["cluster_memory_limit_bytes"] == 2 * GiB
        assert (row["case_id"], row["params"], row["timeout_s"]) == ("passes/tiny", case["params"], 60.0)
        assert (row["runtime"], row["hardware"], row["hardware_backend"]) == (
            "test-runtime",
            plan["hardware"]["name"],
            "local",
        )
        assert row["settings_scope"] == "cluster"
        assert row["dask_version"] == row["packages"]["dask"]
        assert row["hardware_spec"] == plan["hardware"]
        assert row["machine_fingerprint"] == {**provenance.machine_fingerprint(), "measured_on": "runner"}
        assert row["machine_id"] == provenance.machine_id(provenance.machine_fingerprint())
    # 10 chunks summed, then combined: every execution runs the same graph, warm-up included.
    assert len({row["tasks"] for row in rows}) == 1
    # The machine's load over each execution (Linux here: load average, PSI and /proc/stat all exist).
    for row in rows:
        assert row["load_avg_1m"] >= 0 and row["overloaded"] == (row["load_avg_1m"] > row["cpu_count"])
        for name in ("cpu_pressure", "cpu_steal"):
            assert (row[name] is None) == (name in row["missing"]), (name, row["missing"])
            assert row[name] is None or 0 <= row[name] <= 1


@pytest.mark.cluster(deadline=30)
def test_a_raising_case_is_an_error_with_its_traceback(make_plan, make_case, local_hardware, read_rows):
    # A warm-up that does not pass stops the case: its measured repeats would measure nothing useful.
    case = make_case("fixtures_workloads:raises", {"message": "boom from the test"}, warmup=1, repeats=3)
    plan = make_plan(local_hardware(processes=False), [case, make_case("fixtures_workloads:passes")])

    assert run_plan(plan) == 1

    error_row, next_row = read_rows(plan)
    assert (error_row["phase"], error_row["outcome"]) == ("warmup", "error")
    assert error_row["error"] == "ValueError: boom from the test"
    assert "Traceback (most recent call last)" in error_row["traceback"]
    assert "fixtures_workloads.py" in error_row["traceback"]
    assert "raise ValueError(message)" in error_row["traceback"]
    assert_measured_or_missing(error_row)
    assert next_row["case_id"] == "passes/tiny"
    assert_passed_and_measured(next_row)


@pytest.mark.cluster(deadline=30)
def test_a_failed_check_is_failed_not_error(make_plan, make_case, local_hardware, read_rows):
    plan = make_plan(local_hardware(processes=False), [make_case("fixtures_workloads:fails_check", repeats=2)])

    assert run_plan(plan) == 2

    rows = read_rows(plan)
    assert [row["outcome"] for row in rows] == ["failed", "failed"]
    for row in rows:
        assert row["error"] == "WorkloadCheckFailed: expected 11 ones, counted 10"
        assert "check(total == 11" in row["traceback"]
        # The computation ran before the check failed: it was measured.
        assert row["tasks"] > 0
        assert_measured_or_missing(row)


@pytest.mark.cluster(deadline=60)
def test_a_timeout_dumps_the_cluster_and_the_next_case_still_runs(make_plan, make_case, local_hardware, read_rows):
    from distributed.cluster_dump import DumpArtefact

    plan = make_plan(
        local_hardware(processes=True),
        [
            make_case("fixtures_workloads:sleeps", {"seconds": 60}, timeout_s=1.0, repeats=2),
            make_case("fixtures_workloads:passes"),
        ],
    )

    assert run_plan(plan) == 1

    timeout_row, next_row = read_rows(plan)  # the timed-out case's second repeat is not attempted
    assert (timeout_row["case_id"], timeout_row["outcome"]) == ("sleeps/tiny", "timeout")
    assert timeout_row["error"] == "exceeded the case timeout of 1 s"
    assert 1.0 <= timeout_row["wall_s"] < 10
    assert_measured_or_missing(timeout_row)
    assert "tasks" in timeout_row["missing"]

    dump = Path(timeout_row["cluster_dump"])
    assert dump.is_file()
    assert dump.parent == Path(plan["dumps_dir"])
    assert dump.name.startswith("sleeps_tiny-measure0")
    processing = DumpArtefact.from_url(str(dump)).scheduler_tasks_in_state("processing")
    assert any(str(task["key"]).startswith("sleep-") for task in processing), processing

    # A fresh cluster replaced the one with the hung task: the next case has both workers again.
    assert next_row["case_id"] == "passes/tiny"
    assert_passed_and_measured(next_row)
    assert next_row["cluster_workers"] == 2


@pytest.mark.cluster(deadline=60)
def test_runtime_env_vars_and_dask_config_reach_the_workers(make_plan, make_case, local_hardware, read_rows):
    key = "distributed.scheduler.worker-saturation"
    plan = make_plan(
        local_hardware(processes=True),
        [make_case("fixtures_workloads:reports_settings", {"key": key, "env_name": "MALLOC_ARENA_MAX"})],
        env={"MALLOC_ARENA_MAX": "3", "BLESSING_TEST_SERVICE_TOKEN": SECRET},
        dask_config={key: 1.5},
    )

    assert run_plan(plan) == 0

    (row,) = read_rows(plan)
    assert row["outcome"] == "passed", row.get("error")
    assert row["extra_metrics"] == {
        "workers": 2.0,
        "config_min": 1.5,
        "config_max": 1.5,
        "env_min": 3.0,
        "env_max": 3.0,
    }
    assert row["dask_config"] == {key: 1.5}
    # Tuning knobs are recorded with their value; anything else (a token above all) by name only.
    assert row["env_vars"]["MALLOC_ARENA_MAX"] == "3"
    assert row["env_vars"]["BLESSING_TEST_SERVICE_TOKEN"] is None
    assert SECRET not in Path(plan["rows_path"]).read_text(encoding="utf-8")


@pytest.mark.cluster(deadline=60)
def test_spilling_is_measured(make_plan, make_case, local_hardware, read_rows):
    # 2 workers × 300 MiB keep at most 60 % each in memory (≈ 180 MiB); 458 MiB of data must spill.
    # Pausing and terminating on process memory are off, so a worker's own footprint cannot stall the case.
    n, chunk = 60_000_000, 2_500_000
    plan = make_plan(
        local_hardware(processes=True, memory_limit=300 * MiB),
        [make_case("fixtures_workloads:spills", {"n": n, "chunk": chunk})],
        dask_config={"distributed.worker.memory.pause": False, "distributed.worker.memory.terminate": False},
    )

    assert run_plan(plan) == 0

    (row,) = read_rows(plan)
    assert_passed_and_measured(row)
    assert "spilled_bytes" not in row["missing"]
    assert row["spilled_bytes"] > 0
    assert row["spill_count"] > 0
    assert row["spill_time_s"] > 0
    assert row["unspilled_bytes"] > 0  # the sum read spilled chunks back


@pytest.mark.cluster(deadline=30)
def test_a_cluster_that_cannot_start_records_every_case_as_a_setup_error(
    make_plan, make_case, local_hardware, read_rows
):
    hardware = local_hardware(processes=False, memory_limit="plenty")
    plan = make_plan(hardware, [make_case("fixtures_workloads:passes"), make_case("fixtures_workloads:raises")])

    assert run_plan(plan) == 2

    rows = read_rows(plan)
    assert [row["case_id"] for row in rows] == ["passes/tiny", "raises/tiny"]
    for row in rows:
        assert (row["phase"], row["outcome"]) == ("setup", "error")
        assert f"hardware {hardware['name']}: LocalCluster did not start" in row["error"]
        assert "memory_limit_per_worker" in row["error"]
        assert row["runtime"] == "test-runtime"
        assert row.get("load_avg_1m") is None and row["missing"]["load_avg_1m"] == "the case never ran"
