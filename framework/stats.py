"""The statistics that turn measurements into decisions. Pure functions over samples (numpy; scipy for Student's t).

Decision rule of a fixed-size comparison (``compare_samples``), chosen so its false alarms are *bounded*, not
estimated:

* **significance** — a two-sided Mann–Whitney rank test, exact (enumerated) for the small samples this project
  takes, so under "no change" (both sides exchangeable, which interleaving gives) P(p < alpha) ≤ alpha whatever
  the noise's shape; with ``alpha = 0.01`` an A/A comparison raises a false alarm at most 1 % of the time;
* **relevance** — the ratio of medians must differ from 1 by the metric's minimum effect (and by an absolute
  floor, so 3 MiB → 4 MiB of spill is not "+33 %");
* **evidence** — the ratio of medians with a 95 % bootstrap interval, the p-value, the sizes, and what the data
  could have detected: the minimum detectable effect for these repeats and the repeats the minimum effect needs.

The sequential mode (:class:`SequentialComparison`) adds interleaved pairs until a confidence sequence for the
median paired change excludes the "unchanged" band or fits inside it. A confidence sequence holds at every
sample size at once (Ville's inequality on a sign-test mixture martingale), so looking after every pair does not
inflate false alarms the way re-testing a fixed-size test would.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from collections.abc import Mapping, Sequence
from statistics import NormalDist
from typing import Any

import numpy as np
from scipy.special import betainc, stdtrit

from framework.in_runtime.errors import SelectionError
from framework.metric_catalogue import METRICS, MetricSpec, MiB, metric
from framework.vocabulary import Verdict, change_with_interval, decide_word, read_verdict

# numpy is untyped for mypy here (follow_imports = skip): arrays are Any at this boundary.
Array = Any


def transform(spec: MetricSpec, values: Sequence[float] | Array) -> Array:
    """The scale effects are additive on (the metric's ``scale``): log, or log(1 + MiB) / log(1 + ms) for an
    amount often 0."""
    array = np.asarray(values, dtype=float)
    if spec.scale == "log1p_mib":
        return np.log1p(array / MiB)
    if spec.scale == "log1p_ms":
        return np.log1p(array * 1000.0)
    return np.log(np.maximum(array, 1e-12))


def parse_effects(text: str | Sequence[str] | None) -> dict[str, float]:
    """``"wall=10%,peak_memory=0.05"`` → {"wall": 0.10, "peak_memory": 0.05}; refuses unknown metrics."""
    if not text:
        return {}
    items = [text] if isinstance(text, str) else list(text)
    effects = {}
    for item in (part.strip() for joined in items for part in joined.split(",") if part.strip()):
        name, sep, value = item.partition("=")
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(%?)\s*", value)
        if not sep or match is None:
            raise SelectionError(f"minimum effect {item!r} is not METRIC=PERCENT — use e.g. wall=10%,peak_memory=5%")
        number = float(match.group(1)) / (100 if match.group(2) else 1)
        if not 0 <= number < 1:
            raise SelectionError(f"minimum effect {item!r} is not between 0 and 100 % — use e.g. wall=10%")
        effects[metric(name.strip()).name] = number
    return effects


# --------------------------------------------------------------------------------------------------
# Tests and intervals


def _ranks(values: Array) -> Array:
    """Average ranks (1-based), ties sharing the mean of their positions."""
    order = np.argsort(values, kind="mergesort")
    ranks: Array = np.empty(len(values), dtype=float)
    sorted_values = values[order]
    start = 0
    for end in range(1, len(values) + 1):
        if end == len(values) or sorted_values[end] != sorted_values[start]:
            ranks[order[start:end]] = (start + end + 1) / 2.0
            start = end
    return ranks


_EXACT_LIMIT = 50_000  # enumerate every split up to this many (n=8 vs 8 is 12,870)


def mann_whitney_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p-value of the Mann–Whitney U test that ``a`` and ``b`` come from one distribution.

    Exact when the number of ways to split the pooled sample is small (every split enumerated, so ties are
    handled exactly, conditional on the observed values); otherwise the normal approximation with tie and
    continuity corrections.
    """
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    n_a, n_b = len(x), len(y)
    if n_a == 0 or n_b == 0:
        return 1.0
    pooled = np.concatenate([x, y])
    ranks = _ranks(pooled)
    if np.all(ranks == ranks[0]):
        return 1.0
    rank_sum = float(ranks[n_a:].sum())
    if math.comb(n_a + n_b, n_b) <= _EXACT_LIMIT:
        splits = np.array(list(itertools.combinations(range(n_a + n_b), n_b)), dtype=np.intp)
        sums = ranks[splits].sum(axis=1)
        centre = n_b * (n_a + n_b + 1) / 2.0
        observed = abs(rank_sum - centre)
        # the tolerance absorbs float error in sums of half-integer ranks
        return float(np.mean(np.abs(sums - centre) >= observed - 1e-9))
    u = rank_sum - n_b * (n_b + 1) / 2.0
    mean = n_a * n_b / 2.0
    _, counts = np.unique(pooled, return_counts=True)
    n = n_a + n_b
    variance = n_a * n_b / 12.0 * ((n + 1) - float((counts**3 - counts).sum()) / (n * (n - 1)))
    if variance <= 0:
        return 1.0
    z = (abs(u - mean) - 0.5) / math.sqrt(variance)
    return float(min(1.0, 2.0 * (1.0 - NormalDist().cdf(max(z, 0.0)))))


def smallest_p(n_a: int, n_b: int) -> float:
    """The smallest two-sided p the exact rank test can give: below ``alpha`` or nothing is ever detected."""
    if not (n_a and n_b):
        return 1.0
    log_ways = math.lgamma(n_a + n_b + 1) - math.lgamma(n_a + 1) - math.lgamma(n_b + 1)
    return min(1.0, 2.0 * math.exp(-log_ways))


def bootstrap_ratio_ci(
    a: Sequence[float], b: Sequence[float], level: float = 0.95, n_boot: int = 10_000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of median(b) / median(a), each side resampled on its own."""
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    rng = np.random.default_rng(seed)
    med_a = np.median(x[rng.integers(0, len(x), size=(n_boot, len(x)))], axis=1)
    med_b = np.median(y[rng.integers(0, len(y), size=(n_boot, len(y)))], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(med_a > 0, med_b / np.where(med_a > 0, med_a, 1.0), np.where(med_b > 0, np.inf, 1.0))
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(ratios, [tail, 1.0 - tail], method="inverted_cdf")  # no interpolation: ∞ stays ∞
    return float(low), float(high)


def t_quantile(p: float, df: float) -> float:
    """Quantile of Student's t: scipy.stats.t.ppf(p, df), by the function it calls (scipy.stats imports in ~1 s)."""
    return float(stdtrit(df, p))


def student_t_p(t: float, df: float) -> float:
    """Two-sided p-value of Student's t with ``df`` degrees of freedom: I_{df/(df+t²)}(df/2, 1/2)."""
    if not math.isfinite(t):
        return 0.0
    return float(betainc(df / 2, 0.5, df / (df + t * t)))


def minimum_detectable_effect(sigma: float, n: int, alpha: float = 0.01, power: float = 0.95) -> float | None:
    """The relative change detectable with probability ``power`` by ``n`` repeats per side, for noise ``sigma``.

    ``sigma`` is the standard deviation of the transformed values (≈ the coefficient of variation). ``None`` when
    ``n`` repeats can never reach ``alpha`` with the exact rank test (e.g. 4 per side at alpha 0.01).
    """
    if n < 2 or smallest_p(n, n) > alpha:
        return None
    df = 2 * n - 2
    # t-test power on the log scale, widened by the rank test's efficiency against it (3/π for normal noise).
    shift = (t_quantile(1 - alpha / 2, df) + t_quantile(power, df)) * sigma * math.sqrt(2.0 / n)
    return math.expm1(shift * math.sqrt(math.pi / 3))


def repeats_needed(sigma: float, effect: float, alpha: float = 0.01, power: float = 0.95, cap: int = 1000) -> int:
    """Repeats per side for ``minimum_detectable_effect`` to reach ``effect``; ``cap`` if it never does."""

    def enough(n: int) -> bool:
        mde = minimum_detectable_effect(sigma, n, alpha, power)
        return mde is not None and mde <= effect

    if not enough(cap):
        return cap
    low, high = 2, cap  # the MDE falls as n grows: binary search for the first n that is enough
    while low < high:
        middle = (low + high) // 2
        if enough(middle):
            high = middle
        else:
            low = middle + 1
    return low


def noise(values: Sequence[float], spec: MetricSpec) -> float:
    """Spread of one side's transformed values (≈ coefficient of variation for time and memory)."""
    transformed = transform(spec, values)
    return float(np.std(transformed, ddof=1)) if len(transformed) > 1 else math.nan


# --------------------------------------------------------------------------------------------------
# Fixed-size comparison


@dataclasses.dataclass(frozen=True)
class MetricComparison:
    """One metric of one case, baseline ``a`` against candidate ``b``."""

    metric: str
    n_a: int
    n_b: int
    median_a: float
    median_b: float
    ratio: float  # median_b / median_a (inf when a is 0 and b is not; 1 when both are 0)
    ci_low: float
    ci_high: float
    p_value: float
    min_effect: float
    alpha: float
    verdict: str  # a Verdict: regressed | improved | unchanged | inconclusive (framework/vocabulary.py)
    conclusive: bool  # False when the data cannot tell (inconclusive, or a sequential run out of budget)
    mde: float | None  # smallest relative change these repeats detect 95 % of the time
    repeats_needed: int | None  # repeats per side to detect min_effect 95 % of the time
    sequential: bool = False

    @classmethod
    def from_record(cls, row: Mapping[str, Any]) -> MetricComparison | None:
        """A stored ``comparisons`` row (any age) back as a comparison; None when it was not compared."""
        if row.get("ratio") is None or row.get("verdict") is None:
            return None
        return cls(
            row["metric"], row["n_baseline"], row["n_candidate"], row["baseline_median"], row["candidate_median"],
            row["ratio"], row["ci_low"], row["ci_high"], row["p_value"], row["min_effect"], row["alpha"],
            read_verdict(row["verdict"], row["conclusive"]).value, bool(row["conclusive"]), row["mde"],
            row["repeats_needed"], row.get("mode") == "sequential",
        )  # fmt: skip

    def record_fields(self) -> dict[str, Any]:
        """The figures as the ``comparisons`` record stores them (framework/records.py)."""
        names = ("ratio", "ci_low", "ci_high", "p_value", "min_effect", "alpha", "conclusive", "mde", "repeats_needed")
        fields = {name: getattr(self, name) for name in names}
        return {**fields, "baseline_median": self.median_a, "candidate_median": self.median_b, "verdict": self.verdict}

    def sentence(self) -> str:
        """'peak memory +38 % (95 % CI +31 % to +45 %), p < 0.001, n = 7 vs 7 — regressed'."""
        spec = METRICS[self.metric]
        if self.median_a == 0 and self.median_b == 0:
            change = f"{spec.label} {spec.show(0.0)} on both sides"
        elif self.median_a == 0:
            change = f"{spec.label} {spec.show(0.0)} → {spec.show(self.median_b)}"
        else:
            change = f"{spec.label} {change_with_interval(self.ratio, self.ci_low, self.ci_high)}"
            change += f", {spec.show(self.median_a)} → {spec.show(self.median_b)}"
        p = "p < 0.001" if self.p_value < 0.001 else f"p = {self.p_value:.3f}"
        if self.sequential:
            p = p.replace("p ", "always-valid p ", 1)
        text = f"{change}, {p}, n = {self.n_a} vs {self.n_b} — {self.verdict}"
        if self.verdict == Verdict.INCONCLUSIVE:
            if self.mde is None:
                level = f"p < {self.alpha:g}" if self.alpha is not None else "significance"
                text += f" ({self.n_a} vs {self.n_b} repeats cannot reach {level})"
            else:
                text += f" (these repeats detect ≥ {self.mde * 100:.0f} %"
                if self.repeats_needed and self.min_effect is not None:
                    text += f"; {self.min_effect * 100:g} % needs {self.repeats_needed} per side"
                text += ")"
        return text


def compare_samples(
    a: Sequence[float],
    b: Sequence[float],
    spec: MetricSpec,
    *,
    min_effect: float | None = None,
    alpha: float = 0.01,
    seed: int = 0,
    n_boot: int = 10_000,
) -> MetricComparison:
    """Baseline samples ``a`` against candidate samples ``b`` of one metric (see the module docstring)."""
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    if len(x) == 0 or len(y) == 0:
        raise ValueError("compare_samples needs at least one sample per side")
    effect = spec.min_effect if min_effect is None else min_effect
    median_a, median_b = float(np.median(x)), float(np.median(y))
    ratio = median_b / median_a if median_a > 0 else (math.inf if median_b > 0 else 1.0)
    ci_low, ci_high = bootstrap_ratio_ci(x, y, n_boot=n_boot, seed=seed)
    p_value = mann_whitney_p(x, y)
    relevant = abs(median_b - median_a) >= spec.min_absolute and (not math.isfinite(ratio) or abs(ratio - 1) >= effect)
    changed = p_value < alpha and relevant
    verdict = ("regressed" if median_b > median_a else "improved") if changed else "unchanged"
    sigma = _pooled_noise(x, y, spec)
    n = min(len(x), len(y))
    mde = minimum_detectable_effect(sigma, n, alpha) if math.isfinite(sigma) else None
    needed = repeats_needed(sigma, effect, alpha) if math.isfinite(sigma) and effect > 0 else None
    if verdict != "unchanged":
        conclusive = True
    else:
        # "Unchanged" is a finding only when the interval fits the band or the change is below the floor.
        inside = 1 - effect <= ci_low and ci_high <= 1 + effect
        tiny = abs(median_b - median_a) < spec.min_absolute and _spread(x, y) < spec.min_absolute
        conclusive = inside or tiny
    return MetricComparison(
        spec.name, len(x), len(y), median_a, median_b, ratio, ci_low, ci_high, p_value, effect, alpha,
        decide_word(verdict, conclusive).value, conclusive, mde, needed,
    )  # fmt: skip


def _pooled_noise(x: Array, y: Array, spec: MetricSpec) -> float:
    parts = [transform(spec, side) for side in (x, y) if len(side) > 1]
    if not parts:
        return math.nan
    dof = sum(len(part) - 1 for part in parts)
    return float(math.sqrt(sum(float(((part - part.mean()) ** 2).sum()) for part in parts) / dof))


def _spread(x: Array, y: Array) -> float:
    return float(max(np.ptp(x), np.ptp(y)))


# --------------------------------------------------------------------------------------------------
# Sequential comparison


def _log_beta(p: float, q: float) -> float:
    return math.lgamma(p) + math.lgamma(q) - math.lgamma(p + q)


def sign_mixture_log(k: int, m: int) -> float:
    """log of the Jeffreys-mixture likelihood ratio of k of m signs positive, against fair coin flips.

    A nonnegative martingale under "the median change is this value": by Ville's inequality it ever exceeds
    1/alpha with probability ≤ alpha, however often it is looked at.
    """
    return m * math.log(2.0) + _log_beta(k + 0.5, m - k + 0.5) - _log_beta(0.5, 0.5)


def sign_confidence_sequence(differences: Sequence[float], alpha: float) -> tuple[float, float]:
    """The values δ not yet rejected as the median paired difference: an interval, valid at every n at once."""
    d = np.sort(np.asarray(differences, dtype=float))
    m = len(d)
    threshold = math.log(1.0 / alpha)
    accepted = [k for k in range(m + 1) if sign_mixture_log(k, m) < threshold]
    if not accepted:  # cannot happen for alpha < 1 (k = m/2 is never rejected), kept for safety
        return (-math.inf, math.inf)
    # δ strictly between the j-th and (j+1)-th smallest difference has k = m - j differences above it.
    j_low, j_high = m - max(accepted), m - min(accepted)
    low = float(d[j_low - 1]) if j_low >= 1 else -math.inf
    high = float(d[j_high]) if j_high < m else math.inf
    return low, high


@dataclasses.dataclass
class SequentialComparison:
    """Interleaved pairs, one at a time, until the confidence sequence decides (or the budget ends).

    Decided "regressed" when the whole interval lies above the band (1 + min_effect), "improved" when below
    (1 − min_effect), "unchanged" when it fits inside. False alarms stay ≤ alpha at any stopping time.
    """

    spec: MetricSpec
    min_effect: float
    alpha: float = 0.01
    a: list[float] = dataclasses.field(default_factory=list)
    b: list[float] = dataclasses.field(default_factory=list)
    low: float = -math.inf  # running intersection of the confidence sequence (transformed scale)
    high: float = math.inf

    def add(self, a: float, b: float) -> None:
        self.a.append(float(a))
        self.b.append(float(b))
        differences = transform(self.spec, self.b) - transform(self.spec, self.a)
        low, high = sign_confidence_sequence(differences, self.alpha)
        self.low, self.high = max(self.low, low), min(self.high, high)

    @property
    def band(self) -> tuple[float, float]:
        # log(1 + MiB) (spill's scale) is log(MiB) for any real amount: the relative band applies there too, and
        # zero on both sides gives differences of exactly 0, inside it.
        return math.log1p(-self.min_effect), math.log1p(self.min_effect)

    @property
    def decision(self) -> str | None:
        lower, upper = self.band
        if self.low > upper:
            return "regressed"
        if self.high < lower:
            return "improved"
        if lower <= self.low and self.high <= upper:
            return "unchanged"
        return None

    def p_value(self) -> float:
        """Always-valid p-value of "no change": 1 / the largest value the martingale at δ = 0 has reached."""
        differences = transform(self.spec, self.b) - transform(self.spec, self.a)
        best = 0.0
        for m in range(1, len(differences) + 1):
            head = differences[:m]
            nonzero = head[head != 0]
            k = int((nonzero > 0).sum())
            best = max(best, sign_mixture_log(k, len(nonzero)))
        return min(1.0, math.exp(-best))

    def result(self) -> MetricComparison:
        """The comparison so far, in the same form as a fixed-size one (interval = the confidence sequence)."""
        base = compare_samples(self.a, self.b, self.spec, min_effect=self.min_effect, alpha=self.alpha)
        decision = self.decision
        if decision is None:
            # Out of budget: a change only if the sequence excludes no change at all *and* the medians differ by
            # the minimum effect — the rule of a fixed-size comparison, so a real but tiny drift (a case's
            # position in the round, say) is not reported as a change the user said they do not care about.
            relevant = abs(base.median_b - base.median_a) >= self.spec.min_absolute and (
                not math.isfinite(base.ratio) or abs(base.ratio - 1) >= self.min_effect
            )
            if self.low > 0 and relevant:
                decision = "regressed"
            elif self.high < 0 and relevant:
                decision = "improved"
            else:
                decision = "unchanged"
        if self.spec.scale != "log":
            # the sequence is not on log (spill: log(1 + MiB)), so it is no ratio: show the bootstrap interval instead
            low, high = base.ci_low, base.ci_high
        else:
            low, high = _exp(self.low), _exp(self.high)
        return dataclasses.replace(
            base,
            ci_low=low,
            ci_high=high,
            p_value=self.p_value(),
            verdict=decide_word(decision, self.decision is not None).value,
            conclusive=self.decision is not None,
            sequential=True,
        )


def _exp(value: float) -> float:
    return math.exp(value) if value < 700 else math.inf
