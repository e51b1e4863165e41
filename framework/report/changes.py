"""The overview's grid: each runtime's change against its baseline, per case and metric, as a blessing judges it.

A cell is the newest interleaved (or sequential) comparison of the runtime with the baseline of its criteria, on
the criteria's hardware — the evidence ``nox -s bless`` reuses — judged at the criteria's allowance for the metric
and their alpha (:func:`framework.blessing.judged`: the stored samples are judged again when the comparison was
made with another minimum effect). Coloured only when the change is significant and beyond that allowance; ``≈``
when unchanged within the noise; ``?`` when the noise is too wide to tell (inconclusive). Hover: the comparison's
sentence (change, interval, p, n), the allowance and the minimum detectable effect.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from framework.blessing import judged
from framework.evidence import INTERLEAVED_MODES, MetricEvidence, stored_comparison
from framework.metric_catalogue import METRICS
from framework.query import Results
from framework.report.data import dict_rows
from framework.report.layout import link, when
from framework.report.overview import RuntimeState, same_packages
from framework.stats import MetricComparison
from framework.vocabulary import Verdict, percent

_NEWEST = f"""
SELECT * FROM comparisons WHERE mode IN ({", ".join(f"'{mode}'" for mode in INTERLEAVED_MODES)})
QUALIFY row_number() OVER (PARTITION BY baseline, candidate, hardware, case_id, size, metric
                           ORDER BY created_at DESC, comparison_id DESC) = 1
ORDER BY candidate, case_id, size, metric
"""
SYMBOLS = {"regressed": None, "improved": None, "unchanged": "≈", "inconclusive": "?", "unusable": "–"}


def newest_comparisons(results: Results) -> list[dict[str, Any]]:
    """The newest interleaved comparison row of each baseline × candidate × hardware × case × metric."""
    return dict_rows(results, _NEWEST)


@dataclasses.dataclass(frozen=True)
class Cell:
    kind: str  # a verdict word (framework/vocabulary.py): regressed | improved | unchanged | inconclusive | unusable
    text: str  # '+12 %', '≈', '?', '–'
    title: str  # the hover: sentence, allowance, MDE, comparison
    stale: bool = False  # measured in another environment than the runtime's newest


def cell(
    row: Mapping[str, Any], state: RuntimeState, locks: Mapping[str, str | None], result: MetricComparison | None
) -> Cell:
    """One comparison row as judged at the runtime's yardstick."""
    spec = METRICS[str(row["metric"])]
    allowed, source = state.yardstick.allowance(spec.name) if state.yardstick else (spec.min_effect, "the metric")
    where = f"comparison {row['comparison_id']}, {when(row['created_at'])} UTC"
    stale = state.env_hash is not None and not same_packages(row.get("candidate_env_hash"), state.env_hash, locks)
    older = f" — measured in environment {row.get('candidate_env_hash')}, not the runtime's newest" if stale else ""
    if result is None:
        why = row.get("missing") or "its statistics were not recorded"
        return Cell(
            Verdict.UNUSABLE.value, "–", f"{row['case_id']}: {spec.label} not compared — {why} ({where}){older}", stale
        )
    kind = result.verdict  # the vocabulary's word: 'inconclusive' when the data cannot tell
    text = percent(result.ratio) if kind in ("regressed", "improved") else str(SYMBOLS[kind])
    mde = f"± {100 * result.mde:.0f} %" if result.mde is not None else "none at these repeats"
    title = (
        f"{row['case_id']}: {result.sentence()}. Allowed change ≤ {100 * allowed:g} % ({source}); minimum detectable"
        f" effect (MDE) {mde}. {where}{older}"
    )
    return Cell(kind, text, title, stale)


def _judged(row: Mapping[str, Any], state: RuntimeState) -> MetricComparison | None:
    spec = METRICS[str(row["metric"])]
    allowed = state.yardstick.allowance(spec.name)[0] if state.yardstick else spec.min_effect
    alpha = state.yardstick.alpha if state.yardstick else 0.01
    detail = json.loads(row.get("detail") or "{}")
    samples = (tuple(detail.get("baseline", ())), tuple(detail.get("candidate", ())))
    found = MetricEvidence(str(row["comparison_id"]), stored_comparison(row), row.get("missing"), samples)
    if found.result is not None and (found.result.min_effect is None or found.result.alpha is None):
        return found.result  # a record without its test's settings: shown as it was judged
    return judged(found, allowed, alpha)


def change_grid(
    states: Sequence[RuntimeState], comparisons: Sequence[Mapping[str, Any]], locks: Mapping[str, str | None]
) -> str:
    """Rows: runtime × metric; columns: the compared cases. A runtime without a comparison says how to make one."""
    if not states:
        return ""
    picked: dict[str, dict[tuple[str, str, str], Mapping[str, Any]]] = {}
    for row in comparisons:
        for state in states:
            stick = state.yardstick
            if stick is None or row["candidate"] != state.runtime or row["baseline"] != stick.baseline:
                continue
            if row["hardware"] == stick.hardware and row["metric"] in METRICS:
                picked.setdefault(state.runtime, {})[(row["case_id"], row["size"] or "", row["metric"])] = row
    cases = sorted({(case, size) for keys in picked.values() for case, size, _ in keys})
    several_sizes = len({size for _, size in cases}) > 1
    metrics = [name for name in METRICS if any(key[2] == name for keys in picked.values() for key in keys)]
    head = "".join(f"<th>{escape(case)}{f' ({escape(size)})' if several_sizes else ''}</th>" for case, size in cases)
    body, waiting = [], []
    for state in states:
        stick = state.yardstick
        chosen = picked.get(state.runtime)
        if not chosen:
            waiting.append(_no_comparison(state))
            continue
        assert stick is not None  # a runtime's rows are picked by its yardstick
        label = f'{escape(state.runtime)}<br><span class="note">vs {escape(stick.baseline)}</span>'
        for i, name in enumerate(metrics):
            first = f'<th rowspan="{len(metrics)}" class="runtime">{label}</th>' if i == 0 else ""
            cells = []
            for case, size in cases:
                found = chosen.get((case, size, name))
                if found is None:
                    cells.append('<td class="change none" title="not compared">–</td>')
                    continue
                shown = cell(found, state, locks, _judged(found, state))
                css = f"change {shown.kind}{' stale' if shown.stale else ''}"
                cells.append(f'<td class="{css}" title="{escape(shown.title, quote=True)}">{escape(shown.text)}</td>')
            body.append(f'<tr>{first}<td class="metric">{escape(METRICS[name].heading)}</td>{"".join(cells)}</tr>')
    table = ""
    if body:
        table = (
            '<div class="scroll"><table class="changes"><thead><tr><th>runtime</th><th>metric</th>'
            f"{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
        )
    legend = (
        '<p class="note change-legend"><span class="change regressed">+12 %</span> regressed and '
        '<span class="change improved">-12 %</span> improved: significant (rank test at the criteria\'s alpha) and'
        ' beyond the allowance · <span class="change unchanged">≈</span> unchanged within the noise ·'
        ' <span class="change inconclusive">?</span> inconclusive: the noise is wider than the allowance (more'
        " repeats needed) · faded: measured in an older environment. Hover a cell for the change with its 95 %"
        " interval, p, n, the allowance and the minimum detectable effect (MDE). Each cell is the newest interleaved"
        " comparison with the runtime's baseline, as <code>nox -s bless</code> judges it; "
        + link("comparisons/index.html", "every comparison")
        + ".</p>"
    )
    notes = "".join(f"<li>{line}</li>" for line in waiting)
    return (
        "<h2>Change against each runtime's baseline</h2>"
        + (table + legend if table else "")
        + (f'<ul class="no-comparison note">{notes}</ul>' if notes else "")
    )


def _no_comparison(state: RuntimeState) -> str:
    name, stick = escape(state.runtime), state.yardstick
    if stick is None:
        return f"{name}: no criteria to judge it by, so no baseline"
    if state.state == "UNUSABLE":
        return f"{name}: UNUSABLE — nothing of it can be compared until it runs (its line above says why)"
    if stick.baseline == state.runtime:
        return f"{name}: the baseline of criteria {escape(stick.criteria)} — the others are compared with it"
    command = f"nox -s compare -- --baseline={stick.baseline} --candidate={state.runtime}"
    return (
        f"{name}: no interleaved comparison with {escape(stick.baseline)} on {escape(stick.hardware)} yet —"
        f" <code>{escape(command)}</code> makes one (<code>nox -s bless</code> does too)"
    )
