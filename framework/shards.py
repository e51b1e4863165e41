"""Shards: one matrix plan split into N parts that separate machines run, recorded as one run group.

Every shard expands the same plan (the same options but ``--shard``), weighs each unit — one case × runtime ×
hardware — and assigns the units by longest-processing-time greedy: heaviest first, each to the shard with the least
expected time so far. Weights are the unit's recorded median time per execution × its planned executions, in whole
milliseconds so every machine adds them up the same way; ties are broken by the unit's key. The durations come only
from runs that ended before the current UTC day began and that are not of this run group: a shard that finished
early has already written rows, and must not change the split of a shard that starts later. So the shards of one
group must start on the same UTC day and read the same history, or pass ``--balance=count`` (every unit weighs the
same). Pure but for :func:`recorded_durations`, which reads the store.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import hashlib
import heapq
import re
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path

from framework.in_runtime.errors import SelectionError
from framework.matrix import Plan, PlannedCase

RUN_GROUP_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")
BALANCES = ("history", "count")
_SHARD_EXAMPLE = "use K/N with 1 ≤ K ≤ N, e.g. --shard=1/3"

UnitKey = tuple[str, str, str, str]  # runtime, hardware, case id, size ('' when none)


@dataclasses.dataclass(frozen=True)
class Shard:
    """Part ``index`` of ``count`` (both from 1): ``--shard=2/3``; recorded on every row as ``"2/3"``."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """``K/N`` → Shard (the ``type=`` of ``--shard``); anything else is a one-line argparse error."""
    match = re.fullmatch(r"\s*(\d{1,6})\s*/\s*(\d{1,6})\s*", text)
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not K/N — {_SHARD_EXAMPLE}")
    index, count = int(match[1]), int(match[2])
    if count < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: N must be at least 1 — {_SHARD_EXAMPLE}")
    if not 1 <= index <= count:
        raise argparse.ArgumentTypeError(f"{text!r}: K must be from 1 to {count} — use e.g. --shard=1/{count}")
    return Shard(index, count)


def parse_run_group(text: str) -> str:
    """A run group id (the ``type=`` of ``--run-group``): 1 to 64 of A-Z a-z 0-9 . _ -"""
    if RUN_GROUP_PATTERN.fullmatch(text) is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a run group id — use 1 to 64 letters, digits, '.', '_' or '-',"
            " e.g. --run-group=nightly-42"
        )
    return text


def default_run_group(environ: Mapping[str, str]) -> str | None:
    """The group the shards of one GitHub Actions workflow run agree on, without being told: gh-RUN_ID-ATTEMPT."""
    run_id = environ.get("GITHUB_RUN_ID", "").strip()
    if not run_id:
        return None
    group = f"gh-{run_id}-{environ.get('GITHUB_RUN_ATTEMPT', '').strip() or '1'}"
    return group if RUN_GROUP_PATTERN.fullmatch(group) else None


def require_run_group(given: str | None, the_shard: Shard | None, environ: Mapping[str, str]) -> str | None:
    """The run group of this run: given, GitHub's for a shard, or None (unsharded: each row's group is its run id).
    A shard with neither is refused: its parts could not be told to belong together."""
    if given is not None or the_shard is None:
        return given
    found = default_run_group(environ)
    if found is None:
        raise SelectionError(
            f"--shard={the_shard}: no run group — the shards of one run must share one; pass the same"
            " --run-group=ID to every shard (e.g. --run-group=nightly-2026-12-06), or run them in GitHub Actions"
            " (gh-$GITHUB_RUN_ID-$GITHUB_RUN_ATTEMPT is used)"
        )
    return found


def unit_key(planned: PlannedCase) -> UnitKey:
    return (planned.runtime.name, planned.hardware.name, planned.case.case_id, planned.case.size or "")


def executions(planned: PlannedCase) -> int:
    return planned.case.workload.warmup + planned.case.workload.repeats


@dataclasses.dataclass(frozen=True)
class Split:
    """Which shard each unit goes to, and what each shard is expected to take."""

    count: int
    assignment: dict[UnitKey, int]  # unit → shard index (from 1)
    expected_ms: tuple[int, ...]  # per shard, in shard order
    balance: str  # history | count
    from_history: int  # units weighed by their recorded durations (the others by the median of those)

    def part(self, plan: Plan, the_shard: Shard) -> Plan:
        """The plan's cases of one shard, in the plan's order (its skips are every shard's to report)."""
        cases = [planned for planned in plan.cases if self.assignment[unit_key(planned)] == the_shard.index]
        return Plan(cases, plan.skipped)

    def fingerprint(self) -> str:
        """Six hex digits naming the whole split: shards that print different ones disagree (different history,
        options or day) and would run some cases twice and others never."""
        text = "\n".join(f"{'|'.join(key)}={index}" for key, index in sorted(self.assignment.items()))
        return hashlib.sha256(text.encode()).hexdigest()[:6]

    def describe(self) -> list[str]:
        """The split's balance, a line per shard: units and expected time."""
        counts = [0] * self.count
        for index in self.assignment.values():
            counts[index - 1] += 1
        how = (
            f"by recorded durations ({self.from_history} of {len(self.assignment)} units from history)"
            if self.balance == "history" and self.from_history
            else "by count" + (" (no recorded durations before today)" if self.balance == "history" else "")
        )
        lines = [f"split {self.fingerprint()} into {self.count} shards, balanced {how}:"]
        for index, (units, expected) in enumerate(zip(counts, self.expected_ms), start=1):
            time = f", ~{expected / 1000:.0f} s expected" if self.from_history else ""
            lines.append(f"  shard {index}/{self.count}: {units} unit{'s' if units != 1 else ''}{time}")
        return lines


def weights(plan: Plan, durations: Mapping[UnitKey, float] | None) -> tuple[dict[UnitKey, int], int]:
    """Each unit's weight in whole milliseconds (≥ 1), and how many had a recorded duration. Without ``durations``
    (or none for the plan's units) every unit weighs 1; a unit without one weighs the median of those with one."""
    per_unit = {unit_key(planned): planned for planned in plan.cases}
    known = {key: durations[key] * executions(p) for key, p in per_unit.items() if durations and key in durations}
    if not known:
        return dict.fromkeys(per_unit, 1), 0
    fallback = statistics.median(sorted(known.values()))
    return {key: max(1, round(1000 * known.get(key, fallback))) for key in per_unit}, len(known)


def assign(weights_ms: Mapping[UnitKey, int], count: int) -> tuple[dict[UnitKey, int], tuple[int, ...]]:
    """Longest processing time first: heaviest unit (ties: the smaller key) to the shard with the least expected
    time (ties: fewer units, then the lower index). Returns unit → shard (from 1) and each shard's total."""
    heap = [(0, 0, index) for index in range(1, count + 1)]
    assignment: dict[UnitKey, int] = {}
    totals = [0] * count
    for key in sorted(weights_ms, key=lambda k: (-weights_ms[k], k)):
        load, units, index = heapq.heappop(heap)
        assignment[key] = index
        totals[index - 1] = load + weights_ms[key]
        heapq.heappush(heap, (totals[index - 1], units + 1, index))
    return assignment, tuple(totals)


def split_plan(plan: Plan, count: int, durations: Mapping[UnitKey, float] | None, balance: str) -> Split:
    """Split the expanded plan into ``count`` shards. Refuses more shards than units (a shard with nothing to run
    would pass having tested nothing)."""
    units = {unit_key(planned) for planned in plan.cases}
    if count > len(units):
        raise SelectionError(
            f"--shard=K/{count}: the plan has {len(units)} unit{'s' if len(units) != 1 else ''} (case × runtime ×"
            f" hardware) for {count} shards — use at most --shard=K/{max(len(units), 1)}, or a wider selection"
        )
    unit_weights, from_history = weights(plan, durations if balance == "history" else None)
    assignment, totals = assign(unit_weights, count)
    return Split(count, assignment, totals, balance, from_history)


# Each unit's median seconds per execution over the runs that ended before ``cutoff`` and are not of ``group``: per
# run, the mean of its warm-up and measured executions' ended_at - started_at (each execution on its own, as an
# interleaved comparison runs a case's repeats rounds apart).
DURATIONS_SQL = """
WITH finished AS (
    SELECT run_id FROM rows GROUP BY run_id
    HAVING max(coalesce(ended_at, started_at, run_started_at)) < $cutoff
       AND any_value(coalesce(run_group, run_id)) <> $group
),
per_run AS (
    SELECT runtime, hardware, case_id, coalesce(size, '') AS size, run_id,
           avg(date_diff('microsecond', started_at, ended_at)) / 1e6 AS per_execution_s
    FROM rows
    WHERE phase IN ('warmup', 'measure') AND started_at IS NOT NULL AND ended_at IS NOT NULL
      AND run_id IN (SELECT run_id FROM finished)
    GROUP BY runtime, hardware, case_id, coalesce(size, ''), run_id
)
SELECT runtime, hardware, case_id, size, median(per_execution_s) AS seconds
FROM per_run GROUP BY runtime, hardware, case_id, size
ORDER BY runtime, hardware, case_id, size
"""


def day_start(now: dt.datetime | None = None) -> dt.datetime:
    """The start of the current UTC day: history from runs that ended before it is the same for every shard."""
    now = now or dt.datetime.now(dt.timezone.utc)
    return now.astimezone(dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)


def recorded_durations(results_dir: Path, group: str | None, cutoff: dt.datetime | None = None) -> dict[UnitKey, float]:
    """Median seconds per execution of every unit in the store, from runs ended before ``cutoff`` (default: the
    start of today, UTC) and not of run group ``group``. An empty or missing store gives none."""
    if not results_dir.is_dir():
        return {}
    from framework.query import Results

    with Results(results_dir) as results:
        _, rows = results.sql(DURATIONS_SQL, {"cutoff": cutoff or day_start(), "group": group or ""})
    return {
        (str(runtime), str(hardware), str(case_id), str(size)): float(seconds)
        for runtime, hardware, case_id, size, seconds in rows
        if seconds is not None and seconds >= 0
    }


def plan_lines(plan: Sequence[PlannedCase]) -> list[str]:
    """The dry run's line per planned case."""
    return [
        f"{p.runtime.name:<12} {p.hardware.name:<16} {p.case.case_id}  size={p.case.size}"
        f"  repeats={p.case.workload.repeats}"
        for p in plan
    ]


# Verbs that judge what they run as one whole: a part of them would judge nothing. Shard the matrix instead.
NOT_SPLIT = {
    "compare": (
        "its two sides run interleaved on one machine, so that they are comparable; run the sides as a sharded"
        " matrix (nox -s matrix -- --shard=K/N --run-group=ID --runtime=BASELINE,CANDIDATE on each machine), merge"
        " the shards' stores (nox -s merge -- DIR... --into=DIR), then judge them:"
        " nox -s compare -- --from-results --baseline=BASELINE --candidate=CANDIDATE --results=DIR"
    ),
    "bless": (
        "it judges every piece of evidence together; run the runtime and its baseline as a sharded matrix"
        " (nox -s matrix -- --shard=K/N --run-group=ID --runtime=RUNTIME,BASELINE on each machine), merge the"
        " shards' stores (nox -s merge -- DIR... --into=DIR), then nox -s bless -- --results=DIR judges from the"
        " merged store (and runs only what is still missing)"
    ),
}


def refuse_split(verb: str, argv: Sequence[str]) -> None:
    """A one-line refusal of ``--shard`` for a verb that does not split (before its own options are checked)."""
    given = next((arg for arg in argv if arg == "--shard" or arg.startswith("--shard=")), None)
    if given is not None:
        raise SelectionError(f"{given}: {verb} does not split into shards — {NOT_SPLIT[verb]}")
