"""The matrix run, as a pipeline of small steps:

    load config → expand matrix → take this shard's part → build environment → run on a cluster → write results
    → summarise

This is the controller: it runs in the nox session's own environment. Each runtime × hardware group of cases
runs through the run engine (``framework.engine``); the measuring happens in a child process
(``framework.in_runtime.runner``) inside each runtime's environment.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

from framework.config import ROOT, Catalog, load_catalog
from framework.engine import CaseGroup, new_run_id, prepare_environment, run_group, say
from framework.environments import BuiltEnvironment
from framework.in_runtime import provenance
from framework.in_runtime.errors import SelectionError
from framework.locks import LockDiff, diff_since_previous, record_lock_diff
from framework.matrix import Plan, Selection, build_plan
from framework.progress import Progress
from framework.results import ResultsStore
from framework.salvage import salvage
from framework.shards import Shard, Split, recorded_durations, split_plan


@dataclasses.dataclass(frozen=True)
class MatrixOptions:
    selection: Selection
    results_dir: Path
    root: Path = ROOT
    address: str | None = None
    rebuild: bool = False
    shard: Shard | None = None  # run only this part of the plan (--shard=K/N)
    run_group: str | None = None  # the logical run this one belongs to (default: its own run id)
    balance: str = "history"  # how the shards are balanced: history (recorded durations) or count
    balance_from: Path | None = None  # the store whose durations balance the shards (default: results_dir)


def shard_of(options: MatrixOptions, plan: Plan) -> tuple[Plan, Split | None]:
    """This run's part of the plan (all of it, unsharded) and the whole split."""
    if options.shard is None:
        return plan, None
    durations = None
    if options.balance == "history":
        durations = recorded_durations(options.balance_from or options.results_dir, options.run_group)
    split = split_plan(plan, options.shard.count, durations, options.balance)
    return split.part(plan, options.shard), split


@dataclasses.dataclass
class MatrixReport:
    run_id: str
    plan: Plan  # this run's cases: with a shard, its part of the plan
    published: list[Path] = dataclasses.field(default_factory=list)
    environments: list[BuiltEnvironment] = dataclasses.field(default_factory=list)
    not_passed: int = 0
    lock_diffs: dict[str, LockDiff] = dataclasses.field(default_factory=dict)
    run_group: str | None = None
    shard: Shard | None = None
    split: Split | None = None

    @property
    def unusable(self) -> list[str]:
        """``latest is UNUSABLE: …`` for each runtime whose health check failed: the summary's first lines."""
        return [
            environment.health.headline(environment.runtime.name)
            for environment in self.environments
            if environment.health is not None and not environment.health.usable
        ]


def run_matrix(options: MatrixOptions, catalog: Catalog | None = None) -> MatrixReport:
    """Plan, build, run and publish. Raises FrameworkError for bad input before anything runs."""
    catalog = catalog or load_catalog(options.root)
    plan, split = shard_of(options, build_plan(catalog, options.selection))
    if not plan.cases:
        reasons = "; ".join(f"{s.case_id} on {s.hardware}: {s.reason}" for s in plan.skipped[:3])
        raise SelectionError(
            f"the selection matches no case to run{' (' + reasons + ')' if reasons else ''}"
            " — widen --workload/--hardware/--size, or check with --dry-run"
        )
    store = ResultsStore(options.results_dir)
    salvaged = salvage(store)
    if salvaged:
        say(f"recovered {len(salvaged)} result file(s) left by an interrupted run")
    run_started = dt.datetime.now(dt.timezone.utc)
    report = MatrixReport(new_run_id(run_started), plan, shard=options.shard, split=split)
    report.run_group = options.run_group or report.run_id
    if split is not None:
        for line in split.describe():
            say(line)
        say(f"this is shard {options.shard} of run group {report.run_group}: {len(plan.cases)} case(s)")
    git = provenance.git_commit(options.root)

    built: dict[str, BuiltEnvironment] = {}
    executions = sum(planned.case.workload.warmup + planned.case.workload.repeats for planned in plan.cases)
    with Progress("matrix", executions, "executions") as progress:
        for runtime, hardware, cases in plan.groups():
            if runtime.name not in built:
                with progress.setup(f"environment for {runtime.name}"):
                    built[runtime.name] = prepare_environment(
                        runtime, options.root, store, options.rebuild, run_started, report.run_id
                    )
                report.environments.append(built[runtime.name])
                diff = diff_since_previous(options.results_dir, built[runtime.name], report.run_id, run_started)
                if diff is not None:
                    record_lock_diff(options.results_dir, report.run_id, diff, run_started)
                    report.lock_diffs[runtime.name] = diff
                    say(f"  lock {diff.line()}")
            say(f"running {len(cases)} case(s) of runtime {runtime.name!r} on hardware {hardware.name!r} …")
            group = CaseGroup(built[runtime.name], hardware, cases)
            published, _ = run_group(
                group,
                report.run_id,
                run_started,
                store,
                options.root,
                options.address,
                git,
                progress,
                run_group_id=report.run_group,
                shard=str(options.shard) if options.shard else None,
            )
            if published is not None:
                report.published.append(published)
    return report
