"""``report``, ``compact``, ``merge``: the verbs that work on results stores as a whole — a site of one, its files
merged by month, or several stores copied into one."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from framework.cli.parser import Parser, add_dry_run, add_results
from framework.config import DEFAULT_RESULTS


def report_parser() -> Parser:
    parser = Parser(prog="nox -s report --", description="Generate a static site from the results store.")
    add_results(parser, help="results directory (default results/)")
    parser.add_argument("--out", type=Path, help="where the site goes, replaced whole (default RESULTS/report)")
    return parser


def cmd_report(argv: Sequence[str]) -> int:
    """``nox -s report [-- --results=DIR --out=DIR]``: build the site, print where it is."""
    from framework.compaction import compact_if_due
    from framework.object_store import opened
    from framework.report import build_site

    args = report_parser().parse_args(argv)
    store = opened(args.results)
    if store is not None:  # a URL store: the cluster dumps the pages link to, beside the site
        store.pull(["dumps"])
    for line in compact_if_due(args.results):  # a long history of small files: merged first, read faster
        print(line)
    summary = build_site(args.results, args.out or args.results / "report")
    print(f"report: {summary.pages} pages in {summary.seconds:.1f} s — open {summary.out_dir / 'index.html'}")
    return 0


def compact_parser() -> Parser:
    parser = Parser(prog="nox -s compact --", description="Merge each month's result files into one file.")
    add_results(parser, help="results directory (default results/)")
    add_dry_run(parser, help="say what would be merged, change nothing")
    return parser


def cmd_compact(argv: Sequence[str]) -> int:
    """``nox -s compact [-- --results=DIR] [--dry-run]``; exit 1 when a file needs a look."""
    from framework.compaction import compact

    args = compact_parser().parse_args(argv)
    report = compact(args.results, dry_run=args.dry_run)
    print("\n".join(report.lines()))
    # 1: a file needs a look (left where it is, or moved to the quarantine)
    return 1 if report.needs_a_look else 0


def merge_parser() -> Parser:
    parser = Parser(prog="nox -s merge --", description="Copy the result files of several stores into one.")
    parser.add_argument("sources", nargs="+", metavar="SRC", help="results directories or URLs (shards, artifacts)")
    parser.add_argument("--into", default=str(DEFAULT_RESULTS), help="the store to copy into (default results/)")
    parser.add_argument(
        "--allow-partial", action="store_true", help="accept a sharded run group with shards missing (said still)"
    )
    return parser


def cmd_merge(argv: Sequence[str]) -> int:
    """``nox -s merge -- SRC... [--into=DIR|URL] [--allow-partial]``; exit 2 on a conflict, 1 on a missing or doubled
    shard."""
    from framework.merge import merge

    args = merge_parser().parse_args(argv)
    report = merge(args.sources, args.into, allow_partial=args.allow_partial)
    print("\n".join(report.lines()))
    return 1 if report.shard_problems else 0
