"""Run a plan's cases on a cluster, N times each, and write one JSON line per execution.

Runs inside a runtime's environment as ``python -m framework.in_runtime.runner PLAN.json``: the standard library, the
runtime's own packages and the light framework modules only (any Python ≥ 3.9), so old runtimes can run it.
Each row is written and fsync'd as soon as it is measured; the controller turns the lines into Parquet.

A case is stopped at its timeout: the cluster state is dumped beside the results, the cluster is made usable
again (a fresh LocalCluster, or ``Client.restart`` elsewhere) and the run goes on with the next case.

The runner lives no longer than its controller: the controller holds the other end of the runner's stdin and never
writes to it, so end-of-file there means the controller is gone (killed): the runner closes its cluster and exits
with its whole process group. While it runs it holds a lock on its rows file, so the next run's salvage never
publishes (and deletes) a file it is still writing. A row that cannot be written (disk full, read-only) stops the
run: one line naming the file, exit ``EXIT_ROWS_UNWRITABLE``; the rows already written stay where they are.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import importlib
import json
import os
import shutil
import signal
import stat
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Optional, TextIO

from framework.in_runtime import cluster_health, metrics, provenance, redaction
from framework.in_runtime import load as load_probe
from framework.in_runtime import memory as memory_probe
from framework.in_runtime.backends import backend_for
from framework.in_runtime.checks import WorkloadCheckFailed
from framework.in_runtime.clusters import ClusterSession
from framework.in_runtime.errors import ClusterError
from framework.in_runtime.metrics import ship_by_value
from framework.in_runtime.scaling import ScalingError, resolve_params

PROTOCOL = 1
ERROR_TEXT_LIMIT = 4000
EXIT_ROWS_UNWRITABLE = 74  # sysexits' EX_IOERR: a row could not be written (the line before it says where, why)
EXIT_CONTROLLER_GONE = 75  # nobody reads it: the controller is dead; for a person running the runner by hand
ROWS_UNWRITABLE = "rows not writable:"  # the runner's last line then: "rows not writable: PATH: why"
CLOSE_ON_ORPHAN_S = 20.0  # time a runner whose controller died gives its cluster to close (a remote one costs)


class RowsUnwritableError(Exception):
    """A row could not be written: ``path`` and the system's reason (``No space left on device``)."""

    def __init__(self, path: Path, error: OSError) -> None:
        self.path, self.reason, self.errno = path, error.strerror or str(error), error.errno
        super().__init__(f"{path}: {self.reason}")


class RowWriter:
    """Appends rows as JSON lines, each flushed to disk before the next case starts.

    The file is locked (``flock``) while open: salvage leaves a rows file alone while anyone holds it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("a", encoding="utf-8")
        except OSError as error:
            raise RowsUnwritableError(path, error) from None
        fcntl.flock(self._file.fileno(), fcntl.LOCK_EX)

    # Set when the controller is gone: the cluster is being closed under the case that runs, whose failure then
    # would be the harness's doing, not the runtime's: no row is written after it (salvage says "interrupted").
    frozen = threading.Event()

    def write(self, row: dict[str, Any]) -> None:
        if self.frozen.is_set():
            return
        row = redaction.redact_row(row)  # the first byte of a row on disk is already redacted
        line = json.dumps(row, default=str, allow_nan=False) + "\n"
        try:
            self._file.write(line)
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as error:
            raise RowsUnwritableError(self.path, error) from None

    def close(self) -> None:
        with contextlib.suppress(OSError):  # a failed flush was already reported by write
            self._file.close()

    def __enter__(self) -> RowWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat()


def load_function(path: str) -> Callable[..., Any]:
    module_name, _, function_name = path.partition(":")
    module = importlib.import_module(module_name)
    function: Callable[..., Any] = getattr(module, function_name)
    return function


def classify(error: BaseException) -> str:
    """``failed``: the workload's own check (or an assert) said the answer is wrong; ``error``: anything else."""
    return "failed" if isinstance(error, (WorkloadCheckFailed, AssertionError)) else "error"


def _one_line(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}".replace("\n", " ")
    return text[:ERROR_TEXT_LIMIT]


def call_with_timeout(function: Callable[..., Any], params: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run ``function(**params)`` in a daemon thread; wait at most ``timeout`` seconds.

    Returns ``{"timed_out", "wall_s", "value" | "error" + "traceback"}``. A thread still running at the timeout
    is left behind: the caller makes the cluster drop its work, which usually ends the thread too.
    """
    outcome: dict[str, Any] = {}

    def target() -> None:
        start = time.perf_counter()
        try:
            outcome["value"] = function(**params)
        except BaseException as error:
            outcome["error"] = error
            outcome["traceback"] = traceback.format_exc()[-ERROR_TEXT_LIMIT:]
        outcome["wall_s"] = time.perf_counter() - start

    started = time.perf_counter()
    thread = threading.Thread(target=target, name="blessing-case", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        return {"timed_out": True, "wall_s": time.perf_counter() - started}
    outcome["timed_out"] = False
    return outcome


def _extra_metrics(value: Any) -> tuple[Optional[dict[str, float]], Optional[str]]:
    if value is None:
        return None, None
    if isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, (int, float)) for k, v in value.items()):
        return {k: float(v) for k, v in value.items()}, None
    return None, f"workload returned {type(value).__name__}, not a mapping of names to numbers; ignored"


def dump_cluster_state(session: ClusterSession, directory: Path, stem: str) -> tuple[Optional[str], Optional[str]]:
    """Write ``Client.dump_cluster_state`` next to the results, redacted; (path, None) or (None, why not).

    The dump holds every worker's whole Dask config (tokens, TLS key paths): it is written to a private temporary
    directory first, and only its redacted copy reaches ``directory``."""
    scratch = Path(tempfile.mkdtemp(prefix="blessing-dump-"))
    try:
        session.client.dump_cluster_state(str(scratch / stem), format="msgpack")
        written = sorted(scratch.glob(stem + ".*"))
        if not written:
            return None, "cluster dump failed: Client.dump_cluster_state wrote no file"
        target = directory / written[0].name
        redaction.redact_dump_file(written[0], target, redaction.known_secrets())
    except Exception as error:
        return None, f"cluster dump failed: {_one_line(error)}"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return str(target), None


def run_case(
    session: ClusterSession,
    case: dict[str, Any],
    phase: str,
    repeat: int,
    dumps_dir: Path,
) -> dict[str, Any]:
    """One execution of one case, measured. Never raises for a workload's failure: it is the row's outcome."""
    function = load_function(case["function"])
    row: dict[str, Any] = {"phase": phase, "repeat": repeat, "started_at": now()}
    missing: dict[str, str] = {}
    measurement = metrics.CaseMeasurement(session.client)
    missing.update(measurement.missing)
    memory: dict[str, Any] = {}
    load = _load_watch(session)
    # Innermost: its hooks come off as soon as the case ends (a timed-out case's stalls are recorded too).
    health = cluster_health.HealthWatch(session.client)
    with memory_probe.sample_memory(session.client, memory, missing), load, health:
        outcome = call_with_timeout(function, case["params"], case["timeout_s"])
    row["ended_at"] = now()
    row.update(load.values)
    missing.update(load.missing)
    row.update(health.values)
    missing.update(health.missing)
    row["wall_s"] = outcome["wall_s"]
    if outcome["timed_out"]:
        row["outcome"] = "timeout"
        row["error"] = f"exceeded the case timeout of {case['timeout_s']:g} s"
        stem = f"{case['case_id']}-{phase}{repeat}".replace("/", "_")
        row["cluster_dump"], dump_problem = dump_cluster_state(session, dumps_dir, stem)
        if dump_problem:
            row["error"] += f"; {dump_problem}"
        for name in ("tasks", "compute_time_s", "transfer_time_s", "spilled_bytes", "spill_time_s"):
            missing[name] = "case timed out before its counters could be read"
        row.update(memory)
        row["missing"] = missing
        return row
    if "error" in outcome:
        row["outcome"] = classify(outcome["error"])
        row["error"] = _one_line(outcome["error"])
        row["traceback"] = outcome["traceback"]
    else:
        row["outcome"] = "passed"
        row["extra_metrics"], problem = _extra_metrics(outcome.get("value"))
        if problem:
            missing["extra_metrics"] = problem
    row.update(memory)
    row.update(measurement.finish())
    missing.update(measurement.missing)
    row["missing"] = missing
    return row


class _NoLoadWatch:
    """A remote cluster's machines are not this one: its load says nothing about the case."""

    values, missing = load_probe.not_measured("the workers run on other machines; this machine's load is not theirs")

    def __enter__(self) -> _NoLoadWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def _load_watch(session: ClusterSession) -> Any:
    return _NoLoadWatch() if backend_for(session.hardware).ships_code else load_probe.LoadWatch()


def _case_fields(case: dict[str, Any]) -> dict[str, Any]:
    return {
        "workload": case["workload"],
        "case_id": case["case_id"],
        "function": case["function"],
        "size": case.get("size"),
        "params": case["params"],
        "tags": case.get("tags", []),
        "timeout_s": case["timeout_s"],
    }


def apply_runtime_settings(runtime: dict[str, Any]) -> None:
    """Environment variables and Dask config of the runtime, for this process and the workers it starts."""
    redaction.remember(runtime.get("env"), runtime.get("dask_config"))  # masked wherever this process writes
    os.environ.update(runtime.get("env", {}))
    import dask

    dask.config.set(runtime.get("dask_config", {}))


def base_row(plan: dict[str, Any]) -> dict[str, Any]:
    """The provenance every row of this plan carries."""
    runtime, hardware = plan["runtime"], plan["hardware"]
    packages = provenance.installed_packages()
    scope = backend_for(hardware).settings_scope
    return {
        "schema_version": plan["schema_version"],
        "run_id": plan["run_id"],
        "run_started_at": plan["run_started_at"],
        "run_group": plan.get("run_group") or plan["run_id"],
        "shard": plan.get("shard"),
        "runtime": runtime["name"],
        "runtime_hash": runtime["hash"],
        "env_hash": runtime.get("env_hash"),
        "runtime_spec": runtime["spec"],
        "dask_config": runtime.get("dask_config", {}),
        "env_vars": provenance.environment_variables(runtime.get("env", {})),
        "settings_scope": scope,
        "hardware": hardware["name"],
        "hardware_backend": hardware["backend"],
        "hardware_spec": hardware,
        "packages": packages,
        "dask_version": packages.get("dask"),
        "distributed_version": packages.get("distributed"),
        **provenance.machine(),
        # Where the workers run: this machine for a local cluster; a remote cluster's workers are asked once it is up
        # (run_plan), and until then (a cluster that never starts) the rows say they hold this machine's instead.
        **provenance.identity(
            provenance.machine_fingerprint(),
            "runner",
            "the workers' machines were not read; this is the client's" if backend_for(hardware).ships_code else None,
        ),
        **plan.get("provenance", {}),
    }


# The cluster session a runner has open: closed by ``watch_controller`` when the controller dies.
_OPEN_SESSIONS: list[Any] = []


def watch_controller(stdin_fd: int = 0) -> bool:
    """Exit (with the whole process group) when the controller is gone: end-of-file on the pipe it gave as stdin.

    Returns whether a controller is watched (not when stdin is a terminal or a file: started by hand)."""
    try:
        mode = os.fstat(stdin_fd).st_mode
    except OSError:
        return False
    if not stat.S_ISFIFO(mode):
        return False

    def watch() -> None:
        while True:
            try:
                if not os.read(stdin_fd, 4096):
                    break
            except InterruptedError:
                continue
            except OSError:
                break
        _log(
            "the controller is gone (killed?): closing the cluster and stopping; rows written so far stay in"
            " results/.staging and the next run publishes them, the cases not finished recorded as interrupted"
        )
        RowWriter.frozen.set()
        closer = threading.Thread(target=_close_open_sessions, daemon=True)
        closer.start()
        closer.join(CLOSE_ON_ORPHAN_S)
        if os.getpgid(0) == os.getpid():  # started in a session of its own: take the workers along
            os.killpg(os.getpid(), signal.SIGKILL)
        os._exit(EXIT_CONTROLLER_GONE)

    threading.Thread(target=watch, name="blessing-controller-watch", daemon=True).start()
    return True


def _close_open_sessions() -> None:
    for session in list(_OPEN_SESSIONS):
        with contextlib.suppress(Exception):
            session.close()


def run_plan(plan: dict[str, Any], session_factory: Callable[..., ClusterSession] = ClusterSession) -> int:
    """Run every case of the plan; return how many executions did not pass."""
    apply_runtime_settings(plan["runtime"])
    writer = RowWriter(Path(plan["rows_path"]))
    dumps_dir = Path(plan["dumps_dir"])
    base = base_row(plan)
    not_passed = 0
    try:
        session = session_factory(
            plan["hardware"], plan.get("address"), _cluster_environ(plan["runtime"]), plan["runtime"]
        )
        _OPEN_SESSIONS.append(session)
        cases = list(plan["cases"])
        try:
            session.start()
            base["worker_packages"] = session.worker_packages
            if backend_for(plan["hardware"]).ships_code:  # a cluster that needs the code sent runs elsewhere
                base.update(provenance.workers_identity(session.client))
            while cases:
                not_passed += _run_case_repeats(session, cases[0], base, writer, dumps_dir, plan)
                cases.pop(0)
        except ClusterError as error:
            # The cluster is gone (never started, or unusable after a timeout): record every case not run,
            # so the failure is in the results rather than only in a log.
            _log(f"[{plan['runtime']['name']} × {plan['hardware']['name']}] {error}")
            base["worker_packages"] = session.worker_packages  # a mismatch's record too: what the cluster runs
            for case in cases:
                writer.write(_setup_error_row(base, case, error))
            not_passed += len(cases)
        finally:
            _OPEN_SESSIONS.remove(session)
            session.close()
    finally:
        writer.close()
    return not_passed


def _run_case_repeats(
    session: ClusterSession,
    case: dict[str, Any],
    base: dict[str, Any],
    writer: RowWriter,
    dumps_dir: Path,
    plan: dict[str, Any],
) -> int:
    """All executions of one case, inside its fixture, with its scaled parameters resolved for this cluster."""
    label = f"[{plan['runtime']['name']} × {plan['hardware']['name']}] {case['case_id']}"
    try:
        case = {**case, "params": resolve_params(case["params"], session.shape())}
        if backend_for(session.hardware).ships_code:
            # A remote cluster has the runtime's packages, not this project: send its code by value (a registered
            # package covers its submodules, so helpers a workload's tasks call travel too).
            top_level = load_function(case["function"]).__module__.split(".")[0]
            for package in {top_level, "framework"}:
                ship_by_value(package)
        with _fixture(case) as provided:
            return _run_executions(session, case, provided, base, writer, dumps_dir, label)
    except (ScalingError, FixtureError) as error:
        _log(f"{label} setup: {error}")
        writer.write(_setup_error_row(base, case, error))
        return 1


def _setup_error_row(base: dict[str, Any], case: dict[str, Any], error: BaseException) -> dict[str, Any]:
    """The one row of a case that never ran: its cluster or its fixture failed before the first execution."""
    return {
        **base,
        **_case_fields(case),
        "phase": "setup",
        "repeat": 0,
        "started_at": now(),
        "ended_at": now(),
        "outcome": "error",
        "error": str(error),
        "missing": {
            **load_probe.not_measured("the case never ran")[1],
            **cluster_health.not_measured("the case never ran")[1],
        },
    }


class FixtureError(Exception):
    """A workload's fixture (e.g. the local S3 server) could not be set up."""


@contextlib.contextmanager
def _fixture(case: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Run the case's fixture (a generator function that yields extra parameters) around all its executions."""
    if not case.get("fixture"):
        yield {}
        return
    try:
        context = contextlib.contextmanager(load_function(case["fixture"]))()
        provided = context.__enter__()
    except Exception as error:
        raise FixtureError(f"fixture {case['fixture']} failed: {_one_line(error)}") from error
    try:
        yield dict(provided or {})
    finally:
        try:
            context.__exit__(None, None, None)
        except Exception as error:
            _log(f"fixture {case['fixture']} teardown failed: {_one_line(error)}")


def _run_executions(
    session: ClusterSession,
    case: dict[str, Any],
    provided: dict[str, Any],
    base: dict[str, Any],
    writer: RowWriter,
    dumps_dir: Path,
    label: str,
) -> int:
    """Warm-ups then measured repeats of one case; the fixture's parameters are passed but not recorded."""
    not_passed = 0
    first = case.get("first_repeat", 0)  # an interleaved comparison numbers its rounds' single repeats
    executions = [("warmup", i) for i in range(case["warmup"])]
    executions += [("measure", first + i) for i in range(case["repeats"])]
    runnable = {**case, "params": {**case["params"], **provided}}
    for phase, repeat in executions:
        try:
            shape = session.shape()
        except Exception:
            shape = {}
        row = {**base, **_case_fields(case), **shape, **run_case(session, runnable, phase, repeat, dumps_dir)}
        row["worker_packages"] = session.worker_packages  # checked again after each restart
        writer.write(row)
        _log(f"{label} {phase} {repeat + 1}: {row['outcome']} in {row['wall_s']:.2f} s")
        if row["outcome"] != "passed":
            not_passed += 1
        if row["outcome"] == "timeout":
            try:
                session.recover()
            except Exception as error:
                raise ClusterError(f"{label}: cluster unusable after a timeout: {_one_line(error)}") from error
            break  # the next repeat would most likely hang again; go on with the next case
        if phase == "warmup" and row["outcome"] != "passed":
            break  # measuring a case whose warm-up fails measures nothing useful
    return not_passed


def _cluster_environ(runtime: dict[str, Any]) -> dict[str, str]:
    """What a remote (Coiled) cluster gets: the runtime's variables plus its Dask config as DASK_* variables."""
    environ = dict(runtime.get("env", {}))
    for key, value in runtime.get("dask_config", {}).items():
        name = "DASK_" + "__".join(part.upper().replace("-", "_") for part in key.split("."))
        # Dask reads DASK_* values with ast.literal_eval: Python literals, not JSON (a false or null inside a
        # list or mapping would reach the cluster as part of a string).
        environ[name] = value if isinstance(value, str) else repr(value)
    return environ


# Where the runner's own lines go: the console (the controller's pipe), also once ``route_output`` has sent
# stdout and stderr to the run's log file.
CONSOLE: dict[str, TextIO] = {"stream": sys.stderr}


def _log(message: str) -> None:
    # A controller that died took the pipe's other end: saying so must not stop the runner from cleaning up.
    with contextlib.suppress(OSError, ValueError):
        print(message, file=CONSOLE["stream"], flush=True)
    if CONSOLE["stream"] is not sys.stderr:  # output is routed: the run's log keeps every line too, in its place
        with contextlib.suppress(OSError, ValueError):
            print(message, file=sys.stderr, flush=True)  # noqa: T201 — the runner's own line, into its log


def route_output(log_path: Path) -> None:
    """Send everything but the runner's own lines to ``log_path``: the clusters' and libraries' log records and
    warnings, what workloads print, and the output of worker processes (they inherit stdout and stderr).

    The console keeps only what ``_log`` says. ``log_path`` is private: the controller copies it, redacted, to the
    results store when the runner ends (``framework.engine``)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    CONSOLE["stream"] = os.fdopen(os.dup(2), "w", buffering=1)
    with log_path.open("a", encoding="utf-8") as log_file:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os.dup2(log_file.fileno(), 1)
        os.dup2(log_file.fileno(), 2)


def say_crash(what: str) -> None:
    """A crash of the runner itself stays loud: its traceback goes to the console, not only to the log file."""
    _log(f"{what} crashed:\n{traceback.format_exc().rstrip()}")


def read_plan(argv: Optional[list[str]], module: str) -> Optional[dict[str, Any]]:
    """The plan named on the command line of ``python -m module PLAN.json``; None (and why, on stderr) if unusable."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        _log(f"usage: python -m {module} PLAN.json")
        return None
    path = Path(args[0])
    plan: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if plan.get("remove_after_reading"):
        # It holds the runtime's secrets as given: gone as soon as read, even if the controller is killed later.
        path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            path.parent.rmdir()
    if plan.get("protocol") != PROTOCOL:
        _log(f"{args[0]}: protocol {plan.get('protocol')!r}, this runner speaks {PROTOCOL} — rebuild the plan")
        return None
    return plan


def main(argv: Optional[list[str]] = None) -> int:
    plan = read_plan(argv, "framework.in_runtime.runner")
    if plan is None:
        return 2
    if plan.get("log_path"):
        route_output(Path(plan["log_path"]))
    watch_controller()
    try:
        run_plan(plan)
    except RowsUnwritableError as error:
        _log(f"{ROWS_UNWRITABLE} errno={error.errno} {error}")
        return EXIT_ROWS_UNWRITABLE
    except Exception:
        say_crash("the runner")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
