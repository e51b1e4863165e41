"""The noise a matrix summary's Δ carries: is a case's change against its previous run beyond the case's own noise?

The rule (README, "Δ: a change beyond the case's noise"), per case and metric (wall time, peak memory):

* the change is ``c = ln(median now / median before)``, its noise ``se`` the standard error of ``c``:
  - **history** — the series' earlier passed runs (same runtime × hardware × machine class × case × size ×
    parameters, the last :data:`HISTORY_RUNS`), when there are at least :data:`MIN_HISTORY_RUNS`: ``s`` is the
    standard deviation of ln(run median) (≈ the CV of a run's median, drift between runs included) and
    ``se = s·√2`` (two run medians), with ``runs − 1`` degrees of freedom;
  - else the **repeats at hand** — this run's and the previous run's passed repeats, at least 2 on each side:
    ``s`` is their pooled within-run standard deviation of ln(value) and ``se = s·√(f·(1/n + 1/m))``, ``f`` the
    variance factor of a median (1 for up to 2 values, π/2 beyond), with ``n + m − 2`` degrees of freedom.
    Drift between runs is not in this noise: the summary says so under the table;
  - else there is no noise to judge by: ``–``, and why, once under the table.
* a change is shown when ``|c| > k·se`` with ``k`` Student's t quantile ``1 − α/2`` for those degrees of freedom
  and ``α = 0.01`` (as ``compare``), *and* it reaches the metric's minimum effect (relative and absolute, as
  ``compare``); otherwise ``≈``. Simulated (tests/unit/test_noise.py), an A/A pair with history shows ``≈`` in
  ≥ 99.4 % of cells under normal noise and ≥ 98.3 % under heavy-tailed (t₃) noise — ≥ 95 % by a margin.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

from framework.machines import classified_summary_sql
from framework.metric_catalogue import MetricSpec
from framework.query import Results
from framework.records import AB_ROUND_RUNS_SQL
from framework.stats import t_quantile
from framework.vocabulary import percent

ALPHA = 0.01  # per cell: the false-change rate an A/A pair may show (as compare's rank test)
MIN_HISTORY_RUNS = 5  # earlier runs before their spread is the noise (4 degrees of freedom)
HISTORY_RUNS = 20  # the most recent earlier runs whose spread is the noise
MIN_REPEATS = 2  # passed repeats on each side before the repeats at hand are the noise
WITHIN = "≈"
# The summary's Δ columns: the metric each judges, and the case_summary column of its median.
DELTA_METRICS = ("wall", "peak_memory")


@dataclasses.dataclass(frozen=True)
class Noise:
    """The standard error of a change's log ratio, with the degrees of freedom of its estimate and its source."""

    se: float
    df: int
    source: str  # "history" | "repeats"
    detail: str  # "7 runs" | "3+3" (repeats now + before)

    @property
    def k(self) -> float:
        return t_quantile(1 - ALPHA / 2, self.df)

    @property
    def band(self) -> float:
        """The relative change within which a change is noise: 0.31 → ±31 %."""
        return math.expm1(self.k * self.se)


@dataclasses.dataclass(frozen=True)
class Delta:
    """One Δ cell: the raw ratio, the noise it was judged by (None: none), and the verdict."""

    ratio: float | None
    noise: Noise | None
    beyond: bool  # a change beyond the noise and the metric's minimum effect

    def text(self, verbose: bool = False) -> str:
        if self.ratio is None:
            return "–"
        raw = percent(self.ratio)
        if self.noise is None:
            return f"– {raw} (±?)" if verbose else "–"
        shown = raw if self.beyond else WITHIN
        if not verbose:
            return shown
        band = f"±{self.noise.band * 100:.0f} %" if math.isfinite(self.noise.band) else "±∞"
        return f"{shown} ({raw}, {band})" if not self.beyond else f"{raw} ({band})"


def _logs(values: Sequence[float | None]) -> list[float]:
    return [math.log(value) for value in values if value is not None and value > 0]


def _sd(values: Sequence[float]) -> float:
    mean = sum(values) / len(values)
    return math.sqrt(sum((value - mean) ** 2 for value in values) / (len(values) - 1))


def noise_of(
    earlier_medians: Sequence[float | None], now: Sequence[float | None], before: Sequence[float | None]
) -> Noise | None:
    """The noise of a change, by the rule above: from the earlier runs' medians (most recent first), else from
    this run's and the previous run's repeats; None when neither is enough."""
    history = _logs(earlier_medians[:HISTORY_RUNS])
    if len(history) >= MIN_HISTORY_RUNS:
        return Noise(_sd(history) * math.sqrt(2), len(history) - 1, "history", f"{len(history)} runs")
    a, b = _logs(before), _logs(now)
    if len(a) < MIN_REPEATS or len(b) < MIN_REPEATS:
        return None
    df = len(a) + len(b) - 2
    pooled = math.sqrt(((len(a) - 1) * _sd(a) ** 2 + (len(b) - 1) * _sd(b) ** 2) / df)
    factor = sum((1.0 if len(side) <= 2 else math.pi / 2) / len(side) for side in (a, b))
    return Noise(pooled * math.sqrt(factor), df, "repeats", f"{len(b)}+{len(a)}")


def judge(spec: MetricSpec, current: float | None, previous: float | None, noise: Noise | None) -> Delta:
    """The Δ of one metric: beyond the noise and the metric's minimum effect, or not (or no figure at all)."""
    if current is None or previous is None or previous <= 0 or current <= 0:
        return Delta(None, noise, False)
    ratio = current / previous
    if noise is None:
        return Delta(ratio, None, False)
    relevant = abs(ratio - 1) >= spec.min_effect and abs(current - previous) >= spec.min_absolute
    return Delta(ratio, noise, relevant and abs(math.log(ratio)) > noise.k * noise.se)


# Per case of the run (passed): the earlier runs' medians of its series, most recent first, and the passed
# repeats of this run and of the previous one (the most recent earlier run) — the data of the rule above.
_NOISE_SQL = f"""
WITH {classified_summary_sql()},
this AS (SELECT * FROM classified WHERE run_id = $run_id),
earlier AS (
    SELECT e.*, row_number() OVER (PARTITION BY e.runtime, e.hardware, e.machine_class, e.case_id, e.size, e.params
                                   ORDER BY e.started_at DESC) AS age
    FROM classified e
    WHERE e.run_id <> $run_id AND e.outcome = 'passed' AND e.started_at < (SELECT min(started_at) FROM this)
      AND e.run_id NOT IN ({AB_ROUND_RUNS_SQL})
),
history AS (
    SELECT this.runtime, this.hardware, this.case_id, this.size,
           list(earlier.median_wall_s ORDER BY earlier.age) AS wall_medians,
           list(earlier.median_peak_memory_bytes ORDER BY earlier.age) AS peak_memory_medians,
           any_value(earlier.run_id) FILTER (WHERE earlier.age = 1) AS previous_run_id
    FROM this JOIN earlier
      ON earlier.runtime = this.runtime AND earlier.hardware = this.hardware
     AND earlier.machine_class = this.machine_class AND earlier.case_id = this.case_id
     AND earlier.size IS NOT DISTINCT FROM this.size AND earlier.params IS NOT DISTINCT FROM this.params
     AND earlier.age <= {HISTORY_RUNS}
    WHERE this.outcome = 'passed'
    GROUP BY ALL
),
repeats AS (
    SELECT run_id, runtime, hardware, case_id, size, list(wall_s) AS walls, list(peak_memory_bytes) AS peaks
    FROM cases
    WHERE outcome = 'passed' AND (run_id = $run_id OR run_id IN (SELECT previous_run_id FROM history))
    GROUP BY ALL
)
SELECT h.runtime, h.hardware, h.case_id, h.size, h.wall_medians, h.peak_memory_medians,
       now.walls AS wall_now, now.peaks AS peak_memory_now, before.walls AS wall_before,
       before.peaks AS peak_memory_before
FROM history h
LEFT JOIN repeats now ON now.run_id = $run_id AND now.runtime = h.runtime AND now.hardware = h.hardware
     AND now.case_id = h.case_id AND now.size IS NOT DISTINCT FROM h.size
LEFT JOIN repeats before ON before.run_id = h.previous_run_id AND before.runtime = h.runtime
     AND before.hardware = h.hardware AND before.case_id = h.case_id AND before.size IS NOT DISTINCT FROM h.size
"""


def run_noise(results: Results, run_id: str) -> dict[tuple[str, str, str, str | None], dict[str, Noise | None]]:
    """(runtime, hardware, case_id, size) → metric → the noise of its Δ, for each passed case of the run with an
    earlier passed run (the machines table registered: :func:`framework.machines.register`)."""
    names, rows = results.sql(_NOISE_SQL, {"run_id": run_id})
    found: dict[tuple[str, str, str, str | None], dict[str, Noise | None]] = {}
    for values in rows:
        row: dict[str, Any] = dict(zip(names, values))
        found[(row["runtime"], row["hardware"], row["case_id"], row["size"])] = {
            name: noise_of(row[f"{name}_medians"] or [], row[f"{name}_now"] or [], row[f"{name}_before"] or [])
            for name in DELTA_METRICS
        }
    return found


def notes(deltas: Sequence[Delta]) -> list[str]:
    """The lines under the table that say what the Δ cells rest on: where there was no noise to judge by, and
    where it came from the repeats at hand only (drift between runs not included)."""
    lines = []
    unknown = sum(1 for delta in deltas if delta.ratio is not None and delta.noise is None)
    at_hand = sum(1 for delta in deltas if delta.noise is not None and delta.noise.source == "repeats")
    if unknown:
        lines.append(
            f"–  {unknown} Δ cell{'s' if unknown != 1 else ''}: no noise to judge a change by (fewer than"
            f" {MIN_REPEATS} passed repeats on a side and fewer than {MIN_HISTORY_RUNS} earlier runs) — repeat"
            f" more (--repeat=3) or let history build up"
        )
    if at_hand:
        lines.append(
            f"≈  {at_hand} Δ cell{'s' if at_hand != 1 else ''} judged by the repeats at hand (fewer than"
            f" {MIN_HISTORY_RUNS} earlier runs): drift between runs is not in that noise"
        )
    return lines
