"""framework/salvage.py (rows for what a run did not finish), framework/lifetime.py (a stop never cuts a file in
half) and how a runner's end is described (framework/engine.py). The processes themselves: tests/faults/."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from framework import lifetime
from framework.engine import BUDGET_EXCEEDED, runner_ending
from framework.in_runtime.runner import RowWriter
from framework.results import ResultsStore, read_rows
from framework.salvage import cut_short, missing_rows, salvage, sidecar_path, write_sidecar

CASE = {"case_id": "a", "workload": "w", "function": "m:f", "size": "tiny", "params": {}, "tags": [], "timeout_s": 60}


def _case(**overrides: Any) -> dict[str, Any]:
    return {**CASE, "warmup": 1, "repeats": 3, "first_repeat": 0, **overrides}


def _rows(*shape: tuple[str, str]) -> list[dict[str, Any]]:
    """Rows of case ``a`` in the order run: (phase, outcome) each."""
    counts: dict[str, int] = {}
    out = []
    for phase, outcome in shape:
        out.append({"case_id": "a", "phase": phase, "outcome": outcome, "repeat": counts.get(phase, 0)})
        counts[phase] = counts.get(phase, 0) + 1
    return out


@pytest.mark.parametrize(
    ("shape", "where"),
    [
        ([("warmup", "passed"), ("measure", "passed")] + [("measure", "passed")] * 2, None),
        ([("warmup", "failed")], None),  # a failed warm-up ends the case by design
        ([("warmup", "passed"), ("measure", "timeout")], None),  # so does a timeout
        ([("setup", "error")], None),  # and a set-up error
        ([("warmup", "passed"), ("measure", "passed"), ("measure", "error")], "at measured repeat 3 of 3 (2 measured)"),
        ([("warmup", "passed")], "at measured repeat 1 of 3 (0 measured)"),
        ([], None),  # never reported: not "cut short" (it gets its own row)
    ],
)
def test_a_case_is_cut_short_only_when_nothing_ended_it_early(shape, where):
    assert cut_short(_case(), _rows(*shape)) == where


def test_a_case_killed_in_its_warm_ups_says_so():
    assert cut_short(_case(warmup=2), _rows(("warmup", "passed"))) == "during warm-up 2 of 2"


def _plan(*cases: dict[str, Any]) -> dict[str, Any]:
    return {
        "run_id": "run-1",
        "run_started_at": "2026-01-01T00:00:00+00:00",
        "runtime": {"name": "latest", "hash": "h", "env_hash": "e", "spec": {"python": "3.11"}, "dask_config": {}},
        "hardware": {"name": "local", "backend": "local"},
        "cases": list(cases),
        "provenance": {"git_commit": "abc"},
    }


def test_missing_rows_add_an_interrupted_row_after_the_last_and_a_setup_row_for_each_case_never_reported():
    plan = _plan(_case(first_repeat=10), _case(case_id="b"), _case(case_id="c"))
    reported = _rows(("warmup", "passed"), ("measure", "passed"))
    reported[-1].update(python_version="3.11.9", cluster_workers=2, ended_at="2026-01-01T00:00:05+00:00")
    done_c = [{**row, "case_id": "c"} for row in _rows(("setup", "error"))]

    rows = missing_rows(plan, reported + done_c, {"dask": "2026.1.0"}, "never ran", "cut", "interrupted")

    assert [(row["case_id"], row["phase"], row["outcome"], row["error"]) for row in rows] == [
        ("a", "measure", "interrupted", "cut at measured repeat 2 of 3 (1 measured)"),
        ("b", "setup", "interrupted", "never ran"),
    ]
    cut = rows[0]
    assert cut["repeat"] == 11  # numbered after the rounds' first repeat, like the runner numbers them
    assert cut["python_version"] == "3.11.9" and cut["cluster_workers"] == 2  # what the runner said, kept
    assert cut["started_at"] == "2026-01-01T00:00:05+00:00" and cut.get("wall_s") is None
    assert rows[1]["dask_version"] == "2026.1.0" and rows[1]["git_commit"] == "abc"


def _stage(store: ResultsStore, pid: int, rows: list[dict[str, Any]], plan: dict[str, Any] | None) -> Path:
    path = store.staging_dir / f"{pid}__run-1__latest__local.jsonl"
    with RowWriter(path) as writer:
        for row in rows:
            writer.write(row)
    if plan is not None:
        write_sidecar(path, {**plan, "runtime": {**plan["runtime"], "env": {}}}, {"dask": "2026.1.0"})
    return path


@pytest.fixture
def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_salvage_records_what_a_dead_run_planned_and_removes_its_files(tmp_path, case_row, dead_pid):
    store = ResultsStore(tmp_path)
    measured = [case_row(run_id="run-1", case_id="a", phase="warmup"), case_row(run_id="run-1", case_id="a")]
    staged = _stage(store, dead_pid, measured, _plan(_case(), _case(case_id="b")))
    with staged.open("a") as handle:
        handle.write('{"run_id": "run-1", "case_id": "a", "pha')  # the line a kill cut in half

    [published] = salvage(store)

    table = pq.read_table(published).to_pylist()
    assert [(row["case_id"], row["phase"], row["outcome"]) for row in table] == [
        ("a", "warmup", "passed"),
        ("a", "measure", "passed"),
        ("a", "measure", "interrupted"),
        ("b", "setup", "interrupted"),
    ]
    gone = f"its controller (pid {dead_pid}) is gone: killed, or stopped by an error it reported"
    assert table[2]["error"] == f"interrupted: the run stopped ({gone}) at measured repeat 2 of 3 (1 measured)"
    assert table[3]["error"] == f"interrupted: the run stopped before this case ran ({gone})"
    assert not list(store.staging_dir.iterdir())


def test_salvage_leaves_a_rows_file_a_live_runner_holds(tmp_path, case_row, dead_pid):
    store = ResultsStore(tmp_path)
    staged = _stage(store, dead_pid, [case_row(run_id="run-1", case_id="a")], _plan(_case()))
    before = staged.read_bytes()
    with staged.open("a") as held:  # as the orphaned runner of a killed controller holds it
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        assert salvage(store) == []
        assert staged.read_bytes() == before and sidecar_path(staged).exists()
    assert len(salvage(store)) == 1  # let go: published next time


def test_a_plan_left_without_rows_still_gives_every_case_its_row(tmp_path, dead_pid):
    store = ResultsStore(tmp_path)
    path = store.staging_dir / f"{dead_pid}__run-1__latest__local.jsonl"
    write_sidecar(path, {**_plan(_case()), "runtime": {**_plan()["runtime"], "env": {}}}, {})

    [published] = salvage(store)

    assert [row["outcome"] for row in pq.read_table(published).to_pylist()] == ["interrupted"]


def test_an_unreadable_plan_is_named_and_the_rows_are_published_without_it(tmp_path, case_row, dead_pid, capsys):
    store = ResultsStore(tmp_path)
    staged = _stage(store, dead_pid, [case_row(run_id="run-1")], None)
    sidecar_path(staged).write_text("{not json")

    assert len(salvage(store)) == 1
    assert f"{sidecar_path(staged)}: skipped — not a readable plan" in capsys.readouterr().err
    assert not list(store.staging_dir.iterdir())


def test_the_plan_beside_the_rows_keeps_no_secret(tmp_path):
    plan = _plan(_case())
    plan["runtime"].update(
        env={"AWS_SECRET_ACCESS_KEY": "hunter2-secret"},
        dask_config={"coiled.token": "tok-123456"},
        spec={"python": "3.11", "env": {"AWS_SECRET_ACCESS_KEY": "hunter2-secret"}},
    )
    written = write_sidecar(tmp_path / "1__x.jsonl", plan, {})
    text = written.read_text()
    assert "hunter2-secret" not in text and "tok-123456" not in text
    assert json.loads(text)["runtime"]["dask_config"] == {"coiled.token": "***"}


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (-signal.SIGKILL, ("interrupted: the runner was killed by SIGKILL before this case ran", "interrupted")),
        (1, ("runner exited with code 1 before reporting this case: ImportError: x", "error")),
        (BUDGET_EXCEEDED, ("runner killed after 9 s, its time budget, before reporting this case", "error")),
    ],
)
def test_how_a_runner_ended_is_said_for_the_cases_it_left(code, expected):
    tail = "runner killed after 9 s, its time budget" if code == BUDGET_EXCEEDED else "ImportError: x"
    unreported, interrupted, outcome = runner_ending(code, tail)
    assert (unreported, outcome) == expected
    assert interrupted.startswith("interrupted: ")


def test_a_stop_inside_a_write_waits_for_its_end():
    previous = signal.signal(signal.SIGTERM, lifetime._on_signal)
    try:
        written = []
        with pytest.raises(lifetime.Stopped) as stopped, lifetime.uninterruptible():
            os.kill(os.getpid(), signal.SIGTERM)
            written.append("the whole file")
        assert written == ["the whole file"]
        assert stopped.value.signal_name == "SIGTERM" and stopped.value.exit_code == 143
        with pytest.raises(lifetime.Stopped):  # outside a write: at once
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises as soon as the signal arrives
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_read_rows_stops_at_a_line_cut_in_half(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n{"a": ')
    assert read_rows(path) == [{"a": 1}]


def test_a_controller_dead_but_not_yet_reaped_is_gone(tmp_path, case_row):
    from framework.results import alive

    zombie = subprocess.Popen(["true"])
    try:
        time.sleep(0.5)  # exited; not waited for: a zombie until reaped, as a killed controller whose parent is slow
        assert alive(zombie.pid) is False
        store = ResultsStore(tmp_path)
        _stage(store, zombie.pid, [case_row(run_id="run-1", case_id="a")], _plan(_case(repeats=1, warmup=0)))
        assert len(salvage(store)) == 1
    finally:
        zombie.wait()
    assert alive(os.getpid()) is True
