"""Change points in one metric's history: where the level of a series of runs moved, and by how much.

Pure (numpy; scipy through framework.stats), so the calibration benchmark can run it on simulated series. The method:

1. Each point is one run; its value is the median of its measured repeats (robust to one slow repeat), on the
   metric's log scale (``framework.stats.transform``: log, or log(1 + MiB) for spill, which is often 0) so a
   change is a ratio and the noise of a level does not depend on its size.
2. Circular binary segmentation (Olshen et al., 2004): in a segment, every arc — a stretch of runs touching
   an end (one change) or in the middle (a level that came and went), with at least two runs inside and on
   each side — is scored by the standardized mean shift inside vs outside (equivalent to a two-sample t
   statistic with pooled variance). Significance comes from a permutation test of the *largest* score over
   all arcs, so picking the best arc is paid for: with no change, a series raises a false alarm with
   probability ≤ ``alpha``.
   The changes of a significant arc are kept and every piece is searched again.
3. A change is reported when its effect is large enough — the ratio of the medians after / before is at least
   ``min_effect`` away from 1 and the difference at least ``min_absolute`` — and it persists: each of the
   first ``persistence`` runs after it is beyond half the effect in the same direction. A level that lasted
   fewer runs is a blip (neither its start nor its end is reported); with fewer runs after it because they
   are the newest, the change is ``pending``: worth a look, not yet a verdict.
4. No permutation p-value of ``m`` runs after a change among ``n`` is below 1 / C(n, m), so a step in the
   newest run or two of a short series cannot be significant that way. The newest runs are also tested
   against the runs since the last change by a t test (Bonferroni over the tail lengths tried); what that
   finds is only ever ``pending``.

Lower is better for every metric (``MetricSpec.better``): a rise is a ``regression``, a fall an ``improvement``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from framework.metric_catalogue import MetricSpec
from framework.stats import bootstrap_ratio_ci, student_t_p, transform

# numpy is untyped for mypy here (follow_imports = skip): arrays are Any at this boundary.
Array = Any

MIN_SEGMENT = 2  # runs on each side of a split found by segmentation
_LOG_FLOOR = 1e-3  # added to the standard deviation (log units ≈ 0.1 %): identical runs don't divide by zero
_CELLS = 2_000_000  # arc scores computed at once (16 MB)
_BLOCK = 200  # permutations per block; the test stops early once alpha is out of reach
_TAIL_MIN_BEFORE = 3  # runs the t test of the newest runs needs before them (≥ 2 degrees of freedom)

Direction = Literal["regression", "improvement"]
Status = Literal["open", "pending"]


@dataclass(frozen=True)
class ChangePoint:
    """A reported change: the level moved between run ``index - 1`` and run ``index`` of the input."""

    index: int  # position (in the input) of the first run after the change
    direction: Direction
    status: Status
    before_median: float  # median of the per-run medians between the previous change and this one
    after_median: float  # ... between this change and the next (or the end)
    ratio: float  # after / before (inf when before is 0)
    ci_low: float | None  # 95 % bootstrap interval of the ratio, over runs; None when before is 0
    ci_high: float | None
    p_value: float
    runs_before: int
    runs_after: int

    @property
    def effect(self) -> float:
        return self.ratio - 1.0


def detect(
    points: Sequence[Sequence[float | None]],
    spec: MetricSpec,
    *,
    alpha: float = 0.01,
    persistence: int = 2,
    min_effect: float | None = None,
    permutations: int = 999,
    seed: int = 0,
) -> list[ChangePoint]:
    """Reported changes in a series, oldest first.

    Args:
        points: one entry per run, in order; each the run's measured values of the metric. ``None`` / NaN
            values are missing (never zero); a run with none is skipped. ``index`` refers to this sequence.
        spec: the metric (its ``min_effect`` and ``min_absolute``).
        min_effect: overrides ``spec.min_effect`` (relative, e.g. 0.10).
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if persistence < 1:
        raise ValueError(f"persistence must be ≥ 1, got {persistence}")
    if 2 / (permutations + 1) >= alpha:  # two families, each Bonferroni-corrected (see best_arc)
        raise ValueError(
            f"{permutations} permutations cannot give p < {alpha:g} (the smallest is {2 / (permutations + 1):.3g})"
            f" — use at least {math.ceil(2 / alpha)} (999 costs little: a series without a change stops early)"
        )
    medians, positions = run_medians(points)
    if len(medians) < MIN_SEGMENT + 1:
        return []
    y = transform(spec, medians)
    effect = spec.min_effect if min_effect is None else min_effect
    splits = segment(y, alpha=alpha, permutations=permutations, seed=seed)
    found = _judge(medians, splits, effect=effect, min_absolute=spec.min_absolute, persistence=persistence, seed=seed)
    tail = _newest_runs(
        medians,
        y,
        splits,
        alpha=alpha,
        effect=effect,
        min_absolute=spec.min_absolute,
        longest=max(persistence, MIN_SEGMENT),
        seed=seed,
    )
    if tail is not None:
        found.append(tail)
    # Back to the caller's positions, which count the runs skipped for having no value.
    return [dataclasses.replace(change, index=int(positions[change.index])) for change in found]


def run_medians(points: Sequence[Sequence[float | None]]) -> tuple[Array, Array]:
    """Per-run medians of the values that were measured, and the input positions of those runs."""
    medians, positions = [], []
    for position, values in enumerate(points):
        measured = np.array([value for value in values if value is not None], dtype=float)
        measured = measured[np.isfinite(measured)]
        if measured.size:
            medians.append(float(np.median(measured)))
            positions.append(position)
    return np.array(medians, dtype=float), np.array(positions, dtype=int)


def arcs(m: int) -> tuple[Array, Array]:
    """Every arc ``[start, end)`` of ``m`` runs whose inside and outside pieces have ≥ MIN_SEGMENT runs each.

    An arc touching an end is a single change; one in the middle is a level that came and went (circular
    binary segmentation: a single split's t statistic is weak there, the unmodelled second change inflating
    its variance).
    """
    start, end = np.triu_indices(m + 1, k=MIN_SEGMENT)
    keep = ((start == 0) | (start >= MIN_SEGMENT)) & ((end == m) | (m - end >= MIN_SEGMENT))
    keep &= (end - start) < m
    return start[keep], end[keep]


def arc_scores(y: Array, start: Array, end: Array) -> Array:
    """Standardized shift of each arc: the sum inside × √(m / (n_inside · n_outside)), over ``y``'s last axis.

    ``y`` must be centred (mean 0; permutations keep it so). The pooled two-sample t statistic of inside vs
    outside is a monotone function of this score's absolute value — the total sum of squares is the same for
    every arc and every permutation — so both pick the same arc and give the same permutation p-value; this
    one costs a subtraction per arc. Works on a stack of series at once (the permutations).
    """
    m = y.shape[-1]
    sums = np.concatenate([np.zeros((*y.shape[:-1], 1)), np.cumsum(y, axis=-1)], axis=-1)
    n_inside = end - start
    return np.asarray((sums[..., end] - sums[..., start]) * np.sqrt(m / (n_inside * (m - n_inside))))


def best_arc(y: Array, *, alpha: float, permutations: int, rng: np.random.Generator) -> tuple[int, int, float]:
    """The arc of ``y`` that stands out most, and its permutation p-value (of its score as the maximum).

    Single changes (arcs touching an end) and levels that came and went (arcs in the middle) are two families,
    each tested by its own maximum and Bonferroni-corrected (p × 2): pooled into one maximum, the many middle
    arcs would drown a change among the newest runs, the case CI cares about most. A single change wins
    when both families are significant; the pieces are searched again anyway.

    Permutations run in blocks and stop once ``alpha`` is out of reach (counts of permutations scoring at least
    as high only grow), so a series without a change costs a fraction of them; the decision is the same.
    """
    y = y - y.mean()
    start, end = arcs(len(y))
    single = (start == 0) | (end == len(y))
    families = [family for family in (single, ~single) if family.any()]
    scores = np.abs(arc_scores(y, start, end))
    # ties with the observed maximum count against it
    observed = [scores[family].max() * (1 - 1e-12) for family in families]
    block = max(1, min(_BLOCK, _CELLS // len(start)))
    exceed, done = [0] * len(families), 0
    while done < permutations:
        size = min(block, permutations - done)
        null = np.abs(arc_scores(rng.permuted(np.tile(y, (size, 1)), axis=1), start, end))
        for i, family in enumerate(families):
            exceed[i] += int(np.count_nonzero(null[:, family].max(axis=1) >= observed[i]))
        done += size
        if all((1 + count) / (1 + permutations) * len(families) >= alpha for count in exceed):
            break
    p_values = [min(1.0, (1 + count) / (1 + done) * len(families)) for count in exceed]
    chosen = 0 if p_values[0] < alpha or len(families) == 1 else int(np.argmin(p_values))
    family_best = np.flatnonzero(families[chosen])[int(np.argmax(scores[families[chosen]]))]
    return int(start[family_best]), int(end[family_best]), p_values[chosen]


def segment(y: Array, *, alpha: float, permutations: int = 999, seed: int = 0) -> dict[int, float]:
    """Circular binary segmentation: significant change points (first index after) → their p-values."""
    splits: dict[int, float] = {}
    stack = [(0, len(y))]
    while stack:
        low, high = stack.pop()
        if high - low < 2 * MIN_SEGMENT or np.ptp(y[low:high]) == 0:
            continue
        # Seeded by the segment, not by the order segments are visited: the same series gives the same answer.
        rng = np.random.default_rng([seed, low, high])
        start, end, p_value = best_arc(y[low:high], alpha=alpha, permutations=permutations, rng=rng)
        if p_value < alpha:
            cuts = [low + cut for cut in (start, end) if 0 < cut < high - low]
            splits.update(dict.fromkeys(cuts, p_value))
            bounds = [low, *cuts, high]
            stack.extend(zip(bounds[:-1], bounds[1:]))
    return dict(sorted(splits.items()))


def _judge(
    medians: Array,
    splits: dict[int, float],
    *,
    effect: float,
    min_absolute: float,
    persistence: int,
    seed: int,
) -> list[ChangePoint]:
    """Significant splits that are large enough and persist (or are too new to tell: pending)."""
    bounds = [0, *splits, len(medians)]
    found: list[ChangePoint] = []
    blip_before = False
    for i, (index, p_value) in enumerate(splits.items(), start=1):
        before, after = medians[bounds[i - 1] : index], medians[index : bounds[i + 1]]
        at_end = bounds[i + 1] == len(medians)
        # A level that lasted fewer than `persistence` runs (not at the end) is a blip: neither its start nor its
        # end is a change worth reporting.
        blip = len(after) < persistence and not at_end
        if blip or blip_before:
            blip_before = blip
            continue
        blip_before = False
        change = _change(before, after, index=index, p_value=p_value, seed=seed)
        if not _large_enough(change, effect, min_absolute):
            continue
        if not _persists(change, after[:persistence]):
            continue
        if len(after) < persistence:
            change = dataclasses.replace(change, status="pending")
        found.append(change)
    return found


def _newest_runs(
    medians: Array,
    y: Array,
    splits: dict[int, float],
    *,
    alpha: float,
    effect: float,
    min_absolute: float,
    longest: int,
    seed: int,
) -> ChangePoint | None:
    """A step in the newest runs that the permutation test cannot resolve yet (pending).

    With ``m`` runs after a change among ``n``, no permutation p-value is below 1 / C(n, m): a step in the last
    run or two of a short series cannot be significant that way. Here the newest ``m`` runs (the most that
    qualify, up to ``longest``) are tested against the runs since the last change with a two-sample t test,
    Bonferroni-corrected over the ``m`` tried.
    """
    start, total = max(splits, default=0), len(y)
    for m in range(longest, 0, -1):
        history, newest = y[start : total - m], y[total - m :]
        if len(history) < _TAIL_MIN_BEFORE:
            continue
        df = len(history) + m - 2
        spread = float(np.sum((history - history.mean()) ** 2) + np.sum((newest - newest.mean()) ** 2))
        sd = math.sqrt(spread / df) + _LOG_FLOOR
        t = (float(newest.mean()) - float(history.mean())) / (sd * math.sqrt(1 / len(history) + 1 / m))
        p_value = min(1.0, student_t_p(t, df) * longest)
        if p_value >= alpha:
            continue
        change = _change(medians[start : total - m], medians[total - m :], index=total - m, p_value=p_value, seed=seed)
        if _large_enough(change, effect, min_absolute) and _persists(change, medians[total - m :]):
            return dataclasses.replace(change, status="pending")
    return None


def _change(before: Array, after: Array, *, index: int, p_value: float, seed: int) -> ChangePoint:
    before_median, after_median = float(np.median(before)), float(np.median(after))
    ratio = after_median / before_median if before_median > 0 else (math.inf if after_median > 0 else 1.0)
    ci_low, ci_high = bootstrap_ratio_ci(before, after, n_boot=2000, seed=seed) if before_median > 0 else (None, None)
    return ChangePoint(
        index=index,
        direction="regression" if after_median > before_median else "improvement",
        status="open",
        before_median=before_median,
        after_median=after_median,
        ratio=ratio,
        ci_low=ci_low,
        ci_high=ci_high,
        p_value=p_value,
        runs_before=len(before),
        runs_after=len(after),
    )


def _large_enough(change: ChangePoint, effect: float, min_absolute: float) -> bool:
    return (
        abs(change.ratio - 1) >= effect
        and abs(change.after_median - change.before_median) >= min_absolute
        and change.after_median != change.before_median
    )


def _persists(change: ChangePoint, first_after: Array) -> bool:
    """Each of the first runs after the change is beyond half of it, on the same side."""
    half = (change.after_median - change.before_median) / 2
    moved = first_after - change.before_median
    return bool(np.all(moved >= half)) if half > 0 else bool(np.all(moved <= half))
