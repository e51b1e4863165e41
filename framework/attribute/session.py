"""``nox -s attribute``: which of the packages that moved between two runtimes made a workload change.

    two locks (runtime, run id or lock file) → their diff → environments of the baseline with subsets of the changes
    applied → each judged as bisect's oracles judge a release → the smallest set that reproduces the effect

Exit 0 when a set is named; 1 when the ends are not as claimed, the noise allows no call (``undecided``) or the budget
runs out (the narrowest set known to hold the cause is named); 2 for a mistake on the command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement

from framework import vocabulary
from framework.attribute.changes import Change, applied, lock_diff, pins
from framework.attribute.coupling import couple, read_metadata, site_packages
from framework.attribute.probes import BASELINE, CANDIDATE, Ends, ProbeMetricOracle, Probes
from framework.attribute.search import Attribution, attribute, probes_bound
from framework.bisect.oracles import OutcomeOracle, ReleaseRunner, StabilityOracle
from framework.bisect.search import Judgement
from framework.bisect.session import failure_to_replay, judged_case, replayer
from framework.config import ROOT, Catalog, load_catalog
from framework.engine import prepare_environment, say
from framework.environments import digest, existing_environment, parse_lock
from framework.in_runtime.errors import EnvironmentBuildError, FrameworkError
from framework.matrix import Case
from framework.metric_catalogue import METRIC_NAMES, MetricSpec, metric
from framework.models import HardwareProfile, Runtime
from framework.models.runtimes import DEFAULT_LOCKSTEP
from framework.query import Results
from framework.releases import package_keys
from framework.resolution import build_environment
from framework.results import ResultsStore

RUN_LOCK_SQL = """
SELECT any_value(rows.runtime), any_value(rows.runtime_spec), any_value(environments.lock)
FROM rows JOIN environments ON environments.env_hash = rows.env_hash
WHERE rows.run_id = $run_id
"""


class AttributionError(FrameworkError):
    """An attribution was asked for something that cannot be done (a side that names nothing, no change, …)."""


@dataclasses.dataclass(frozen=True)
class SideLock:
    """One end as the user named it: its lock, and its runtime when it has one (a lock file has none)."""

    text: str
    lock: dict[str, str]
    runtime: Runtime | None
    source: str  # "runtime latest (built today)", "run 20261205T…", "lock file path"


@dataclasses.dataclass(frozen=True)
class Plan:
    ends: Ends
    spec: MetricSpec | None  # None: outcome or failure
    case: Case | None  # None: failure
    hardware: HardwareProfile | None
    record: dict[str, Any] | None  # the failure to replay
    baseline_runtime: str | None  # a catalogue runtime the next step (bisect) can run in


def side_lock(text: str, catalog: Catalog, results_dir: Path, root: Path, dry_run: bool, rebuild: bool) -> SideLock:
    """``--baseline``/``--candidate``: a runtime of matrices/runtimes.yaml, a run id in the results, or a lock file."""
    if text in catalog.runtimes:
        runtime = catalog.runtimes[text]
        if dry_run:
            found = existing_environment(runtime, root)
            if found is None:
                raise AttributionError(
                    f"{text}: no environment of runtime {text!r} is built yet — a dry run builds nothing; run"
                    f" nox -s matrix -- --runtime={text} first, or drop --dry-run"
                )
            return SideLock(text, found.packages, runtime, f"runtime {text} (its newest build)")
        store = ResultsStore(results_dir)
        environment = prepare_environment(runtime, root, store, rebuild, dt.datetime.now(dt.timezone.utc))
        return SideLock(text, environment.packages, runtime, f"runtime {text} (as resolved today)")
    path = Path(text)
    if path.suffix in (".txt", ".lock", ".in") or path.is_file():
        if not path.is_file():
            raise AttributionError(f"{text}: no such lock file — give a runtime name, a run id or an existing file")
        lock = parse_lock(path.read_text())
        if not lock:
            raise AttributionError(f"{text}: no 'name==version' line in it — give a lock as 'uv pip freeze' writes it")
        return SideLock(text, lock, None, f"lock file {text}")
    with Results(results_dir) as results:
        _, rows = results.sql(RUN_LOCK_SQL, {"run_id": text})
    if not rows or rows[0][2] is None:
        raise AttributionError(
            f"{text}: not a runtime of matrices/runtimes.yaml ({', '.join(sorted(catalog.runtimes))}), nor a run id"
            f" with a stored lock in {results_dir}, nor a lock file — list runs with"
            ' nox -s sql -- "SELECT DISTINCT run_id, runtime FROM rows ORDER BY run_id DESC LIMIT 20"'
        )
    name, spec, lock = rows[0]
    ran_in: Runtime | None = catalog.runtimes.get(str(name))
    if ran_in is None and spec:
        ran_in = Runtime.model_validate({**json.loads(spec), "name": str(name)})
    return SideLock(text, parse_lock(str(lock)), ran_in, f"run {text} (runtime {name})")


def _check_options(args: argparse.Namespace) -> MetricSpec | None:
    if args.failure and (args.workload or args.metric):
        raise AttributionError(
            "--failure with --workload/--metric: attribute either a failure or a workload — drop one"
        )
    if not args.failure and not (args.workload and args.metric):
        raise AttributionError(
            "nothing to judge the environments by — give --workload=CASE --metric=wall (or"
            f" {', '.join(name for name in METRIC_NAMES if name != 'wall')}, outcome), or --failure=ID"
        )
    if args.budget is not None and args.budget < 2:
        raise AttributionError(f"--budget={args.budget}: the two ends are 2 environments already — use 2 or more")
    return metric(args.metric) if args.metric and args.metric != "outcome" else None


def plan_attribution(args: argparse.Namespace, root: Path = ROOT) -> Plan:
    """Check the options and read both locks: every mistake before any probe is built."""
    spec = _check_options(args)
    catalog = load_catalog(root)
    record = failure_to_replay(args.failure, args.results, root) if args.failure else None
    case, hardware = judged_case(args, catalog, record)
    sides = [
        side_lock(text, catalog, args.results, root, args.dry_run, args.rebuild)
        for text in (args.baseline, args.candidate)
    ]
    baseline, candidate = sides
    base: Runtime | None = baseline.runtime or candidate.runtime
    families = base.lockstep if base is not None else [list(family) for family in DEFAULT_LOCKSTEP]
    changes = lock_diff(baseline.lock, candidate.lock, families)
    if not changes:
        raise AttributionError(
            f"{baseline.source} and {candidate.source} hold the same packages: there is no change to attribute"
        )
    if base is None:
        raise AttributionError(
            "--baseline and --candidate are both lock files: name a runtime or a run id for one of them (its Python,"
            " Dask config and environment variables are the probes')"
        )
    if baseline.runtime and candidate.runtime and baseline.runtime.python != candidate.runtime.python:
        raise AttributionError(
            f"--baseline={baseline.text} runs Python {baseline.runtime.python}, --candidate={candidate.text}"
            f" {candidate.runtime.python}: an attribution moves packages only — compare runtimes of one Python"
        )
    ends = Ends(baseline.text, candidate.text, base, baseline.lock, candidate.lock, changes)
    runtime_name = baseline.runtime.name if baseline.runtime is not None else None
    return Plan(ends, spec, case, hardware, record, runtime_name if runtime_name in catalog.runtimes else None)


def joined(plan: Plan, root: Path, build: bool) -> Plan:
    """The plan with the changes that must move together joined (:mod:`framework.attribute.coupling`), from the
    metadata of the two ends' environments: built here (the search builds them first anyway; reused by lock), or in a
    dry run, only when already built. Without both, the changes stay as the locks list them, and that is said."""
    probes = Probes(plan.ends)
    paths = []
    for label in (BASELINE, CANDIDATE):
        runtime = probes.runtime_for(label)
        if build:
            try:
                environment = build_environment(runtime, root)
            except EnvironmentBuildError as error:
                say(f"attribute: {label}'s environment did not build, the changes are not joined: {error}")
                return plan
        else:
            found = existing_environment(runtime, root)
            if found is None:
                say(
                    f"attribute: {label}'s environment is not built yet: the changes are listed as the locks have"
                    " them; a run joins those whose requirements tie them together"
                )
                return plan
            environment = found
        paths.append(environment.path)
    ends = plan.ends
    roots = {}
    for key in package_keys(ends.base).values():
        requirement = Requirement(key)
        roots[requirement.name] = sorted(requirement.extras)
    old, new = (read_metadata(site_packages(path)) for path in paths)
    changes = couple(ends.changes, ends.baseline_lock, ends.candidate_lock, old, new, ends.base.python, roots)
    return dataclasses.replace(plan, ends=dataclasses.replace(ends, changes=changes))


def describe_plan(plan: Plan, args: argparse.Namespace) -> str:
    changes = plan.ends.changes
    moved = sum(len(change.moves) for change in changes)
    what = (
        f"failure {plan.record['failure_id']} (replays)"
        if plan.record is not None
        else f"{plan.case.case_id if plan.case else '?'}, {plan.spec.label if plan.spec else 'outcome'}"
    )
    lines = [
        f"attribute: {what}; {moved} package(s) moved from {args.baseline} to {args.candidate}, as"
        f" {len(changes)} change(s) (one culprit: at most {probes_bound(len(changes))} environments):"
    ]
    for change in changes:
        lines.append(f"  {change.name}: {change.line()}")
        if change.why:
            lines.append(f"    together, as {'; '.join(change.why)}")
    return "\n".join(lines)


def run_attribution(
    args: argparse.Namespace,
    answer: dict[str, object] | None = None,
    bisect_options: Callable[[list[str]], argparse.Namespace] | None = None,
) -> int:
    """Plan, search, print the probes and the answer; 0 when a set of changes is named. With ``--bisect``, the next
    step is run too: ``bisect_options`` parses its options (``nox -s bisect``'s parser)."""
    started = time.perf_counter()
    plan = joined(plan_attribution(args), ROOT, build=not args.dry_run)
    say(describe_plan(plan, args))
    if args.dry_run:
        bound = probes_bound(len(plan.ends.changes))
        each = args.times if plan.record is not None else args.repeat
        per = f"{each} replay(s)" if plan.record is not None else f"{each} round(s)"
        sys.stdout.write(
            f"dry run: about {bound} environment(s) for one culprit (more for interactions), {per} each; nothing was"
            " built or run\n"
        )
        return 0
    probes = Probes(plan.ends)
    oracle, runner = make_oracle(plan, probes, args)
    every = frozenset(change.name for change in plan.ends.changes)
    known: dict[frozenset[str], Judgement] = {}
    if isinstance(oracle, ProbeMetricOracle):
        say(f"attribute: the ends, {args.repeat} interleaved round(s) …")
        ends = oracle.endpoints()
        probes.label(frozenset()), probes.label(every)
        known = {names: ends[label] for names, label in ((frozenset(), BASELINE), (every, CANDIDATE)) if label in ends}
    budget = None if args.budget is None else max(0, args.budget - len(known))

    def judge(names: frozenset[str]) -> Judgement:
        return oracle.classify(probes.label(names))  # type: ignore[no-any-return]

    attribution = attribute([change.name for change in plan.ends.changes], judge, known, budget, progress=say)
    confirmation = confirm(oracle, attribution, probes, every)
    minutes = (time.perf_counter() - started) / 60
    built = _environments(runner)
    saved = None
    if isinstance(oracle, ProbeMetricOracle) and runner is not None:
        saved = save_evidence(oracle, runner, attribution, plan, probes, args.results)
    narrower = narrowing(attribution, plan, args)
    sys.stdout.write(
        report(attribution, plan, probes, confirmation, minutes, built, args, saved, narrower, improved(oracle))
    )
    if answer is not None:
        answer.update(document(attribution, plan, confirmation, minutes, built))
        answer["comparison_record"] = str(saved) if saved is not None else None
        answer["narrow"] = narrower
    code = 0 if attribution.status == "found" else 1
    step = next_step(attribution, plan, args, improved(oracle))
    if code == 0 and args.bisect and step and bisect_options is not None:
        from framework.bisect.session import run_bisection

        say(f"attribute: --bisect: {step}")
        options = bisect_options(step.split(" -- ", 1)[1].split())
        options.results, options.rebuild = args.results, args.rebuild
        code = run_bisection(options)
    return code


def make_oracle(plan: Plan, probes: Probes, args: argparse.Namespace) -> tuple[Any, ReleaseRunner | None]:
    """Bisect's oracles, asked about probe labels: replays for a failure, else the case run by a ReleaseRunner."""
    if plan.record is not None:
        replay_on = replayer(plan.record, args.times, args.results, ROOT)
        return StabilityOracle(plan.record["failure_id"], replay_on, probes.runtime_for), None
    assert plan.case is not None and plan.hardware is not None
    runner = ReleaseRunner(plan.case, plan.hardware, args.results, ROOT, args.rebuild)
    if plan.spec is None:
        return OutcomeOracle(args.repeat, runner, probes.runtime_for), runner
    return ProbeMetricOracle(plan.spec, args.repeat, runner, probes.runtime_for), runner


def confirm(oracle: Any, attribution: Attribution, probes: Probes, every: frozenset[str]) -> str:
    """For a metric: the named set measured again against both ends (the search may never have built it alone), and
    its share of the effect. The search assumed the effect monotone; this is where that is checked."""
    if attribution.status != "found" or not isinstance(oracle, ProbeMetricOracle):
        return ""
    culprits = frozenset(attribution.culprits)
    label = probes.label(culprits)
    lines = []
    if culprits != every:
        say(f"attribute: the answer measured again against both ends: {label} …")
        again = oracle.classify(label)
        lines.append(f"{label} measured again: {again.verdict} — {again.evidence}")
    lines.append(f"share: {label} alone: {oracle.share(label)}")
    return "\n".join(lines)


def save_evidence(
    oracle: ProbeMetricOracle,
    runner: ReleaseRunner,
    attribution: Attribution,
    plan: Plan,
    probes: Probes,
    results: Path,
) -> Path | None:
    """The named set against the baseline, from its own interleaved rounds, as a ``comparisons`` record (mode
    ``attribute``); every probe of the search in its detail. None when nothing was named or measured."""
    from framework.compare import BASELINE as BASE_SIDE
    from framework.compare import CANDIDATE as CANDIDATE_SIDE
    from framework.compare import CaseMetric, ComparisonReport, record_identity, record_rows
    from framework.engine import new_run_id
    from framework.records import write_record

    if attribution.status != "found":
        return None
    label = probes.label(frozenset(attribution.culprits))
    measured = oracle.measurements.get(label)
    if measured is None and label == CANDIDATE and oracle.ends_comparison is not None:
        comparison, samples = oracle.ends_comparison, (oracle.ends_samples[BASELINE], oracle.ends_samples[CANDIDATE])
    elif measured is not None and measured.against_baseline is not None:
        comparison, samples = measured.against_baseline, (measured.baseline, measured.samples)
    else:
        return None
    case, spec = runner.case, oracle.spec
    line = CaseMetric(
        case.workload.name, case.case_id, case.size, runner.hardware.name, spec.name, comparison, None,
        (tuple(samples[0]), tuple(samples[1])),
    )  # fmt: skip
    comparison_id = new_run_id()
    baseline_runtime, probe_runtime = probes.runtime_for(BASELINE), probes.runtime_for(label)
    run_ids = {BASE_SIDE: [runner.run_ids[BASELINE]], CANDIDATE_SIDE: [runner.run_ids[label]]}
    evidence = ComparisonReport(
        comparison_id, "attribute", baseline_runtime.name, probe_runtime.name, [line], {}, run_ids, len(samples[0])
    )
    changes = {change.name: change for change in plan.ends.changes}
    moved = [move for name in attribution.culprits for move in changes[name].moves]
    sides = {BASE_SIDE: [dict(row) for row in oracle.rows.get(BASELINE, [])],
             CANDIDATE_SIDE: [dict(row) for row in oracle.rows.get(label, [])]}  # fmt: skip
    common = {
        **record_identity(evidence, sides, {}),
        "baseline_versions": {name: old for name, old, _ in moved},
        "candidate_versions": {name: new for name, _, new in moved},
    }
    rows = record_rows(evidence, common)
    detail = {
        "baseline": plan.ends.baseline,
        "candidate": plan.ends.candidate,
        "changes": [change.line() for change in plan.ends.changes],
        "culprits": attribution.culprits,
        "interaction": attribution.interaction,
        "rule": oracle.rule,
        "probes": [
            {"applied": probe.version, "verdict": str(probe.verdict), "evidence": probe.judgement.evidence,
             "seconds": probe.seconds}
            for probe in attribution.probes
        ],
    }  # fmt: skip
    for row in rows:
        row["detail"]["attribute"] = detail
    return write_record(results, "comparisons", comparison_id, rows)


def _environments(runner: ReleaseRunner | None) -> list[str]:
    if runner is None:
        return []
    shown = []
    for environment in runner.environments.values():
        how = "reused" if environment.reused else f"built in {environment.build_seconds:.0f} s"
        shown.append(f"{environment.runtime.name} ({how})")
    return shown


def next_step(attribution: Attribution, plan: Plan, args: argparse.Namespace, improved: bool = False) -> str | None:
    """For one package (or one lockstep family), the bisect command that names its first bad release — or, for an
    ``improved`` metric, the release where it improved: bisect judges a change for the worse, so the ends swap (the
    new release is the "good" one; bisect refuses the other order and says to swap)."""
    if attribution.status != "found" or len(attribution.culprits) != 1:
        return None
    change = next(change for change in plan.ends.changes if change.name == attribution.culprits[0])
    package, old, new = change.moves[0]
    if old is None or new is None:
        return None  # an added or removed package has no releases to bisect between
    good, bad = (new, old) if improved else (old, new)
    judged = f"--failure={args.failure}" if args.failure else f"--workload={args.workload} --metric={args.metric}"
    where = f" --runtime={plan.baseline_runtime}" if plan.baseline_runtime else ""
    warmup = f" --warmup={args.warmup}" if getattr(args, "warmup", None) is not None else ""
    return f"nox -s bisect -- --package={package} --good={good} --bad={bad}{where} {judged}{warmup}"


def improved(oracle: Any) -> bool:
    """The candidate is better than the baseline on the metric (the ends' A/B said improved)."""
    ends = getattr(oracle, "ends_comparison", None)
    return ends is not None and ends.verdict == vocabulary.Verdict.IMPROVED


def report(
    attribution: Attribution,
    plan: Plan,
    probes: Probes,
    confirmation: str,
    minutes: float,
    built: list[str],
    args: argparse.Namespace,
    saved: Path | None = None,
    narrower: str | None = None,
    better: bool = False,
) -> str:
    from framework.summary import format_table

    rows = [
        [index, probe.version, probe.verdict, probe.judgement.shown, f"{probe.seconds:.0f}"]
        for index, probe in enumerate(attribution.probes, 1)
    ]
    lines = ["", format_table(["probe", "changes applied", "verdict", "measured", "seconds"], rows, max_width=110)]
    for probe in attribution.skipped:
        lines.append(f"skipped (as git bisect skip): {probe.version} — {probe.judgement.evidence}")
    changes = {change.name: change for change in plan.ends.changes}
    if attribution.status == "found":
        named = ", ".join(changes[name].line() for name in attribution.culprits)
        together = " — only together (an interaction)" if attribution.interaction else ""
        lines.append(f"attributed to: {named}{together}")
        if attribution.alone:
            each = ", ".join(f"{name} {verdict}" for name, verdict in attribution.alone.items())
            installs = [name for name, verdict in attribution.alone.items() if verdict == "skip"]
            why = f" — {', '.join(installs)} does not install without the rest" if installs else ""
            lines.append(f"each alone: {each}{why}")
    elif attribution.status == "endpoints":
        lines.append(f"no attribution: {attribution.problem}")
    else:
        narrowest = ", ".join(changes[name].line() for name in attribution.narrowest if name in changes)
        lines.append(f"{attribution.status}: {attribution.problem} — the cause is within: {narrowest}")
    if confirmation:
        lines += confirmation.splitlines()
    lines.append(
        f"environments: {len(built) or len(attribution.probes)} in {minutes:.1f} min"
        + (f" — {'; '.join(built)}" if built else "")
    )
    if saved is not None:
        lines.append(f"comparison record: {saved}")
    step = next_step(attribution, plan, args, better)
    if step:
        lines.append(f"next: {step}" + ("" if args.bisect else "  (or run this again with --bisect)"))
    if narrower:
        lines.append(f"narrow: {narrower}")
    return "\n".join(lines) + "\n"


NARROWED = Path(".blessing") / "attribute"  # the locks of narrowest sets, beside the environments (never results)


def narrowing(attribution: Attribution, plan: Plan, args: argparse.Namespace, root: Path | None = None) -> str | None:
    """After ``undecided`` or ``budget`` with a set smaller than the diff: the command that searches that set alone,
    with twice the rounds (or replays) — its candidate the baseline's lock with the set applied, written to
    ``.blessing/attribute/narrowest-<digest>.txt``. The narrowed search's shares are of that lock's effect."""
    names = frozenset(attribution.narrowest)
    if attribution.status not in ("undecided", "budget") or not names or len(names) >= len(plan.ends.changes):
        return None
    root = root or ROOT
    lock = applied(plan.ends.baseline_lock, plan.ends.named(names))
    path = root / NARROWED / f"narrowest-{digest(lock)[:12]}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_suffix(".txt.partial")
    header = (
        f"# {plan.ends.baseline}'s lock with {plan.ends.describe(names)} as in {plan.ends.candidate}: the cause an"
        " attribution left undecided (nox -s attribute)\n"
    )
    staged.write_text(header + "\n".join(pins(lock)) + "\n", encoding="utf-8")
    staged.replace(path)
    if args.failure:
        judged = f"--failure={args.failure} --times={2 * args.times}"
    else:
        judged = f"--workload={args.workload} --metric={args.metric or 'outcome'} --repeat={2 * args.repeat}"
    options = [f"--hardware={args.hardware}"] if args.hardware != "local" else []
    options += [f"--size={args.size}"] if args.size else []
    options += [f"--warmup={args.warmup}"] if getattr(args, "warmup", None) is not None else []
    shown = path.relative_to(root) if path.is_relative_to(root) else path
    return " ".join(
        ["nox -s attribute --", f"--baseline={plan.ends.baseline}", f"--candidate={shown}", judged, *options]
    )


def document(
    attribution: Attribution, plan: Plan, confirmation: str, minutes: float, built: list[str]
) -> dict[str, object]:
    changes: dict[str, Change] = {change.name: change for change in plan.ends.changes}
    return {
        "status": attribution.status,
        "changes": [
            {"name": name, "moves": [list(move) for move in change.moves], "why": list(change.why)}
            for name, change in changes.items()
        ],
        "culprits": attribution.culprits,
        "interaction": attribution.interaction,
        "alone": dict(attribution.alone),
        "narrowest": attribution.narrowest,
        "problem": attribution.problem or None,
        "confirmation": confirmation or None,
        "minutes": round(minutes, 2),
        "environments": built,
        "probes": [
            {"applied": sorted(probe.applied), "label": probe.version, "verdict": str(probe.verdict),
             "measured": probe.judgement.shown, "why": probe.judgement.evidence, "seconds": round(probe.seconds, 3)}
            for probe in attribution.probes
        ],
    }  # fmt: skip
