"""Fixtures for the results, query, summary and CLI tests: synthetic result rows and a results directory."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from package_index import local_index  # noqa: F401 (a fixture: a local package index, tests/unit/package_index.py)

from framework.results import CASE_COLUMNS, SCHEMA_VERSION, ResultsStore, case_table, write_atomic

Row = dict[str, Any]


def locked_environment(built_at: Any) -> Row:
    """The environment every synthetic row ran in (``env_hash`` e…e), with its lock: what a run page shows."""
    return {
        "env_hash": "e" * 16,
        "runtime": "latest",
        "runtime_hash": "r" * 16,
        "python": "3.11",
        "built_at": built_at,
        "requirements": ["dask"],
        "lock": "dask==2026.1.0\ndistributed==2026.1.0",
    }


def _case_row(**overrides: Any) -> Row:
    """One execution of a case with every column of ``CASE_COLUMNS``; ``overrides`` replace the defaults."""
    unknown = set(overrides) - set(CASE_COLUMNS)
    assert not unknown, f"not a case column: {unknown}"
    row: Row = dict.fromkeys(CASE_COLUMNS)
    row.update(
        schema_version=SCHEMA_VERSION,
        run_id="20260101T000000Z-aaaaaa",
        run_started_at="2026-01-01T00:00:00+00:00",
        workload="groupby_agg",
        case_id="groupby_agg[by=id]",
        function="workloads.dataframe:groupby_agg",
        size="tiny",
        params={"by": "id"},
        tags=["smoke", "dataframe"],
        phase="measure",
        repeat=0,
        timeout_s=60.0,
        outcome="passed",
        wall_s=1.0,
        peak_memory_bytes=100 * 2**20,
        mean_memory_bytes=50 * 2**20,
        spilled_bytes=0,
        # the scheduler's and workers' health (framework.in_runtime.cluster_health), as a quiet tiny case has it
        scheduler_loop_max_s=0.01,
        scheduler_loop_blocked_s=0.0,
        worker_loop_max_s=0.01,
        worker_loop_blocked_s=0.0,
        scheduler_cpu_s=0.05,
        scheduler_peak_rss_bytes=200 * 2**20,
        scheduler_gc_s=0.002,
        worker_gc_s=0.003,
        tasks=10,
        tasks_erred=0,
        tasks_by_worker={"tcp://127.0.0.1:1": 6, "tcp://127.0.0.1:2": 4},
        missing={},
        runtime="latest",
        runtime_hash="r" * 16,
        env_hash="e" * 16,
        dask_version="2026.1.0",
        distributed_version="2026.1.0",
        python_version="3.11.7",
        hardware="local",
        hardware_backend="local",
        hostname="host",
        git_commit="0" * 40,
        git_dirty=False,
    )
    row.update(overrides)
    if "started_at" not in overrides:
        row["started_at"] = row["run_started_at"]
    return row


@pytest.fixture
def case_row() -> Callable[..., Row]:
    """``case_row(outcome="failed", wall_s=2.0)`` → a complete synthetic row."""
    return _case_row


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    root = tmp_path / "results"
    root.mkdir()
    return root


@pytest.fixture
def write_run(results_dir: Path) -> Callable[[Sequence[Row]], Path]:
    """Write rows of one run × runtime × hardware as the store would: ``cases/<run>__<runtime>__<hw>.parquet``."""

    def write(rows: Sequence[Row]) -> Path:
        first = rows[0]
        name = f"{first['run_id']}__{first['runtime']}__{first['hardware']}.parquet"
        return write_atomic(case_table(rows), ResultsStore(results_dir).cases_dir / name)

    return write
