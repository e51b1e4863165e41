"""Locks over time: what changed in a runtime's lock since its previous run, recorded with every run.

``latest`` moves whenever upstream releases: each run stores the difference to the runtime's previous run (package
old → new, added, removed; one ``unchanged`` row when nothing moved) in ``results/lock_changes/``. The matrix
summary prints it under the runtime's heading, ``nox -s sql`` has it as the ``lock_changes`` view and the report's
run page shows it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

from framework.environments import BuiltEnvironment, describe_changes, lock_changes, parse_lock
from framework.query import Results
from framework.records import write_record

# The runtime's runs, newest first, from the rows and the health checks (a run whose runtime was unusable, or
# that died before writing rows, still counts); each with the environment it used, where that lock is stored.
PREVIOUS_SQL = """
WITH runs AS (
    SELECT run_id, any_value(env_hash) AS env_hash, min(run_started_at) AS started_at
    FROM rows WHERE runtime = $runtime AND env_hash IS NOT NULL GROUP BY run_id
    UNION ALL
    SELECT run_id, any_value(env_hash), min(checked_at) FROM health WHERE runtime = $runtime GROUP BY run_id
)
SELECT runs.run_id, runs.env_hash, any_value(environments.lock) AS lock, min(runs.started_at) AS started_at
FROM runs JOIN environments ON environments.env_hash = runs.env_hash
WHERE runs.run_id <> $run_id AND runs.started_at < $before
GROUP BY runs.run_id, runs.env_hash
ORDER BY started_at DESC, runs.run_id DESC
LIMIT 1
"""


@dataclasses.dataclass(frozen=True)
class LockDiff:
    """A runtime's lock now vs at its previous run."""

    runtime: str
    previous_run_id: str
    previous_env_hash: str
    env_hash: str
    changes: tuple[tuple[str, str | None, str | None], ...]  # (package, old, new); old None: added, new None: removed

    def line(self) -> str:
        """``since 20261205T101500Z-1a2b3c: dask 2026.8.0 → 2026.11.0, pandas 3.0.2 → 3.0.3``."""
        return f"since {self.previous_run_id}: {describe_changes(self.changes)}"


def previous_lock(results_dir: Path, runtime: str, run_id: str, before: dt.datetime) -> tuple[str, str, str] | None:
    """(run id, env hash, lock) of the runtime's newest run before ``before`` whose lock is stored; None if none."""
    with Results(results_dir) as results:
        _, rows = results.sql(PREVIOUS_SQL, {"runtime": runtime, "run_id": run_id, "before": before})
    if not rows:
        return None
    found_run, env_hash, lock, _ = rows[0]
    return str(found_run), str(env_hash), str(lock)


def diff_since_previous(
    results_dir: Path, environment: BuiltEnvironment, run_id: str, before: dt.datetime
) -> LockDiff | None:
    """The difference to the runtime's previous run; None for its first run (or when no earlier lock is stored)."""
    previous = previous_lock(results_dir, environment.runtime.name, run_id, before)
    if previous is None:
        return None
    previous_run, previous_env, previous_text = previous
    changes = lock_changes(parse_lock(previous_text), environment.packages)
    return LockDiff(environment.runtime.name, previous_run, previous_env, environment.env_hash, tuple(changes))


def record_lock_diff(results_dir: Path, run_id: str, diff: LockDiff, when: dt.datetime) -> Path:
    """Store the diff: one row per package that moved, or one ``unchanged`` row."""
    base = {
        "run_id": run_id,
        "recorded_at": when,
        "runtime": diff.runtime,
        "env_hash": diff.env_hash,
        "previous_run_id": diff.previous_run_id,
        "previous_env_hash": diff.previous_env_hash,
    }
    rows = [
        {
            **base,
            "change": "added" if old is None else "removed" if new is None else "changed",
            "package": package,
            "old_version": old,
            "new_version": new,
        }
        for package, old, new in diff.changes
    ] or [{**base, "change": "unchanged"}]
    return write_record(results_dir, "lock_changes", f"{run_id}__{diff.runtime}", rows)


def recorded_diff_lines(results: Results, run_id: str) -> dict[str, str]:
    """Runtime → its ``since …`` line, for the runtimes of a run that recorded a lock diff."""
    _, rows = results.sql(
        "SELECT runtime, previous_run_id, package, old_version, new_version FROM lock_changes WHERE run_id = ?"
        " ORDER BY runtime, package",
        [run_id],
    )
    changes: dict[tuple[str, str], list[tuple[str, str | None, str | None]]] = {}
    for runtime, previous_run, package, old, new in rows:
        entry = changes.setdefault((runtime, previous_run), [])
        if package is not None:
            entry.append((package, old, new))
    return {
        runtime: f"since {previous_run}: {describe_changes(found)}"
        for (runtime, previous_run), found in changes.items()
    }
