"""``regressions``, ``bisect``, ``bless``, ``guard``: the verbs that judge what the results hold.

Each parses its options and calls its feature (history, bisect, blessing, promotion); what it prints is the
judgement, and its exit code says whether it passed.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from framework import step_summary
from framework.cli.json_output import emit, scan_document, stdout_to_stderr, verdict_document
from framework.cli.parser import (
    Parser,
    add_dry_run,
    add_json,
    add_rebuild,
    add_results,
    add_warmup,
    fraction,
    persistence,
    positive,
    split,
)
from framework.cli.selectors import TAG_PREFIX, add_workload_options, by_tag, selectors, single
from framework.config import ROOT, load_catalog
from framework.in_runtime.errors import SelectionError
from framework.metric_catalogue import METRIC_NAMES
from framework.shards import refuse_split

if TYPE_CHECKING:
    from framework.blessing import Exporter
    from framework.evidence import Runners


def regressions_parser() -> Parser:
    from framework.accepted import ACCEPTED_FILE

    parser = Parser(prog="nox -s regressions --", description="Find change points in the results' history.")
    add_results(parser)
    parser.add_argument("--along", choices=["date", "version"], default="date", help="order runs by date or version")
    parser.add_argument("--package", default="dask", help="whose versions --along=version orders by (default dask)")
    parser.add_argument("--metric", action="append", help=f"{', '.join(METRIC_NAMES)} (default: all)")
    add_workload_options(parser, "workload name(s) or case id(s)")
    parser.add_argument("--hardware", action="append", help="hardware profile name(s)")
    parser.add_argument("--runtime", action="append", help="runtime name(s); * matches any text, e.g. 'bisect-*'")
    parser.add_argument("--alpha", type=fraction, default=0.01, help="false alarms per series (default 0.01)")
    parser.add_argument("--persistence", type=persistence, default=2, help="runs a change must last (default 2)")
    parser.add_argument("--min-effect", action="append", help="per metric, e.g. wall=10%%,peak_memory=5%%")
    parser.add_argument("--accepted", type=Path, default=ACCEPTED_FILE, help="accepted changes (YAML)")
    parser.add_argument("--machines", type=Path, help="machine classes and pools (default matrices/machines.yaml)")
    parser.add_argument("--markdown", type=Path, help="Markdown summary (default: RESULTS/regressions.md)")
    parser.add_argument("--fail-on", choices=["new", "open", "never"], default="new", help="exit 1 on (default new)")
    add_json(parser, help="print the scan as one JSON document (every finding with its change and interval)")
    return parser


def cmd_regressions(argv: Sequence[str]) -> int:
    """Scan, print, write the Markdown summary; exit 1 on a new (--fail-on) regression."""
    from framework.history import ScanOptions, failing, report_text, scan, write_summary
    from framework.machines import MACHINES_FILE
    from framework.stats import parse_effects

    args = regressions_parser().parse_args(argv)
    workloads, tags = by_tag(selectors(args), load_catalog())
    options = ScanOptions(
        results_dir=args.results,
        along=args.along,
        package=args.package,
        metrics=tuple(split(args.metric) or METRIC_NAMES),
        workloads=workloads,
        tags=tags,
        hardware=tuple(split(args.hardware) or ()),
        runtimes=tuple(split(args.runtime) or ()),
        alpha=args.alpha,
        persistence=args.persistence,
        min_effects=parse_effects(args.min_effect),
        accepted_file=args.accepted,
        machines_file=args.machines or MACHINES_FILE,
    )
    report = scan(options)
    target = args.markdown or args.results / "regressions.md"
    write_summary(report, target)
    if args.json:
        emit(scan_document(report, target))
    else:
        print(f"{report_text(report)}\nsummary: {target}\nrecord: {report.record}")
    return 1 if failing(report, args.fail_on) else 0


def bisect_parser() -> Parser:
    parser = Parser(
        prog="nox -s bisect --",
        description="Find the first release of a package where a workload got worse or failed, or a stability"
        " failure appeared (good older than bad), or the first release that fixed it (good newer than bad).",
    )
    parser.add_argument("--package", required=True, help="the package to bisect, e.g. dask, distributed, pandas")
    parser.add_argument("--good", required=True, help="a release that is good, e.g. 2024.12.1")
    parser.add_argument("--bad", required=True, help="a release that is bad (older than --good: find the fix)")
    add_workload_options(parser, "workload name, or case id where it has several cases", single=True)
    parser.add_argument("--metric", help=f"{', '.join(METRIC_NAMES)}, or outcome (bad = a repeat fails)")
    parser.add_argument(
        "--failure", metavar="ID", help="stability failure or regression case id: bad where it reproduces"
    )
    parser.add_argument("--runtime", help="runtime the releases go into (default: latest; with --failure: its own)")
    parser.add_argument("--hardware", default="local", help="hardware profile (default: local)")
    parser.add_argument("--size", help="data size (default: the workload's first, e.g. tiny)")
    parser.add_argument("--repeat", type=positive, default=5, help="repeats per release and per end (default: 5)")
    add_warmup(parser)
    parser.add_argument(
        "--times",
        type=positive,
        default=3,
        help="most replays per release with --failure; stops at the first that fails (default: 3)",
    )
    parser.add_argument(
        "--hold",
        choices=("lock", "spec"),
        default="lock",
        help="other packages: pinned as in the runtime's environment (lock), or as declared, resolved the day"
        " after each release (spec)",
    )
    parser.add_argument("--alone", action="store_true", help="move dask without distributed (or the reverse)")
    parser.add_argument(
        "--sweep",
        action="store_true",
        help="measure every release between --good and --bad instead of searching: a history along versions"
        " for nox -s regressions -- --along=version (needs --workload; --metric is not needed)",
    )
    parser.add_argument(
        "--passes", type=positive, default=2, help="with --sweep: runs of every release, each in a new order"
    )
    add_results(parser)
    add_rebuild(parser)
    add_dry_run(parser, help="list the releases and print how many would be built and run; build and run nothing")
    add_json(parser, help="print the steps and the answer as one JSON document (not with --sweep or --dry-run)")
    return parser


def cmd_bisect(argv: Sequence[str]) -> int:
    from framework.bisect.session import run_bisection

    args = bisect_parser().parse_args(argv)
    if args.json and (args.sweep or args.dry_run):
        raise SelectionError("--json with --sweep or --dry-run: those print a table or a plan — drop --json")
    if args.tag or (args.workload or "").startswith(TAG_PREFIX):  # a tag that names one workload
        args.workload = single(selectors(args), load_catalog())
    if not args.json:
        return run_bisection(args)
    answer: dict[str, object] = {}
    with stdout_to_stderr(True):
        code = run_bisection(args, answer)
    emit(answer)
    return code


def attribute_parser() -> Parser:
    parser = Parser(
        prog="nox -s attribute --",
        description="Find which of the packages that moved between two runtimes made a workload change, fail, or a"
        " stability failure appear: environments of the baseline's lock with subsets of the changes applied.",
    )
    parser.add_argument("--baseline", required=True, help="a runtime, a run id, or a lock file (uv pip freeze)")
    parser.add_argument("--candidate", required=True, help="a runtime, a run id, or a lock file")
    add_workload_options(parser, "workload name, or case id where it has several cases", single=True)
    parser.add_argument("--metric", help=f"{', '.join(METRIC_NAMES)}, or outcome (bad = a repeat fails)")
    parser.add_argument(
        "--failure", metavar="ID", help="stability failure or regression case id: bad where it reproduces"
    )
    parser.add_argument("--hardware", default="local", help="hardware profile (default: local)")
    parser.add_argument("--size", help="data size (default: the workload's first, e.g. tiny)")
    parser.add_argument(
        "--repeat", type=positive, default=5, help="interleaved rounds per environment and per end (default: 5)"
    )
    add_warmup(parser)
    parser.add_argument(
        "--times", type=positive, default=3, help="most replays per environment with --failure (default: 3)"
    )
    parser.add_argument("--budget", type=positive, help="most environments to build and judge, the ends included")
    parser.add_argument("--bisect", action="store_true", help="when one package is named, bisect its releases as well")
    add_results(parser)
    add_rebuild(parser)
    add_dry_run(parser, help="print the changes and how many environments one culprit needs; build and run nothing")
    add_json(parser, help="print the probes and the answer as one JSON document")
    return parser


def cmd_attribute(argv: Sequence[str]) -> int:
    from framework.attribute.session import run_attribution

    args = attribute_parser().parse_args(argv)
    if args.tag or (args.workload or "").startswith(TAG_PREFIX):
        args.workload = single(selectors(args), load_catalog())
    options = bisect_parser().parse_args
    if not args.json:
        return run_attribution(args, None, options)
    answer: dict[str, object] = {}
    with stdout_to_stderr(True):
        code = run_attribution(args, answer, options)
    emit(answer)
    return code


def bless_parser() -> Parser:
    parser = Parser(
        prog="nox -s bless --",
        description="Decide whether a runtime is fit for production against a baseline, by matrices/blessing.yaml.",
    )
    parser.add_argument("--runtime", default="latest", help="the runtime to bless (default: latest)")
    parser.add_argument("--baseline", help="runtime to judge it against (default: the criteria's)")
    parser.add_argument(
        "--criteria", default="default", help="criteria set in matrices/blessing.yaml (default: default)"
    )
    parser.add_argument("--hardware", help="hardware profile (default: the criteria's)")
    add_results(parser)
    add_rebuild(parser, help="rebuild the environments even if built today")
    parser.add_argument(
        "--reuse",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="reuse recent evidence of the same environment (default); --no-reuse runs everything again",
    )
    add_dry_run(parser, help="print what would be reused and what would run")
    add_json(parser, help="print the verdict as one JSON document (every check, its reason and evidence)")
    return parser


def cmd_bless(argv: Sequence[str], runners: Runners | None = None, exporter: Exporter | None = None) -> int:
    """Exit 0 when blessed, 1 when not; a user mistake raises FrameworkError (exit 2).

    A blessed runtime's lock is written beside the verdict; fake ``runners`` build no real environment, so with them
    only an explicit ``exporter`` writes one."""
    from framework.blessing import bless, report_text
    from framework.evidence import BlessOptions
    from framework.export import export_blessed

    refuse_split("bless", argv)
    args = bless_parser().parse_args(argv)
    if args.json and args.dry_run:
        raise SelectionError("--json with --dry-run: a plan is text, not a verdict — drop one of them")
    options = BlessOptions(
        runtime=args.runtime,
        criteria=args.criteria,
        baseline=args.baseline,
        hardware=args.hardware,
        results_dir=args.results,
        rebuild=args.rebuild,
        reuse=args.reuse,
        dry_run=args.dry_run,
    )
    if runners is None:  # the real pipeline: its environments' locks are what production installs
        exporter = exporter or export_blessed
    with stdout_to_stderr(args.json):
        report = bless(options, runners, exporter=exporter)
    text = report_text(report)
    if args.json:
        emit(verdict_document(report))
    else:
        print(text, flush=True)  # flushed: the verdict is the command's output
    if report.verdict is not None:
        step_summary.add(f"Blessing {args.runtime}", text, headline=text.splitlines()[0])
    return 0 if report.verdict is None or report.verdict.blessed else 1


def guard_parser() -> Parser:
    parser = Parser(
        prog="nox -s guard --",
        description="Turn a failed case or a stability failure into a guard.",
        results_read_only=True,  # it reads the results; what it writes goes to the project (workloads/, matrices/)
    )
    parser.add_argument(
        "--from",
        dest="source",
        required=True,
        help="RUN_ID:CASE_ID of a failed case (or RUN_GROUP:CASE_ID), or a FAILURE_ID",
    )
    parser.add_argument("--name", help="the guard's workload name (default: from the workload and outcome)")
    add_results(parser)
    return parser


def cmd_guard(argv: Sequence[str]) -> int:
    """``--from=RUN_ID:CASE_ID | --from=FAILURE_ID [--name=NAME] [--results=DIR]``: write the guard, print what next."""
    from framework.promotion import promote

    args = guard_parser().parse_args(argv)
    promotion = promote(args.source, args.results, args.name)
    print("\n".join(promotion.lines(ROOT)))
    return 0
