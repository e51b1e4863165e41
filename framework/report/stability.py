"""The stability page: recorded failures (each with the command that replays it) and the stability runs."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from framework.failure_signatures import grouped, replay_command
from framework.known_failures import KnownFailure, match
from framework.report.data import section_anchor
from framework.report.layout import (
    MISSING,
    Context,
    code,
    link,
    local_file,
    outcome,
    page,
    table,
    table_row,
    text,
)

ERROR_SHOWN = 240  # characters of an error in the runs table; the whole of it on hover


def stability_page(
    ctx: Context,
    rows: Sequence[dict[str, Any]],
    failures: Sequence[dict[str, Any]],
    results_dir: Path,
    known_failures: Mapping[str, KnownFailure] | None = None,
) -> str:
    """``rows``: the stability executions, newest first; ``failures``: the records under stability/failures/;
    ``known_failures``: matrices/known_failures.yaml's entries."""
    replays: dict[str, list[str]] = {}
    for row in rows:
        if row["replay_of"] and row["case_id"].startswith("replay["):
            replays.setdefault(row["replay_of"], []).append(row["outcome"])
    known = {str(record["failure_id"]) for record in failures}
    # A replay or a shrink that fails records a failure of its own: shown inside the failure it came from.
    offspring: dict[str, list[dict[str, Any]]] = {}
    for record in failures:
        parent = _parent(record)
        if parent in known:
            offspring.setdefault(parent, []).append(record)
    parts = ["<h1>Stability</h1>", *_by_signature(ctx, failures, known_failures or {})]
    parts.append("<h2>Recorded failures</h2>")
    for record in failures:
        if _parent(record) not in known:
            failure_id = str(record["failure_id"])
            parts.append(
                _failure(record, replays.get(failure_id, []), offspring.get(failure_id, []), results_dir, ctx.out_dir)
            )
    if failures:
        parts.append(
            '<p class="note">Replaying re-runs the recorded program in the runtime it failed in and, if it fails '
            "again, keeps it as a regression case that every later stability run executes first.</p>"
        )
    else:
        parts.append('<p class="empty">No stability failure recorded.</p>')
    parts.append("<h2>Stability runs</h2>")
    parts.append(
        table(
            ["run", "started (UTC)", "runtime", "dask", "what ran", "outcome", "time", "fuzzed", "failure", "error"],
            [_run_row(row, known) for row in rows],
            empty="No stability runs yet — <code>nox -s stability</code> fuzzes a runtime.",
        )
    )
    return page(ctx, title="Stability", depth=0, active="stability", body="\n".join(parts))


def _by_signature(ctx: Context, failures: Sequence[dict[str, Any]], known: Mapping[str, KnownFailure]) -> list[str]:
    """One row per failure signature: how many recorded failures have it, since when, where, one to replay."""
    readable = [record for record in failures if not record.get("unreadable")]
    if not readable:
        return []
    today = ctx.generated_at.date()
    rows = []
    for group in grouped(readable):
        found = match(known, group.signature.text)
        label = escape(found.label(today)) if found else MISSING
        if found and found.entry.expired(today):
            label = f'<span class="error">{label}</span>'
        command = code(replay_command(group.example)) if group.example else MISSING
        rows.append(
            table_row(
                code(group.signature.text),
                escape(str(group.count)),
                text(group.first_seen[:16].replace("T", " ")),
                text(", ".join(group.runtimes)),
                label,
                command,
            )
        )
    head = ["signature", "failures", "first seen (UTC)", "runtimes", "known", "replay the newest"]
    note = (
        "<p class=\"note\">A signature is the failure's kind, its error types, the stuck keys' states and the"
        " innermost frames outside the harness: the same bug has the same one across runs and releases.</p>"
    )
    return ["<h2>Failures by signature</h2>", table(head, rows), note]


def _parent(record: dict[str, Any]) -> str | None:
    source = record.get("source") or {}
    parent = source.get("replay_of") or source.get("shrunk_from") if isinstance(source, dict) else None
    return str(parent) if parent else None


def _found(record: dict[str, Any]) -> str:
    """How the failure was found, from its record's ``source``."""
    source = record.get("source") or {}
    fuzz = source.get("fuzz") if isinstance(source, dict) else None
    if isinstance(fuzz, dict):
        found = f"fuzzing (profile {fuzz.get('profile', '–')}, seed {fuzz.get('seed', '–')}"
        if source.get("examples_before_failure") is not None:
            found += f", after {source['examples_before_failure']} examples"
        return found + (", flaky: it did not fail again when re-run" if source.get("flaky") else "") + ")"
    if isinstance(source, dict) and source.get("regression"):
        return f"replaying regression case {source['regression']}"
    return "–"


def _failure(
    record: dict[str, Any],
    replays: Sequence[str],
    offspring: Sequence[dict[str, Any]],
    results_dir: Path,
    page_dir: Path,
) -> str:
    """One recorded failure: what broke, how it was found, the command that replays it, its replays, its files."""
    failure_id = str(record["failure_id"])
    hits = sum(1 for value in replays if value in ("failed", "timeout", "error"))
    replayed = f"replayed {len(replays)}×, failed {hits}×" if replays else "not replayed yet"
    versions = ", ".join(f"{name} {value}" for name, value in (record.get("versions") or {}).items() if value)
    facts = [
        f"found {escape(str(record.get('created_at') or '–')[:19].replace('T', ' '))} UTC by {escape(_found(record))}",
        f"runtime {text(record.get('runtime'))}",
        f"tier {text(record.get('tier'))}, {text(record.get('kind'))}",
        text(versions or None),
        escape(replayed),
    ]
    error = str(record.get("unreadable") or record.get("error") or "no error recorded")
    parts = [
        f'<div class="failure"><h3><code>{escape(failure_id)}</code></h3><p>{" · ".join(facts)}</p>',
        f'<p class="error">{escape(error)}</p>',
        f'<p>replay: <code class="command">nox -s stability -- --replay={escape(failure_id)}</code></p>',
        f"<p>files: {_files(record, results_dir, page_dir)}</p>",
    ]
    if offspring:
        items = "".join(
            f"<li><code>{escape(str(child['failure_id']))}</code> ({escape(_relation(child))}): "
            f'<span class="error">{escape(str(child.get("error") or "")[:ERROR_SHOWN])}</span> — '
            f"{_files(child, results_dir, page_dir)}</li>"
            for child in offspring
        )
        parts.append(
            f"<details><summary>{len(offspring)} failure(s) recorded while replaying or shrinking it"
            f"</summary><ul>{items}</ul></details>"
        )
    return "".join(parts) + "</div>"


def _relation(record: dict[str, Any]) -> str:
    source = record.get("source") or {}
    if "shrunk_from" in source:
        return f"the shrunk program, {source.get('steps_before', '–')} steps before shrinking"
    return f"replay {source.get('attempt', '–')}"


def _files(record: dict[str, Any], results_dir: Path, page_dir: Path) -> str:
    directory = record["directory"]
    files = [local_file(str(directory / "failure.json"), results_dir, page_dir)]
    for extra in (record.get("cluster_dump"), "log-tail.txt"):
        if extra and (directory / extra).exists():
            files.append(local_file(str(directory / extra), results_dir, page_dir))
    return " · ".join(files)


def _run_row(row: dict[str, Any], known: set[str]) -> str:
    extra = json.loads(row["extra_metrics"] or "{}")
    examples = f"{extra['examples']} examples, {extra.get('steps', '–')} steps" if "examples" in extra else None
    failure = row["failure_id"]
    failure_cell = MISSING
    if failure:
        failure_cell = code(failure) + ("" if failure in known else ' <span class="note">(no record)</span>')
    error = row["error"]
    error_cell = MISSING
    if error:
        shown = error if len(error) <= ERROR_SHOWN else error[: ERROR_SHOWN - 1] + "…"
        error_cell = f'<span class="error" title="{escape(error, quote=True)}">{escape(shown)}</span>'
    anchor = section_anchor(row["runtime"], row["hardware"])
    return table_row(
        link(f"runs/{row['page']}.html#{anchor}", escape(row["run_id"])),
        text(row["started_at"]),
        text(row["runtime"]),
        text(row["dask_version"]),
        escape(row["case_id"]),
        outcome(row["outcome"]),
        text(None if row["wall_s"] is None else f"{row['wall_s']:.1f} s"),
        text(examples),
        failure_cell,
        error_cell,
    )
