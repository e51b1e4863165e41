"""Two shards of one matrix run as two processes, each with its own results store (as two CI machines would): they
compute the same split from the same history, and together hold every case exactly once, on rows that carry the run
group and their shard. A copy of the project with three quick workloads on the real ``stable`` runtime
(tests/faults/project_copy.py: nothing is built)."""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from project_copy import make_project, rows, start

from framework.results import CASE_COLUMNS, SCHEMA_VERSION, case_table, write_atomic

pytestmark = pytest.mark.cluster(deadline=150)

MODULE = """\
import time

import dask


def steps(seconds: float) -> None:
    dask.delayed(time.sleep)(seconds).compute()
"""
WORKLOADS = "workloads:\n" + "".join(
    f"""  shard_{name}:
    description: A quick case, one of three to split.
    function: workloads.fault_probe:steps
    params: {{seconds: 0.01}}
    sizes: {{tiny: {{}}}}
    warmup: 0
    repeats: 1
    timeout: 1m
"""
    for name in "abc"
)
MATRIX = """\
matrices:
  default:
    runtimes: [stable]
    hardware: [local-inprocess]
    workloads: [shard_a, shard_b, shard_c]
    size: tiny
"""


def history(results: Path) -> None:
    """An earlier day's run in which shard_b took 50 s and the others 1 s: b must be a shard of its own."""
    started = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=2)
    found = []
    for case, seconds in (("shard_a", 1), ("shard_b", 50), ("shard_c", 1)):
        row: dict[str, Any] = dict.fromkeys(CASE_COLUMNS)
        row.update(
            schema_version=SCHEMA_VERSION,
            run_id="20260101T000000Z-000000",
            run_group="20260101T000000Z-000000",
            run_started_at=started,
            started_at=started,
            ended_at=started + dt.timedelta(seconds=seconds),
            workload=case,
            case_id=case,
            size="tiny",
            phase="measure",
            repeat=0,
            outcome="passed",
            wall_s=float(seconds),
            runtime="stable",
            hardware="local-inprocess",
        )
        found.append(row)
    write_atomic(case_table(found), results / "cases" / "20260101T000000Z-000000__stable__local-inprocess.parquet")


def test_two_shards_in_two_processes_hold_every_case_once(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project", WORKLOADS, MODULE, MATRIX)
    stores = [tmp_path / f"shard-{index}" for index in (1, 2)]
    history(stores[0])
    shutil.copytree(stores[0], stores[1])  # each machine has its copy of the same history
    shards = [
        start(project, "matrix", f"--shard={index}/2", "--run-group=nightly-1", f"--results={store}")
        for index, store in zip((1, 2), stores)
    ]
    outputs = [process.communicate(timeout=140)[0] for process in shards]

    assert [process.returncode for process in shards] == [0, 0], outputs
    balanced = r"split (\w{6}) into 2 shards, balanced by recorded durations \(3 of 3"
    splits = [re.findall(balanced, out) for out in outputs]
    assert len(splits[0]) == 1 and splits[0] == splits[1], outputs  # the same split, named the same
    assert "shard 2/2 of run group nightly-1" in outputs[1] and "run_groups WHERE run_group = 'nightly-1'" in outputs[1]
    ran = [[row for row in rows(store) if row["run_group"] == "nightly-1"] for store in stores]
    cases = [{row["case_id"] for row in found} for found in ran]
    assert sorted([*cases[0], *cases[1]]) == ["shard_a", "shard_b", "shard_c"]  # each case once, in one shard
    assert {"shard_b"} in cases  # the long one alone
    for index, found in enumerate(ran, start=1):
        assert {(row["shard"], row["outcome"]) for row in found} == {(f"{index}/2", "passed")}
        assert len({row["run_id"] for row in found}) == 1  # each shard is its own run
    assert ran[0][0]["run_id"] != ran[1][0]["run_id"]
