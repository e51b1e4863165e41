"""The results store: row schema, ``schema_version``, and atomic, append-only Parquet files under ``results/``.

Layout (every file is written once, under a new name, and never modified):

    results/cases/<run_id>__<runtime>__<hardware>.parquet    one row per execution of a case
    results/environments/<env_hash>.parquet                  each built environment's lock (exact packages)
    results/dumps/<run_id>/<case>-<phase><n>.msgpack.gz      cluster state of cases that timed out
    results/logs/<run_id>__<runtime>__<hardware>.log          what a run's clusters and libraries logged (redacted)
    results/stability/failures/<failure_id>/                 a stability failure: program, versions, dump, logs
    results/stability/logs/<run_id>__<runtime>.log           what the clusters of a stability run logged
    results/.staging/<pid>__<name>.jsonl                     rows as the runner writes them (not queried)
    results/<kind>/compacted__<month>__<stamp>.parquet       many files of one month merged (``nox -s compact``)
    results/.lock                                            readers share it per query; compaction's swap excludes

A file appears under its final name only complete (written to a hidden ``.partial`` file, fsync'd, then
renamed), so a crash leaves nothing half-written where a query looks. Only :func:`write_atomic` writes Parquet.
A compacted file lists the files it merged in its footer (``compacted_sources``): readers skip a listed file that
is still there (a compaction that died before deleting it), and no new file may take a listed name.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from framework.in_runtime.errors import ResultsError
from framework.in_runtime.redaction import redact_row, redact_text

# Bump when columns are added or their meaning changes; older files stay readable (missing columns are NULL).
SCHEMA_VERSION = 5  # 2: failure_id (stability runs); 3: run_group, shard, machine identity, worker packages;
# 4: load_avg_1m, cpu_pressure, cpu_steal, overloaded; 5: scheduler and worker health (cluster_health.COLUMNS)

_TS = pa.timestamp("us", tz="UTC")

# Column → Arrow type. JSON columns hold mappings/lists encoded as text (query with DuckDB's json functions).
CASE_COLUMNS: dict[str, pa.DataType] = {
    "schema_version": pa.int32(),
    # what ran
    "run_id": pa.string(),
    "run_started_at": _TS,
    "run_group": pa.string(),  # the logical run a shard belongs to (its parts share it); the run id when unsharded
    "shard": pa.string(),  # "K/N" when the plan was split (--shard=K/N), null otherwise
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
    # how busy the machine was over the execution (framework.in_runtime.load)
    "load_avg_1m": pa.float64(),  # the highest 1-minute load average read over the case
    "cpu_pressure": pa.float64(),  # fraction of the wall time some task waited for a CPU (Linux PSI)
    "cpu_steal": pa.float64(),  # fraction of CPU time the hypervisor gave to others (/proc/stat)
    "overloaded": pa.bool_(),  # load_avg_1m > the machine's cores: times not comparable with a quiet run's
    # the scheduler's and workers' health over the execution (framework.in_runtime.cluster_health)
    "scheduler_loop_max_s": pa.float64(),  # the scheduler's longest event-loop stall (lateness of its tick)
    "scheduler_loop_blocked_s": pa.float64(),  # sum of its stalls of at least 0.1 s
    "worker_loop_max_s": pa.float64(),  # the longest stall of any worker's event loop
    "worker_loop_blocked_s": pa.float64(),  # the workers' stalls of at least 0.1 s, summed over workers
    "scheduler_cpu_s": pa.float64(),  # CPU time of the scheduler's event-loop and offload threads
    "scheduler_peak_rss_bytes": pa.int64(),  # peak RSS of the scheduler's process (in a LocalCluster: the runner's)
    "scheduler_gc_s": pa.float64(),  # time the scheduler's process spent in garbage collection
    "worker_gc_s": pa.float64(),  # time the worker processes spent in garbage collection, summed over processes
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
    "worker_packages": pa.string(),  # JSON: the workers' versions of the card packages (address/Coiled), by package
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
    "machine_fingerprint": pa.string(),  # JSON: cpu model, cores, memory, kernel, virtualisation hint
    "machine_id": pa.string(),  # short hash of the fingerprint; a pooling policy maps ids to machine classes
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
        "machine_fingerprint",
        "worker_packages",
    }
)
_TIMESTAMPS = {name for name, kind in CASE_COLUMNS.items() if kind == _TS}


def _normalise(row: dict[str, Any]) -> dict[str, Any]:
    """A runner row → values of the declared types, redacted; unknown keys are refused (they would be lost)."""
    unknown = sorted(set(row) - set(CASE_COLUMNS))
    if unknown:
        raise ResultsError(f"row has columns the schema does not know: {', '.join(unknown)} — add them to CASE_COLUMNS")
    row = redact_row(row)  # the runner redacted it already; rows from elsewhere (or an older runner) too
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


COMPACTED_PREFIX = "compacted__"
SOURCES_KEY = b"dask_blessing.compacted_from"  # footer key of a compacted file: JSON [{"name": ..., "rows": ...}]


# Called with each file write_atomic published: a URL store uploads it (framework.object_store registers itself).
WRITTEN_HOOKS: list[Callable[[Path], None]] = []


class AlreadyWrittenError(ResultsError):
    """The file to write is there already (results are append-only)."""


def write_atomic(table: pa.Table, target: Path, *, staged: Path | None = None) -> Path:
    """Write ``table`` to ``target`` so it appears whole or not at all; never replace an existing file.

    With ``staged``, the file is written complete and fsync'd under that hidden name and not linked: the caller
    publishes it (compaction links it under the store's lock, with the deletion of what it merged)."""
    _refuse_taken(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = staged or target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        # Row groups of 100,000 rows: a query filtering a sorted column (a compacted file is sorted by workload)
        # skips the groups whose statistics exclude it.
        pq.write_table(table, partial, compression="zstd", row_group_size=100_000)
        with partial.open("rb") as handle:
            os.fsync(handle.fileno())
        if staged is not None:
            return staged
        # link() fails if the target appeared meanwhile: a second writer can never overwrite the first.
        os.link(partial, target)
    except FileExistsError:
        raise AlreadyWrittenError(f"{target}: already exists — results are append-only; choose a new run id") from None
    except OSError as error:
        if staged is not None:
            partial.unlink(missing_ok=True)
        raise ResultsError(
            f"{target}: could not be written ({error.strerror or error}) — nothing was written; free space or fix"
            " permissions, then run again (unpublished rows stay in results/.staging and are published next run)"
        ) from error
    finally:
        if staged is None:
            partial.unlink(missing_ok=True)
    fsync_directory(target.parent)
    for hook in WRITTEN_HOOKS:
        hook(target)
    return target


def fsync_directory(directory: Path) -> None:
    handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _refuse_taken(target: Path) -> None:
    if target.exists():
        raise AlreadyWrittenError(f"{target}: already exists — results are append-only; choose a new run id")
    if target.name.startswith(COMPACTED_PREFIX) or not target.parent.is_dir():
        return
    merged = compacted_sources(target.parent).get(target.name)
    if merged is not None:
        raise ResultsError(
            f"{target}: already exists, merged into {merged} — results are append-only; choose a new run id"
        )


def compacted_files(directory: Path) -> list[Path]:
    """The compacted files of a store directory, oldest first (their names sort by month, then creation)."""
    try:
        names = [entry.name for entry in os.scandir(directory) if entry.name.startswith(COMPACTED_PREFIX)]
    except FileNotFoundError:
        return []
    return [directory / name for name in sorted(names) if name.endswith(".parquet")]


def compacted_sources(directory: Path) -> dict[str, str]:
    """Name of each file a compacted file of ``directory`` merged → that compacted file's name."""
    merged: dict[str, str] = {}
    for path in compacted_files(directory):
        for source in read_sources(path):
            merged[source["name"]] = path.name
    return merged


def read_sources(path: Path) -> list[dict[str, Any]]:
    """What a compacted file merged: [{"name": file name, "rows": its row count}], from its footer."""
    try:
        metadata = pq.read_schema(path).metadata or {}
        sources: list[dict[str, Any]] = json.loads(metadata[SOURCES_KEY])
    except (OSError, KeyError, ValueError, pa.ArrowException) as error:
        raise ResultsError(
            f"{path}: a compacted file without a readable list of what it merged ({error}) — the store cannot tell"
            " which files it replaces; move it out of the results directory, then run nox -s compact"
        ) from None
    return sources


@contextlib.contextmanager
def store_lock(root: Path, *, exclusive: bool, timeout_s: float = 300.0) -> Iterator[bool]:
    """``results/.lock``: every query holds it shared while it runs; compaction holds it exclusively while it links
    its file and deletes what it merged, so no query sees both, or misses a file it listed. Yields whether the lock
    is held. Readers never create the file (a query writes nothing): a store that was never compacted has none,
    and its readers go unlocked until the first compaction creates it."""
    path = root / ".lock"
    try:
        handle = os.open(path, (os.O_RDWR | os.O_CREAT) if exclusive else os.O_RDONLY, 0o644)
    except FileNotFoundError:
        yield False
        return
    except OSError as error:
        if not exclusive:  # e.g. a store copied without read permission on the lock: nothing can compact it here
            yield False
            return
        raise ResultsError(f"{path}: cannot be created ({error.strerror or error}) — fix the permissions") from None
    try:
        deadline = time.monotonic() + timeout_s
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        while True:
            try:
                fcntl.flock(handle, mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ResultsError(
                        f"{path}: still locked after {timeout_s:.0f} s by another process's "
                        f"{'query' if exclusive else 'compaction'} — wait for it to finish, then run again"
                    ) from None
                time.sleep(0.02)
        yield True
    finally:
        os.close(handle)


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

    def published_before(self, staging: Path) -> bool:
        """Whether a staging file's rows are already in the store: its target (or the compacted file that merged
        it) holds as many rows as it does. Anything else is published, or refused without losing the rows."""
        target = self.cases_dir / f"{staging.stem.split('__', 1)[-1]}.parquet"
        held: int
        if target.exists():
            held = pq.read_metadata(target).num_rows
        else:
            merged = compacted_sources(self.cases_dir).get(target.name)
            if merged is None:
                return False
            held = next(int(s["rows"]) for s in read_sources(self.cases_dir / merged) if s["name"] == target.name)
        return held == (len(read_rows(staging)) if staging.exists() else 0)

    def record_environment(self, info: dict[str, Any]) -> Path | None:
        """Store an environment's lock once (keyed by its hash); later runs in the same environment share it."""
        target = self.root / "environments" / f"{info['env_hash']}.parquet"
        if target.exists() or target.name in compacted_sources(target.parent):
            return None
        row = {"schema_version": SCHEMA_VERSION, **info}
        row["lock"] = redact_text(row["lock"]) if row.get("lock") else row.get("lock")  # an index URL's password
        try:
            return write_atomic(pa.Table.from_pylist([row], schema=ENVIRONMENT_SCHEMA), target)
        except AlreadyWrittenError:
            return None  # another run at the same time recorded it first: the same lock, keyed by its hash

    def case_files(self) -> list[Path]:
        """Every case file, compacted or not (a compacted file's listed sources are gone or skipped by queries)."""
        return sorted(self.cases_dir.glob("*.parquet"))


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (one of another user counts; a zombie — dead, not yet reaped — does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # Linux: the state after the command's closing parenthesis; Z (zombie) and X (dead) are gone
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def iter_columns() -> Iterable[tuple[str, str]]:
    """(column, type) pairs of the case schema, for documentation and ``nox -s sql`` with no query."""
    for name, kind in CASE_COLUMNS.items():
        yield name, str(kind)
