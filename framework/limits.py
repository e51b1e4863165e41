"""Absolute limits a blessing holds measured values to: soak cases' memory slopes and each case's health figures.

Both are judged the way an SRE reads a dashboard with error bars — a value with its interval against a limit:

- **within** when the whole interval lies at or below the limit: passes;
- **beyond** when the whole interval lies above it (significant *and* beyond): fails;
- **inconclusive** when the interval straddles it: the criteria's ``inconclusive: fail | pass`` decides, and the
  line says so.

A soak case's slope carries its Theil–Sen 95 % interval (``workloads/soak.py``); the baseline's slope, where the
store has one, is shown beside it, not judged: at one minute the slopes' real variation between runs is wider than
their intervals (histories filling, the allocator's warm-up), so a difference test would call that a regression.
A health figure is judged on the median over the case's repeats, with the distribution-free interval of the order
statistics (binomial: the widest pair of ranks with at least 95 % coverage; with fewer than 6 repeats no pair
reaches 95 %, the smallest and the largest are used and the line gives their coverage). With the few repeats of a
blessing (5–7) that interval is the smallest to the largest repeat, so with ``inconclusive: fail`` a single repeat
beyond the limit fails the case — the conservative reading of a tail event. A value that could not be measured
(``missing`` with its reason: a release without the hook) is a failed check saying so, never a pass. Pure
functions of the rows; :mod:`framework.blessing` turns each judgement into a check of the verdict.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from framework.criteria import Criteria, show_bytes
from framework.metric_catalogue import METRICS

OVERLOADED = "measured overloaded"  # the mark in a check's reason whose evidence was measured at load > cores
CONFIDENCE = 0.95
PER = {"bytes_per_repeat": "repeat", "bytes_per_minute": "min"}

Position = Literal["within", "beyond", "inconclusive"]


@dataclasses.dataclass(frozen=True)
class MeasuredRow:
    """One measured repeat of a case, as the store holds it (newest first in a :class:`Measured`)."""

    run_id: str
    outcome: str
    error: str | None = None
    values: Mapping[str, float | None] = dataclasses.field(default_factory=dict)  # metric name → value
    extra: Mapping[str, float] = dataclasses.field(default_factory=dict)  # extra_metrics
    missing: Mapping[str, str] = dataclasses.field(default_factory=dict)  # column or metric → why not measured
    overloaded: bool = False

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> MeasuredRow:
        """A row of the ``rows`` view (its JSON columns as text)."""
        values = {name: _number(record.get(spec.column)) for name, spec in METRICS.items() if spec.column in record}
        extra = json.loads(record.get("extra_metrics") or "{}")
        missing = json.loads(record.get("missing") or "{}")
        return cls(
            str(record["run_id"]),
            str(record["outcome"]),
            record.get("error"),
            values,
            {key: float(value) for key, value in extra.items() if isinstance(value, (int, float))},
            {str(key): str(value) for key, value in missing.items()},
            bool(record.get("overloaded")),
        )


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclasses.dataclass(frozen=True)
class Judged:
    """One check of a verdict (:class:`framework.blessing.Check` takes these fields)."""

    criterion: str  # soak | health
    subject: str
    passed: bool
    reason: str
    evidence: tuple[str, ...] = ()


def position(low: float, high: float, limit: float) -> Position:
    """Where an interval lies against a limit."""
    if high <= limit:
        return "within"
    if low > limit:
        return "beyond"
    return "inconclusive"


def _decide(where: Position, inconclusive: str) -> tuple[bool, str]:
    if where == "within":
        return True, "within the limit"
    if where == "beyond":
        return False, "beyond the limit"
    if inconclusive == "pass":
        return True, "inconclusive: its interval straddles the limit (criteria accept inconclusive)"
    return False, "inconclusive: its interval straddles the limit — cannot rule out growth beyond it"


def median_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float, float, float]:
    """(median, low, high, coverage): the order statistics ``x(k)``, ``x(n+1-k)`` with the largest ``k`` whose
    coverage ``1 - 2 P(Bin(n, ½) < k)`` is at least ``confidence`` (``k = 1`` when none is: its coverage given)."""
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        raise ValueError("no values")

    def coverage(k: int) -> float:
        return 1.0 - 2.0 * sum(math.comb(n, i) for i in range(k)) / float(2**n)

    k = 1
    while k + 1 <= (n + 1) // 2 and coverage(k + 1) >= confidence:
        k += 1
    middle = float(ordered[(n - 1) // 2] + ordered[n // 2]) / 2
    return middle, float(ordered[k - 1]), float(ordered[n - k]), coverage(k)


def _runs(rows: Sequence[MeasuredRow]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(row.run_id for row in rows))


def _runs_text(runs: Sequence[str]) -> str:
    return f"run {runs[0]}" if len(runs) == 1 else f"runs {', '.join(runs)}"


# --------------------------------------------------------------------------------------------------
# Soak: memory slopes


def _rate(value: float, per: str) -> str:
    sign = "+" if value >= 0 else "-"
    return f"{sign}{abs(value) / 1024:.1f} KiB/{per}"


def soak_checks(
    criteria: Criteria,
    rows: Mapping[str, Sequence[MeasuredRow] | None],
    runtime: str,
    why: str,
    baseline: Mapping[str, Sequence[MeasuredRow]] | None = None,
    baseline_name: str = "",
) -> list[Judged]:
    """Each soak case × series: its slope with its interval against ``max_leak`` (per repeat) or
    ``max_idle_growth`` (per minute). ``rows``: case → its measured rows, newest first (None: none found; ``why``
    says why none could be produced). ``baseline``: the baseline's soak rows, where the store has them — its slope
    is shown beside the candidate's for reading (shared growth), not judged (see the module docstring)."""
    wanted = criteria.soak
    if wanted is None:
        return []
    checks = []
    for case_id, found in rows.items():
        if not found:
            reason = f"{case_id}: no soak result on {runtime} — {why or 'no run recorded one'}"
            checks.append(Judged("soak", case_id, False, reason))
            continue
        bad = [row for row in found if row.outcome != "passed"]
        if bad:
            first = bad[0]
            reason = (
                f"{case_id}: the soak did not complete on {runtime}: {first.outcome}"
                f"{f' ({_clip(first.error)})' if first.error else ''} — {_runs_text(_runs(bad))}; a worker restarted"
                " past its memory limit is what a fast leak looks like"
            )
            checks.append(Judged("soak", case_id, False, reason, _runs(found)))
            continue
        newest = found[0]
        slopes = any(key.endswith(tuple(PER)) and "_slope_" in key for key in newest.extra)
        if not slopes and "extra_metrics" not in newest.missing:
            # retire_keeps_data and the like (tag:soak): no series to hold to a limit, so their outcome is judged
            reason = (
                f"{case_id}: {len(found)}/{len(found)} repeats passed on {runtime}; it records no memory slope (not a"
                f" leak or idle case), so only its outcome is judged — {_runs_text(_runs(found))}"
            )
            checks.append(Judged("soak", case_id, True, reason, _runs(found)))
            continue
        base = next((row for row in (baseline or {}).get(case_id, ()) if row.outcome == "passed"), None)
        for series in wanted.series:
            judged = _slope_check(
                case_id, series, newest, wanted.leak_limit, wanted.idle_limit, wanted.inconclusive, runtime
            )
            if base is not None and (shown := _slope_text(base, series)):
                judged = dataclasses.replace(
                    judged, reason=f"{judged.reason}; {baseline_name}: {shown} — run {base.run_id}"
                )
            checks.append(judged)
    return checks


def _slope_text(row: MeasuredRow, series: str) -> str | None:
    """'+71.0 KiB/repeat (95 % CI +69.6 KiB/repeat to +71.9 KiB/repeat)' of a row, or None without a slope."""
    for unit, per in PER.items():
        slope = row.extra.get(f"{series}_slope_{unit}")
        low, high = row.extra.get(f"{series}_slope_low_{unit}"), row.extra.get(f"{series}_slope_high_{unit}")
        if slope is not None and low is not None and high is not None:
            return f"{_rate(slope, per)} (95 % CI {_rate(low, per)} to {_rate(high, per)})"
    return None


def _slope_check(
    case_id: str, series: str, row: MeasuredRow, max_leak: float, max_idle: float, inconclusive: str, runtime: str
) -> Judged:
    subject = f"{case_id} {series}"
    ids = (row.run_id,)
    for unit, per in PER.items():
        key = f"{series}_slope_{unit}"
        if key not in row.extra:
            continue
        slope, low, high = (
            row.extra[key],
            row.extra.get(f"{series}_slope_low_{unit}"),
            row.extra.get(f"{series}_slope_high_{unit}"),
        )
        if low is None or high is None:
            reason = f"{case_id}: {series} slope recorded without its interval on {runtime} — run {row.run_id}"
            return Judged("soak", subject, False, reason, ids)
        limit = max_leak if per == "repeat" else max_idle
        passed, word = _decide(position(low, high, limit), inconclusive)
        points = row.extra.get("series_repeats" if per == "repeat" else "series_samples")
        counted = f", {points:.0f} {'repeats' if per == 'repeat' else 'readings'}" if points else ""
        reason = (
            f"{case_id}: {series} memory {_rate(slope, per)} (95 % CI {_rate(low, per)} to {_rate(high, per)}"
            f"{counted}) on {runtime}, limit ≤ {show_bytes(limit)}/{per} — {word} — run {row.run_id}"
        )
        if row.overloaded:
            reason += f" [{OVERLOADED}: the soak ran at load > cores — measure it again on a quiet machine]"
        return Judged("soak", subject, passed, reason, ids)
    why = row.missing.get("extra_metrics")
    if why:
        reason = f"{case_id}: {series} slope missing on {runtime}: {why} — run {row.run_id}"
    else:
        reason = (
            f"{case_id}: records no {series} slope on {runtime} (no {series}_slope_bytes_per_repeat or"
            f" _per_minute, though it records others) — run {row.run_id}"
        )
    return Judged("soak", subject, False, reason, ids)


# --------------------------------------------------------------------------------------------------
# Health: absolute limits on each case's measured values


def health_checks(
    criteria: Criteria, rows: Mapping[str, Sequence[MeasuredRow] | None], runtime: str, why: str
) -> list[Judged]:
    """Each health case × limited metric: the median over its repeats with its interval against the limit."""
    wanted = criteria.health
    if wanted is None:
        return []
    checks = []
    for case_id, found in rows.items():
        for name, limit in wanted.limits.items():
            spec = METRICS[name]
            subject = f"{case_id} {name}"
            if not found:
                reason = f"{case_id}: {spec.label} — no result on {runtime} — {why or 'no run recorded one'}"
                checks.append(Judged("health", subject, False, reason))
                continue
            ids = _runs(found)
            measured = [row.values.get(name) for row in found]
            values = [value for value in measured if value is not None]
            absent = [row for row, value in zip(found, measured) if value is None]
            reasons = list(
                dict.fromkeys(row.missing.get(spec.column) or row.missing.get(name) or "not recorded" for row in absent)
            )
            if not values:
                reason = (
                    f"{case_id}: {spec.label} missing on {runtime} in all {len(found)} repeat(s): {'; '.join(reasons)}"
                    f" — {_runs_text(ids)}; a value that was not measured is not within a limit"
                )
                checks.append(Judged("health", subject, False, reason, ids))
                continue
            middle, low, high, coverage = median_interval(values)
            passed, word = _decide(position(low, high, limit), wanted.inconclusive)
            beyond = sum(value > limit for value in values)
            reason = (
                f"{case_id}: {spec.label} median {spec.show(middle)} ({coverage * 100:.0f} % CI {spec.show(low)} to"
                f" {spec.show(high)}; worst {spec.show(max(values))}, {beyond} of {len(values)} repeats beyond) on"
                f" {runtime}, limit ≤ {spec.show(limit)} — {word} — {_runs_text(ids)}"
            )
            if absent:
                reason += f" ({len(absent)} repeat(s) missing: {'; '.join(reasons)})"
            loaded = sum(row.overloaded for row in found)
            if loaded:
                reason += (
                    f" [{OVERLOADED}: {loaded} of {len(found)} repeats at load > cores — stalls may be the machine's]"
                )
            checks.append(Judged("health", subject, passed, reason, ids))
    return checks


def _clip(text: str | None, limit: int = 200) -> str:
    line = " ".join((text or "no error recorded").split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
