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
# log(1 + MiB), for an amount of bytes that is often 0 — zero on both sides is then no change, not log 0;
# "log1p_ms" is log(1 + milliseconds), the same for a time that is often 0 or a few clock ticks (a GC total, a stall).
Scale = Literal["log", "log1p_mib", "log1p_ms"]


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
        # Scheduler and worker health (framework.in_runtime.cluster_health). Stalls and GC pauses are wall-clock
        # extremes and sums of rare events on a shared machine: only a large change (+50 %) beyond a floor a user
        # would notice counts. The floors: 0.1 s for a longest stall (five 20 ms ticks; distributed warns at 3 s),
        # 0.25 s for a blocked total (counted from stalls of ≥ 0.1 s, so two or three of them), 0.05 s of GC.
        MetricSpec(
            "scheduler_loop_max",
            "scheduler_loop_max_s",
            "s",
            0.5,
            0.1,
            "scheduler's longest event-loop stall",
            "sched. stall",
            scale="log1p_ms",
        ),
        MetricSpec(
            "scheduler_loop_blocked",
            "scheduler_loop_blocked_s",
            "s",
            0.5,
            0.25,
            "scheduler's event loop blocked",
            "sched. blocked",
            scale="log1p_ms",
        ),
        MetricSpec(
            "worker_loop_max",
            "worker_loop_max_s",
            "s",
            0.5,
            0.1,
            "workers' longest event-loop stall",
            "worker stall",
            scale="log1p_ms",
        ),
        MetricSpec(
            "worker_loop_blocked",
            "worker_loop_blocked_s",
            "s",
            0.5,
            0.25,
            "workers' event loops blocked",
            "workers blocked",
            scale="log1p_ms",
        ),
        # CPU time is counted in clock ticks (10 ms) and shares the machine less than wall time does: 10 %, 0.05 s.
        MetricSpec(
            "scheduler_cpu", "scheduler_cpu_s", "s", 0.10, 0.05, "scheduler CPU", "sched. CPU", scale="log1p_ms"
        ),
        # The scheduler's process (a LocalCluster's is the runner's, with the client's data): as peak memory, 16 MiB.
        MetricSpec(
            "scheduler_rss", "scheduler_peak_rss_bytes", "bytes", 0.05, 16 * MiB, "scheduler peak RSS", "sched. RSS"
        ),
        MetricSpec(
            "scheduler_gc", "scheduler_gc_s", "s", 0.5, 0.05, "scheduler's GC pauses", "sched. GC", scale="log1p_ms"
        ),
        MetricSpec("worker_gc", "worker_gc_s", "s", 0.5, 0.05, "workers' GC pauses", "worker GC", scale="log1p_ms"),
    )
}
METRIC_NAMES: tuple[str, ...] = tuple(METRICS)


def metric(name: str) -> MetricSpec:
    """A metric by name (``peak_memory``) or by its column (``peak_memory_bytes``)."""
    for spec in METRICS.values():
        if name in (spec.name, spec.column):
            return spec
    raise SelectionError(near_miss(name, METRICS, "metric"))
