"""The results store: row schema, ``schema_version``, and atomic, append-only Parquet files under ``results/``.

Layout (every file is written once, under a new name, and never modified):

    results/cases/<run_id>__<runtime>__<hardware>.parquet    one row per execution of a case
    results/environments/<env_hash>.parquet                  each built environment's lock (exact packages)
    results/dumps/<run_id>/<case>-<phase><n>.msgpack.gz      cluster state of cases that timed out
    results/stability/failures/<failure_id>/                 a stability failure: program, versions, dump, logs
    results/stability/logs/<run_id>__<runtime>.log           what the clusters of a stability run logged
    results/.staging/<pid>__<name>.jsonl                     rows as the runner writes them (not queried)

A file appears under its final name only complete (written to a hidden ``.partial`` file, fsync'd, then
renamed), so a crash leaves nothing half-written where a query looks. Only this module writes Parquet.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from framework.errors import ResultsError

# Bump when columns are added or their meaning changes; older files stay readable (missing columns are NULL).
SCHEMA_VERSION = 2  # 2: failure_id (stability runs)

_TS = pa.timestamp("us", tz="UTC")

# Column → Arrow type. JSON columns hold mappings/lists encoded as text (query with DuckDB's json functions).
CASE_COLUMNS: dict[str, pa.DataType] = {
    "schema_version": pa.int32(),
    # what ran
    "run_id": pa.string(),
    "run_started_at": _TS,
    "workload": pa.string(),
    "case_id": pa.string(),
    "function": pa.string(),
    "size": pa.string(),
    "params": pa.string(),  # JSON
    "tags": pa.list_(pa.string()),
    "phase": pa.string(),  # warmup | measure | setup
    "repeat": pa.int32(),
    "timeout_s": pa.float64(),
    # how it went
    "outcome": pa.string(),  # passed | failed | error | timeout
    "error": pa.string(),
    "traceback": pa.string(),
    "started_at": _TS,
    "ended_at": _TS,
    "wall_s": pa.float64(),
    "peak_memory_bytes": pa.int64(),
    "mean_memory_bytes": pa.int64(),
    "memory_samples": pa.int32(),
    "memory_method": pa.string(),  # rss-probe (10 ms, per worker process) | memory-sampler (heartbeats)
    "spilled_bytes": pa.int64(),
    "unspilled_bytes": pa.int64(),
    "spill_count": pa.int64(),
    "spill_time_s": pa.float64(),
    "compute_time_s": pa.float64(),
    "transfer_time_s": pa.float64(),
    "deserialize_time_s": pa.float64(),
    "tasks": pa.int64(),
    "tasks_erred": pa.int64(),
    "tasks_by_worker": pa.string(),  # JSON: worker address → tasks finished there
    "extra_metrics": pa.string(),  # JSON: what the workload itself reported
    "missing": pa.string(),  # JSON: metric → why it could not be measured (such metrics are NULL, never 0)
    "cluster_dump": pa.string(),
    "failure_id": pa.string(),  # stability: the recorded failure (results/stability/failures/<id>/), replayable
    # runtime
    "runtime": pa.string(),
    "runtime_hash": pa.string(),
    "env_hash": pa.string(),
    "runtime_spec": pa.string(),  # JSON
    "dask_config": pa.string(),  # JSON
    "env_vars": pa.string(),  # JSON: name → value for allow-listed names, null otherwise
    "settings_scope": pa.string(),  # where env vars / dask config took effect: cluster | client only
    "packages": pa.string(),  # JSON: every installed package → version
    "dask_version": pa.string(),
    "distributed_version": pa.string(),
    "python_version": pa.string(),
    "python_implementation": pa.string(),
    "executable": pa.string(),
    # hardware and machine
    "hardware": pa.string(),
    "hardware_backend": pa.string(),
    "hardware_spec": pa.string(),  # JSON
    "cluster_workers": pa.int32(),
    "cluster_threads": pa.int32(),
    "cluster_memory_limit_bytes": pa.int64(),
    "os": pa.string(),
    "cpu_model": pa.string(),
    "cpu_count": pa.int32(),
    "ram_bytes": pa.int64(),
    "hostname": pa.string(),
    # project
    "git_commit": pa.string(),
    "git_dirty": pa.bool_(),
}
CASE_SCHEMA = pa.schema(list(CASE_COLUMNS.items()))

ENVIRONMENT_SCHEMA = pa.schema(
    [
        ("schema_version", pa.int32()),
        ("env_hash", pa.string()),
        ("runtime", pa.string()),
        ("runtime_hash", pa.string()),
        ("python", pa.string()),
        ("built_at", _TS),
        ("requirements", pa.list_(pa.string())),
        ("lock", pa.string()),  # `uv pip freeze` of the environment: one `name==version` a line
    ]
)

_JSON_COLUMNS = frozenset(
    {
        "params",
        "tasks_by_worker",
        "extra_metrics",
        "missing",
        "runtime_spec",
        "dask_config",
        "env_vars",
        "packages",
        "hardware_spec",
    }
)
_TIMESTAMPS = {name for name, kind in CASE_COLUMNS.items() if kind == _TS}


def _normalise(row: dict[str, Any]) -> dict[str, Any]:
    """A runner row → values of the declared types; unknown keys are refused (they would be lost)."""
    unknown = sorted(set(row) - set(CASE_COLUMNS))
    if unknown:
        raise ResultsError(f"row has columns the schema does not know: {', '.join(unknown)} — add them to CASE_COLUMNS")
    out: dict[str, Any] = {}
    for name in CASE_COLUMNS:
        value = row.get(name)
        if name in _JSON_COLUMNS and value is not None and not isinstance(value, str):
            value = json.dumps(value, sort_keys=True, default=str)
        elif name in _TIMESTAMPS and isinstance(value, str):
            value = dt.datetime.fromisoformat(value)
        out[name] = value
    return out


def case_table(rows: Sequence[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist([_normalise(row) for row in rows], schema=CASE_SCHEMA)


def write_atomic(table: pa.Table, target: Path) -> Path:
    """Write ``table`` to ``target`` so it appears whole or not at all; never replace an existing file."""
    if target.exists():
        raise ResultsError(f"{target}: already exists — results are append-only; choose a new run id")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        pq.write_table(table, partial, compression="zstd")
        with partial.open("rb") as handle:
            os.fsync(handle.fileno())
        # link() fails if the target appeared meanwhile: a second writer can never overwrite the first.
        os.link(partial, target)
    except FileExistsError:
        raise ResultsError(f"{target}: already exists — results are append-only; choose a new run id") from None
    except OSError as error:
        raise ResultsError(
            f"{target}: could not be written ({error.strerror or error}) — nothing was written; free space or fix"
            " permissions, then run again (unpublished rows stay in results/.staging and are published next run)"
        ) from error
    finally:
        partial.unlink(missing_ok=True)
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return target


def read_rows(jsonl: Path) -> list[dict[str, Any]]:
    """Rows a runner wrote; a last line cut short by a crash is dropped (its case did not finish)."""
    rows = []
    with jsonl.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.endswith("\n"):
                break
            rows.append(json.loads(line))
    return rows


class ResultsStore:
    """The ``results/`` directory: where each run's files go."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def cases_dir(self) -> Path:
        return self.root / "cases"

    @property
    def staging_dir(self) -> Path:
        return self.root / ".staging"

    def dumps_dir(self, run_id: str) -> Path:
        return self.root / "dumps" / run_id

    def staging_file(self, name: str) -> Path:
        return self.staging_dir / f"{os.getpid()}__{name}.jsonl"

    def publish(self, staging: Path) -> Path | None:
        """Turn a runner's JSON lines into a Parquet file under ``cases/``; remove the staging file after."""
        rows = read_rows(staging) if staging.exists() else []
        name = staging.stem.split("__", 1)[-1]
        target = None
        if rows:
            target = write_atomic(case_table(rows), self.cases_dir / f"{name}.parquet")
        staging.unlink(missing_ok=True)
        return target

    def salvage(self) -> list[Path]:
        """Publish staging files left by a controller that died (its process no longer exists)."""
        published = []
        for staging in sorted(self.staging_dir.glob("*__*.jsonl")):  # <pid>__<name>.jsonl, nothing else
            prefix = staging.name.split("__", 1)[0]
            pid = int(prefix) if prefix.isdigit() else None
            if pid is not None and pid != os.getpid() and _alive(pid):
                continue
            target = self.publish(staging)
            if target is not None:
                published.append(target)
        return published

    def record_environment(self, info: dict[str, Any]) -> Path | None:
        """Store an environment's lock once (keyed by its hash); later runs in the same environment share it."""
        target = self.root / "environments" / f"{info['env_hash']}.parquet"
        if target.exists():
            return None
        row = {"schema_version": SCHEMA_VERSION, **info}
        return write_atomic(pa.Table.from_pylist([row], schema=ENVIRONMENT_SCHEMA), target)

    def case_files(self) -> list[Path]:
        return sorted(self.cases_dir.glob("*.parquet"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def iter_columns() -> Iterable[tuple[str, str]]:
    """(column, type) pairs of the case schema, for documentation and ``nox -s sql`` with no query."""
    for name, kind in CASE_COLUMNS.items():
        yield name, str(kind)
