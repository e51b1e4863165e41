"""Fixtures for tests that start real Dask clusters.

Every test marked ``cluster`` runs under ``cluster_guard``: a hard deadline (``@pytest.mark.cluster(deadline=S)``,
default 60 s) and, afterwards, a check that it left no child process (multiprocessing's ``resource_tracker``
aside, which lives as long as the interpreter) and no non-daemon thread behind — the idea of distributed's
``gen_cluster`` + ``clean()``.
"""

from __future__ import annotations

import copy
import datetime as dt
import faulthandler
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Optional

import psutil
import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DEFAULT_DEADLINE_S = 60
# Past the deadline by this much, the test's own deadline failed to stop it: dump every stack and exit.
BACKSTOP_S = 60
LEAK_GRACE_S = 10.0

GiB = 2**30
MiB = 2**20


def _children() -> dict[int, psutil.Process]:
    found = {}
    for child in psutil.Process().children(recursive=True):
        try:
            if "resource_tracker" in " ".join(child.cmdline()):
                continue  # multiprocessing's, started with the first spawned worker; it lives as long as we do
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue
        found[child.pid] = child
    return found


def _non_daemon_threads() -> set[threading.Thread]:
    return {thread for thread in threading.enumerate() if thread.is_alive() and not thread.daemon}


@pytest.fixture(autouse=True)
def cluster_guard(request: pytest.FixtureRequest) -> Iterator[None]:
    """Deadline and leak check around every ``@pytest.mark.cluster`` test (and its fixtures' teardown)."""
    marker = request.node.get_closest_marker("cluster")
    if marker is None:
        yield
        return
    deadline = int(marker.kwargs.get("deadline", DEFAULT_DEADLINE_S))
    children_before = set(_children())
    threads_before = _non_daemon_threads()

    def past_deadline(signum: int, frame: object) -> None:
        raise TimeoutError(f"{request.node.nodeid} exceeded its deadline of {deadline} s")

    previous_handler = signal.signal(signal.SIGALRM, past_deadline)
    signal.alarm(deadline)
    faulthandler.dump_traceback_later(deadline + BACKSTOP_S, exit=True)
    try:
        yield
    finally:
        signal.alarm(0)
        faulthandler.cancel_dump_traceback_later()
        signal.signal(signal.SIGALRM, previous_handler)

    # Closing a cluster returns before every process has been reaped and every thread has ended: give them time.
    give_up = time.monotonic() + LEAK_GRACE_S
    while True:
        leaked_children = {pid: p for pid, p in _children().items() if pid not in children_before}
        leaked_threads = _non_daemon_threads() - threads_before
        if not (leaked_children or leaked_threads) or time.monotonic() > give_up:
            break
        time.sleep(0.1)
    descriptions = []
    for child in leaked_children.values():
        try:
            descriptions.append(f"process {child.pid}: {' '.join(child.cmdline())[:200]}")
            child.kill()  # ours, and would otherwise outlive the session
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    descriptions += [f"thread {thread.name!r}" for thread in leaked_threads]
    if descriptions:
        pytest.fail(f"{request.node.nodeid} leaked: " + "; ".join(descriptions), pytrace=False)


@pytest.fixture
def fixture_workloads(monkeypatch: pytest.MonkeyPatch) -> str:
    """Make ``fixtures_workloads`` importable here and in worker processes; returns the PYTHONPATH set."""
    monkeypatch.syspath_prepend(str(HERE))
    pythonpath = os.pathsep.join(filter(None, [str(HERE), str(ROOT), os.environ.get("PYTHONPATH")]))
    monkeypatch.setenv("PYTHONPATH", pythonpath)
    # Let worker processes write .pyc files: uncompiled, each re-compiles dask on import (REFERENCE.md).
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    return pythonpath


@pytest.fixture
def isolated_settings() -> Iterator[None]:
    """``run_plan`` applies a runtime's env vars and Dask config process-wide: put both back afterwards."""
    import dask
    import distributed  # noqa: F401 - adds its defaults to dask.config: they must be in the snapshot

    environ = dict(os.environ)
    config = copy.deepcopy(dask.config.config)
    try:
        yield
    finally:
        for name in set(os.environ) - set(environ):
            del os.environ[name]
        os.environ.update(environ)
        # In place: dask's modules hold a reference to this very dict.
        dask.config.config.clear()
        dask.config.config.update(config)


@pytest.fixture
def make_case() -> Callable[..., dict[str, Any]]:
    """A case as ``framework.engine.case_payload`` writes it: ``make_case("fixtures_workloads:passes")``."""

    def build(function: str, params: Optional[dict[str, Any]] = None, **overrides: Any) -> dict[str, Any]:
        name = function.partition(":")[2]
        case = {
            "workload": name,
            "case_id": f"{name}/tiny",
            "function": function,
            "params": dict(params or {}),
            "size": "tiny",
            "tags": ["test"],
            "repeats": 1,
            "warmup": 0,
            "timeout_s": 60.0,
        }
        case.update(overrides)
        return case

    return build


@pytest.fixture
def local_hardware() -> Callable[..., dict[str, Any]]:
    """A ``local`` hardware profile as ``HardwareProfile.model_dump(mode="json")`` gives it."""

    def build(processes: bool = True, memory_limit: int = GiB, n_workers: int = 2, **overrides: Any) -> dict[str, Any]:
        hardware = {
            "name": "test-local-processes" if processes else "test-local-threads",
            "description": "",
            "backend": "local",
            "n_workers": n_workers,
            "threads_per_worker": 1,
            "memory_limit_per_worker": memory_limit,
            "processes": processes,
        }
        hardware.update(overrides)
        return hardware

    return build


@pytest.fixture
def make_plan(tmp_path: Path, isolated_settings: None, fixture_workloads: str) -> Callable[..., dict[str, Any]]:
    """The plain-dict plan ``framework.engine.runner_plan`` writes, with rows and dumps under ``tmp_path``."""
    from framework.in_runtime.runner import PROTOCOL
    from framework.results import SCHEMA_VERSION

    def build(
        hardware: dict[str, Any],
        cases: list[dict[str, Any]],
        env: Optional[dict[str, str]] = None,
        dask_config: Optional[dict[str, Any]] = None,
        address: Optional[str] = None,
    ) -> dict[str, Any]:
        return {
            "protocol": PROTOCOL,
            "schema_version": SCHEMA_VERSION,
            "run_id": "20260101T000000Z-test00",
            "run_started_at": dt.datetime.now(dt.timezone.utc).isoformat(),
            "runtime": {
                "name": "test-runtime",
                "hash": "0" * 16,
                "env_hash": None,
                "spec": {"python": "3.11", "packages": ["dask[distributed]"]},
                "env": dict(env or {}),
                "dask_config": dict(dask_config or {}),
            },
            "hardware": hardware,
            "address": address,
            "cases": cases,
            "rows_path": str(tmp_path / "staging" / "rows.jsonl"),
            "dumps_dir": str(tmp_path / "dumps"),
            "provenance": {"git_commit": None, "git_dirty": None},
        }

    return build


@pytest.fixture
def read_rows() -> Callable[[dict[str, Any]], list[dict[str, Any]]]:
    """The rows a plan's run wrote, in order."""

    def read(plan: dict[str, Any]) -> list[dict[str, Any]]:
        path = Path(plan["rows_path"])
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]

    return read
