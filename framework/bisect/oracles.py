"""The oracles of a bisection — what makes a release good or bad — and how a release's case is run.

* metric (any of framework.metric_catalogue's): nearer the bad end's median than the good end's;
* outcome: any execution of the workload that does not pass;
* stability: a recorded failure that reproduces at least once in N replays.

An environment that cannot be built makes the release ``skip``: the search tries a neighbour.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from framework import vocabulary
from framework.bisect.search import Judgement, Step, Verdict
from framework.compare import BASELINE, interleaving
from framework.engine import CaseGroup, new_run_id, prepare_environment, run_group, say, usable
from framework.environments import BuiltEnvironment
from framework.in_runtime import provenance
from framework.in_runtime.errors import EnvironmentBuildError
from framework.matrix import Case
from framework.metric_catalogue import MetricSpec
from framework.models import HardwareProfile, Runtime
from framework.results import ResultsStore
from framework.stats import MetricComparison, compare_samples, transform

ALPHA = 0.01  # the rank test's level for the A/B of the ends and of the boundary (as nox -s compare)
Row = Mapping[str, Any]
# Run the bisected case ``repeats`` times on a runtime (labelled by its version); the measured rows.
Measure = Callable[[str, Runtime, int], Sequence[Row]]
# Replay the stability failure on a runtime: (reproduced, runs, errors).
ReplayOn = Callable[[str, Runtime], tuple[int, int, list[str]]]


class Oracle(Protocol):
    """Decides whether a release is good or bad, and states the evidence at the boundary."""

    def endpoints(self, good: str, bad: str) -> dict[str, Step]: ...
    def classify(self, version: str) -> Judgement: ...
    def boundary(self, last_good: str, first_bad: str) -> str: ...


def not_built(error: EnvironmentBuildError) -> Judgement:
    return Judgement("skip", f"environment not built: {str(error)[:300]}", "not built")


def first_error(rows: Sequence[Row]) -> str:
    error = next((str(row.get("error")) for row in rows if row.get("outcome") != "passed" and row.get("error")), "")
    return error.splitlines()[0][:160] if error else ""


def metric_samples(rows: Sequence[Row], spec: MetricSpec) -> list[float]:
    """The metric of every measured repeat that passed (a failed repeat's memory or time means nothing)."""
    return [
        float(row[spec.column])
        for row in rows
        if row.get("phase") == "measure" and row.get("outcome") == "passed" and row.get(spec.column) is not None
    ]


class MetricOracle:
    """A release is bad when its median is nearer the bad end's than the good end's, on the metric's scale.

    The rule: with ``t`` the metric's transform (log for time and memory, log(1 + MiB) for spill), a release
    with median ``m`` is bad when ``|t(m) − t(bad median)| < |t(m) − t(good median)|``. The ends are measured
    first, interleaved (good, bad, good, bad …: drift of the machine hits both alike), and must differ
    significantly (``compare_samples``: rank test and minimum effect); each middle release gets ``repeat``
    repeats. The boundary is then measured again, interleaved, and compared: that is the evidence.
    """

    rule = "nearer median on the metric's log scale"

    def __init__(self, spec: MetricSpec, repeat: int, measure: Measure, runtime_for: Callable[[str], Runtime]):
        self.spec, self.repeat, self.measure, self.runtime_for = spec, repeat, measure, runtime_for
        self.rows: dict[str, list[Row]] = {}
        self.medians: dict[str, float] = {}
        self.ends: tuple[str, str] = ("", "")
        self.comparison: MetricComparison | None = None
        self.boundary_samples: dict[str, list[float]] = {}

    def _run(self, version: str, repeats: int) -> list[float]:
        rows = list(self.measure(version, self.runtime_for(version), repeats))
        self.rows.setdefault(version, []).extend(rows)
        return metric_samples(rows, self.spec)

    def _interleaved(self, first: str, second: str) -> tuple[dict[str, list[float]], dict[str, float]]:
        """``repeat`` rounds of one repeat each: A B | B A | A B … (as ``nox -s compare``)."""
        samples: dict[str, list[float]] = {first: [], second: []}
        seconds = dict.fromkeys(samples, 0.0)
        for _, side in interleaving(self.repeat):
            version = first if side == BASELINE else second
            started = time.perf_counter()
            samples[version] += self._run(version, 1)
            seconds[version] += time.perf_counter() - started
        return samples, seconds

    def endpoints(self, good: str, bad: str) -> dict[str, Step]:
        self.ends = (good, bad)
        try:
            samples, seconds = self._interleaved(good, bad)
        except EnvironmentBuildError as error:
            failed = good if good not in self.rows else bad
            steps = {failed: Step(failed, not_built(error), 0.0)}
            if failed == bad:  # the good end ran: no need to run it again to stop at the bad one
                steps[good] = Step(good, Judgement("good", "ran; the bad end could not be built", "–"), 0.0)
            return steps
        self.medians = {version: median_of(sample) for version, sample in samples.items() if sample}
        if len(self.medians) < 2:
            steps = {}
            expected: dict[str, Verdict] = {good: "good", bad: "bad"}
            for version, verdict in expected.items():
                judgement = Judgement(verdict, "measured", self.spec.show(self.medians.get(version)))
                if version not in self.medians:
                    failed_with = first_error(self.rows[version]) or "no rows"
                    note = f"no passed repeat ({failed_with}) — if it fails there, bisect with --metric=outcome"
                    judgement = Judgement("skip", note, "no sample")
                steps[version] = Step(version, judgement, seconds[version])
            return steps
        comparison = compare_samples(samples[good], samples[bad], self.spec, alpha=ALPHA)
        self.comparison, self.boundary_samples = comparison, samples
        verdicts: dict[str, Verdict]
        if comparison.verdict == vocabulary.Verdict.REGRESSED:
            verdicts = {good: "good", bad: "bad"}
            why = f"A/B of the ends: {comparison.sentence()}"
        else:
            fix = (
                " — swap --good and --bad to find where it improved"
                if comparison.verdict == vocabulary.Verdict.IMPROVED
                else ""
            )
            verdicts = {good: "good", bad: "good"}
            why = f"no change between good and bad to bisect: {comparison.sentence()}{fix}"
        return {
            version: Step(version, Judgement(verdict, why, self.spec.show(self.medians[version])), seconds[version])
            for version, verdict in verdicts.items()
        }

    def classify(self, version: str) -> Judgement:
        try:
            sample = self._run(version, self.repeat)
        except EnvironmentBuildError as error:
            return not_built(error)
        if not sample:
            return Judgement("skip", f"no passed repeat: {first_error(self.rows[version]) or 'no rows'}", "no sample")
        median = self.medians[version] = median_of(sample)
        good, bad = (self.medians[end] for end in self.ends)
        scaled = [float(x) for x in transform(self.spec, [median, good, bad])]
        verdict: Verdict = "bad" if abs(scaled[0] - scaled[2]) < abs(scaled[0] - scaled[1]) else "good"
        show = self.spec.show
        evidence = (
            f"median {show(median)} of {len(sample)} is nearer the {verdict} end"
            f" (good {show(good)}, bad {show(bad)}; {self.rule})"
        )
        return Judgement(verdict, evidence, show(median))

    def boundary(self, last_good: str, first_bad: str) -> str:
        """The A/B of last good against first bad: the ends' own samples if they are the boundary, else a new
        interleaved run of both (the middle releases' repeats ran at other times, so they are not reused)."""
        if (last_good, first_bad) != self.ends:
            say(f"bisect: A/B at the boundary, {last_good} vs {first_bad}, {self.repeat} interleaved rounds …")
            samples, _ = self._interleaved(last_good, first_bad)
            self.boundary_samples = samples
            if not (samples[last_good] and samples[first_bad]):
                self.comparison = None
                return f"{last_good} → {first_bad}: the A/B did not run (no passed repeat on one side)"
            self.comparison = compare_samples(samples[last_good], samples[first_bad], self.spec, alpha=ALPHA)
        assert self.comparison is not None
        text = f"{last_good} → {first_bad}: {self.comparison.sentence()}"
        if self.comparison.verdict != vocabulary.Verdict.REGRESSED:
            text += " — the step is not confirmed on its own: the change may be spread over several releases"
        return text


def median_of(values: Sequence[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return float(ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2)


class OutcomeOracle:
    """A release is bad when any execution of the case (warm-up, repeat, or set-up) does not pass."""

    def __init__(self, repeat: int, measure: Measure, runtime_for: Callable[[str], Runtime]):
        self.repeat, self.measure, self.runtime_for = repeat, measure, runtime_for
        self.shown: dict[str, str] = {}

    def endpoints(self, good: str, bad: str) -> dict[str, Step]:
        return {}

    def classify(self, version: str) -> Judgement:
        try:
            rows = list(self.measure(version, self.runtime_for(version), self.repeat))
        except EnvironmentBuildError as error:
            return not_built(error)
        if not rows:
            return Judgement("skip", "the runner reported no execution", "no rows")
        measured = [row for row in rows if row.get("phase") == "measure"]
        passed = sum(row.get("outcome") == "passed" for row in measured)
        shown = f"{passed}/{len(measured)} passed"
        failed = [row for row in rows if row.get("outcome") != "passed"]
        if not failed:
            self.shown[version] = shown
            return Judgement("good", f"every execution passed ({shown})", shown)
        outcomes = sorted({str(row.get("outcome")) for row in failed})
        self.shown[version] = f"{shown}, {'/'.join(outcomes)}: {first_error(rows)}"
        return Judgement("bad", self.shown[version], shown)

    def boundary(self, last_good: str, first_bad: str) -> str:
        return f"{last_good}: {self.shown.get(last_good, '?')}; {first_bad}: {self.shown.get(first_bad, '?')}"


class StabilityOracle:
    """A release is bad when the recorded failure reproduces at least once in ``times`` replays."""

    def __init__(self, failure_id: str, replay_on: ReplayOn, runtime_for: Callable[[str], Runtime]):
        self.failure_id, self.replay_on, self.runtime_for = failure_id, replay_on, runtime_for
        self.shown: dict[str, str] = {}
        self.runs: dict[str, int] = {}

    def endpoints(self, good: str, bad: str) -> dict[str, Step]:
        return {}

    def classify(self, version: str) -> Judgement:
        try:
            hits, runs, errors = self.replay_on(version, self.runtime_for(version))
        except EnvironmentBuildError as error:
            return not_built(error)
        if runs == 0:
            return Judgement("skip", "the replay reported no run", "no run")
        shown = f"reproduced {hits}/{runs}"
        self.runs[version] = runs
        self.shown[version] = shown + (f" ({errors[0].splitlines()[0][:140]})" if hits and errors else "")
        return Judgement("bad" if hits else "good", f"{self.failure_id}: {self.shown[version]}", shown)

    def boundary(self, last_good: str, first_bad: str) -> str:
        return f"{last_good}: {self.shown.get(last_good, '?')}; {first_bad}: {self.shown.get(first_bad, '?')}"

    def caution(self, good: str) -> str | None:
        """What ``good``'s clean replays rule out: an intermittent failure can pass a few replays (found so:
        3 clean replays called a release fixed that a standalone script then showed still bad)."""
        runs = self.runs.get(good)
        if not runs:
            return None
        ruled_out = 1 - CAUTION_ALPHA ** (1 / runs)
        needed = math.ceil(math.log(CAUTION_ALPHA) / math.log(1 - CAUTION_RATE))
        return (
            f"{good} passed {runs} replay(s): that rules out only a failure reproducing in more than"
            f" {ruled_out:.0%} of runs (95 %); to rule out {CAUTION_RATE:.0%}, --times={needed}"
        )


CAUTION_ALPHA, CAUTION_RATE = 0.05, 0.2  # the confidence of a "good", and the hit rate the caution names


# --- running a release ---------------------------------------------------------------------------------------


class ReleaseRunner:
    """Runs the bisected case on a release's runtime: its environment built once, one runner process per call.

    Every call's rows are published to the results store as any run's; each release gets a run id of its own.
    """

    def __init__(self, case: Case, hardware: HardwareProfile, results_dir: Path, root: Path, rebuild: bool):
        self.case, self.hardware, self.root, self.rebuild = case, hardware, root, rebuild
        self.store = ResultsStore(results_dir)
        self.started = dt.datetime.now(dt.timezone.utc)
        self.git = provenance.git_commit(root)
        self.environments: dict[str, BuiltEnvironment] = {}
        self.run_ids: dict[str, str] = {}
        self.repeats_done: dict[str, int] = {}

    def environment(self, runtime: Runtime) -> BuiltEnvironment:
        if runtime.name not in self.environments:
            self.environments[runtime.name] = prepare_environment(
                runtime, self.root, self.store, self.rebuild, self.started
            )
        return usable(self.environments[runtime.name], "bisect")  # an unusable release is skipped

    def __call__(self, version: str, runtime: Runtime, repeats: int) -> list[dict[str, Any]]:
        environment = self.environment(runtime)
        run_id = self.run_ids.setdefault(version, new_run_id())
        done = self.repeats_done.get(version, 0)
        workload = self.case.workload.model_copy(update={"repeats": repeats})
        group = CaseGroup(
            environment, self.hardware, [dataclasses.replace(self.case, workload=workload)], done, f"__r{done}"
        )
        self.repeats_done[version] = done + repeats
        _, rows = run_group(group, run_id, self.started, self.store, self.root, None, self.git)
        return rows
