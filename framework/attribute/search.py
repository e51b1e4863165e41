"""The search of an attribution, pure: the changes between two locks and an oracle, no environment in sight.

Given the changes between a baseline's lock and a candidate's (a package, or a lockstep family moving as one), find a
smallest set of them that, applied alone to the baseline, reproduces the candidate's effect. The oracle judges an
environment by the set of changes applied: ``good`` (like the baseline), ``bad`` (like the candidate), ``skip`` (the
set does not resolve or build), or ``undecided`` (the noise allows no call).

The ends are judged first: nothing applied must be good and everything applied bad. Then, as in delta debugging
with interactions (Zeller's *dd*), the changes are halved: a half that reproduces the effect alone is searched
on its own; when neither does, the cause needs both halves (an interaction, or a half that cannot be installed
without the other), and each half is searched with the other applied. With one culprit among N changes that asks
the oracle at most ``2 * ceil(log2 N) + 2`` times (:func:`probes_bound`); a set it has judged before is never
built or judged again. ``undecided`` stops the search: the answer is the narrowest set known to hold the cause,
never a guess. A budget of probes does the same when it runs out. With several culprits, each is then judged alone,
to tell an interaction (each alone is good) from a change that does not install without another (``skip``).

The search assumes the effect is monotone (applying more of the culprits does not undo it); the answer's own
probe (the named set applied alone) is then measured again by the caller, against both ends.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

from framework.bisect.search import Judgement, Step, Verdict

Status = Literal["found", "undecided", "budget", "endpoints"]


@dataclasses.dataclass(frozen=True)
class Probe(Step):
    """One environment judged (``version`` is its label): the changes applied to the baseline, the oracle's answer."""

    applied: frozenset[str] = frozenset()


@dataclasses.dataclass(frozen=True)
class Attribution:
    """The outcome of a search over ``changes``.

    ``status``: ``found`` (``culprits`` reproduce the effect; ``interaction`` when each alone was judged good — with
    ``alone``, the verdict of each applied alone, where ``skip`` means it does not install alone), ``undecided``
    (the oracle could not call a probe), ``budget`` (the probes ran out), or ``endpoints`` (the ends are not good
    and bad: ``problem``). Without ``found``, ``narrowest`` is the smallest set known to hold the cause.
    """

    changes: list[str]
    probes: list[Probe]
    status: Status
    culprits: list[str] = dataclasses.field(default_factory=list)
    interaction: bool = False
    narrowest: list[str] = dataclasses.field(default_factory=list)
    problem: str = ""
    alone: dict[str, Verdict] = dataclasses.field(default_factory=dict)  # with several culprits: each one alone

    @property
    def skipped(self) -> list[Probe]:
        return [probe for probe in self.probes if probe.verdict == "skip"]


class _StoppedError(Exception):
    def __init__(self, status: Status, narrowest: list[str], problem: str) -> None:
        super().__init__(problem)
        self.status, self.narrowest, self.problem = status, narrowest, problem


class _Search:
    """One search's state: the probes made, the verdict of every set judged, the probes asked of the oracle."""

    def __init__(
        self,
        changes: Sequence[str],
        judge: Callable[[frozenset[str]], Judgement],
        known: Mapping[frozenset[str], Judgement],
        budget: int | None,
        clock: Callable[[], float],
        progress: Callable[[str], None],
    ) -> None:
        self.changes, self.judge, self.known, self.budget = list(changes), judge, known, budget
        self.clock, self.progress = clock, progress
        self.order = {name: index for index, name in enumerate(changes)}
        self.every = frozenset(changes)
        self.probes: list[Probe] = []
        self.judged: dict[frozenset[str], Verdict] = {}
        self.asked = 0

    def label(self, applied: frozenset[str]) -> str:
        if not applied:
            return "the baseline"
        if applied == self.every:
            return "the candidate"
        return "+".join(self.sorted(applied))

    def sorted(self, names: frozenset[str] | Sequence[str]) -> list[str]:
        return sorted(names, key=self.order.__getitem__)

    def test(self, applied: frozenset[str], narrowest: Sequence[str]) -> Verdict:
        if applied in self.judged:
            return self.judged[applied]
        if applied in self.known:
            judgement, seconds = self.known[applied], 0.0
        else:
            if self.budget is not None and self.asked >= self.budget:
                raise _StoppedError("budget", list(narrowest), f"the budget of {self.budget} probe(s) ran out")
            self.asked += 1
            self.progress(f"attribute: probe {self.asked}: {self.label(applied)} …")
            started = self.clock()
            judgement = self.judge(applied)
            seconds = self.clock() - started
        self.probes.append(Probe(self.label(applied), judgement, seconds, applied))
        self.judged[applied] = judgement.verdict
        self.progress(f"attribute: {self.label(applied)} is {judgement.verdict} — {judgement.evidence}")
        if judgement.verdict == "undecided":
            raise _StoppedError("undecided", list(narrowest), f"{self.label(applied)}: {judgement.evidence}")
        return judgement.verdict

    def reduce(self, candidates: list[str], base: frozenset[str]) -> list[str]:
        """A smallest part of ``candidates`` that makes ``base`` bad (``base`` + all of them is bad)."""
        if len(candidates) == 1:
            return candidates
        half = len(candidates) // 2
        first, second = candidates[:half], candidates[half:]
        narrowest = self.sorted(base | frozenset(candidates))
        verdict_first = self.test(base | frozenset(first), narrowest)
        if verdict_first == "bad":
            return self.reduce(first, base)
        verdict_second = self.test(base | frozenset(second), narrowest)
        if verdict_second == "bad":
            return self.reduce(second, base)
        # Neither half alone: the cause needs something from each (an interaction, or a half that does not
        # install without the other). Search each half with the other applied.
        needed_first = self.reduce(first, base | frozenset(second))
        needed_second = self.reduce(second, base | frozenset(needed_first))
        return needed_first + needed_second

    def run(self) -> Attribution:
        try:
            for applied, expected in ((frozenset[str](), "good"), (self.every, "bad")):
                verdict = self.test(applied, self.changes)
                if verdict != expected:
                    evidence = self.probes[-1].judgement.evidence
                    problem = f"{self.label(applied)} is {verdict}, not {expected}: {evidence}"
                    return Attribution(self.changes, self.probes, "endpoints", narrowest=self.changes, problem=problem)
            culprits = self.sorted(self.reduce(self.changes, frozenset()))
            alone = self.each_alone(culprits)
        except _StoppedError as stop:
            return Attribution(self.changes, self.probes, stop.status, narrowest=stop.narrowest, problem=stop.problem)
        interaction = len(culprits) > 1 and all(verdict == "good" for verdict in alone.values())
        return Attribution(self.changes, self.probes, "found", culprits, interaction, alone=alone)

    def each_alone(self, culprits: list[str]) -> dict[str, Verdict]:
        """With several culprits, each applied alone to the baseline: all good is an interaction (only together);
        a skip is a change that does not install without the others. (The halving cannot tell these apart when a
        half it tried did not install.)"""
        if len(culprits) < 2:
            return {}
        return {name: self.test(frozenset({name}), culprits) for name in culprits}


def attribute(
    changes: Sequence[str],
    judge: Callable[[frozenset[str]], Judgement],
    known: Mapping[frozenset[str], Judgement] | None = None,
    budget: int | None = None,
    clock: Callable[[], float] = time.perf_counter,
    progress: Callable[[str], None] = lambda _: None,
) -> Attribution:
    """A smallest set of ``changes`` whose application to the baseline ``judge`` calls bad.

    ``known`` holds judgements made beforehand (the ends, measured interleaved); ``budget`` caps the probes the
    oracle is asked for (the ends included), as builds are the cost.
    """
    if not changes:
        raise ValueError("attribution needs at least one change between the locks")
    if len(set(changes)) != len(changes):
        raise ValueError(f"changes are named twice: {sorted(changes)}")
    return _Search(changes, judge, dict(known or {}), budget, clock, progress).run()


def probes_bound(count: int) -> int:
    """The most probes a search over ``count`` changes with one culprit makes, the ends included."""
    return 2 * math.ceil(math.log2(count)) + 2 if count > 1 else 2
