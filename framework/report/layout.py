"""The frame every report page shares (nav bar, where the data came from, how to regenerate) and small formatters.

HTML is written with ``html.escape`` and f-strings: the pages are simple, and no template engine is needed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from framework.metric_catalogue import METRICS

NAV = (
    ("overview", "Overview", "index.html"),
    ("workloads", "Workloads", "workloads/index.html"),
    ("runs", "Runs", "runs/index.html"),
    ("comparisons", "Comparisons", "comparisons/index.html"),
    ("stability", "Stability", "stability.html"),
    ("known-issues", "Known issues", "known-issues.html"),
)
MISSING = '<span class="missing">–</span>'
_ACTIVE = ' class="active"'


@dataclasses.dataclass(frozen=True)
class Context:
    """What every page shows about the site itself."""

    generated_at: dt.datetime
    results_dir: Path
    out_dir: Path  # where the site will live once swapped in (links to dumps are relative to it)
    regenerate: str  # the one-line command that rebuilds this site
    bokeh_scripts: tuple[str, ...]  # file names under static/, in load order
    source: str = ""  # where the results are, as the user named them (a URL store's URL); default: results_dir


def page(
    ctx: Context,
    *,
    title: str,
    depth: int,
    active: str,
    body: str,
    plots: bool = False,
    data: Mapping[str, str] | None = None,
) -> str:
    """A whole HTML page. ``data`` maps element ids to JSON text, embedded for report.js (file:// cannot fetch)."""
    up = "../" * depth
    nav = "".join(f'<a href="{up}{href}"{_ACTIVE if key == active else ""}>{label}</a>' for key, label, href in NAV)
    scripts = [*(f"{up}static/{name}" for name in ctx.bokeh_scripts if plots), f"{up}static/report.js"]
    embedded = "".join(
        f'<script type="application/json" id="{escape(key)}">{json_for_html(text)}</script>\n'
        for key, text in (data or {}).items()
    )
    generated = ctx.generated_at.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">'
        f"<title>{escape(title)} — dask-blessing</title>"
        f'<link rel="stylesheet" href="{up}static/report.css"></head>\n'
        f'<body><header><nav><span class="brand">dask-blessing</span>{nav}</nav>'
        f'<p class="meta">generated {generated} from <code>{escape(ctx.source or str(ctx.results_dir))}</code>'
        f" · regenerate: <code>{escape(ctx.regenerate)}</code></p></header>\n"
        f"<main>\n{body}\n</main>\n{embedded}"
        + "".join(f'<script src="{src}"></script>' for src in scripts)
        + "\n</body></html>\n"
    )


def json_for_html(text: str) -> str:
    """JSON text that cannot end its <script> element early: '<' only ever appears inside JSON strings."""
    return text.replace("<", "\\u003c")


def table(headers: Sequence[str], rows: Iterable[str], css: str = "", empty: str = "") -> str:
    """A table of pre-rendered ``<tr>`` rows; ``empty`` (a sentence) instead when there are none."""
    body = "".join(rows)
    if not body:
        return f'<p class="empty">{empty}</p>' if empty else ""
    head = "".join(f"<th>{escape(name)}</th>" for name in headers)
    return f'<div class="scroll"><table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def cells(*values: str) -> str:
    """``<td>`` cells of already-escaped HTML."""
    return "".join(f"<td>{value}</td>" for value in values)


def table_row(*values: str) -> str:
    """A ``<tr>`` of :func:`cells`."""
    return f"<tr>{cells(*values)}</tr>"


def text(value: Any) -> str:
    """A value as escaped text; None as the missing mark."""
    return MISSING if value is None else escape(str(value))


def when(value: dt.datetime | None) -> str:
    if value is None:
        return MISSING
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M")


def metric_value(name: str, value: float | None) -> str:
    """A metric's value in its unit ('0.213 s', '364.2 MiB'), or the missing mark."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return MISSING
    return escape(METRICS[name].show(float(value)))


def outcome(value: str | None) -> str:
    """An outcome (passed, failed, error, timeout) as a coloured badge."""
    if value is None:
        return MISSING
    return badge(value, value)


def status(value: str | None) -> str:
    """A regression finding's status: open (red), pending (amber), accepted (grey)."""
    return MISSING if value is None else badge({"open": "failed", "pending": "pending"}.get(value, "unchanged"), value)


def badge(css: str, label: str) -> str:
    return f'<span class="badge {escape(css, quote=True)}">{escape(label)}</span>'


def link(href: str, label: str) -> str:
    return f'<a href="{escape(href, quote=True)}">{label}</a>'


def code(value: str) -> str:
    return f"<code>{escape(value)}</code>"


def local_file(path: str | None, results_dir: Path, page_dir: Path) -> str:
    """A file the results point to (a cluster dump, a failure record): a link relative to the page when it is in
    the results directory — also when the store was moved since it was recorded — else its path, and why."""
    if not path:
        return MISSING
    target, reason = located(path, results_dir)
    if target is None:
        return f'<code>{escape(path)}</code> <span class="note">({escape(reason)})</span>'
    return link(os.path.relpath(target, page_dir), escape(target.name))


def located(path: str, results_dir: Path) -> tuple[Path | None, str]:
    """Where ``path`` is inside ``results_dir`` now (it may have been recorded under another results path), or
    None and why not."""
    recorded = Path(path)
    root = results_dir.resolve()
    if recorded.is_absolute() and recorded.is_relative_to(root):
        return (recorded, "") if recorded.exists() else (None, "missing on disk")
    parts = recorded.parts
    for anchor in ("dumps", "stability"):
        if anchor in parts:
            candidate = root.joinpath(*parts[len(parts) - 1 - parts[::-1].index(anchor) :])
            if candidate.exists():
                return candidate, ""
    return None, f"not in {results_dir}"


def overloaded_note(run: dict[str, Any], short: bool = False) -> str:
    """'' or the note that some measured repeats were taken while the machine was overloaded (load > cores)."""
    n = run.get("overloaded") or 0
    if not n:
        return ""
    if short:
        return (
            f' <span class="note" title="load above the machine\'s cores: times not comparable">({n} overloaded)</span>'
        )
    cores = f" on {run['cpu_count']} cores" if run.get("cpu_count") else ""
    peak = f", up to {run['max_load']:.1f}{cores}" if run.get("max_load") is not None else ""
    return (
        f'<p class="note">! {n} measured repeat{"s were" if n != 1 else " was"} taken while the machine was'
        f" overloaded (load average &gt; cores{peak}): {'their' if n != 1 else 'its'} times are not comparable"
        " with a quiet run's (the executions' <code>load_avg_1m</code>, <code>overloaded</code> columns say which).</p>"
    )


def case_html(case_id: str) -> str:
    """A case id that wraps only between its parameters (after '[' and ','), never inside a name or value."""
    marked = escape(case_id).replace("[", "[<wbr>").replace(",", ",<wbr>")
    return f'<span class="case-id">{marked}</span>'


# case_html in DuckDB, over an already escaped text
CASE_HTML_SQL = "'<span class=\"case-id\">' || replace(replace({0}, '[', '[<wbr>'), ',', ',<wbr>') || '</span>'"
