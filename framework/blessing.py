"""``nox -s bless``: is this runtime fit for production, against a baseline, by declared criteria?

    criteria → today's environments → reusable evidence in the store → run what is missing (interleaved
    comparison, matrix, stability) → decide (a pure function of evidence and criteria) → store → print

Evidence that could not be produced is a failed check with the reason, never a pass. What counts as reusable
evidence, and where it is found: :mod:`framework.evidence`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Sequence
from pathlib import Path

from framework import vocabulary
from framework.config import load_findings
from framework.criteria import SELECTOR_FIELDS, Criteria, load, scope
from framework.engine import new_run_id, say
from framework.environments import BuiltEnvironment
from framework.evidence import (
    BlessOptions,
    Evidence,
    Identity,
    MetricEvidence,
    Runners,
    StabilityEvidence,
    find,
    identity,
    make_plan,
    metric_keys,
    produce,
)
from framework.export import FORMATS, Export, shown_path
from framework.findings import Finding, affecting
from framework.in_runtime.errors import FrameworkError, SelectionError
from framework.known_failures import expired, expired_line, load_known_failures
from framework.limits import OVERLOADED, health_checks, soak_checks
from framework.metric_catalogue import METRICS
from framework.models import Runtime
from framework.query import Results
from framework.records import write_record
from framework.shared_failures import (
    FailureContext,
    Judgement,
    expired_entries,
    failure_context,
    judge_batch,
    judge_case,
)
from framework.stats import MetricComparison, compare_samples

# --------------------------------------------------------------------------------------------------
# Decision: pure


@dataclasses.dataclass(frozen=True)
class Check:
    criterion: str  # usable | known_issue | must_pass | stability | metric | soak | health
    subject: str  # a case, 'profile ci', 'case × metric'
    passed: bool
    reason: str  # one line, with its evidence
    evidence: tuple[str, ...] = ()  # run, failure and comparison ids


@dataclasses.dataclass(frozen=True)
class Verdict:
    runtime: str
    baseline: str
    criteria: str
    checks: tuple[Check, ...]
    skipped: tuple[str, ...] = ()

    @property
    def blessed(self) -> bool:
        return bool(self.checks) and all(check.passed for check in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [check for check in self.checks if not check.passed]


def decide(
    criteria: Criteria, evidence: Evidence, name: str = "default", failures: FailureContext | None = None
) -> Verdict:
    """Evidence + criteria → verdict: blessed only when every check passed.

    ``failures``: the baseline's failures and the known-failures list the candidate's failures are judged against
    (without it, no failure can be shown shared: each says the baseline was not checked)."""
    context = failures or FailureContext(None)
    checks = [*_scope_checks(evidence), *_must_pass_checks(criteria, evidence, context)]
    checks += _stability_checks(criteria, evidence, context)
    checks += _metric_checks(criteria, evidence)
    # Soak cases run with the must-pass cases; health rows come from the comparison too.
    why = evidence.unavailable.get("measured", "")
    health_why = "; ".join(filter(None, (why, evidence.unavailable.get("metrics"))))
    for judged in [
        *soak_checks(criteria, evidence.soak, evidence.runtime, why, evidence.baseline_soak, evidence.baseline),
        *health_checks(criteria, evidence.health, evidence.runtime, health_why),
    ]:
        checks.append(Check(judged.criterion, judged.subject, judged.passed, judged.reason, judged.evidence))
    checks += [Check("known_failure", known.name, False, expired_line(known)) for known in expired_entries(context)]
    return Verdict(evidence.runtime, evidence.baseline, name, tuple(checks), evidence.skipped)


def _scope_checks(evidence: Evidence) -> list[Check]:
    """A selector none of whose cases can run on the hardware would otherwise pass by judging nothing."""
    checks = []
    for (criterion, selector), why in evidence.unrunnable.items():
        where = SELECTOR_FIELDS.get(criterion, criterion)
        reason = f"{where} {selector!r}: no case can run on hardware {evidence.hardware} ({why or 'no case'})"
        checks.append(Check(criterion, selector, False, reason + " — nothing to judge it by"))
    return checks


def _must_pass_checks(criteria: Criteria, evidence: Evidence, context: FailureContext) -> list[Check]:
    checks = []
    for case_id, outcome in evidence.cases.items():
        runtime = evidence.runtime
        if outcome is None:
            why = evidence.unavailable.get("must_pass", "no run recorded a result for it")
            checks.append(Check("must_pass", case_id, False, f"{case_id}: no result on {runtime} — {why}"))
            continue
        runs = f"run {outcome.runs[0]}" if len(outcome.runs) == 1 else f"runs {', '.join(outcome.runs)}"
        if outcome.repeats and outcome.passed == outcome.repeats:
            reason = f"{case_id}: {outcome.passed}/{outcome.repeats} repeats passed on {runtime} — {runs}"
            checks.append(Check("must_pass", case_id, True, reason, outcome.runs))
            continue
        not_passed = outcome.repeats - outcome.passed
        reason = f"{case_id} failed {not_passed}/{outcome.repeats} repeats on {runtime}"
        reason += f" ({_clip(outcome.first_problem)}) — run {outcome.problem_run}"
        if len(outcome.runs) > 1:
            reason += f" (of {runs})"
        base = evidence.baseline_cases.get(case_id)
        judgement = judge_case(outcome, base, context, evidence.baseline)
        ids = outcome.runs + (base.runs if base is not None else ())
        passed = bool(judgement.shared) and criteria.shared_failures == "pass"
        reason += f"; {judgement.text(context.today)}" + _held(judgement, criteria)
        checks.append(Check("must_pass", case_id, passed, reason, ids))
    return checks


def _held(judgement: Judgement, criteria: Criteria) -> str:
    if judgement.shared and criteria.shared_failures != "pass":
        return " — still held against it: the criteria say shared_failures: fail"
    return ""


def _stability_checks(criteria: Criteria, evidence: Evidence, context: FailureContext) -> list[Check]:
    wanted = criteria.stability
    if wanted is None:
        return []
    subject = f"profile {wanted.profile}"
    found = evidence.stability or StabilityEvidence(None, ())
    bad = [batch for batch in found.batches if batch.outcome != "passed"]
    ids = tuple(dict.fromkeys([*([found.complete_run] if found.complete_run else []), *(b.run_id for b in bad)]))
    held, shared = [], []
    for batch in bad:
        part = f"{batch.case_id} {batch.outcome} ({_clip(batch.error)}) — run {batch.run_id}"
        if batch.overloaded:
            part += (
                f" [{OVERLOADED}: load {batch.load_avg_1m or 0:.1f} > cores — it may be the machine's, not the"
                " runtime's: replay it on a quiet machine]"
            )
        if batch.failure_id:
            part += f", failure {batch.failure_id} (replay: nox -s stability -- --replay={batch.failure_id})"
        judgement = judge_batch(batch, context, evidence.baseline)
        part += f"; {judgement.text(context.today)}" + _held(judgement, criteria)
        if judgement.shared and criteria.shared_failures == "pass":
            evidence_ids = (batch.run_id, *([batch.failure_id] if batch.failure_id else []), *judgement.shared)
            reason = f"stability {subject} on {evidence.runtime}: {part}"
            shared.append(Check("stability", f"{subject} {batch.case_id}", True, reason, evidence_ids))
        else:
            held.append((batch, part))
    if held:
        reason = f"stability {subject} on {evidence.runtime}: " + "; ".join(part for _, part in held)
        failure_ids = tuple(batch.failure_id for batch, _ in held if batch.failure_id)
        return [Check("stability", subject, False, reason, ids + failure_ids), *shared]
    if found.complete_run is None:
        why = evidence.unavailable.get("stability", f"no run with its budget on tiers {', '.join(wanted.tiers)}")
        reason = f"stability {subject}: no result on {evidence.runtime} — {why}"
        return [Check("stability", subject, False, reason), *shared]
    shown = [f"{b.case_id} ({b.examples} examples)" if b.examples else b.case_id for b in found.batches]
    reason = f"stability {subject} passed on {evidence.runtime}: {', '.join(shown)} — run {found.complete_run}"
    if shared:
        reason = reason.replace(" passed on ", " passed, but for failures the baseline shares, on ", 1)
    return [Check("stability", subject, True, reason, ids), *shared]


def _metric_checks(criteria: Criteria, evidence: Evidence) -> list[Check]:
    wanted = criteria.metrics
    if wanted is None:
        return []
    checks = []
    for (case_id, name), found in evidence.metrics.items():
        allowed = wanted.allowances[name]
        label, subject = METRICS[name].label, f"{case_id} {name}"
        limit = f"allowed ≤ {100 * allowed:g} %"
        if found is None:
            why = evidence.unavailable.get("metrics", "no comparison recorded it")
            reason = f"{case_id}: {label} not compared with {evidence.baseline} — {why}"
            checks.append(Check("metric", subject, False, reason))
            continue
        ids = (found.comparison_id,)
        result = judged(found, allowed, wanted.alpha)
        if result is None:
            why = found.missing or "its statistics were not recorded"
            reason = f"{case_id}: {label} could not be compared with {evidence.baseline} — {why}"
            checks.append(Check("metric", subject, False, f"{reason} — comparison {found.comparison_id}", ids))
            continue
        reason = f"{case_id}: {result.sentence()} vs {evidence.baseline}, {limit} — comparison {found.comparison_id}"
        if result.verdict == vocabulary.Verdict.REGRESSED:
            passed = False
            if found.locks_differ_runs is not None:
                from framework.attribute.hints import hint

                reason += f" — {hint(*found.locks_differ_runs, case_id, name)}"
        elif result.verdict != vocabulary.Verdict.INCONCLUSIVE:
            passed = True
        else:
            passed = wanted.inconclusive == "pass"
            reason += " — cannot rule out a regression beyond the allowance"
            if wanted.inconclusive == "pass":
                reason += " (criteria accept inconclusive comparisons)"
        base_loaded, cand_loaded = found.overloaded
        if base_loaded or cand_loaded:
            reason += (
                f" [{OVERLOADED}: rests on {base_loaded} baseline and {cand_loaded} candidate run(s) taken at load"
                " > cores — their times are not comparable; compare again on a quiet machine]"
            )
        checks.append(Check("metric", subject, passed, reason, ids))
    return checks


def judged(found: MetricEvidence, allowed: float, alpha: float) -> MetricComparison | None:
    """The comparison as judged at the criteria's allowance and alpha.

    A comparison run for these criteria already is; one made with another minimum effect (``nox -s compare``)
    is judged again from its stored samples by the same test.
    """
    result = found.result
    if result is None:
        return None
    if abs(result.min_effect - allowed) < 1e-12 and abs(result.alpha - alpha) < 1e-12:
        return result
    baseline, candidate = found.samples
    if len(baseline) < 2 or len(candidate) < 2:
        return None
    spec = METRICS[result.metric]
    return compare_samples(list(baseline), list(candidate), spec, min_effect=allowed, alpha=alpha)


def _clip(text: str | None, limit: int = 200) -> str:
    line = " ".join((text or "no error recorded").split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def store_verdict(
    results_dir: Path,
    verdict_id: str,
    verdict: Verdict,
    criteria: Criteria,
    who: Identity,
    hardware: str,
    now: dt.datetime,
    base: Identity | None = None,
    export_path: str | None = None,
) -> Path:
    """One row in ``results/verdicts/<verdict_id>.parquet`` (the ``verdicts`` view)."""
    checks = [dataclasses.asdict(check) for check in verdict.checks]
    checks += [
        {"criterion": "skipped", "subject": s, "passed": None, "reason": s, "evidence": []} for s in verdict.skipped
    ]
    row = {
        "verdict_id": verdict_id,
        "decided_at": now,
        "criteria": verdict.criteria,
        "runtime": verdict.runtime,
        "runtime_hash": who.runtime_hash,
        "env_hash": who.env_hash,
        "baseline": verdict.baseline,
        "baseline_env_hash": base.env_hash if base is not None else None,
        "hardware": hardware,
        "blessed": verdict.blessed,
        "reasons": [check.reason for check in verdict.failed],
        "checks": checks,
        "criteria_spec": criteria.model_dump(mode="json"),
        "versions": who.versions,
        "export_path": export_path,
    }
    return write_record(results_dir, "verdicts", verdict_id, [row])


def format_verdict(verdict: Verdict) -> str:
    """The headline, every failed check in full, then the passed ones briefly (must-pass cases as one line)."""
    word = "BLESSED" if verdict.blessed else "NOT BLESSED"
    lines = [f"{verdict.runtime} is {word} against {verdict.baseline} (criteria {verdict.criteria})"]
    if verdict.failed:
        lines[0] += f": {len(verdict.failed)} of {len(verdict.checks)} checks failed"
        lines += [f"  ✗ {check.reason}" for check in verdict.failed]
    passed = [check for check in verdict.checks if check.passed]
    if passed:
        lines.append(f"passed ({len(passed)}):")
        cases = [check for check in passed if check.criterion == "must_pass"]
        if cases:
            runs = sorted({run for check in cases for run in check.evidence})
            lines.append(f"  ✓ must pass: {len(cases)} case(s) passed every repeat — run(s) {', '.join(runs)}")
        lines += [f"  ✓ {check.reason}" for check in passed if check.criterion != "must_pass"]
    loaded = [check for check in verdict.checks if f"[{OVERLOADED}:" in check.reason]
    if loaded:
        lines.append(
            f"! this verdict rests in part on runs measured while the machine was overloaded (load > cores):"
            f" {len(loaded)} check(s) marked [{OVERLOADED}: …]"
        )
    if verdict.skipped:
        lines.append(f"not run on this hardware ({len(verdict.skipped)}): " + "; ".join(verdict.skipped))
    return "\n".join(lines)


def unusable_checks(
    runtime: str, environment: BuiltEnvironment | None, baseline: BuiltEnvironment | None
) -> list[Check]:
    """A failed ``usable`` check for each side whose health check failed (the runtime's first)."""
    checks = []
    for side, built in (("runtime", environment), ("baseline", baseline)):
        if built is None or built.health is None or built.health.usable:
            continue
        reason = built.health.headline(built.runtime.name)
        if side == "baseline":
            reason = f"baseline {reason} — {runtime} cannot be compared with it"
        checks.append(Check("usable", built.runtime.name, False, reason))
    return checks


def known_issue_checks(
    runtime: str, environment: BuiltEnvironment | None, criteria: Criteria, findings: dict[str, Finding]
) -> list[Check]:
    """A ``known_issue`` check for each finding of the ledger the runtime's lock falls inside: failed, unless the
    criteria accept it (``accept_findings``) with a reason."""
    if environment is None:
        return []
    checks = []
    for found in affecting(findings, environment.packages):
        reason = found.line(runtime)
        accepted = criteria.accept_findings.get(found.guard)
        if accepted:
            checks.append(Check("known_issue", found.guard, True, f"{reason}; accepted: {accepted}"))
            continue
        fix = (
            "pick a release outside that range, or accept it in matrices/blessing.yaml (accept_findings) with a reason"
        )
        checks.append(Check("known_issue", found.guard, False, f"{reason} — {fix}"))
    return checks


# --------------------------------------------------------------------------------------------------
# The command: find what is reusable, run what is missing, decide, store


@dataclasses.dataclass
class BlessReport:
    plan: list[str]  # what was reused and what was (or, in a dry run, would be) run
    verdict: Verdict | None = None  # None for a dry run
    verdict_id: str | None = None
    record: Path | None = None
    exports: Sequence[Export] = ()  # a blessed runtime's lock, written beside the verdict (results/blessed/)
    export_problem: str | None = None  # why it could not be written (the verdict stands)


# Writes a blessed environment's lock for installing: framework.export.export_blessed (fakes in tests).
Exporter = Callable[[BuiltEnvironment, Path, dt.date], Sequence[Export]]


def bless(
    options: BlessOptions,
    runners: Runners | None = None,
    now: dt.datetime | None = None,
    exporter: Exporter | None = None,
) -> BlessReport:
    """Decide whether ``options.runtime`` is blessed; run only the evidence that is missing or stale.

    With ``exporter``, a blessed runtime's lock is also written for installing and the verdict records where."""
    runners = runners or Runners()
    now = now or dt.datetime.now(dt.timezone.utc)
    catalog, criteria = load(options.root, options.criteria)
    known_failures = load_known_failures(options.root)  # a bad list stops here, before anything runs
    baseline_name = options.baseline or criteria.baseline
    hardware = options.hardware or criteria.hardware
    runtime, baseline = catalog.runtime(options.runtime), catalog.runtime(baseline_name)
    catalog.hardware_profile(hardware)
    if baseline_name == runtime.name:
        raise SelectionError(f"--baseline={baseline_name}: the baseline is the runtime itself — choose another runtime")
    cases = scope(catalog, criteria, runtime.name, hardware)
    environment = runners.environment(runtime, options)
    baseline_environment = _baseline_environment(runners, baseline, options, criteria)
    since = now - criteria.max_age if options.reuse else now  # without reuse, only what this run produces counts
    with Results(options.results_dir) as results:
        who, base = identity(results, runtime, environment), identity(results, baseline, baseline_environment)
        found = find(results, who, base, hardware, cases.must_pass, cases.compared, criteria, since, cases.measured)
    unusable = unusable_checks(runtime.name, environment, baseline_environment if criteria.metrics else None)
    if unusable and not options.dry_run:  # nothing can run on it: the cause is the verdict, stored like any other
        verdict = Verdict(runtime.name, baseline.name, options.criteria, tuple(unusable), cases.skipped)
        verdict_id = new_run_id(now)
        record = store_verdict(options.results_dir, verdict_id, verdict, criteria, who, hardware, now, base)
        return BlessReport([], verdict, verdict_id, record)
    plan = make_plan(criteria, who, base, hardware, cases, found)
    known = known_issue_checks(runtime.name, environment, criteria, load_findings(catalog, options.root))
    if options.dry_run:
        verdict_lines = [f"known issue ({'accepted' if c.passed else 'a ✗ of the verdict'}): {c.reason}" for c in known]
        verdict_lines += [f"a ✗ of the verdict: {expired_line(k)}" for k in expired(known_failures, now.date())]
        return BlessReport([*plan.lines, *verdict_lines])
    for line in plan.lines:
        say(line)
    unavailable = produce(options, runners, catalog, criteria, who, hardware, plan, since)
    with Results(options.results_dir) as results:
        found = find(results, who, base, hardware, cases.must_pass, cases.compared, criteria, since, cases.measured)
    context = failure_context(options, runners, criteria, base, found.stability, since, known_failures, now.date())
    evidence = Evidence(
        runtime.name,
        baseline.name,
        hardware,
        {case.case_id: found.cases.get(case.case_id) for case in cases.must_pass},
        found.baseline_cases,
        cases.unrunnable,
        cases.skipped,
        found.stability,
        {key: found.metrics.get(key) for key in metric_keys(criteria, cases.compared)},
        unavailable,
        {case.case_id: found.measured.get(case.case_id) for case in cases.soak},
        {case.case_id: found.measured.get(case.case_id) for case in cases.health},
        {
            case.case_id: found.baseline_measured[case.case_id]
            for case in cases.soak
            if case.case_id in found.baseline_measured
        },
    )
    verdict = decide(criteria, evidence, options.criteria, context)
    verdict = dataclasses.replace(verdict, checks=(*known, *verdict.checks))
    verdict_id = new_run_id(now)
    exports: Sequence[Export] = ()
    problem = None
    if verdict.blessed and exporter is not None and environment is not None:
        try:
            exports = exporter(environment, options.results_dir, now.date())
        except FrameworkError as error:  # the verdict stands; the missing export is said, not hidden
            problem = str(error)
    # Relative to the results directory, like the store's other paths: it moves with the results.
    export_path = next((shown_path(e.path, options.results_dir) for e in exports if e.format == "requirements"), None)
    record = store_verdict(options.results_dir, verdict_id, verdict, criteria, who, hardware, now, base, export_path)
    return BlessReport(plan.lines, verdict, verdict_id, record, exports, problem)


def _baseline_environment(
    runners: Runners, baseline: Runtime, options: BlessOptions, criteria: Criteria
) -> BuiltEnvironment | None:
    """The baseline's environment names its evidence: compared metrics (it must build), and the failures it shares
    (if it cannot build, none is shown shared: each says the baseline was not checked)."""
    try:
        return runners.environment(baseline, options)
    except FrameworkError:
        if criteria.metrics:
            raise
        return None


def report_text(report: BlessReport) -> str:
    """What ``nox -s bless`` prints: a dry run's plan, or the verdict, the lock exported and where it is stored."""
    if report.verdict is None:
        return "\n".join(report.plan) or "nothing to run: every piece of evidence is reusable"
    lines = [format_verdict(report.verdict)]
    lines += [f"export ({FORMATS[exported.format]}): {shown_path(exported.path)}" for exported in report.exports]
    if report.exports:
        lines.append(f"install it with: {report.exports[0].install_command()}")
    if report.export_problem:
        lines.append(f"blessed, but its lock could not be exported: {report.export_problem}")
    lines.append(f"verdict {report.verdict_id} stored in {report.record}")
    return "\n".join(lines)
