"""A quiet console: the runner's own lines on the console; cluster and library output in the run's log file
(``framework.in_runtime.runner.route_output``), kept redacted (``framework.engine.keep_log``); a runner that crashes
still says so on the console."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from framework.engine import keep_log, runner_exit_line
from framework.in_runtime.redaction import MASK
from framework.in_runtime.runner import PROTOCOL
from framework.summary import format_table

ROOT = Path(__file__).resolve().parents[2]

# What a runner's process sees while it runs cases: distributed's loggers, a library's warning, a workload's print and
# a worker process (it inherits stdout and stderr) writing its own log line.
NOISY = textwrap.dedent(
    """
    import logging, subprocess, sys, warnings
    from pathlib import Path
    from framework.in_runtime import runner

    logging.basicConfig()  # as distributed does: a handler on sys.stderr, set up before the output is routed
    runner.route_output(Path(sys.argv[1]))
    logging.getLogger("distributed.core").error("Exception while handling op identity")
    logging.getLogger("tornado.application").warning("heartbeat failed: CommClosedError")
    warnings.warn("dask_expr does not support the DataFrameIOFunction protocol", UserWarning)
    print("printed by a workload")
    subprocess.run([sys.executable, "-c", "import sys; print('a worker process logs', file=sys.stderr)"], check=True)
    runner._log("[latest × local] groupby measure 1: passed in 0.21 s")
    """
)


def run_python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_library_logs_warnings_and_worker_output_go_to_the_log_file_not_the_console(tmp_path: Path) -> None:
    log = tmp_path / "private" / "runner.log"
    process = run_python(NOISY, str(log))

    assert process.returncode == 0, process.stderr
    console = process.stdout + process.stderr
    assert console.splitlines() == ["[latest × local] groupby measure 1: passed in 0.21 s"]
    logged = log.read_text(encoding="utf-8")
    for text in (
        "Exception while handling op identity",
        "heartbeat failed: CommClosedError",
        "UserWarning: dask_expr does not support",
        "printed by a workload",
        "a worker process logs",
    ):
        assert text in logged
    assert "groupby measure 1: passed" in logged  # the runner's own lines are in the log too, in their place


def test_the_kept_log_is_redacted(tmp_path: Path) -> None:
    raw = tmp_path / "runner.log"
    raw.write_text("worker env AWS_SECRET_ACCESS_KEY=s3cret-in-env-1234\ntoken tok-in-dask-config-5678 sent\n")
    target = tmp_path / "results" / "logs" / "run__stable__local.log"
    runtime = {
        "env": {"AWS_SECRET_ACCESS_KEY": "s3cret-in-env-1234"},
        "dask_config": {"coiled.token": "tok-in-dask-config-5678"},
    }

    keep_log(raw, target, runtime)
    keep_log(raw, target, runtime)  # a compare's second round appends to the same file

    kept = target.read_text(encoding="utf-8")
    assert "s3cret-in-env-1234" not in kept and "tok-in-dask-config-5678" not in kept
    assert kept.count(MASK) == 4
    assert kept.count("worker env AWS_SECRET_ACCESS_KEY=") == 2


def test_a_runner_that_crashes_says_so_on_the_console(tmp_path: Path) -> None:
    log = tmp_path / "runner.log"
    plan = tmp_path / "plan.json"
    # A plan this runner speaks, but broken (no runtime): run_plan raises inside the routed runner.
    plan.write_text(json.dumps({"protocol": PROTOCOL, "log_path": str(log)}), encoding="utf-8")
    process = run_python("import sys; from framework.in_runtime import runner; sys.exit(runner.main())", str(plan))

    assert process.returncode == 1
    console = process.stdout + process.stderr
    assert "the runner crashed:" in console
    assert "Traceback (most recent call last)" in console
    assert "KeyError: 'runtime'" in console


def test_a_stability_table_shows_a_dash_for_a_missing_value() -> None:
    table = format_table(["case_id", "failure_id"], [("fuzz[process]", None)], missing="–")
    assert table.splitlines()[-1].split() == ["fuzz[process]", "–"]
    assert "NULL" in format_table(["failure_id"], [(None,)])  # SQL's own tables keep NULL


def test_a_runner_that_ends_badly_is_named_with_how() -> None:
    assert runner_exit_line("stable", "local", -6, True) == (
        "the runner of 'stable' × 'local' was killed by SIGABRT after reporting every case"
    )
    assert runner_exit_line("previous", "local", 1, False) == (
        "the runner of 'previous' × 'local' exited with code 1 before reporting every case"
    )
