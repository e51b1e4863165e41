"""The search of a bisection, pure: an ordered list of releases and an oracle, no environment in sight.

The ends are classified first and must be good and bad; then a binary search asks the oracle about the middle
release between the last known good and the first known bad. ``skip`` (the release could not be built or run)
tries the nearest untested neighbour instead, as ``git bisect skip`` does; when every release between the last
good and the first bad was skipped, the answer is that range. The list is ordered good → bad, so when good is
the newer release the same search finds the first *fixed* release.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

# "undecided" (the noise allows no call) is the attribution's (framework/attribute/search.py); bisection's oracles
# never give it.
Verdict = Literal["good", "bad", "skip", "undecided"]


@dataclasses.dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    evidence: str  # one line: why
    shown: str = ""  # the figure the table prints: a median, "3/3 passed", "reproduced 2/3"


@dataclasses.dataclass(frozen=True)
class Step:
    version: str
    judgement: Judgement
    seconds: float

    @property
    def verdict(self) -> Verdict:
        return self.judgement.verdict


@dataclasses.dataclass(frozen=True)
class Search:
    """The outcome of a search over ``versions`` (ordered good → bad).

    ``status``: ``found`` (adjacent last good and first bad), ``ambiguous`` (releases between them could not be
    tested: ``untested``), or ``endpoints`` (the ends are not good and bad as claimed: ``problem``).
    """

    versions: list[str]
    steps: list[Step]
    status: Literal["found", "ambiguous", "endpoints"]
    last_good: str | None = None
    first_bad: str | None = None
    untested: list[str] = dataclasses.field(default_factory=list)
    problem: str = ""


def find_boundary(
    versions: Sequence[str],
    classify: Callable[[str], Judgement],
    known: Mapping[str, Step] | None = None,
    clock: Callable[[], float] = time.perf_counter,
    progress: Callable[[str], None] = lambda _: None,
) -> Search:
    """Binary search for the adjacent pair (last good, first bad) in ``versions``, ordered good → bad.

    The ends are classified first (or taken from ``known``, e.g. measured interleaved beforehand) and must be
    good and bad. Without skips it asks the oracle at most ``ceil(log2(len(versions))) + 2`` times.
    """
    if len(versions) < 2:
        raise ValueError("bisection needs at least two versions")
    known = known or {}
    steps: list[Step] = []

    def judge(index: int, what: str) -> Verdict:
        version = versions[index]
        if version in known:
            step = known[version]
        else:
            progress(f"bisect: testing {version} ({what}) …")
            started = clock()
            judgement = classify(version)
            step = Step(version, judgement, clock() - started)
        steps.append(step)
        progress(f"bisect: {version} is {step.verdict} — {step.judgement.evidence}")
        return step.verdict

    for index, expected, end in ((0, "good", "good"), (len(versions) - 1, "bad", "bad")):
        verdict = judge(index, f"the {end} end")
        if verdict != expected:
            reason = steps[-1].judgement.evidence
            problem = f"the {end} end {versions[index]} is {verdict}, not {expected}: {reason}"
            return Search(list(versions), steps, "endpoints", problem=problem)
    low, high = 0, len(versions) - 1
    skipped: set[int] = set()
    while True:
        candidates = [index for index in range(low + 1, high) if index not in skipped]
        if not candidates:
            break
        middle = (low + high) // 2
        pick = min(candidates, key=lambda index: (abs(index - middle), index))
        verdict = judge(pick, f"{len(candidates)} release(s) left between {versions[low]} and {versions[high]}")
        if verdict == "good":
            low = pick
        elif verdict == "bad":
            high = pick
        else:
            skipped.add(pick)
    untested = list(versions[low + 1 : high])
    status: Literal["found", "ambiguous"] = "ambiguous" if untested else "found"
    return Search(list(versions), steps, status, versions[low], versions[high], untested)


def oracle_calls_bound(count: int) -> int:
    """The most oracle calls a search over ``count`` versions makes without skips (ends included)."""
    return math.ceil(math.log2(count)) + 2
