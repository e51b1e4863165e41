"""What a workload page computes beyond its points: the noise band of each series and the failures grouped by error.

The band is the statistics the judges use, not new ones: between the change points a regression scan found, a
series' level is the median of its runs and its spread the metric's noise (:func:`framework.stats.noise`: the
standard deviation on the metric's scale, ≈ the coefficient of variation); the band is level ± spread. Runs of an
A/B comparison (its interleaved rounds) are not history and take no part.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from framework.metric_catalogue import METRICS, MetricSpec, MiB
from framework.stats import noise, transform

MIN_BAND_RUNS = 3  # fewer runs between two changes: no spread to show
RUNS_LISTED = 5  # per grouped error, the newest runs linked (the count says how many in all)


def points(data: str, fields: Sequence[str]) -> list[dict[str, Any]]:
    """A history's embedded points (JSON arrays in ``fields`` order) as mappings."""
    return [dict(zip(fields, row)) for row in json.loads(data or "[]")]


def series_key(point: dict[str, Any]) -> str:
    """The series a point belongs to along run dates (as the regression scan keys it); report.js builds the same."""
    return "|".join(str(point.get(name) or "") for name in ("runtime", "hardware", "machine_class", "case_id", "size"))


def _untransform(spec: MetricSpec, value: float) -> float:
    """:func:`framework.stats.transform`, inverted."""
    if spec.scale == "log1p_mib":
        return float(math.expm1(value) * MiB)
    if spec.scale == "log1p_ms":
        return float(math.expm1(value) / 1000.0)
    return math.exp(value)


def band(values: Sequence[float], spec: MetricSpec) -> tuple[float, float, float] | None:
    """(low, level, high) of runs' medians: their median ± the metric's noise, on its scale; None when too few."""
    measured = [value for value in values if value is not None and math.isfinite(value) and value >= 0]
    if len(measured) < MIN_BAND_RUNS:
        return None
    spread = noise(measured, spec)
    if not math.isfinite(spread):
        return None
    level = float(np.median(transform(spec, measured)))
    return _untransform(spec, level - spread), _untransform(spec, level), _untransform(spec, level + spread)


def bands(found: Sequence[dict[str, Any]], changes: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each date series' noise band per metric, one per stretch between the change points the scans found in it
    (along dates). Points are mappings of the history's fields; compare runs and runs that measured nothing are
    left out."""
    by_series: dict[str, list[dict[str, Any]]] = {}
    for point in found:
        if not point.get("compare"):
            by_series.setdefault(series_key(point), []).append(point)
    cuts: dict[tuple[str, str], set[str]] = {}
    for change in changes:
        if change.get("along") == "date":
            key = series_key(change)
            cuts.setdefault((key, change["metric"]), set()).add(change["change_run_id"])
    out = []
    for key, series in by_series.items():
        series.sort(key=lambda point: (point["t"], point["run_id"]))
        for name, spec in METRICS.items():
            stretches: list[list[dict[str, Any]]] = [[]]
            at = cuts.get((key, name), set())
            for point in series:
                if point["run_id"] in at and stretches[-1]:
                    stretches.append([])
                stretches[-1].append(point)
            for stretch in stretches:
                found_band = band([point[name] for point in stretch if point[name] is not None], spec)
                if found_band is None:
                    continue
                low, level, high = found_band
                out.append(
                    {
                        "series": key,
                        "metric": name,
                        "from": stretch[0]["t"],
                        "to": stretch[-1]["t"],
                        "low": low,
                        "level": level,
                        "high": high,
                        "runs": sum(1 for point in stretch if point[name] is not None),
                    }
                )
    return out


def grouped_failures(failures: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Failures (newest first) grouped by their error and outcome: the error once, how often, which cases and
    runtimes, and the runs (newest first). The group seen most recently comes first."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for failure in failures:
        key = (failure["error"] or "", failure["outcome"] or "")
        group = groups.get(key)
        if group is None:
            group = groups[key] = {"error": failure["error"], "outcome": failure["outcome"], "count": 0}
            group |= {"cases": [], "runtimes": [], "runs": []}
        group["count"] += 1
        for field, value in (("cases", failure["case_id"]), ("runtimes", failure["runtime"])):
            if value not in group[field]:
                group[field].append(value)
        if all((run["run_id"], run["runtime"]) != (failure["run_id"], failure["runtime"]) for run in group["runs"]):
            group["runs"].append(
                {name: failure[name] for name in ("run_id", "page", "started_at", "runtime", "hardware")}
            )
    return list(groups.values())
