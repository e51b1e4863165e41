"""The environments an attribution builds and how each is judged.

A probe is the baseline's lock with some of the changes applied (:func:`subset_runtime`): every package pinned
exactly, nothing resolved afresh, so the only differences from the baseline are the changes applied. A set uv cannot
resolve (pandas 3 applied without the numpy it needs) fails to build and the probe is ``skip``, as ``git bisect
skip``; an environment that builds but fails its health check is skipped too.

The oracles are ``nox -s bisect``'s — outcome (a repeat fails) and stability (the failure reproduces in a replay) —
and, for a metric, :class:`ProbeMetricOracle`: it measures each probe in interleaved rounds against both ends and may
answer ``undecided``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence

from framework import vocabulary
from framework.attribute.changes import Change, applied
from framework.bisect.oracles import ALPHA, Measure, Row, first_error, median_of, metric_samples, not_built
from framework.bisect.search import Judgement, Verdict
from framework.environments import describe_changes, digest
from framework.in_runtime.errors import EnvironmentBuildError
from framework.metric_catalogue import MetricSpec
from framework.models import Runtime
from framework.releases import package_keys
from framework.stats import MetricComparison, compare_samples, transform

PREFIX = "attribute-"  # the runtimes an attribution makes: attribute-<digest of the pins>
BASELINE, CANDIDATE = "the baseline", "the candidate"


@dataclasses.dataclass(frozen=True)
class Ends:
    """The two locks an attribution explains the difference between, and the runtime the probes are made from."""

    baseline: str  # how the user named it: a runtime, a run id, a lock file
    candidate: str
    base: Runtime  # the probes' Python, environment variables, Dask config and lockstep families
    baseline_lock: Mapping[str, str]
    candidate_lock: Mapping[str, str]
    changes: Sequence[Change]

    def named(self, names: frozenset[str]) -> list[Change]:
        return [change for change in self.changes if change.name in names]

    def label(self, names: frozenset[str]) -> str:
        """``the baseline``, ``the candidate``, or the changes applied: ``pandas+numpy``."""
        if not names:
            return BASELINE
        if len(names) == len(self.changes):
            return CANDIDATE
        return "+".join(change.name for change in self.named(names))

    def describe(self, names: frozenset[str]) -> str:
        """``pandas 2.2.3 → 3.0.2, numpy 1.26.4 → 2.1.0`` (the moves of the changes applied)."""
        return describe_changes([move for change in self.named(names) for move in change.moves])


def subset_runtime(ends: Ends, names: frozenset[str]) -> Runtime:
    """The baseline's lock with the changes ``names`` applied, every package pinned exactly (``as_of`` dropped: the
    pins decide). The runtime's declared packages stay declared (with their extras, ``dask[dataframe]``: the health
    check imports them); the rest of the lock is pinned without being declared."""
    packages = applied(ends.baseline_lock, ends.named(names))
    keys = package_keys(ends.base)
    declared = {keys[name]: f"=={version}" for name, version in sorted(packages.items()) if name in keys}
    others = {name: f"=={version}" for name, version in sorted(packages.items()) if name not in keys}
    if not declared:  # a lock without the runtime's own packages: declare what it holds
        declared, others = others, {}
    label = ends.label(names)
    what = f"{ends.baseline}'s lock" + ("" if not names else f" with {label} as in {ends.candidate}")
    return Runtime(
        name=f"{PREFIX}{digest({**declared, **others})[:12]}",
        description=f"{what} (attribution)",
        python=ends.base.python,
        packages=declared,
        pins=others,
        as_of=None,
        env=dict(ends.base.env),
        dask_config=dict(ends.base.dask_config),
        lockstep=[list(family) for family in ends.base.lockstep],
    )


@dataclasses.dataclass
class ProbeMeasurement:
    """One probe's interleaved rounds: its samples, the ends' samples of the same rounds, the two comparisons."""

    samples: list[float]
    baseline: list[float]
    candidate: list[float]
    against_baseline: MetricComparison | None
    against_candidate: MetricComparison | None


class ProbeMetricOracle:
    """A probe is bad when it reproduces the candidate's effect on the metric, good when it does not, and undecided
    when its rounds cannot tell.

    The ends are measured first, ``repeat`` interleaved rounds (baseline, candidate | candidate, baseline …), and
    must differ significantly (``compare_samples`` at ``alpha``); otherwise there is nothing to attribute. Each probe
    then runs ``repeat`` rounds of three — baseline, probe, candidate, in an order that rotates round by round, so
    the machine's drift hits all three alike — and is compared with both ends of its own rounds:

    * like the baseline (differs significantly from the candidate only): **good**;
    * like the candidate (differs significantly from the baseline only): **bad**;
    * unlike both (a part of the effect): the end nearer on the metric's scale (log for time and memory), and the
      evidence says which share of the effect it holds;
    * unlike neither: **undecided** — after as many rounds again (once), the noise still allows no call, and the
      search stops there rather than guess.
    """

    rule = "interleaved rounds against both ends; like one end, or nearer on the metric's log scale"

    def __init__(self, spec: MetricSpec, repeat: int, measure: Measure, runtime_for: Callable[[str], Runtime]):
        self.spec, self.repeat, self.measure, self.runtime_for = spec, repeat, measure, runtime_for
        self.ends_comparison: MetricComparison | None = None
        self.ends_samples: dict[str, list[float]] = {BASELINE: [], CANDIDATE: []}
        self.measurements: dict[str, ProbeMeasurement] = {}
        self.first_errors: dict[str, str] = {}
        self.rows: dict[str, list[Row]] = {}

    def _one(self, label: str) -> list[float]:
        rows = list(self.measure(label, self.runtime_for(label), 1))
        self.rows.setdefault(label, []).extend(rows)
        if not any(row.get("outcome") == "passed" for row in rows) and label not in self.first_errors:
            self.first_errors[label] = first_error(rows) or "no rows"
        return metric_samples(rows, self.spec)

    def endpoints(self) -> dict[str, Judgement]:
        """Judgements of ``the baseline`` and ``the candidate`` from their interleaved A/B (either may be ``skip``)."""
        samples = self.ends_samples
        try:
            for index in range(self.repeat):
                order = (BASELINE, CANDIDATE) if index % 2 == 0 else (CANDIDATE, BASELINE)
                for label in order:
                    samples[label] += self._one(label)
        except EnvironmentBuildError as error:
            failed = BASELINE if not samples[BASELINE] and BASELINE not in self.first_errors else CANDIDATE
            return {failed: not_built(error)}
        missing = [label for label, values in samples.items() if not values]
        if missing:
            return {
                label: Judgement("skip", f"no passed repeat ({self.first_errors.get(label, 'no rows')})", "no sample")
                for label in missing
            }
        comparison = compare_samples(samples[BASELINE], samples[CANDIDATE], self.spec, alpha=ALPHA)
        self.ends_comparison = comparison
        show = self.spec.show
        shown = {label: show(median_of(values)) for label, values in samples.items()}
        if comparison.verdict in (vocabulary.Verdict.REGRESSED, vocabulary.Verdict.IMPROVED):
            why = f"A/B of the ends: {comparison.sentence()}"
            verdicts: dict[str, Verdict] = {BASELINE: "good", CANDIDATE: "bad"}
        elif not comparison.conclusive:
            why = (
                f"the ends cannot be told apart in {self.repeat} rounds: {comparison.sentence()} — run again with"
                f" --repeat={max(self.repeat + 2, 7)} or more"
            )
            verdicts = {BASELINE: "good", CANDIDATE: "good"}
        else:
            why = f"no change between the ends to attribute: {comparison.sentence()}"
            verdicts = {BASELINE: "good", CANDIDATE: "good"}
        return {label: Judgement(verdict, why, shown[label]) for label, verdict in verdicts.items()}

    def classify(self, label: str) -> Judgement:
        """The probe's verdict from ``repeat`` rotating rounds; an undecided probe gets as many rounds again, once,
        before the search is stopped there (most probes are clear at once; a borderline one costs twice)."""
        rounds: dict[str, list[float]] = {BASELINE: [], label: [], CANDIDATE: []}
        judged = Judgement("undecided", "no round", "–")
        for attempt in range(2):
            try:
                self._rounds(label, rounds, start=attempt * self.repeat)
            except EnvironmentBuildError as error:
                return not_built(error)
            if not rounds[label]:
                return Judgement("skip", f"no passed repeat: {self.first_errors.get(label, 'no rows')}", "no sample")
            if not rounds[BASELINE] or not rounds[CANDIDATE]:
                return Judgement("undecided", "an end had no passed repeat in the probe's rounds", "–")
            against_baseline = compare_samples(rounds[BASELINE], rounds[label], self.spec, alpha=ALPHA)
            against_candidate = compare_samples(rounds[CANDIDATE], rounds[label], self.spec, alpha=ALPHA)
            self.measurements[label] = ProbeMeasurement(
                list(rounds[label]), list(rounds[BASELINE]), list(rounds[CANDIDATE]), against_baseline,
                against_candidate,
            )  # fmt: skip
            judged = judge_probe(
                self.spec, rounds[label], rounds[BASELINE], rounds[CANDIDATE], against_baseline, against_candidate
            )
            if judged.verdict != "undecided":
                break
        return judged

    def _rounds(self, label: str, rounds: dict[str, list[float]], start: int) -> None:
        """``repeat`` rounds of (baseline, probe, candidate), the order rotating round by round from ``start``."""
        order = [BASELINE, label, CANDIDATE]
        for index in range(start, start + self.repeat):
            rotation = order[index % 3 :] + order[: index % 3]
            for side in rotation:
                rounds[side] += self._one(side)

    def share(self, label: str) -> str:
        """``+88 % (95 % CI +71 % to +104 %) vs the baseline, 93 % of the candidate's +95 %`` for a measured probe."""
        measured = self.measurements.get(label)
        if measured is None or measured.against_baseline is None:
            return ""
        probe = measured.against_baseline
        total = compare_samples(measured.baseline, measured.candidate, self.spec, alpha=ALPHA)
        text = f"{_change(probe.ratio)} ({_change(probe.ci_low)} to {_change(probe.ci_high)}, 95 % CI) vs the baseline"
        fraction = effect_share(probe.ratio, total.ratio)
        if fraction is not None:
            text += f": {fraction * 100:.0f} % of the candidate's {_change(total.ratio)} in the same rounds"
        return text


def judge_probe(
    spec: MetricSpec,
    probe: Sequence[float],
    baseline: Sequence[float],
    candidate: Sequence[float],
    against_baseline: MetricComparison,
    against_candidate: MetricComparison,
) -> Judgement:
    """The verdict of one probe's rounds (see :class:`ProbeMetricOracle`)."""
    show = spec.show
    median, good, bad = median_of(probe), median_of(baseline), median_of(candidate)
    unlike_baseline = against_baseline.verdict in (vocabulary.Verdict.REGRESSED, vocabulary.Verdict.IMPROVED)
    unlike_candidate = against_candidate.verdict in (vocabulary.Verdict.REGRESSED, vocabulary.Verdict.IMPROVED)
    figures = f"median {show(median)} of {len(probe)} (baseline {show(good)}, candidate {show(bad)})"
    verdict: Verdict
    if unlike_baseline and not unlike_candidate:
        verdict, why = "bad", "like the candidate: differs from the baseline, not from the candidate"
    elif unlike_candidate and not unlike_baseline:
        verdict, why = "good", "like the baseline: differs from the candidate, not from the baseline"
    elif unlike_baseline and unlike_candidate:
        scaled = [float(x) for x in transform(spec, [median, good, bad])]
        verdict = "bad" if abs(scaled[0] - scaled[2]) < abs(scaled[0] - scaled[1]) else "good"
        fraction = effect_share(median / good if good else math.inf, bad / good if good else math.inf)
        part = f"{fraction * 100:.0f} % of the effect" if fraction is not None else "a part of the effect"
        why = f"unlike both ends ({part}): nearer the {'candidate' if verdict == 'bad' else 'baseline'}"
    else:
        return Judgement(
            "undecided",
            f"{figures}: differs significantly from neither end (p {against_baseline.p_value:.2g} and"
            f" {against_candidate.p_value:.2g}) — the noise allows no call; more --repeat, or a quieter machine",
            show(median),
        )
    return Judgement(verdict, f"{figures}: {why}", show(median))


def effect_share(probe_ratio: float, total_ratio: float) -> float | None:
    """The probe's change as a share of the candidate's, on the log scale (1.0: all of it); None when undefined."""
    if not (probe_ratio > 0 and total_ratio > 0) or not math.isfinite(probe_ratio) or not math.isfinite(total_ratio):
        return None
    if abs(math.log(total_ratio)) < 1e-9:
        return None
    return math.log(probe_ratio) / math.log(total_ratio)


def _change(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.0f} %" if math.isfinite(ratio) else "∞"


class Probes:
    """Labels ↔ applied sets, and a runtime per label (made once): what the oracles are asked about."""

    def __init__(self, ends: Ends, clock: Callable[[], float] = time.perf_counter):
        self.ends, self.clock = ends, clock
        self.applied: dict[str, frozenset[str]] = {}
        self.runtimes: dict[str, Runtime] = {}

    def label(self, names: frozenset[str]) -> str:
        label = self.ends.label(names)
        self.applied.setdefault(label, names)
        return label

    def runtime_for(self, label: str) -> Runtime:
        if label not in self.runtimes:
            if label == BASELINE:
                names: frozenset[str] = frozenset()
            elif label == CANDIDATE:
                names = frozenset(change.name for change in self.ends.changes)
            else:
                names = self.applied[label]
            self.runtimes[label] = subset_runtime(self.ends, names)
        return self.runtimes[label]
