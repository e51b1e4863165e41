"""Nothing lost when a process is killed: the runner, the controller, the controller's parent (nox), a worker.

Each test starts ``python -m framework.cli matrix`` in a copy of the project on a two-process LocalCluster, waits
until a slow case has measured some repeats, kills something, and asserts the guarantee: the case cut short is
recorded as ``interrupted`` naming the signal (never as a clean pass), the case never started gets an
``interrupted`` setup row, no process the run started is left running, nothing stays in staging, and files written
before are byte for byte the same. Runs of 15–30 s each.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pyarrow as pa
import pytest
from project_copy import (
    checksums,
    command,
    descendants,
    environ,
    left_running,
    make_project,
    rows,
    run,
    runner_of,
    staged_rows,
    start,
    wait_for,
)

from framework.results import CASE_COLUMNS, CASE_SCHEMA, SCHEMA_VERSION, write_atomic

pytestmark = pytest.mark.cluster(deadline=120)  # measured 14–24 s each; more under load

MODULE = """\
import time

import dask


def steps(seconds: float) -> None:
    dask.delayed(time.sleep)(seconds).compute()
"""
WORKLOADS = """\
workloads:
  fault_slow:
    description: Six measured repeats of a half-second task, long enough to be killed in the middle of.
    function: workloads.fault_probe:steps
    params: {seconds: 0.5}
    sizes: {tiny: {}}
    warmup: 1
    repeats: 6
    timeout: 1m
  fault_after:
    description: A quick case after the slow one, never started when the run is killed during the slow one.
    function: workloads.fault_probe:steps
    params: {seconds: 0.01}
    sizes: {tiny: {}}
    warmup: 0
    repeats: 1
    timeout: 1m
"""
MATRIX = """\
matrices:
  default:
    runtimes: [stable]
    hardware: [local]
    workloads: [fault_slow, fault_after]
    size: tiny
"""
KILLED_MID_CASE = r"at measured repeat (?P<at>\d) of 6 \((?P<measured>\d) measured\)"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("kills"), WORKLOADS, MODULE, MATRIX)


def measured(results: Path) -> int:
    return sum('"phase": "measure"' in line and '"fault_slow"' in line for line in staged_rows(results))


def earlier_run(results: Path) -> dict[str, str]:
    """A file an earlier run left (its checksums): no later attack may change a byte of it."""
    row: dict[str, Any] = dict.fromkeys(CASE_COLUMNS)
    when = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    row.update(
        schema_version=SCHEMA_VERSION,
        run_id="20260101T000000Z-000000",
        run_started_at=when,
        started_at=when,
        workload="fault_slow",
        case_id="fault_slow",
        size="tiny",
        phase="measure",
        repeat=0,
        outcome="passed",
        wall_s=0.5,
        runtime="stable",
        hardware="local",
    )
    write_atomic(pa.Table.from_pylist([row], schema=CASE_SCHEMA), results / "cases" / "20260101T000000Z-000000.parquet")
    return checksums(results / "cases")


def cut_short_and_never_started(found: list[dict[str, Any]], cause: str) -> tuple[int, int]:
    """Assert the slow case ends in one ``interrupted`` row (``cause`` + where) after passed repeats only, and the
    quick case has one ``interrupted`` setup row; returns (measured repeats kept, repeat it was cut at)."""
    slow = [row for row in found if row["case_id"] == "fault_slow"]
    assert [row["outcome"] for row in slow[:-1]] == ["passed"] * (len(slow) - 1), slow
    last = slow[-1]
    assert last["outcome"] == "interrupted", last
    match = re.fullmatch(re.escape(cause) + " " + KILLED_MID_CASE, last["error"])
    assert match, last["error"]
    kept = sum(row["phase"] == "measure" for row in slow[:-1])
    assert int(match["measured"]) == kept >= 1
    assert int(match["at"]) == kept + 1 and last["repeat"] == kept and last["phase"] == "measure"
    assert last["wall_s"] is None and last["dask_version"] and last["python_version"]  # nothing measured, all said

    after = [row for row in found if row["case_id"] == "fault_after"]
    assert len(after) == 1 and after[0]["phase"] == "setup" and after[0]["outcome"] == "interrupted", after
    return kept, int(match["at"])


def start_and_wait(project: Path, results: Path, argv: list[str] | None = None) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        argv or command("matrix", f"--results={results}"),
        cwd=project,
        env=environ(project),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(lambda: measured(results) >= 2, 180, "two measured repeats of fault_slow")
    except AssertionError:
        process.kill()
        raise AssertionError(process.communicate()[0][-3000:]) from None
    return process


@pytest.fixture
def reaper() -> Iterator[list[psutil.Process]]:
    """Processes a test started: whatever is left of them is killed at its end, and the test fails."""
    family: list[psutil.Process] = []
    yield family
    assert left_running(family, 1) == []


def test_a_runner_killed_mid_case_records_it_interrupted_by_sigkill_never_a_clean_pass(
    project: Path, tmp_path: Path, reaper: list[psutil.Process]
) -> None:
    results = tmp_path / "results"
    before = earlier_run(results)
    process = start_and_wait(project, results)
    runner = runner_of(process.pid)
    family = [runner, *runner.children(recursive=True)]
    reaper += [psutil.Process(process.pid), *family]
    assert len(family) >= 3, "a runner with two worker processes (and their nannies' helpers)"
    runner.send_signal(signal.SIGKILL)
    output, _ = process.communicate(timeout=120)

    assert process.returncode == 1, output[-3000:]
    assert left_running(family, 10) == [], "the runner's workers outlived it"
    found = [row for row in rows(results) if row["run_id"] != "20260101T000000Z-000000"]
    kept, _ = cut_short_and_never_started(found, "interrupted: the runner was killed by SIGKILL")
    after = next(row for row in found if row["case_id"] == "fault_after")
    assert after["error"] == "interrupted: the runner was killed by SIGKILL before this case ran"
    assert re.search(rf"fault_slow\s+INTERRUPTED\s+{kept}/{kept + 1}\s", output), output[-3000:]
    assert "2 cases: 0 passed, 0 failed, 0 error, 0 timeout, 2 interrupted" in output
    assert "Traceback" not in output
    assert not list((results / ".staging").iterdir())
    assert {name: digest for name, digest in checksums(results / "cases").items() if name in before} == before


def test_a_killed_controller_takes_its_runner_along_and_the_next_run_records_what_it_left(
    project: Path, tmp_path: Path, reaper: list[psutil.Process]
) -> None:
    results = tmp_path / "results"
    before = earlier_run(results)
    process = start_and_wait(project, results)
    family = descendants(process.pid)
    reaper += family
    process.kill()
    process.communicate(timeout=30)

    # The runner notices (its stdin's other end is gone), closes its cluster and exits with its workers.
    assert left_running(family, 30) == [], "the runner or its workers outlived the controller"
    left = sorted(path.name for path in (results / ".staging").iterdir())
    assert [name.split("__", 1)[1] for name in left] == [
        left[0].split("__", 1)[1].removesuffix(".jsonl") + ".jsonl",
        left[0].split("__", 1)[1].removesuffix(".jsonl") + ".plan.json",
    ], left
    plan = (results / ".staging" / left[1]).read_text()
    assert json.loads(plan)["cases"][0]["case_id"] == "fault_slow"

    again = run(project, "matrix", f"--results={results}", "--workload=fault_after")
    assert again.returncode == 0, again.stdout[-3000:]
    assert "recovered 1 result file(s) left by an interrupted run" in again.stdout
    assert not list((results / ".staging").iterdir()), "salvage left its files"
    killed_run = next(
        row["run_id"]
        for row in rows(results)
        if row["case_id"] == "fault_slow" and row["run_id"] != "20260101T000000Z-000000"
    )
    found = [row for row in rows(results) if row["run_id"] == killed_run]
    gone = f"(its controller (pid {process.pid}) is gone: killed, or stopped by an error it reported)"
    cut_short_and_never_started(found, f"interrupted: the run stopped {gone}")
    after = next(row for row in found if row["case_id"] == "fault_after")
    assert after["error"] == f"interrupted: the run stopped before this case ran {gone}"
    assert {name: digest for name, digest in checksums(results / "cases").items() if name in before} == before


def test_when_nox_is_killed_the_controller_stops_records_what_it_cut_short_and_leaves_nothing_running(
    project: Path, tmp_path: Path, reaper: list[psutil.Process]
) -> None:
    """nox runs the controller as a child; killing nox (a CI job's timeout) must not leave a run going on."""
    results = tmp_path / "results"
    stand_in = [sys.executable, "-c", "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"]
    process = start_and_wait(project, results, [*stand_in, *command("matrix", f"--results={results}")])
    family = descendants(process.pid)
    reaper += family
    process.kill()  # the stand-in for nox; the controller is its child
    output = process.stdout.read() if process.stdout else ""  # until the controller (which shares it) closes it
    process.wait(timeout=30)

    assert left_running(family, 30) == []
    assert re.search(r"stopped: its parent process \(pid \d+\) is gone — cases not finished are recorded", output)
    assert not list((results / ".staging").iterdir()), "the controller published its rows itself"
    cut_short_and_never_started(rows(results), "interrupted: the run was stopped by SIGTERM")


def test_a_killed_worker_is_replaced_and_every_case_still_gets_its_rows(
    project: Path, tmp_path: Path, reaper: list[psutil.Process]
) -> None:
    results = tmp_path / "results"
    process = start_and_wait(project, results)
    runner = runner_of(process.pid)
    workers = [p for p in runner.children(recursive=True) if "spawn_main" in " ".join(p.cmdline())]
    family = [runner, *runner.children(recursive=True)]
    reaper += [psutil.Process(process.pid), *family]
    assert workers, [p.cmdline() for p in runner.children(recursive=True)]
    workers[0].send_signal(signal.SIGKILL)
    output, _ = process.communicate(timeout=180)

    assert process.returncode in (0, 1), output[-3000:]
    assert left_running(family, 10) == []
    found = rows(results)
    assert {row["case_id"] for row in found} == {"fault_slow", "fault_after"}
    slow = [row for row in found if row["case_id"] == "fault_slow" and row["phase"] == "measure"]
    # Each measured repeat has its row, or the case ended early with the reason in its last row.
    assert len(slow) == 6 or slow[-1]["outcome"] in ("error", "timeout"), slow
    assert not any(row["outcome"] == "interrupted" for row in found)
    assert not list((results / ".staging").iterdir())


def test_two_matrix_runs_at_once_into_one_store_keep_every_row_of_both(project: Path, tmp_path: Path) -> None:
    results = tmp_path / "results"
    before = earlier_run(results)
    both = [start(project, "matrix", f"--results={results}", "--workload=fault_after") for _ in range(2)]
    outputs = [process.communicate(timeout=240)[0] for process in both]

    assert [process.returncode for process in both] == [0, 0], outputs
    found = [row for row in rows(results) if row["run_id"] != "20260101T000000Z-000000"]
    assert len({row["run_id"] for row in found}) == 2
    assert sorted((row["case_id"], row["outcome"]) for row in found) == [("fault_after", "passed")] * 2
    assert not list((results / ".staging").iterdir())
    assert {name: digest for name, digest in checksums(results / "cases").items() if name in before} == before
