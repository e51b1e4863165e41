"""No case silently disappears: rows for the cases a run planned but did not finish, now or in the next run.

While a group of cases runs, ``results/.staging/`` holds two files per group, named after the controller's pid:

    <pid>__<name>.jsonl        the rows the runner wrote so far (it holds a lock on it while it runs)
    <pid>__<name>.plan.json    what was planned: the cases, the runtime (secrets masked), its packages

When the group ends, ``missing_rows`` adds what its rows do not show — a row per case never reported, and an
``interrupted`` row for a case cut short (fewer executions than planned, with nothing that ended it early: a
timeout, a failed warm-up, a set-up error) — and both files go. When the controller was killed, the next run's
``salvage`` does the same from the files left behind, once neither the controller nor a runner holds them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from framework.in_runtime import provenance, redaction
from framework.in_runtime.backends import backend_for
from framework.in_runtime.cluster_health import not_measured as health_not_measured
from framework.in_runtime.load import not_measured
from framework.in_runtime.runner import RowWriter
from framework.results import SCHEMA_VERSION, ResultsStore, alive, read_rows

INTERRUPTED = "interrupted"
SIDECAR_SUFFIX = ".plan.json"


def sidecar_path(rows_path: Path) -> Path:
    return rows_path.with_name(rows_path.stem + SIDECAR_SUFFIX)


def write_sidecar(rows_path: Path, plan: dict[str, Any], packages: dict[str, str]) -> Path:
    """The plan beside its rows file, secrets masked (the runner's own plan, with them, lives outside results/)."""
    runtime = plan["runtime"]
    kept = {
        **{key: plan[key] for key in ("run_id", "run_started_at", "hardware", "cases", "provenance")},
        **{key: plan.get(key) for key in ("run_group", "shard")},
        "runtime": {
            "name": runtime["name"],
            "hash": runtime["hash"],
            "env_hash": runtime.get("env_hash"),
            "spec": redaction.redact_runtime_spec(runtime["spec"]),
            "dask_config": redaction.redact(runtime.get("dask_config", {})),
        },
        "packages": packages,
    }
    secrets = redaction.known_secrets() | redaction.secret_values(runtime.get("env"), runtime.get("dask_config"))
    text = json.dumps(redaction.redact_strings(kept, secrets), indent=1)
    target = sidecar_path(rows_path)
    partial = target.with_name(f".{target.name}.partial")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(text, encoding="utf-8")
        partial.replace(target)
    except OSError:
        partial.unlink(missing_ok=True)
        raise
    return target


def read_sidecar(path: Path) -> dict[str, Any] | None:
    try:
        plan: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        sys.stderr.write(f"{path}: skipped — not a readable plan ({error}); its rows are published without it\n")
        return None
    return plan


def cut_short(case: dict[str, Any], rows: list[dict[str, Any]]) -> str | None:
    """Where a case with some rows stopped, if it did not finish (``at measured repeat 5 of 6``); None if it did.

    A case ends early by design after a timeout, a failed warm-up or a set-up error; otherwise it runs all its
    warm-ups and measured repeats."""
    if not rows or any(row.get("phase") == "setup" or row.get("outcome") == "timeout" for row in rows):
        return None
    warmups = [row for row in rows if row.get("phase") == "warmup"]
    measured = [row for row in rows if row.get("phase") == "measure"]
    if any(row.get("outcome") != "passed" for row in warmups):
        return None
    planned_warmup, planned = int(case.get("warmup", 0)), int(case.get("repeats", 0))
    if len(measured) >= planned and len(warmups) >= planned_warmup:
        return None
    if not measured and len(warmups) < planned_warmup:
        return f"during warm-up {len(warmups) + 1} of {planned_warmup}"
    return f"at measured repeat {len(measured) + 1} of {planned} ({len(measured)} measured)"


def missing_rows(
    plan: dict[str, Any],
    rows: list[dict[str, Any]],
    packages: dict[str, str],
    unreported: str,
    interrupted: str,
    unreported_outcome: str = INTERRUPTED,
) -> list[dict[str, Any]]:
    """Rows for what ``rows`` do not show of ``plan``: a ``setup`` row per case never reported (``unreported``
    as its error, ``unreported_outcome`` as its outcome) and an ``interrupted`` row for a case cut short (its error
    ``interrupted`` followed by where it stopped)."""
    by_case: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_case.setdefault(str(row.get("case_id")), []).append(row)
    template = _template(plan, packages)
    now = dt.datetime.now(dt.timezone.utc).isoformat()
    out = []
    for case in plan["cases"]:
        reported = by_case.get(case["case_id"], [])
        fields = {
            **template,
            **{key: case.get(key) for key in ("workload", "case_id", "function", "size", "params", "tags")},
            "timeout_s": case.get("timeout_s"),
            "started_at": now,
            "ended_at": now,
            "missing": {
                **not_measured("no execution was recorded here: the machine's load over it is unknown")[1],
                **health_not_measured("no execution was recorded here: the cluster's health over it is unknown")[1],
            },
        }
        if not reported:
            out.append({**fields, "phase": "setup", "repeat": 0, "outcome": unreported_outcome, "error": unreported})
            continue
        where = cut_short(case, reported)
        if where is None:
            continue
        last = reported[-1]
        measured = sum(row.get("phase") == "measure" for row in reported)
        phase = "warmup" if where.startswith("during warm-up") else "measure"
        repeat = int(case.get("first_repeat", 0)) + measured if phase == "measure" else len(reported)
        # The run-level values the runner measured (Python, machine, cluster shape) over the planned ones.
        kept = {key: last[key] for key in last if key in template or key in _SHAPE_KEYS}
        out.append(
            {
                **fields,
                **kept,
                "started_at": last.get("ended_at") or now,
                "ended_at": now,
                "phase": phase,
                "repeat": repeat,
                "outcome": INTERRUPTED,
                "error": f"{interrupted} {where}",
            }
        )
    return out


# What a runner's rows say better than the plan: the cluster's shape, how settings reached it.
_SHAPE_KEYS = frozenset(
    {"cluster_workers", "cluster_threads", "cluster_memory_limit_bytes", "env_vars", "settings_scope", "executable"}
)


def _template(plan: dict[str, Any], packages: dict[str, str]) -> dict[str, Any]:
    """The provenance a row of this plan carries when its runner could not say it (a runner that never ran)."""
    machine = provenance.machine()
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": plan["run_id"],
        "run_started_at": plan["run_started_at"],
        "run_group": plan.get("run_group") or plan["run_id"],
        "shard": plan.get("shard"),
        "runtime": plan["runtime"]["name"],
        "runtime_hash": plan["runtime"]["hash"],
        "env_hash": plan["runtime"].get("env_hash"),
        "runtime_spec": plan["runtime"]["spec"],
        "dask_config": plan["runtime"].get("dask_config", {}),
        "hardware": plan["hardware"]["name"],
        "hardware_backend": plan["hardware"]["backend"],
        "hardware_spec": plan["hardware"],
        "packages": packages,
        "dask_version": packages.get("dask"),
        "distributed_version": packages.get("distributed"),
        "python_version": None,
        **{k: v for k, v in machine.items() if k not in ("python_version", "executable", "python_implementation")},
        # The controller's machine: the runner would have run here (a row the runner wrote says better: kept above).
        **provenance.identity(
            provenance.machine_fingerprint(),
            "controller",
            "the workers' machines were not read; this is the controller's"
            if backend_for(plan["hardware"]).ships_code
            else None,
        ),
        **plan.get("provenance", {}),
    }


def append_rows(rows_path: Path, rows: list[dict[str, Any]]) -> None:
    """Add rows to a rows file, after its last whole line (a line cut short by a full disk or a kill is dropped)."""
    if rows:
        _drop_partial_line(rows_path)
        with RowWriter(rows_path) as writer:
            for row in rows:
                writer.write(row)


def _drop_partial_line(path: Path) -> None:
    if not path.exists() or path.stat().st_size == 0:
        return
    with path.open("rb+") as handle:
        handle.seek(-1, os.SEEK_END)
        if handle.read(1) == b"\n":
            return
        handle.seek(0)
        whole = handle.read().rfind(b"\n") + 1
        handle.truncate(whole)


@contextlib.contextmanager
def _unheld(path: Path) -> Iterator[bool]:
    """Whether nobody (a runner still running) holds ``path``'s lock; held by us inside the block when free."""
    try:
        handle = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        yield True
        return
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        fcntl.flock(handle, fcntl.LOCK_UN)  # free now: nobody takes it again (its controller is gone)
        yield True
    finally:
        os.close(handle)


def _owner(path: Path) -> int | None:
    prefix = path.name.split("__", 1)[0]
    return int(prefix) if prefix.isdigit() else None


def salvage(store: ResultsStore) -> list[Path]:
    """Publish what runs whose controller is gone left in staging, with rows for the cases they did not finish."""
    staging = store.staging_dir
    names = {path.name.removesuffix(".jsonl") for path in staging.glob("*__*.jsonl")}
    names |= {path.name.removesuffix(SIDECAR_SUFFIX) for path in staging.glob("*__*" + SIDECAR_SUFFIX)}
    published = []
    for name in sorted(names):
        rows_path, sidecar = staging / f"{name}.jsonl", staging / f"{name}{SIDECAR_SUFFIX}"
        owner = _owner(rows_path)
        if owner is not None and owner != os.getpid() and alive(owner):
            continue
        with _unheld(rows_path) as free:
            if not free:
                continue  # its runner still runs (and is about to stop: its controller is gone)
        plan = read_sidecar(sidecar) if sidecar.exists() else None
        if store.published_before(rows_path):  # died after publishing, before removing its staging files
            rows_path.unlink(missing_ok=True)
            sidecar.unlink(missing_ok=True)
            continue
        if plan is not None:
            rows = read_rows(rows_path) if rows_path.exists() else []
            who = f"pid {owner}" if owner is not None else "its pid unknown"
            gone = f"its controller ({who}) is gone: killed, or stopped by an error it reported"
            append_rows(
                rows_path,
                missing_rows(
                    plan,
                    rows,
                    plan.get("packages", {}),
                    f"interrupted: the run stopped before this case ran ({gone})",
                    f"interrupted: the run stopped ({gone})",
                ),
            )
        target = store.publish(rows_path)
        sidecar.unlink(missing_ok=True)
        if target is not None:
            published.append(target)
    return published
