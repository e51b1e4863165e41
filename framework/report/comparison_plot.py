"""A comparison's plot data: one panel per metric, each change as a log-ratio with its 95 % interval.

On a log scale +100 % and −50 % are the same distance from "no change", and a panel per metric keeps a wide,
inconclusive wall-time interval from squashing a small but significant memory change. Each panel shows a readable
range chosen from its findings; an interval (or a change) beyond it is drawn up to the edge with an arrow, and
its real bounds are in the hover text.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from framework.metric_catalogue import METRICS
from framework.vocabulary import interval_bounds, percent

SIGNIFICANT = ("regressed", "improved")
MIN_RANGE = math.log(1.10)  # a panel shows at least ±10 % (as log-ratios: −9 % … +10 %)
READABLE = math.log(1.50)  # what is not significant is clipped at +50 % / −33 %
MARGIN = 1.15  # room beyond the largest change shown
# Tick marks, as changes in %: the nice ones on each side that fall inside a panel's range.
_RISES = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000)
_FALLS = (-1, -2, -5, -10, -20, -33, -50, -67, -80, -90, -99)
_TICKS_PER_SIDE = 3


def log_ratio(ratio: float) -> float | None:
    """ln(candidate / baseline); None when the ratio cannot be placed on a log scale (0, ∞, missing)."""
    if ratio is None or not math.isfinite(ratio) or ratio <= 0:
        return None
    return math.log(ratio)


def panel_limit(rows: Iterable[dict[str, Any]]) -> float:
    """Half the width of a panel, as a log-ratio: every significant finding whole (its interval too), other
    changes up to ±50 %, at least ±10 %."""
    significant, other = [0.0], [0.0]
    for row in rows:
        if row["verdict"] in SIGNIFICANT:
            significant += [abs(row["log_low"]), abs(row["log_high"])]
        else:
            other.append(abs(row["log_change"]))
    return max(MIN_RANGE, MARGIN * max(significant), min(READABLE, MARGIN * max(other)))


def ticks(limit: float) -> list[tuple[float, str]]:
    """(log-ratio, '+10 %') tick marks inside ±``limit``: 0 and up to three nice changes on each side, the
    outermost first and each next one at least a quarter of the range further in."""
    found = [(0.0, "0")]
    for side in (_RISES, _FALLS):
        last, placed = math.inf, 0
        for p in reversed(side):
            at = abs(math.log1p(p / 100))
            if placed < _TICKS_PER_SIDE and at <= limit and last - at >= limit / 4 and at >= limit / 8:
                found.append((math.copysign(at, p), f"{p:+d} %"))
                last, placed = at, placed + 1
    return sorted(found)


def clip(row: dict[str, Any], limit: float) -> dict[str, Any]:
    """The row as drawn: change and interval clamped to ±``limit``, and which end runs off the panel."""

    def clamp(value: float) -> float:
        return max(-limit, min(limit, value))

    return {
        **row,
        "x": clamp(row["log_change"]),
        "low": clamp(row["log_low"]),
        "high": clamp(row["log_high"]),
        "off_low": row["log_low"] < -limit,
        "off_high": row["log_high"] > limit,
    }


def panels(rows: Sequence[dict[str, Any]], kind_of: Callable[[dict[str, Any]], str]) -> list[dict[str, Any]]:
    """A comparison's rows (case × metric) → one panel per metric, in the catalogue's order. Rows without a
    ratio and interval that fit a log scale are left out (their sentences say why). Within every panel the cases
    come in one order: those with a significant finding in any metric first, the largest change first."""
    placed: list[dict[str, Any]] = []
    for row in rows:
        change, low, high = (log_ratio(row[key]) for key in ("ratio", "ci_low", "ci_high"))
        if change is None or low is None or high is None:
            continue
        size = f" ({row['size']})" if row["size"] else ""
        placed.append(
            {
                "metric": row["metric"],
                "label": f"{row['case_id']}{size}",
                "verdict": kind_of(row),
                "sentence": row["sentence"] or "",
                "log_change": change,
                "log_low": min(low, change),
                "log_high": max(high, change),
                "change": percent(row["ratio"]),
                "interval": interval_bounds(row["ci_low"], row["ci_high"]),
            }
        )
    order = _case_order(placed)
    known = [name for name in METRICS if any(row["metric"] == name for row in placed)]
    others = sorted({row["metric"] for row in placed} - set(known))
    out = []
    for name in [*known, *others]:
        chosen = sorted((row for row in placed if row["metric"] == name), key=lambda row: order[row["label"]])
        limit = panel_limit(chosen)
        spec = METRICS.get(name)
        out.append(
            {
                "metric": name,
                "title": spec.label if spec else name,
                "limit": limit,
                "ticks": ticks(limit),
                "rows": [clip(row, limit) for row in chosen],
                "labels": list(dict.fromkeys(row["label"] for row in chosen)),
            }
        )
    return out


def _case_order(placed: Sequence[dict[str, Any]]) -> dict[str, int]:
    strength: dict[str, tuple[int, float]] = {}
    for row in placed:
        key = (1 if row["verdict"] in SIGNIFICANT else 0, abs(row["log_change"]))
        strength[row["label"]] = max(strength.get(row["label"], (0, 0.0)), key)
    ranked = sorted(strength, key=lambda label: (-strength[label][0], -strength[label][1], label))
    return {label: position for position, label in enumerate(ranked)}
