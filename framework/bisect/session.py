"""``nox -s bisect``: the first release of a package where a workload got worse, failed, or a failure appeared.

    releases from good to bad (package index) → a runtime per release, the rest held → binary search → evidence

Exit 0 when a first bad (or first fixed) release is named; 1 when the ends are not good and bad as claimed, or
untestable releases leave a range; 2 for a mistake on the command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from framework.bisect.oracles import (
    ALPHA,
    MetricOracle,
    Oracle,
    OutcomeOracle,
    ReleaseRunner,
    ReplayOn,
    StabilityOracle,
)
from framework.bisect.search import Judgement, Search, find_boundary, oracle_calls_bound
from framework.config import ROOT, Catalog, load_catalog
from framework.engine import new_run_id, prepare_environment, say
from framework.environments import existing_environment
from framework.in_runtime.errors import FrameworkError, near_miss
from framework.in_runtime.redaction import masked_note, without_masked
from framework.matrix import Case, expand_workload, hardware_problem
from framework.metric_catalogue import METRIC_NAMES, MetricSpec, metric
from framework.models import HardwareProfile, Runtime
from framework.progress import Progress
from framework.releases import (
    Hold,
    ReleaseRange,
    derived_runtime,
    index_url,
    list_releases,
    moved_packages,
    package_keys,
    select_range,
)
from framework.results import ResultsStore
from framework.stats import smallest_p


class BisectError(FrameworkError):
    """A bisection was asked for something that cannot be done (missing option, case or package)."""


def select_case(catalog: Catalog, text: str, size: str | None) -> Case:
    """``--workload``: a workload with one case at this size, or one case id of it."""
    name = text.split("[", 1)[0]
    if name not in catalog.workloads:
        raise BisectError(f"--workload={text}: {near_miss(name, catalog.workloads, 'workload')}")
    cases, reason = expand_workload(catalog.workloads[name], size)
    if reason:
        raise BisectError(f"--size={size}: workload {name} {reason} — pick one of them")
    chosen = [case for case in cases if case.case_id == text] if "[" in text else cases
    if len(chosen) != 1:
        ids = ", ".join(case.case_id for case in cases)
        raise BisectError(f"--workload={text}: bisect one case — pick one of {ids} (quote it in the shell)")
    return chosen[0]


def judged_case(
    args: argparse.Namespace, catalog: Catalog, record: dict[str, Any] | None
) -> tuple[Case | None, HardwareProfile | None]:
    """The case (``--workload``, ``--size``) on the profile (``--hardware``) that judges each environment; none when
    a failure's replays judge instead (``record``)."""
    if record is not None:
        return None, None
    case = select_case(catalog, args.workload, args.size)
    if getattr(args, "warmup", None) is not None:
        case = dataclasses.replace(case, workload=case.workload.model_copy(update={"warmup": args.warmup}))
    hardware = catalog.hardware_profile(args.hardware)
    problem = hardware_problem(case.workload, hardware)
    if problem:
        raise BisectError(f"--hardware={args.hardware}: {case.workload.name} {problem} — pick another profile")
    return case, hardware


def failure_to_replay(failure_id: str, results_dir: Path, root: Path) -> dict[str, Any]:
    """The record to replay: a failure recorded in the results, or a regression case under workloads/."""
    from framework.stability import failure_record, load_regressions

    case = next((case for case in load_regressions(root) if case.id == failure_id), None)
    if case is not None:
        return {
            "failure_id": case.id,
            "kind": "regression",
            "error": case.description,
            "program": case.program,
            "settle_s": case.settle_s,
            "tier": case.tier,
            "runtime": case.found.get("runtime"),
        }
    failures = results_dir / "stability" / "failures"
    if (failures / failure_id / "failure.json").exists():
        return failure_record(results_dir, failure_id)
    known = [case.id for case in load_regressions(root)]
    if failures.exists():
        known += [path.name for path in failures.iterdir() if (path / "failure.json").exists()]
    raise BisectError(
        f"--failure={failure_id}: {near_miss(failure_id, known, 'failure or regression case id')} — list them with"
        ' nox -s sql -- "SELECT failure_id, runtime, error FROM rows WHERE failure_id IS NOT NULL"'
        " or ls workloads/regressions"
    )


def _base_runtime(args: argparse.Namespace, catalog: Catalog, record: dict[str, Any] | None) -> Runtime:
    if args.runtime:
        return catalog.runtime(args.runtime)
    if record is None:
        return catalog.runtime("latest")
    if record.get("runtime") in catalog.runtimes:
        return catalog.runtimes[str(record["runtime"])]
    if record.get("runtime_spec"):
        spec, dropped = without_masked(record["runtime_spec"])
        if dropped:
            say(masked_note(f"failure {args.failure}'s runtime {record['runtime']!r}", dropped))
        return Runtime.model_validate({**spec, "name": record["runtime"]})
    raise BisectError(
        f"--failure={args.failure}: its runtime {record.get('runtime')!r} is not in matrices/runtimes.yaml"
        " — give the runtime to put the releases into with --runtime=NAME"
    )


def _check_options(args: argparse.Namespace) -> MetricSpec | None:
    if args.sweep:
        if args.failure or not args.workload:
            raise BisectError("--sweep measures a workload on every release — give --workload=NAME, not --failure")
        return metric(args.metric) if args.metric and args.metric != "outcome" else None
    if args.failure and (args.workload or args.metric):
        raise BisectError("--failure with --workload/--metric: bisect either a failure or a workload — drop one")
    if not args.failure and not (args.workload and args.metric):
        raise BisectError(
            "nothing to judge releases by — give --workload=NAME --metric=peak_memory (or"
            f" {', '.join(name for name in METRIC_NAMES if name != 'peak_memory')}, outcome), or --failure=ID"
        )
    if args.failure or args.metric == "outcome":
        return None
    spec = metric(args.metric)
    if smallest_p(args.repeat, args.repeat) >= ALPHA:
        raise BisectError(
            f"--repeat={args.repeat}: {args.repeat} vs {args.repeat} repeats can never reach p < {ALPHA:g}"
            " in the A/B of the ends — use --repeat=5 or more"
        )
    return spec


def _check_package(package: str, base: Runtime, lock: dict[str, str] | None) -> None:
    name = canonicalize_name(package)
    known = set(package_keys(base)) | set(lock or {})
    if name not in known:
        fix = "declare it in the runtime" + ("" if lock is not None else ", or use --hold=lock")
        raise BisectError(
            f"--package={package}: not in runtime {base.name!r} — {fix}; {near_miss(name, known, 'package')}"
        )


@dataclasses.dataclass(frozen=True)
class Bisection:
    """Everything decided before the first build: what moves, over which releases, judged how."""

    package: str
    moved: list[str]
    base: Runtime
    span: ReleaseRange
    hold: Hold
    lock: dict[str, str] | None
    spec: MetricSpec | None  # None: outcome or stability
    case: Case | None  # None: stability
    hardware: HardwareProfile | None
    record: dict[str, Any] | None  # the stability failure to replay

    def runtime_for(self, version: str) -> Runtime:
        release = next(release for release in self.span.releases if str(release) == version)
        return derived_runtime(self.base, self.moved, release, self.hold, self.lock)


def plan_bisection(args: argparse.Namespace, root: Path = ROOT) -> Bisection:
    """Check the options, list the releases, read the base runtime's lock: every mistake before any run."""
    spec = _check_options(args)
    catalog = load_catalog(root)
    record = failure_to_replay(args.failure, args.results, root) if args.failure else None
    base = _base_runtime(args, catalog, record)
    case, hardware = judged_case(args, catalog, record)
    moved = moved_packages(args.package, base, args.alone)
    index = index_url()
    say(f"bisect: releases of {' and '.join(moved)} from {index} …")
    companions = {name: list_releases(name, index) for name in moved[1:]}
    span = select_range(args.package, list_releases(args.package, index), args.good, args.bad, base.python, companions)
    lock = None
    if args.hold == "lock" and getattr(args, "dry_run", False):  # a dry run builds nothing: an existing build only
        found = existing_environment(base, root)
        lock = found.packages if found is not None else None
    elif args.hold == "lock":
        store = ResultsStore(args.results)
        lock = prepare_environment(base, root, store, args.rebuild, dt.datetime.now(dt.timezone.utc)).packages
    _check_package(args.package, base, lock)
    return Bisection(args.package, moved, base, span, args.hold, lock, spec, case, hardware, record)


def run_bisection(args: argparse.Namespace, answer: dict[str, object] | None = None) -> int:
    """Plan, search, print the steps and the answer (``nox -s bisect``'s options in ``args``); 0 when one release
    is named, 1 when the ends are not as claimed or untestable releases leave a range. ``answer`` (``--json``)
    receives the steps and the answer as data."""
    plan = plan_bisection(args)
    say(describe_range(plan, sweeping=args.sweep))
    if getattr(args, "dry_run", False):
        sys.stdout.write(dry_run_text(plan, args) + "\n")
        return 0
    derived: dict[str, Runtime] = {}

    def runtime_for(version: str) -> Runtime:
        return derived.setdefault(version, plan.runtime_for(version))

    if args.sweep:
        from framework.bisect import sweep

        assert plan.case is not None and plan.hardware is not None
        measure = ReleaseRunner(plan.case, plan.hardware, args.results, ROOT, args.rebuild)
        return sweep.run_and_print(args, plan.span.versions, measure, runtime_for)
    oracle: Oracle
    runner = None
    if plan.record is not None:
        replay_on = replayer(plan.record, args.times, args.results, ROOT)
        oracle = StabilityOracle(plan.record["failure_id"], replay_on, runtime_for)
    else:
        assert plan.case is not None and plan.hardware is not None
        runner = ReleaseRunner(plan.case, plan.hardware, args.results, ROOT, args.rebuild)
        if plan.spec is None:
            oracle = OutcomeOracle(args.repeat, runner, runtime_for)
        else:
            oracle = MetricOracle(plan.spec, args.repeat, runner, runtime_for)
    versions = plan.span.versions
    # Steps: each end, each release the binary search tries, and (for a metric) the A/B at the boundary — an
    # estimate: skipped releases add steps, an early answer saves some.
    boundary_steps = 1 if isinstance(oracle, MetricOracle) else 0
    estimate = oracle_calls_bound(len(versions)) + boundary_steps
    with Progress("bisect", estimate, "steps", bound="about") as progress:
        progress.advance(0, current=f"the ends, {versions[0]} and {versions[-1]}")
        known = oracle.endpoints(versions[0], versions[-1])
        progress.advance(len(known))

        def classify(version: str) -> Judgement:
            progress.advance(0, current=f"testing {version}")
            judgement = oracle.classify(version)
            progress.advance(1)
            return judgement

        search = find_boundary(versions, classify, known, progress=say)
        evidence, saved, caution = "", None, None
        if search.last_good is not None and search.first_bad is not None:
            progress.advance(0, current=f"the boundary, {search.last_good} and {search.first_bad}")
            evidence = oracle.boundary(search.last_good, search.first_bad)
            caution = oracle.caution(search.last_good) if isinstance(oracle, StabilityOracle) else None
            progress.advance(boundary_steps)
            if isinstance(oracle, MetricOracle) and runner is not None and oracle.comparison is not None:
                saved = save_comparison(oracle, runner, search, plan.package, runtime_for, args.results)
    label = "replays" if plan.record else ("outcome" if plan.spec is None else f"{plan.spec.label} (median)")
    sys.stdout.write(report(search, plan.span, plan.package, label, evidence, saved, caution))
    if answer is not None:
        answer.update(document(search, plan.span, plan.package, label, evidence, saved))
        answer["caution"] = caution
    return 0 if search.status == "found" else 1


def document(
    search: Search, span: ReleaseRange, package: str, label: str, evidence: str, saved: Path | None
) -> dict[str, object]:
    """``--json``: the steps and the answer, as :func:`report` prints them."""
    ascending = span.ascending
    return {
        "package": package,
        "direction": "first bad" if ascending else "first fixed",
        "status": search.status,
        "last_good": search.last_good,
        "first_bad": search.first_bad,
        "untested": list(search.untested),
        "problem": search.problem or None,
        "evidence": evidence or None,
        "comparison_record": str(saved) if saved is not None else None,
        "steps": [
            {"version": step.version, "verdict": str(step.verdict), label: step.judgement.shown,
             "why": step.judgement.evidence, "seconds": round(step.seconds, 3)}
            for step in search.steps
        ],
    }  # fmt: skip


def save_comparison(
    oracle: MetricOracle,
    runner: ReleaseRunner,
    search: Search,
    package: str,
    runtime_for: Callable[[str], Runtime],
    results_dir: Path,
) -> Path | None:
    """The A/B at the boundary as a ``comparisons`` record (mode ``bisect``), the whole search in its detail."""
    from framework.compare import BASELINE, CANDIDATE, CaseMetric, ComparisonReport, record_identity, record_rows
    from framework.records import write_record

    good, bad = search.last_good, search.first_bad
    assert good is not None and bad is not None and oracle.comparison is not None
    case, samples = runner.case, (tuple(oracle.boundary_samples[good]), tuple(oracle.boundary_samples[bad]))
    line = CaseMetric(
        case.workload.name, case.case_id, case.size, runner.hardware.name, oracle.spec.name, oracle.comparison,
        None, samples,
    )  # fmt: skip
    comparison_id = new_run_id()
    run_ids = {BASELINE: [runner.run_ids[good]], CANDIDATE: [runner.run_ids[bad]]}
    boundary = ComparisonReport(
        comparison_id, "bisect", runtime_for(good).name, runtime_for(bad).name, [line], {}, run_ids, len(samples[0])
    )

    def versions(version: str) -> dict[str, str | None]:
        packages = runner.environments[runtime_for(version).name].packages
        names = dict.fromkeys([canonicalize_name(package), "dask", "distributed", "pandas", "pyarrow", "numpy"])
        return {name: packages.get(name) for name in names}

    sides = {BASELINE: [dict(row) for row in oracle.rows[good]], CANDIDATE: [dict(row) for row in oracle.rows[bad]]}
    common = {
        **record_identity(boundary, sides, {}),
        "baseline_versions": versions(good),  # the bisected package too
        "candidate_versions": versions(bad),
    }
    rows = record_rows(boundary, common)
    steps = [
        {"version": s.version, "verdict": s.verdict, "evidence": s.judgement.evidence, "seconds": s.seconds}
        for s in search.steps
    ]
    for row in rows:
        row["detail"]["bisect"] = {"package": package, "rule": oracle.rule, "steps": steps, "status": search.status}
    return write_record(results_dir, "comparisons", comparison_id, rows)


def replayer(record: dict[str, Any], times: int, results_dir: Path, root: Path) -> ReplayOn:
    from framework.stability import replay

    def replay_on(version: str, runtime: Runtime) -> tuple[int, int, list[str]]:
        spec = runtime.model_dump(mode="json", exclude={"name"})
        on_release = {**record, "runtime": runtime.name, "runtime_spec": spec}
        replayed = replay(
            record["failure_id"],
            times=times,
            results_dir=results_dir,
            root=root,
            save=False,
            record=on_release,
            until_hit=True,
        )
        return replayed.hits, replayed.runs, replayed.errors

    return replay_on


def dry_run_text(plan: Bisection, args: argparse.Namespace) -> str:
    """What the bisection would build and run: releases (each its own environment) × executions per release."""
    count = len(plan.span.versions)
    if args.sweep:
        releases, each = count, args.passes * args.repeat
        how = f"every one of {count} release(s), {args.passes} pass(es) × {args.repeat} repeat(s)"
    else:
        releases = min(count, oracle_calls_bound(count))
        each = args.times if plan.record is not None else args.repeat
        unit = "replay(s)" if plan.record is not None else "repeat(s)"
        how = f"about {releases} of {count} release(s) (both ends, then halving), {each} {unit} each"
    subject = (
        f"failure {plan.record['failure_id']}" if plan.record is not None else plan.case.case_id if plan.case else ""
    )
    return (
        f"dry run: {subject}: {how} — up to {releases} environment(s) built (reused where one exists) and about"
        f" {releases * each} execution(s); nothing was built or run"
    )


def describe_range(plan: Bisection, sweeping: bool = False) -> str:
    span = plan.span
    direction = "first bad" if span.ascending else "first fixed"
    aim = "measuring every one" if sweeping else f"looking for the {direction} release"
    held = "pinned as in its environment" if plan.hold == "lock" else "as declared, as of each release's day"
    lines = [
        f"bisect: {' and '.join(plan.moved)} {span.versions[0]} (good) → {span.versions[-1]} (bad),"
        f" {len(span.releases) - 2} release(s) between; {aim}; in runtime"
        f" {plan.base.name!r}, other packages {held}"
    ]
    lines += [f"  not tried: {version} — {reason}" for version, reason in span.dropped]
    return "\n".join(lines)


def report(
    search: Search,
    span: ReleaseRange,
    package: str,
    label: str,
    evidence: str,
    saved: Path | None,
    caution: str | None = None,
) -> str:
    """The table of steps and the answer, in words."""
    from framework.summary import format_table

    rows = [
        [index, step.version, step.verdict, step.judgement.shown, f"{step.seconds:.0f}"]
        for index, step in enumerate(search.steps, 1)
    ]
    lines = ["", format_table(["step", "version", "verdict", label, "seconds"], rows, max_width=100)]
    if search.status == "endpoints":
        lines.append(f"no bisection: {search.problem}")
        return "\n".join(lines) + "\n"
    good, bad = search.last_good, search.first_bad
    if search.status == "ambiguous":
        untested = ", ".join(search.untested)
        first = f"one of {untested}, {bad}" if span.ascending else f"one of {good}, {untested}"
        lines.append(f"no single release: the change is in {package} {first} (untested releases: {untested})")
    elif span.ascending:
        lines.append(f"first bad release: {package} {bad} (last good {good})")
    else:
        lines.append(f"first fixed release: {package} {good} (last bad {bad})")
    lines.append(f"evidence: {evidence}")
    if caution is not None:
        lines.append(f"caution: {caution}")
    if saved is not None:
        lines.append(f"comparison record: {saved}")
    return "\n".join(lines) + "\n"
