"""A runtime's environment as the pages show it: its health checks (usable, or UNUSABLE and why), the note of
its resolution, and what changed in its lock since the runtime's previous run.

From the ``health`` and ``lock_changes`` records (:func:`data.health_checks`, :func:`data.lock_changes`). A store
older than those records has neither, and its pages show none of this.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any

from framework.environments import describe_changes
from framework.health import Health
from framework.report.data import page_name, section_anchor
from framework.report.layout import MISSING, link, text

Change = tuple[str, str | None, str | None]  # package, old version (None: added), new version (None: removed)


@dataclasses.dataclass(frozen=True)
class LockDiff:
    """What changed in a runtime's lock at one run, against its previous run."""

    previous_run_id: str
    changes: tuple[Change, ...]


class EnvironmentRecords:
    """The health checks and lock changes of a store, looked up per runtime, run or environment."""

    def __init__(
        self,
        checks: Sequence[dict[str, Any]],
        changes: Iterable[dict[str, Any]],
        sections: Sequence[dict[str, Any]],
    ) -> None:
        """``checks`` the newest first; ``sections`` the site's run × runtime × hardware lines (run pages)."""
        self.checks = list(checks)
        grouped: dict[tuple[str, str], tuple[str, list[Change]]] = {}
        for row in changes:
            _, found = grouped.setdefault((row["run_id"], row["runtime"]), (row["previous_run_id"], []))
            if row["package"] is not None:  # the one 'unchanged' row of a run where nothing moved has none
                found.append((row["package"], row["old_version"], row["new_version"]))
        self._diffs = {key: LockDiff(previous, tuple(found)) for key, (previous, found) in grouped.items()}
        self.recorded = bool(self.checks or self._diffs)  # False: a store older than both records
        self._newest: dict[str, dict[str, Any]] = {}
        self._of_run: dict[tuple[str, str], dict[str, Any]] = {}
        self._of_environment: dict[str, list[dict[str, Any]]] = {}
        for check in self.checks:  # newest first: the first one seen is the newest
            self._newest.setdefault(check["runtime"], check)
            self._of_run.setdefault((check["run_id"], check["runtime"]), check)
            self._of_environment.setdefault(check["env_hash"], []).append(check)
        self.sections = {(line["run_id"], line["runtime"], line["hardware"]) for line in sections}
        self.pages = {run_id for run_id, _, _ in self.sections}
        # When each runtime was first seen: its earliest run with rows, or its earliest health check.
        self._first_seen: dict[str, dt.datetime] = {}
        starts = [(line["runtime"], line["run_started_at"]) for line in sections]
        for runtime, started in [*starts, *((check["runtime"], check["checked_at"]) for check in self.checks)]:
            if started is not None and (runtime not in self._first_seen or started < self._first_seen[runtime]):
                self._first_seen[runtime] = started

    def unusable_now(self) -> list[dict[str, Any]]:
        """The newest check of each runtime whose newest check failed, by runtime."""
        return [check for _, check in sorted(self._newest.items()) if not check["usable"]]

    def notes_now(self) -> list[dict[str, Any]]:
        """The newest check of each usable runtime whose resolution left a note (e.g. a release skipped)."""
        return [check for _, check in sorted(self._newest.items()) if check["usable"] and check["note"]]

    def of_run(
        self, run_id: str, runtime: str, env_hash: str | None = None, started: dt.datetime | None = None
    ) -> dict[str, Any] | None:
        """The check a run made of its runtime's environment; else the newest check of that environment up to
        when the run started (an A/B comparison checks its sides under a run id of its own)."""
        found = self._of_run.get((run_id, runtime))
        if found is None and env_hash is not None and started is not None:
            found = self.of_environment(env_hash, started)
        return found

    def of_environment(self, env_hash: str, at: dt.datetime | None) -> dict[str, Any] | None:
        """The newest check of an environment at or before ``at`` (any time when ``at`` is None)."""
        checks = self._of_environment.get(env_hash, [])
        return next((check for check in checks if at is None or check["checked_at"] <= at), None)

    def lock_diff(self, run_id: str, runtime: str) -> LockDiff | None:
        return self._diffs.get((run_id, runtime))

    def first_run(self, runtime: str, started: dt.datetime | None) -> bool:
        """Nothing of the runtime (a run, a health check) is recorded before ``started``."""
        first = self._first_seen.get(runtime)
        return started is not None and (first is None or started <= first)

    def run_link(self, run_id: str, prefix: str, runtime: str | None = None, hardware: str | None = None) -> str:
        """The run's id, linked to its page when the site has one (to the runtime × hardware section if any)."""
        if run_id not in self.pages:
            return f"<code>{escape(run_id)}</code>"
        anchor = ""
        if runtime is not None and hardware is not None and (run_id, runtime, hardware) in self.sections:
            anchor = "#" + section_anchor(runtime, hardware)
        return link(f"{prefix}{page_name(run_id)}.html{anchor}", escape(run_id))


def headline(check: dict[str, Any]) -> str:
    """``latest is UNUSABLE: import distributed failed: …`` — the words of the CLI and of the setup rows."""
    cause = check["cause"] or "no cause recorded"
    return Health(False, cause, check["seconds"] or 0.0, problems=check["problems"] or 1).headline(check["runtime"])


def cause_html(check: dict[str, Any], lead: str = "") -> str:
    """The headline in red, ``RUNTIME is UNUSABLE`` in bold; ``lead`` (escaped HTML) before it."""
    words = headline(check)
    loud = f"{check['runtime']} is UNUSABLE"
    rest = words[len(loud) :] if words.startswith(loud) else ": " + words
    return f'<span class="unusable-cause">{lead}<b>{escape(loud)}</b>{escape(rest)}</span>'


def versions(check: Mapping[str, Any]) -> str:
    """'dask 2026.11.0, distributed 2021.4.1': the versions the check found."""
    named = [(name, check[f"{name}_version"]) for name in ("dask", "distributed")]
    return ", ".join(f"{name} {escape(version)}" for name, version in named if version)


def unusable_cell(check: dict[str, Any]) -> str:
    """What a list of runs shows for a run whose runtime was unusable, instead of its table of setup errors."""
    cause = escape(check["cause"] or "no cause recorded")
    return f'<span class="unusable-cause"><b>UNUSABLE</b>: {cause}</span>'


def run_facts(records: EnvironmentRecords, summary: dict[str, Any], env_hash: str | None) -> str:
    """A run page section's health check, resolution note and lock diff ("" for a store older than them)."""
    if not records.recorded:
        return ""
    runtime, run_id, started = summary["runtime"], summary["run_id"], summary["run_started_at"]
    check = records.of_run(run_id, runtime, env_hash, started)
    items = []
    if check is None:
        items.append(f'<li>health check: {MISSING} <span class="note">none recorded for this environment</span></li>')
    elif check["usable"]:
        items.append(f"<li>health check: usable in {check['seconds'] or 0:.1f} s</li>")
    else:
        items.append(f"<li>health check: {cause_html(check)}{_steps(check)}</li>")
    if check is not None and check["note"]:
        items.append(f'<li>resolution: <span class="note">{escape(check["note"])}</span></li>')
    diff = records.lock_diff(run_id, runtime)
    if diff is not None:
        previous = records.run_link(diff.previous_run_id, "", runtime, summary["hardware"])
        line = escape(describe_changes(diff.changes))
        items.append(f'<li class="lock-diff">lock: since {previous}: {line}{_all_changes(diff.changes)}</li>')
    elif records.first_run(runtime, started):
        items.append('<li class="lock-diff">lock: first recorded run of this runtime</li>')
    else:
        items.append(
            '<li class="lock-diff">lock: <span class="note">no lock diff recorded for this run (nox -s matrix'
            " records one when the runtime's previous lock is stored)</span></li>"
        )
    return f'<ul class="environment-facts">{"".join(items)}</ul>'


def _steps(check: dict[str, Any]) -> str:
    steps = check["steps"]
    if not steps:
        return ""
    rows = "".join(
        f"<tr><td>{text(step.get('step'))}</td><td>{'ok' if step.get('ok') else 'failed'}</td>"
        f'<td class="num">{text(step.get("seconds"))}</td><td class="error">{text(step.get("detail"))}</td></tr>'
        for step in steps
    )
    return (
        f"<details><summary>its {len(steps)} check(s)</summary><table><thead><tr><th>check</th><th>result</th>"
        f"<th>seconds</th><th>detail</th></tr></thead><tbody>{rows}</tbody></table></details>"
    )


def _all_changes(changes: Sequence[Change]) -> str:
    """Every change, when the line names only the first ones."""
    if describe_changes(changes) == describe_changes(changes, limit=len(changes)):
        return ""
    return (
        f"<details><summary>all {len(changes)} changes</summary>"
        f"<p>{escape(describe_changes(changes, limit=len(changes)))}</p></details>"
    )


def comparison_causes(group: dict[str, Any], records: EnvironmentRecords) -> list[str]:
    """Why a side of a comparison could not run, as HTML lines: its environment's failed health check, or
    what the comparison's rows say (``missing`` naming an UNUSABLE runtime)."""
    causes, said = [], []
    for side in ("baseline", "candidate"):
        env_hash = group.get(f"{side}_env_hash")
        check = records.of_environment(env_hash, group["created_at"]) if env_hash else None
        if check is not None and not check["usable"]:
            causes.append(cause_html(check, lead=f"the {side}, "))
            said.append(check["cause"] or "")
    for missing in dict.fromkeys(row["missing"] for row in group["rows"] if row["missing"]):
        if "UNUSABLE" in missing and not any(cause and cause in missing for cause in said):
            causes.append(f'<span class="unusable-cause">{escape(missing)}</span>')
    return causes
