"""The run engine: one group of cases (one runtime × one hardware profile) run in a runner process.

Every verb that runs cases goes through here — matrix, compare, bisect, bless, reproduce, stability: the
environment is prepared (built or reused, health-checked, recorded), the cases become a plain-data plan for the
runner, the runner runs inside the runtime's environment (``framework.in_runtime.runner``), and its rows are
published to the results store, or salvaged when the runner did not end well. Run ids and the console line
printer live here.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime as dt
import errno
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from framework import lifetime
from framework.environments import BuiltEnvironment
from framework.execution_lines import ExecutionProgress, LinesOnly
from framework.health import check_health
from framework.in_runtime import redaction
from framework.in_runtime.errors import ResultsError, UnusableRuntimeError, cannot_write
from framework.in_runtime.runner import EXIT_ROWS_UNWRITABLE, PROTOCOL, ROWS_UNWRITABLE
from framework.matrix import Case
from framework.models import HardwareProfile, Runtime
from framework.progress import Progress, RunnerProgress, echo
from framework.records import write_record
from framework.resolution import build_environment
from framework.results import SCHEMA_VERSION, ResultsStore, read_rows
from framework.salvage import INTERRUPTED, append_rows, missing_rows, write_sidecar

# Time allowed beyond the sum of case timeouts: imports, cluster start-up and teardown.
RUNNER_SLACK_S = 180.0
BUDGET_EXCEEDED = 124  # run_runner's exit code for a runner it killed at its time budget (as timeout(1) says)


def new_run_id(now: dt.datetime | None = None) -> str:
    """Sortable and unique: ``20261126T103211Z-3f9a1c``."""
    now = now or dt.datetime.now(dt.timezone.utc)
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def case_payload(case: Case) -> dict[str, Any]:
    workload = case.workload
    return {
        "workload": workload.name,
        "case_id": case.case_id,
        "function": workload.function,
        "fixture": workload.fixture,
        "params": case.params,
        "size": case.size,
        "tags": list(workload.tags),
        "repeats": workload.repeats,
        "warmup": workload.warmup,
        "timeout_s": workload.timeout,
    }


def runtime_payload(environment: BuiltEnvironment) -> dict[str, Any]:
    """What a runner needs to know of its runtime (plain data: the runner has no pydantic)."""
    runtime = environment.runtime
    return {
        "name": runtime.name,
        "hash": environment.runtime_hash,
        "env_hash": environment.env_hash,
        "spec": runtime.model_dump(mode="json", exclude={"name"}),
        "env": dict(runtime.env),
        "dask_config": dict(runtime.dask_config),
    }


def runner_plan(
    run_id: str,
    run_started_at: str,
    environment: BuiltEnvironment,
    hardware: HardwareProfile,
    cases: list[Case],
    store: ResultsStore,
    rows_path: Path,
    address: str | None,
    git: dict[str, Any],
    run_group: str | None = None,
    shard: str | None = None,
) -> dict[str, Any]:
    """The JSON a runner reads: plain data only, so the runner needs no pydantic.

    ``run_group`` (default: the run id) and ``shard`` ("K/N", or None) go on every row of the run."""
    return {
        "protocol": PROTOCOL,
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "run_started_at": run_started_at,
        "run_group": run_group or run_id,
        "shard": shard,
        "runtime": runtime_payload(environment),
        "hardware": hardware.model_dump(mode="json"),
        "address": address,
        "cases": [case_payload(case) for case in cases],
        "rows_path": str(rows_path),
        "dumps_dir": str(store.dumps_dir(run_id)),
        "provenance": git,
    }


def run_runner(
    environment: BuiltEnvironment,
    plan_path: Path,
    budget_s: float,
    root: Path,
    module: str = "framework.in_runtime.runner",
    on_line: Callable[[str], None] | None = None,
) -> tuple[int, str]:
    """Start the runner (``python -m module PLAN``) in the runtime's environment; echo it; kill it past ``budget_s``.

    Each line it prints goes to ``on_line`` (by default: printed, above the progress bar if one is shown); lines
    in which it reports its own progress (``framework.progress.runner_line``) are shown as progress instead.
    Returns (exit code, the last lines it printed).
    """
    env = {**os.environ, **environment.runtime.env, "PYTHONPATH": str(root)}
    # Let the first import write .pyc files: with bytecode writes off, every worker re-compiles dask (5–9 s).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("VIRTUAL_ENV", None)
    process = subprocess.Popen(
        [str(environment.python), "-m", module, str(plan_path)],
        cwd=root,
        env=env,
        # Never written: the runner watches it, and its end-of-file says that this controller is gone.
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    tail: collections.deque[str] = collections.deque(maxlen=20)
    reported = RunnerProgress()

    def forward() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            text = line.rstrip("\n")
            if reported.take(text):
                continue
            tail.append(text.rstrip())
            if text.startswith(ROWS_UNWRITABLE):
                continue  # said once, by the controller, in its own words (rows_unwritable)
            (on_line or echo)(text)

    reader = threading.Thread(target=forward, daemon=True)
    reader.start()
    try:
        code = process.wait(timeout=budget_s)
    except subprocess.TimeoutExpired:
        _kill_group(process.pid)
        process.wait()
        code = BUDGET_EXCEEDED
        tail.append(f"runner killed after {budget_s:.0f} s, its time budget")
    except (KeyboardInterrupt, lifetime.Stopped):
        _kill_group(process.pid)
        process.wait()
        raise
    finally:
        _kill_group(process.pid)  # what the runner left running in its group (workers of a runner that was killed)
        reader.join(timeout=5)
        reported.close()
        assert process.stdin is not None
        with contextlib.suppress(OSError):
            process.stdin.close()
    return code, "\n".join(tail)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _budget(cases: list[Case]) -> float:
    return RUNNER_SLACK_S + sum((c.workload.warmup + c.workload.repeats) * c.workload.timeout for c in cases)


def unfinished_rows(
    plan: dict[str, Any],
    rows_path: Path | None,
    reason: str,
    environment: BuiltEnvironment,
    interrupted: str | None = None,
    outcome: str = "error",
) -> list[dict[str, Any]]:
    """Rows for the cases a runner never reported (all of them when no runner ran: ``rows_path`` None), with
    ``reason``, and an ``interrupted`` row for a case it cut short, so no case silently disappears."""
    from framework.results import read_rows

    rows = read_rows(rows_path) if rows_path and rows_path.exists() else []
    return missing_rows(plan, rows, environment.packages, reason, interrupted or f"interrupted: {reason}", outcome)


def runner_ending(code: int, tail: str) -> tuple[str, str, str]:
    """How a runner that ended before reporting every case ended: (the reason for a case it never reported,
    for a case it cut short, the outcome of the unreported). A runner killed by a signal interrupted the run;
    one that exited with an error, or ran out of its time budget, is an error of the runtime."""
    last = tail.strip().splitlines()[-1] if tail.strip() else "no output"
    if code == BUDGET_EXCEEDED:
        return f"{last}, before reporting this case", f"interrupted: {last},", "error"
    if code < 0:
        name = _signal_name(-code)
        return (
            f"interrupted: the runner was killed by {name} before this case ran",
            f"interrupted: the runner was killed by {name}",
            INTERRUPTED,
        )
    return (
        f"runner exited with code {code} before reporting this case: {last}",
        f"interrupted: the runner exited with code {code} ({last})",
        "error",
    )


def runner_exit_line(runtime: str, hardware: str, code: int, every_case_reported: bool) -> str:
    """``the runner of 'stable' × 'local' was killed by SIGABRT after reporting every case``."""
    how = f"was killed by {_signal_name(-code)}" if code < 0 else f"exited with code {code}"
    after = "after reporting every case" if every_case_reported else "before reporting every case"
    return f"the runner of {runtime!r} × {hardware!r} {how} {after}"


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def prepare_environment(
    runtime: Runtime,
    root: Path,
    store: ResultsStore,
    rebuild: bool,
    when: dt.datetime,
    run_id: str | None = None,
    check: bool = True,
) -> BuiltEnvironment:
    """Resolve and build (or reuse) the runtime's environment, say which, check its health, store lock and health.

    The returned environment's ``health`` says whether it is usable; nothing is raised for an unusable runtime
    (that is a finding to record, not a user mistake)."""
    redaction.remember(runtime.env, runtime.dask_config)  # its secret values are masked in all this process writes
    say(f"environment for runtime {runtime.name!r} (Python {runtime.python}) …")
    environment = build_environment(runtime, root, rebuild=rebuild)
    if environment.note:
        say(f"  note: {environment.note}")
    how = "reused" if environment.reused else f"built in {environment.build_seconds:.1f} s"
    say(
        f"  {how}: {environment.path} (dask {environment.packages.get('dask', '?')},"
        f" distributed {environment.packages.get('distributed', '?')}; {environment.resolution or 'resolved'})"
    )
    store.record_environment(
        {
            "env_hash": environment.env_hash,
            "runtime": runtime.name,
            "runtime_hash": environment.runtime_hash,
            "python": runtime.python,
            "built_at": when,
            "requirements": runtime.requirements,
            "lock": environment.lock,
        }
    )
    if not check:
        return environment
    health = check_health(environment, root)
    environment = dataclasses.replace(environment, health=health)
    if health.usable:
        say(f"  health: usable — imports, lockstep versions, a one-worker cluster ({health.seconds:.1f} s)")
    else:
        say(f"  health: {health.headline(runtime.name)}")
    record_health(store.root, run_id or new_run_id(when), environment, when)
    return environment


def record_health(results_dir: Path, run_id: str, environment: BuiltEnvironment, when: dt.datetime) -> Path | None:
    """One ``health`` record per check (``nox -s sql -- "SELECT * FROM health WHERE NOT usable"``)."""
    health = environment.health
    if health is None:
        return None
    name = f"{run_id}__{environment.runtime.name}"
    if (results_dir / "health" / f"{name}.parquet").exists():
        name += f"__{secrets.token_hex(2)}"  # checked twice in one run (compare's two sides of one runtime)
    return write_record(
        results_dir,
        "health",
        name,
        [
            {
                "run_id": run_id,
                "checked_at": when,
                "runtime": environment.runtime.name,
                "runtime_hash": environment.runtime_hash,
                "env_hash": environment.env_hash,
                "usable": health.usable,
                "cause": health.cause,
                "problems": health.problems,
                "seconds": health.seconds,
                "note": environment.note,
                "dask_version": environment.packages.get("dask"),
                "distributed_version": environment.packages.get("distributed"),
                "steps": list(health.steps),
            }
        ],
    )


def usable(environment: BuiltEnvironment, what: str) -> BuiltEnvironment:
    """The environment, or UnusableRuntimeError (exit 1; bisection skips the release) when its health check failed."""
    if environment.health is not None and not environment.health.usable:
        raise UnusableRuntimeError(f"{what}: {environment.health.headline(environment.runtime.name)} — nothing was run")
    return environment


def unusable_rows(plan: dict[str, Any], environment: BuiltEnvironment) -> list[dict[str, Any]]:
    """A ``setup`` row for every planned case of an unusable runtime; the error is the headline with its cause."""
    assert environment.health is not None
    reason = environment.health.headline(environment.runtime.name)
    return unfinished_rows(plan, None, reason, environment)


@dataclasses.dataclass(frozen=True)
class CaseGroup:
    """Cases that run in one runner process, on one cluster: one environment, one hardware profile."""

    environment: BuiltEnvironment
    hardware: HardwareProfile
    cases: list[Case]
    first_repeat: int = 0  # numbering of the measured repeats (an interleaved comparison runs one per round)
    suffix: str = ""  # appended to the results file name, so rounds of one run get files of their own


def run_group(
    group: CaseGroup,
    run_id: str,
    run_started: dt.datetime,
    store: ResultsStore,
    root: Path,
    address: str | None,
    git: dict[str, Any],
    progress: Progress | None = None,
    run_group_id: str | None = None,
    shard: str | None = None,
) -> tuple[Path | None, list[dict[str, Any]]]:
    """Run one group in the runtime's environment and publish its rows; return the file and the rows.

    Its rows carry the run group ``run_group_id`` (default: the run id) and ``shard`` (a part of a split plan:
    "K/N").

    A runner that dies still yields a row for every case it did not report, so nothing silently disappears.
    The console gets one line per case (``ExecutionProgress``); with ``progress``, every execution is counted on it.
    """
    environment, hardware = group.environment, group.hardware
    name = f"{run_id}__{environment.runtime.name}__{hardware.name}{group.suffix}"
    rows_path = store.staging_file(name)
    plan_payload = runner_plan(
        run_id, run_started.isoformat(), environment, hardware, group.cases, store, rows_path, address, git
    )
    plan_payload.update(run_group=run_group_id or run_id, shard=shard)
    for case in plan_payload["cases"]:
        case["first_repeat"] = group.first_repeat
    executions = ExecutionProgress(progress if progress is not None else LinesOnly(), group)
    with lifetime.uninterruptible():
        sidecar = write_sidecar(rows_path, plan_payload, environment.packages)  # salvage's map if this dies
    if environment.usable:
        log_path = log_file(store, run_id, environment.runtime.name, hardware.name)
        announce_logs(log_path.parent, run_id)
        # The runner logs to a private file while it runs; results/ gets its redacted copy when it ends.
        scratch = Path(tempfile.mkdtemp(prefix="blessing-log-"))
        plan_path = write_plan({**plan_payload, "log_path": str(scratch / "runner.log")})
        try:
            code, tail = run_runner(environment, plan_path, _budget(group.cases), root, on_line=executions)
        except (KeyboardInterrupt, lifetime.Stopped) as stop:
            name = stop.signal_name if isinstance(stop, lifetime.Stopped) else "SIGINT"
            with lifetime.uninterruptible():
                append_rows(
                    rows_path,
                    unfinished_rows(
                        plan_payload,
                        rows_path,
                        f"interrupted: the run was stopped by {name} before this case ran",
                        environment,
                        f"interrupted: the run was stopped by {name}",
                        INTERRUPTED,
                    ),
                )
                store.publish(rows_path)
                sidecar.unlink(missing_ok=True)
            raise
        finally:
            remove_plan(plan_path)
            keep_log(scratch / "runner.log", log_path, plan_payload["runtime"])
            shutil.rmtree(scratch, ignore_errors=True)
        if code == EXIT_ROWS_UNWRITABLE:
            raise ResultsError(rows_unwritable(tail, rows_path))  # nothing more can be written: keep what is
        reason, interrupted, outcome = runner_ending(code, tail)
        extra = unfinished_rows(plan_payload, rows_path, reason, environment, interrupted, outcome)
        if code != 0:  # its own lines said what it could; the rest of what it printed is in its log
            say(f"  {runner_exit_line(environment.runtime.name, hardware.name, code, not extra)}; its log: {log_path}")
    else:  # no cluster is started for a runtime that cannot even import: every case is a setup failure
        extra = unusable_rows(plan_payload, environment)
    with lifetime.uninterruptible():
        append_rows(rows_path, extra)
        rows = read_rows(rows_path) if rows_path.exists() else []
        published = store.publish(rows_path)
        sidecar.unlink(missing_ok=True)
    executions.finish(rows)
    return published, rows


_UNWRITABLE_LINE = re.compile(rf"^{re.escape(ROWS_UNWRITABLE)} errno=(?P<errno>\d+|None) (?P<path>.*): (?P<why>[^:]*)$")


def rows_unwritable(tail: str, rows_path: Path) -> str:
    """The one line for a runner that could not write its rows (its last line says which file and why)."""
    for line in reversed(tail.splitlines()):
        match = _UNWRITABLE_LINE.match(line.strip())
        if match:
            errno = int(match["errno"]) if match["errno"].isdigit() else None
            return cannot_write(match["path"], errno, match["why"])
    return cannot_write(str(rows_path), None, "could not be written")


def log_file(store: ResultsStore, run_id: str, runtime: str, hardware: str) -> Path:
    """Where the clusters and libraries of one runtime × hardware of a run log (a compare's rounds append)."""
    return store.root / "logs" / f"{run_id}__{runtime}__{hardware}.log"


_ANNOUNCED: set[tuple[Path, str]] = set()


def announce_logs(directory: Path, run_id: str) -> None:
    """Say once per run where its cluster and library logs go (the console keeps one line per execution)."""
    if (directory, run_id) not in _ANNOUNCED:
        _ANNOUNCED.add((directory, run_id))
        say(f"  cluster and library logs: {directory / (run_id + '__*.log')}")


def keep_log(raw: Path, target: Path, runtime: dict[str, Any]) -> None:
    """Append a runner's private log to ``target`` in the results store, redacted (the runtime's secrets and every
    secret this process knows are masked). Nothing is written for a runner that never started."""
    if not raw.exists():
        return
    masked = redaction.known_secrets() | redaction.secret_values(runtime.get("env"), runtime.get("dask_config"))
    try:
        redaction.redact_text_file(raw, target, masked)
    except OSError as error:  # a full or read-only disk: the rows' own line (if they failed too) says the rest
        code = errno.errorcode.get(error.errno or 0, "an OS error")
        say(f"  the run's log could not be kept at {target} ({code}); the rows are not affected by it")


def write_plan(payload: dict[str, Any]) -> Path:
    """The runner's plan, in a directory only this user can read, outside ``results/``: it holds the runtime's
    environment variables and Dask config as given (secrets too), which the runner needs and results must not keep."""
    directory = Path(tempfile.mkdtemp(prefix="blessing-plan-"))
    path = directory / "plan.json"
    path.write_text(json.dumps({**payload, "remove_after_reading": True}, indent=1), encoding="utf-8")
    return path


def remove_plan(path: Path) -> None:
    shutil.rmtree(path.parent, ignore_errors=True)


def say(message: str) -> None:
    """A line for the person running: on stderr, above the progress bar when one is shown."""
    echo(message)
