"""``matrix``, ``stability``, ``compare``, ``export``, ``reproduce``: the verbs that run workloads (or rerun them).

Each parses its options and calls the pipeline; what it prints is the run's summary.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from framework import step_summary
from framework.cli import dry_run
from framework.cli.json_output import (
    comparison_document,
    emit,
    plain,
    plan_document,
    reproduction_document,
    stdout_to_stderr,
)
from framework.cli.parser import (
    Parser,
    ResultsURL,
    add_dry_run,
    add_json,
    add_rebuild,
    add_results,
    add_warmup,
    bounded_number,
    positive,
    renamed,
    results_location,
    seed,
    shown,
    split,
)
from framework.cli.query import cmd_workloads
from framework.cli.selectors import add_workload_options, expanded, selectors
from framework.config import ROOT
from framework.in_runtime.errors import SelectionError
from framework.metric_catalogue import METRIC_NAMES
from framework.shards import BALANCES, parse_run_group, parse_shard, plan_lines, refuse_split, require_run_group

if TYPE_CHECKING:
    from framework.pipeline import MatrixOptions, MatrixReport


def matrix_parser() -> Parser:
    parser = Parser(prog="nox -s matrix --", description="Run workloads for runtimes × hardware profiles.")
    parser.add_argument("--matrix", default="default", help="matrix in matrices/matrix.yaml (default: default)")
    parser.add_argument("--runtime", action="append", help="runtime name(s), comma separated or repeated")
    parser.add_argument("--hardware", action="append", help="hardware profile name(s)")
    add_workload_options(parser)
    parser.add_argument("--size", help="data size (e.g. tiny, small, large)")
    parser.add_argument("--repeat", type=positive, help="measured repeats per case (overrides the workloads')")
    add_warmup(parser)
    parser.add_argument("--address", help="scheduler address for the 'address' backend, e.g. tcp://10.0.0.5:8786")
    parser.add_argument(
        "--shard", type=parse_shard, metavar="K/N", help="run part K of the plan split into N (see --run-group)"
    )
    parser.add_argument(
        "--run-group",
        type=parse_run_group,
        metavar="ID",
        help="the logical run this one is part of, recorded on every row (default with --shard in GitHub Actions:"
        " gh-$GITHUB_RUN_ID-$GITHUB_RUN_ATTEMPT)",
    )
    parser.add_argument(
        "--balance",
        choices=BALANCES,
        help="split --shard by recorded durations of runs before today (history, default) or by count",
    )
    parser.add_argument(
        "--balance-from",
        type=results_location,
        metavar="DIR|URL",
        help="with --shard: read the durations from this store, not --results (a shard writing a fresh store)",
    )
    add_results(parser)
    add_rebuild(parser)
    add_dry_run(parser, help="print the plan (with --shard: this shard's part and the split), run nothing")
    add_json(parser, help="print the run's summary rows (with --dry-run: the plan) as one JSON document")
    parser.add_argument("--list", action="store_true", help="print the workload catalogue and exit")
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="the summary's Δ cells show the raw change and the noise band beside the verdict (≈ or the change)",
    )
    return parser


def cmd_matrix(argv: Sequence[str]) -> int:
    from framework.matrix import Selection, build_plan
    from framework.pipeline import MatrixOptions, shard_of

    args = matrix_parser().parse_args(argv)
    if args.list:
        return cmd_workloads([])
    selection = Selection(
        matrix=args.matrix,
        runtimes=split(args.runtime),
        hardware=split(args.hardware),
        workloads=selectors(args),
        size=args.size,
        repeat=args.repeat,
        warmup=args.warmup,
    )
    for option, value in (("--balance", args.balance), ("--balance-from", args.balance_from)):
        if value is not None and args.shard is None:
            raise SelectionError(f"{option}={value}: only a split plan is balanced — add --shard=K/N, or drop it")
    if isinstance(args.balance_from, ResultsURL):  # the shared store on object storage: read in place
        from framework.object_store import StoreError, open_store

        try:
            args.balance_from = open_store(str(args.balance_from), writes=False)
        except StoreError as error:
            raise SelectionError(f"--balance-from: {error}") from None
    if args.balance_from is not None and not args.balance_from.is_dir():
        raise SelectionError(
            f"--balance-from={args.balance_from}: not a results directory — pass the store whose history balances"
            " the shards, or drop it (the durations are then read from --results)"
        )
    options = MatrixOptions(
        selection,
        args.results,
        address=args.address,
        rebuild=args.rebuild,
        shard=args.shard,
        # A dry run writes no row: a shard needs no group to show its part (the group only leaves its rows out).
        run_group=args.run_group if args.dry_run else require_run_group(args.run_group, args.shard, os.environ),
        balance=args.balance or "history",
        balance_from=args.balance_from,
    )
    if args.dry_run:
        from framework.config import load_catalog

        plan, the_split = shard_of(options, build_plan(load_catalog(), selection))
        if args.json:
            emit(plan_document(plan.cases, plan.skipped))
            return 0
        if the_split is not None:
            print("\n".join(the_split.describe()))
            print(f"shard {args.shard}: {len(plan.cases)} case(s)")
        print("\n".join(plan_lines(plan.cases)))
        for skipped in plan.skipped:
            print(f"skip {skipped.runtime} × {skipped.hardware} × {skipped.case_id}: {skipped.reason}")
        print("\n".join(dry_run.matrix_plan(plan.cases, ROOT)))
        return 0
    with stdout_to_stderr(args.json):
        report, not_passed, cases = _run_and_summarise(args, options)
    if args.json:
        document = {"run_id": report.run_id, "results": args.results, "unusable": report.unusable, "cases": cases}
        emit(plain(document))
    # Failures are results, recorded and shown; the exit code tells CI that some case did not pass.
    return 1 if not_passed else 0


def _run_and_summarise(args: argparse.Namespace, options: MatrixOptions) -> tuple[MatrixReport, int, list[Any]]:
    """Run the matrix and print its summary (the job summary's too): the report, how many rows did not pass, and
    the summary's rows (``--json`` prints those)."""
    from framework.compaction import compact_if_due
    from framework.config import load_findings
    from framework.findings import guard_outcomes
    from framework.pipeline import run_matrix
    from framework.query import Results
    from framework.summary import run_summary, run_summary_rows, shard_note

    report = run_matrix(options)
    for skipped in report.plan.skipped:
        print(f"skipped {skipped.runtime} × {skipped.hardware} × {skipped.case_id}: {skipped.reason}")
    with Results(args.results) as results:
        print()
        for headline in report.unusable:  # first: the loudest finding (no table of setup errors above it)
            print(headline)
        print(f"run {report.run_id} — results in {shown(args.results)}")
        summary = run_summary(results, report.run_id, verbose=args.verbose)
        print(summary)
        note = None
        if report.shard is not None:  # what this part is part of, and how to see the whole
            note = shard_note(report.run_group or report.run_id, str(report.shard), shown(args.results))
            print(note)
        _, [(not_passed,)] = results.sql(
            "SELECT count(*) FROM rows WHERE run_id = ? AND outcome <> 'passed'", [report.run_id]
        )
        cases = run_summary_rows(results, report.run_id)
        findings = load_findings(root=options.root)
        _, guard_rows = results.sql(
            "SELECT case_id, workload, runtime, outcome, dask_version, distributed_version FROM rows"
            " WHERE run_id = ? AND workload IN (SELECT unnest(?::VARCHAR[])) ORDER BY runtime, case_id",
            [report.run_id, list(findings)],
        )
        names = ("case_id", "workload", "runtime", "outcome", "dask_version", "distributed_version")
        guards = guard_outcomes(findings, [dict(zip(names, row)) for row in guard_rows])
    print(*guards.lines, sep="\n", end="\n" if guards.lines else "")
    # A guard failing where the ledger says it does is a known finding, not news: the exit code is for news.
    not_passed += len(guards.contradicted) - guards.expected_rows
    body = "\n".join([*report.unusable, summary, *([note] if note else []), *guards.lines])
    title = f"Matrix run {report.run_id}" + (f" (shard {report.shard} of {report.run_group})" if note else "")
    step_summary.add(title, body, headline=summary.splitlines()[-1])
    for line in compact_if_due(args.results):
        print(line)
    return report, int(not_passed), cases


def stability_parser() -> Parser:
    parser = Parser(
        prog="nox -s stability --",
        description="Fuzz a runtime's cluster behaviour under faults (hypothesis); replay recorded failures.",
    )
    parser.add_argument("--runtime", action="append", help="runtime name(s), comma separated (default: latest)")
    parser.add_argument("--profile", default="ci", help="budget: ci (minutes) or nightly (hours, shrinking)")
    parser.add_argument("--tier", action="append", help="inprocess and/or process (default: both)")
    parser.add_argument("--examples", type=positive, help="examples per tier (overrides the profile)")
    parser.add_argument("--steps", type=positive, help="steps per example (overrides the profile)")
    parser.add_argument("--seed", type=seed, help="hypothesis seed (default: random; recorded with the results)")
    parser.add_argument(
        "--settle",
        type=bounded_number(0, 3600, "--settle=10"),
        help="seconds futures get to finish once faults stop",
    )
    parser.add_argument("--no-regressions", action="store_true", help="skip the saved regression cases")
    parser.add_argument(
        "--keep-going",
        action="store_true",
        help="fuzz past failures: a batch that fails goes on in a fresh process with the examples left",
    )
    parser.add_argument("--replay", metavar="FAILURE_ID", help="re-run a recorded failure and report its hit rate")
    parser.add_argument("--times", type=positive, default=5, help="replays of --replay (default: 5)")
    parser.add_argument("--no-save", action="store_true", help="with --replay: do not save it as a regression case")
    parser.add_argument(
        "--shrink", action="store_true", help="with --replay: first drop steps while it still fails (delta debugging)"
    )
    add_results(parser)
    add_rebuild(parser)
    add_dry_run(parser, help="print the runtimes, environments, tiers and examples; build and run nothing")
    add_json(parser, help="print the run's table as one JSON document")
    return parser


def cmd_stability(argv: Sequence[str]) -> int:
    from framework.failure_counts import run_signature_lines
    from framework.known_failures import load_known_failures
    from framework.query import Results
    from framework.stability import TIERS, StabilityOptions, replay, run_stability
    from framework.summary import format_table

    args = stability_parser().parse_args(argv)
    if args.json and (args.replay or args.dry_run):
        raise SelectionError("--json prints a stability run's table: not with --replay or --dry-run — drop one")
    if args.replay and args.dry_run:
        print(f"dry run: would replay failure {args.replay} {args.times} time(s); nothing was built or run")
        return 0
    if args.replay:
        runtimes = split(args.runtime)
        replayed = replay(
            args.replay,
            times=args.times,
            results_dir=args.results,
            save=not args.no_save,
            runtime_name=runtimes[0] if runtimes else None,
            shrink_first=args.shrink,
        )
        rate = 100.0 * replayed.hits / replayed.runs if replayed.runs else 0.0
        print(
            f"{replayed.failure_id}: reproduced {replayed.hits}/{replayed.runs} ({rate:.0f} %) on {replayed.runtime!r}"
        )
        for error in dict.fromkeys(replayed.errors):
            print(f"  {error[:300]}")
        if replayed.saved:
            print(f"saved as a regression case: {replayed.saved} (every stability run replays it first; commit it)")
        return 0
    options = StabilityOptions(
        runtimes=split(args.runtime) or ["latest"],
        profile=args.profile,
        tiers=tuple(split(args.tier) or TIERS),
        examples=args.examples,
        steps=args.steps,
        seed=args.seed,
        settle_s=args.settle,
        results_dir=args.results,
        rebuild=args.rebuild,
        regressions=not args.no_regressions,
        keep_going=args.keep_going,
    )
    if args.dry_run:
        print("\n".join(dry_run.stability_plan(options)))
        return 0
    known = load_known_failures(ROOT)  # a bad list stops here, before anything runs
    with stdout_to_stderr(args.json):
        report = run_stability(options)
        for headline in report.unusable:  # first: the cause, not a table
            print(headline)
    with Results(args.results) as results:
        columns, rows = results.sql(
            "SELECT runtime, distributed_version AS distributed, case_id, outcome, round(wall_s, 1) AS wall_s,"
            " CAST(json_extract(extra_metrics, '$.examples') AS INT) AS examples,"
            " CAST(json_extract(extra_metrics, '$.steps') AS INT) AS steps, failure_id,"
            " left(error, 140) AS error FROM rows WHERE run_id = ? ORDER BY runtime, started_at",
            [report.run_id],
        )
    counted = run_signature_lines(args.results, report.run_id, known)
    if args.json:
        batches = [dict(zip(columns, row)) for row in rows]
        document = {"run_id": report.run_id, "results": args.results, "unusable": report.unusable, "rows": batches}
        emit(plain({**document, "signatures": counted[1:]}))
        return 1 if not rows or any(row[3] != "passed" for row in rows) else 0
    print()
    print(f"stability run {report.run_id} — results in {shown(args.results)}")
    print(format_table(columns, rows, max_width=150, missing="–"))
    print(*counted, sep="\n", end="\n" if counted else "")
    if not rows:  # a run that recorded nothing tested nothing: never a pass
        print(f"stability run {report.run_id} recorded no batch — nothing was tested; see the lines above for why")
        return 1
    failed = [row for row in rows if row[3] != "passed"]
    for row in failed:
        if row[7]:
            print(f"replay: nox -s stability -- --replay={row[7]}")
    return 1 if failed else 0


def compare_parser() -> Parser:
    parser = Parser(
        prog="nox -s compare --",
        description="A/B: run two sides interleaved (or take stored results) and judge every case × metric.",
    )
    parser.add_argument("--baseline", required=True, help="RUNTIME[@HARDWARE], e.g. stable or stable@local-threads")
    parser.add_argument("--verbose", action="store_true", help="list the unchanged case × metric pairs too")
    parser.add_argument("--candidate", required=True, help="RUNTIME[@HARDWARE]; the same as --baseline for A/A")
    parser.add_argument("--baseline-config", action="append", default=[], metavar="KEY=VALUE", help="Dask config")
    parser.add_argument("--candidate-config", action="append", default=[], metavar="KEY=VALUE", help="Dask config")
    parser.add_argument("--hardware", default="local", help="hardware profile of sides without @HARDWARE")
    add_workload_options(parser, "workload name(s) (default: the matrix's), with --from-results also case ids,")
    parser.add_argument("--matrix", default="default", help="matrix whose workloads and size are the default")
    parser.add_argument("--size", help="data size (default: the matrix's)")
    parser.add_argument(
        "--rounds",
        type=positive,
        default=5,
        help="interleaved rounds A B | B A …; each measures every case once per side (default: 5)",
    )
    renamed(parser, "--repeat", "--rounds", "interleaved rounds; --repeat is measured repeats per case elsewhere")
    add_warmup(parser)
    parser.add_argument("--until-decided", action="store_true", help="add rounds until every metric is decided")
    parser.add_argument("--budget", type=positive, default=30, help="most rounds with --until-decided (default 30)")
    parser.add_argument(
        "--time-budget",
        type=bounded_number(0, 7 * 86400, "--time-budget=3600", low_allowed=False),
        metavar="SECONDS",
        help="stop adding rounds after this long (at most a week)",
    )
    parser.add_argument("--metric", action="append", help=f"{', '.join(METRIC_NAMES)} (default: all)")
    parser.add_argument("--min-effect", action="append", help="smallest change that matters, e.g. wall=10%%")
    parser.add_argument("--alpha", type=float, default=0.01, help="false-alarm rate per comparison (default 0.01)")
    parser.add_argument("--from-results", action="store_true", help="compare stored rows; run nothing")
    parser.add_argument("--baseline-where", help="with --from-results: SQL filter of the baseline's rows")
    parser.add_argument("--candidate-where", help="with --from-results: SQL filter of the candidate's rows")
    parser.add_argument("--all-runs", action="store_true", help="with --from-results: pool every run, not the newest")
    parser.add_argument(
        "--across-machines",
        action="store_true",
        help="with --from-results: compare sides that ran on different machine classes (refused otherwise)",
    )
    parser.add_argument(
        "--machines", type=Path, help="with --from-results: machine classes and pools (default matrices/machines.yaml)"
    )
    parser.add_argument("--address", help="scheduler address for the 'address' backend")
    add_results(parser)
    add_rebuild(parser)
    add_dry_run(parser, help="print the sides, cases, environments and executions; build and run nothing")
    add_json(parser, help="print the comparison as one JSON document (counts, and each case × metric)")
    return parser


def cmd_compare(argv: Sequence[str]) -> int:
    from framework import compare, compare_stored
    from framework.config import load_catalog
    from framework.machines import MACHINES_FILE
    from framework.stats import parse_effects

    refuse_split("compare", argv)
    args = compare_parser().parse_args(argv)
    if not 0 < args.alpha < 0.5:
        raise SelectionError(f"--alpha={args.alpha} is not between 0 and 0.5 — use e.g. --alpha=0.01")
    metrics = compare.metric_names(split(args.metric))
    effects = parse_effects(args.min_effect)
    if args.json and args.dry_run:
        raise SelectionError("--json with --dry-run: a plan is text, not a table — drop one of them")
    if args.from_results and args.dry_run:
        print(
            f"dry run: --from-results builds and runs nothing: it would compare the stored rows of {args.baseline}"
            f" and {args.candidate} in {shown(args.results)}; nothing was built or run"
        )
        return 0
    if args.from_results:
        report = compare_stored.from_results(
            args.results,
            (args.baseline, args.baseline_where or compare_stored.side_filter(args.baseline)),
            (args.candidate, args.candidate_where or compare_stored.side_filter(args.candidate)),
            metrics=metrics,
            min_effects=effects,
            alpha=args.alpha,
            latest_only=not args.all_runs,
            workloads=expanded(selectors(args), load_catalog(), names=False),
            across_machines=args.across_machines,
            machines_file=args.machines or MACHINES_FILE,
        )
    else:
        catalog = load_catalog()
        baseline = compare.resolve_side(args.baseline, catalog, args.hardware, args.baseline_config)
        candidate = compare.resolve_side(args.candidate, catalog, args.hardware, args.candidate_config)
        cases, skipped = compare.plan_cases(catalog, baseline, selectors(args), args.size, args.matrix, args.warmup)
        for reason in skipped:
            print(f"skipped {reason}", file=sys.stderr if args.json else sys.stdout)
        if args.dry_run:
            budget = args.budget if args.until_decided else None
            sides = ((baseline.label, baseline.runtime), (candidate.label, candidate.runtime))
            print("\n".join(dry_run.compare_plan(*sides, cases, args.rounds, budget, ROOT)))
            return 0
        options = compare.CompareOptions(
            baseline,
            candidate,
            cases,
            args.results,
            repeat=args.rounds,
            until_decided=args.until_decided,
            budget=args.budget,
            time_budget_s=args.time_budget,
            metrics=metrics,
            min_effects=effects,
            alpha=args.alpha,
            address=args.address,
            rebuild=args.rebuild,
        )
        report = compare.run_interleaved(options)
    text = compare.compare_text(report, verbose=args.verbose)
    if args.json:
        emit(comparison_document(report))
    else:
        print()
        print(text)
    step_summary.add(f"Comparison {report.comparison_id}", text, headline=text.splitlines()[-1])
    failed = report.failures(compare.CANDIDATE)
    # Regressions and candidate failures are findings, recorded and shown; the exit code tells CI.
    return 1 if report.regressed or failed else 0


def cmd_export(argv: Sequence[str]) -> int:
    """A runtime's lock (resolved today, or as a run recorded it) as a file a production user installs."""
    from framework import export
    from framework.config import load_catalog

    parser = Parser(
        prog="nox -s export --",
        description="Write a runtime's lock as a file to install in production.",
        results_read_only=True,
    )
    parser.add_argument("--runtime", help="runtime in matrices/runtimes.yaml, resolved today (with --run: which one)")
    parser.add_argument("--format", default="requirements", help="requirements (with hashes, default) or pylock")
    parser.add_argument("--out", type=Path, help="file to write (default: exports/<runtime>-requirements.txt or"
                        " exports/pylock.<runtime>.toml)")  # fmt: skip
    parser.add_argument(
        "--run", metavar="RUN_ID", help="export the lock this run (or run group) recorded instead of resolving today"
    )
    add_results(parser, help="results directory (for --run)")
    args = parser.parse_args(argv)
    export.check_format(args.format, args.out)
    if args.run:
        exported = export.export_run(args.results, args.run, ROOT, args.format, args.out, args.runtime)
    elif args.runtime:
        runtime = load_catalog().runtime(args.runtime)
        exported = export.export_runtime(runtime, ROOT, args.format, args.out)
    else:
        raise SelectionError("nothing to export — give --runtime=NAME (resolved today) or --run=RUN_ID (a run's lock)")
    packages = exported.packages
    print(
        f"{exported.runtime}: {len(packages)} package{'s' if len(packages) != 1 else ''}"
        f" (dask {packages.get('dask', '–')},"
        f" distributed {packages.get('distributed', '–')}), {exported.source}"
    )
    if exported.note:
        print(f"  note: {exported.note}")
    print(f"wrote {export.shown_path(exported.path)} ({export.FORMATS[exported.format]})")
    also = f"  (or: pip install --require-hashes -r {export.shown_path(exported.path)})"
    print(f"install it with: {exported.install_command()}{also if exported.format == 'requirements' else ''}")
    return 0


def cmd_reproduce(argv: Sequence[str]) -> int:
    """Rebuild a recorded run's environment from its stored lock, run its cases again, print recorded vs now."""
    from framework.reproduce import ReproduceOptions, format_report, reproduce

    parser = Parser(
        prog="nox -s reproduce --",
        description="Rebuild a recorded run's exact environment from its stored lock and run its cases again.",
    )
    parser.add_argument(
        "--run", required=True, metavar="RUN_ID", help="the run (or run group) to reproduce (see the runs view)"
    )
    parser.add_argument("--case", action="append", help="case id(s) of the run, comma separated (default: all)")
    parser.add_argument("--repeat", type=positive, help="measured repeats per case (default: as recorded)")
    parser.add_argument("--address", help="scheduler address, when the run's hardware is an 'address' profile")
    add_results(parser)
    add_rebuild(parser, help="rebuild the environment even if it still exists")
    add_dry_run(parser, help="print the recorded environments, cases and executions; build and run nothing")
    add_json(parser, help="print recorded against now as one JSON document")
    args = parser.parse_args(argv)
    if args.json and args.dry_run:
        raise SelectionError("--json with --dry-run: a plan is text, not a table — drop one of them")
    options = ReproduceOptions(
        args.run, args.results, split(args.case), args.repeat, address=args.address, rebuild=args.rebuild
    )
    if args.dry_run:
        print("\n".join(dry_run.reproduce_plan(options)))
        return 0
    with stdout_to_stderr(args.json):
        report = reproduce(options)
    if args.json:
        emit(reproduction_document(report))
        return 1 if report.unusable is not None or any(o.not_passed for o in report.outcomes) else 0
    if report.unusable is not None:
        print(report.unusable)
        return 1
    print()
    print(format_report(report))
    print(f"results in {shown(args.results)}")
    # Failures are results, recorded and shown; the exit code tells CI that some case did not pass.
    return 1 if any(outcome.not_passed for outcome in report.outcomes) else 0
