"""The metric catalogue: every measured quantity that can regress, and what each one is.

One entry per metric — its name, the results column it reads, its unit, its default minimum effect, the scale it is
judged on, how it is named in a sentence and in a table. Statistics, criteria, the regression scan, comparisons,
bisection, blessing, help texts and the report all read this list, so adding a metric is one entry here (its
column must already be written by the runner: see ``framework.results``).

Standard library only (and :mod:`framework.in_runtime.errors`, itself a leaf), so any module can import it
without a cycle.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

from framework.in_runtime.errors import SelectionError, near_miss

MiB = 1024**2

Unit = Literal["s", "bytes"]
# The scale a change is judged on (framework.stats.transform): "log" makes a change a ratio; "log1p_mib" is
# log(1 + MiB), for an amount of bytes that is often 0 — zero on both sides is then no change, not log 0.
Scale = Literal["log", "log1p_mib"]


@dataclasses.dataclass(frozen=True)
class MetricSpec:
    """A measured quantity that can regress."""

    name: str
    column: str  # column of the results' rows
    unit: Unit
    min_effect: float  # relative change below which a difference is "unchanged" (0.05 = 5 %)
    min_absolute: float  # absolute change below which a difference is "unchanged" (unit of the column)
    label: str  # in a sentence: "peak memory +38 % …"
    heading: str  # a table's column of its values: "spilled"
    scale: Scale = "log"
    # Every judge (rank test, change points, a blessing's "largest allowed increase") takes a rise as a
    # regression: a metric where higher is better needs them to read this field first.
    better: Literal["lower"] = "lower"

    def show(self, value: float | None) -> str:
        """A value in its unit: '0.213 s', '364.2 MiB'; '–' when missing."""
        if value is None or not math.isfinite(value):
            return "–"
        if self.unit == "s":
            return f"{value:.3g} s"
        size = float(value)
        for unit in ("B", "KiB", "MiB", "GiB"):
            if abs(size) < 1024:
                return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
            size /= 1024
        return f"{size:.1f} TiB"


METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec("wall", "wall_s", "s", 0.05, 0.01, "wall time", "wall"),
        MetricSpec("peak_memory", "peak_memory_bytes", "bytes", 0.02, 4 * MiB, "peak memory", "peak memory"),
        MetricSpec("mean_memory", "mean_memory_bytes", "bytes", 0.02, 4 * MiB, "mean memory", "mean memory"),
        MetricSpec("spill", "spilled_bytes", "bytes", 0.05, 64 * MiB, "spill", "spilled", scale="log1p_mib"),
    )
}
METRIC_NAMES: tuple[str, ...] = tuple(METRICS)


def metric(name: str) -> MetricSpec:
    """A metric by name (``peak_memory``) or by its column (``peak_memory_bytes``)."""
    for spec in METRICS.values():
        if name in (spec.name, spec.column):
            return spec
    raise SelectionError(near_miss(name, METRICS, "metric"))
