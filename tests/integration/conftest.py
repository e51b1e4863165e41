"""Fixtures for the tests that run the runner on real Dask clusters: workloads, cases, plans and their rows.

The deadline and leak guard of every ``cluster`` test is ``tests/conftest.py``'s."""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent

GiB = 2**30
MiB = 2**20


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
