"""Shared failures: a candidate's failure the baseline has too is *known, shared, not a regression* — on evidence.

The evidence is the baseline's own results in the store, of its environment as declared today and within the
criteria's ``max_age``: its stability rows (fuzz batches, regression cases, replays — ``nox -s stability --
--replay=ID --runtime=BASELINE`` or bless's own replays) and its must-pass rows, each failure read as its signature
(:mod:`framework.failure_signatures`). A failure is shared only when one of the baseline's failures has exactly its
signature; when the baseline was not looked at, the line says so, with the command that would, and the failure stays
held against the candidate. Whether a shared failure passes is the criteria's ``shared_failures`` (default pass).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence

from framework.criteria import Criteria
from framework.engine import say
from framework.evidence import BlessOptions, CaseOutcome, Identity, Runners, StabilityBatch, StabilityEvidence
from framework.failure_signatures import FailureSignature, of_row, of_stability, replay_command, signature
from framework.in_runtime.errors import FrameworkError
from framework.known_failures import Known, KnownFailure, expired, match
from framework.query import Results


@dataclasses.dataclass(frozen=True)
class Sighting:
    """One failure of the baseline: where it is in the store."""

    run_id: str
    case_id: str
    failure_id: str | None
    started: str


@dataclasses.dataclass(frozen=True)
class BaselineFailures:
    """The baseline's stability results in the window: how many batches ran, and its failures by signature."""

    runtime: str
    batches: int
    runs: tuple[str, ...]
    by_signature: Mapping[str, tuple[Sighting, ...]]


@dataclasses.dataclass(frozen=True)
class FailureContext:
    """What a candidate's failures are judged against, besides the criteria: the baseline's, the known list, a day."""

    baseline: BaselineFailures | None
    known: Mapping[str, KnownFailure] = dataclasses.field(default_factory=dict)
    today: dt.date = dataclasses.field(default_factory=dt.date.today)
    replay_problems: Mapping[str, str] = dataclasses.field(default_factory=dict)  # failure id → why not replayed


@dataclasses.dataclass(frozen=True)
class Judgement:
    signature: FailureSignature
    shared: tuple[str, ...]  # the baseline's run and failure ids with the same signature; empty: not shown
    note: str  # what the baseline shows, or that it was not checked (with the command that would)
    known: Known | None

    def text(self, today: dt.date) -> str:
        line = f"signature: {self.signature.text}; {self.note}"
        return line + (f" [{self.known.label(today)}]" if self.known else "")


def baseline_failures(results: Results, base: Identity, since: dt.datetime) -> BaselineFailures:
    """Every stability row of the baseline's environments since ``since``, its failures keyed by signature."""
    envs = sorted(base.env_hashes)
    _, rows = results.sql(
        "SELECT run_id, workload, case_id, outcome, error, traceback, failure_id, CAST(started_at AS VARCHAR)"
        f" FROM rows WHERE starts_with(workload, 'stability.') AND runtime_hash = ?"
        f" AND env_hash IN ({', '.join('?' * len(envs))}) AND run_started_at >= ?"
        " ORDER BY run_started_at DESC, started_at DESC",
        [base.runtime_hash, *envs, since],
    )
    found: dict[str, list[Sighting]] = {}
    for run_id, workload, case_id, outcome, error, traceback, failure_id, started in rows:
        if outcome == "passed":
            continue
        row = {"workload": workload, "outcome": outcome, "error": error, "traceback": traceback}
        found.setdefault(of_row(row).text, []).append(Sighting(run_id, case_id, failure_id, started or ""))
    runs = tuple(dict.fromkeys(row[0] for row in rows))
    return BaselineFailures(base.runtime, len(rows), runs, {text: tuple(seen) for text, seen in found.items()})


def batch_signature(batch: StabilityBatch) -> FailureSignature:
    return of_stability(batch.outcome, batch.error, batch.traceback)


def judge_batch(batch: StabilityBatch, context: FailureContext, baseline: str) -> Judgement:
    """A candidate's stability batch that did not pass, against the baseline's stability failures."""
    found = batch_signature(batch)
    known = match(context.known, found.text)
    seen = context.baseline.by_signature.get(found.text, ()) if context.baseline else ()
    check = (
        replay_command(batch.failure_id, baseline) if batch.failure_id else f"nox -s stability -- --runtime={baseline}"
    )
    if seen:
        ids = tuple(dict.fromkeys([*(s.run_id for s in seen), *(s.failure_id for s in seen if s.failure_id)]))
        first = seen[0]
        where = f"run {first.run_id}" + (f", failure {first.failure_id}" if first.failure_id else "")
        note = f"known, shared, not a regression: {baseline} fails with the same signature ({len(seen)}×, {where})"
        return Judgement(found, ids, note, known)
    problem = context.replay_problems.get(batch.failure_id or "")
    if context.baseline is None or not context.baseline.batches:
        note = f"not checked on the baseline {baseline} — replay with {check}"
    else:
        runs = context.baseline.runs
        shown = ", ".join(runs[:3]) + (" …" if len(runs) > 3 else "")
        note = (
            f"not seen on {baseline} in its {context.baseline.batches} stability batch(es) in the window (run(s)"
            f" {shown}) — replay it there: {check}"
        )
    if problem:
        note += f" (bless could not replay it there: {problem})"
    return Judgement(found, (), note, known)


def judge_case(outcome: CaseOutcome, base: CaseOutcome | None, context: FailureContext, baseline: str) -> Judgement:
    """A must-pass case that did not pass every repeat, against the baseline's repeats of it."""
    texts = list(dict.fromkeys(sig.text for sig, _ in outcome.problems))
    kind, _, error = (outcome.first_problem or "failed").partition(": ")
    found = outcome.problems[0][0] if outcome.problems else signature(kind, error, None)
    known = match(context.known, found.text)
    if base is None:
        workload = outcome.case_id.split("[", 1)[0]
        command = f"nox -s matrix -- --runtime={baseline} --workload={workload}"
        note = f"not checked on the baseline {baseline} — run {command}"
        return Judgement(found, (), note, known)
    on_base = {sig.text for sig, _ in base.problems}
    if texts and all(text in on_base for text in texts):
        runs = tuple(dict.fromkeys(run for sig, run in base.problems if sig.text in texts))
        note = f"known, shared, not a regression: it fails the same way on {baseline} (run {runs[0]})"
        return Judgement(found, runs, note, known)
    if base.passed < base.repeats:
        others = "; ".join(dict.fromkeys(sig.text for sig, _ in base.problems)) or base.first_problem
        note = f"it fails on {baseline} too (run {base.problem_run}), but not the same way ({others})"
    else:
        note = f"it passes on {baseline} ({base.passed}/{base.repeats}, run {base.runs[0]})"
    return Judgement(found, (), note, known)


def expired_entries(context: FailureContext) -> list[Known]:
    return expired(context.known, context.today)


def shared_allowed(judgements: Sequence[Judgement], policy: str) -> bool:
    """Every failure shared with the baseline, and the criteria let shared failures pass."""
    return policy == "pass" and bool(judgements) and all(judgement.shared for judgement in judgements)


def failure_context(
    options: BlessOptions,
    runners: Runners,
    criteria: Criteria,
    base: Identity,
    stability: StabilityEvidence | None,
    since: dt.datetime,
    known: Mapping[str, KnownFailure],
    today: dt.date,
) -> FailureContext:
    """The baseline's failures in the window; first, with ``baseline_replays``, each candidate stability failure the
    baseline has not shown is replayed there (its rows join the baseline's evidence, whatever they show)."""
    with Results(options.results_dir) as results:
        found = baseline_failures(results, base, since)
    bad = [batch for batch in (stability.batches if stability else ()) if batch.outcome != "passed"]
    unseen = [b for b in bad if b.failure_id and batch_signature(b).text not in found.by_signature]
    problems: dict[str, str] = {}
    if not criteria.baseline_replays or not unseen or not base.built:
        return FailureContext(found, known, today, problems)
    for batch in unseen:
        failure_id = str(batch.failure_id)
        say(
            f"replaying failure {failure_id} {criteria.baseline_replays}× on the baseline {base.runtime}: is it shared?"
        )
        try:
            runners.replay(
                failure_id,
                times=criteria.baseline_replays,
                results_dir=options.results_dir,
                root=options.root,
                save=False,
                runtime_name=base.runtime,
            )
        except FrameworkError as error:  # the check then says it was not checked, and why
            problems[failure_id] = str(error)
    with Results(options.results_dir) as results:
        found = baseline_failures(results, base, since)
    return FailureContext(found, known, today, problems)
