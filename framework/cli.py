"""Command lines of the nox sessions: parse, call the pipeline, print. User mistakes → one line, exit 2.

python -m framework.cli matrix [--runtime=NAME ...] [--hardware=NAME] [--workload=NAME|tag:TAG] ...
python -m framework.cli sql ["SELECT ..."]
python -m framework.cli schema [--check]
python -m framework.cli stability [--runtime=NAME] [--profile=ci|nightly] [--examples=N] [--replay=ID]
python -m framework.cli compare --baseline=RUNTIME[@HW] --candidate=RUNTIME[@HW] [--repeat=N] [--until-decided]
python -m framework.cli regressions | bisect | bless | report | compact ...   (options: beside each feature)
python -m framework.cli export --runtime=NAME | --run=RUN_ID [--format=requirements|pylock] [--out=PATH]
python -m framework.cli reproduce --run=RUN_ID [--case=CASE_ID] [--repeat=N]
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from framework import lifetime
from framework.config import ROOT
from framework.errors import WRITE_ERRNOS, FrameworkError, SelectionError, cannot_write
from framework.runner import RowsUnwritableError

# The most a count option takes: beyond it a value is a typo (--repeat=99999999999999999999), not a plan. Counts
# without an entry take at most DEFAULT_COUNT_LIMIT.
COUNT_LIMITS = {
    "--repeat": 1000,  # measured repeats, rounds of a comparison, repeats per bisected release
    "--times": 1000,  # replays
    "--budget": 1000,  # rounds with --until-decided
    "--passes": 100,  # sweeps over every release
    "--examples": 100_000,  # hypothesis examples per tier (the nightly profile runs 400)
    "--steps": 1000,  # steps per example (the nightly profile runs 25; shrinking costs steps squared)
}
DEFAULT_COUNT_LIMIT = 10_000


class _Parser(argparse.ArgumentParser):
    """argparse that reports a mistake in one line, with the near miss, and exits 2.

    Abbreviations are refused: ``--runtim=latest`` must not silently start a run. A count (``type=_positive``) is
    bounded by ``COUNT_LIMITS``; ``--results`` must name a directory (or where one can be created), writable unless
    the verb only reads it (``results_read_only``, or an ``--out`` elsewhere was given).
    """

    def __init__(self, results_read_only: bool = False, **kwargs: Any) -> None:
        super().__init__(allow_abbrev=False, **kwargs)
        self.results_read_only = results_read_only

    def add_argument(self, *names: Any, **kwargs: Any) -> argparse.Action:
        if kwargs.get("type") is _positive and names:
            option = str(names[0])
            kwargs["type"] = _count(option, COUNT_LIMITS.get(option, DEFAULT_COUNT_LIMIT), kwargs.get("default"))
        return super().add_argument(*names, **kwargs)

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: Any = None
    ) -> tuple[Any, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        results = getattr(parsed, "results", None)
        if isinstance(results, Path) and any("--results" in action.option_strings for action in self._actions):
            written = not self.results_read_only and getattr(parsed, "out", None) is None
            problem = results_problem(results, written)
            if problem:
                self.error(f"--results={results}: {problem}")
        return parsed, extras

    def error(self, message: str) -> NoReturn:
        hint = ""
        if "unrecognized arguments:" in message:
            bad = message.split(":", 1)[1].split(maxsplit=1)[0].split("=", maxsplit=1)[0]
            options = [o for action in self._actions for o in action.option_strings]
            close = difflib.get_close_matches(bad, options, n=1)
            hint = f" — did you mean {close[0]}?" if close else f" — known options: {', '.join(sorted(options))}"
        print(f"{self.prog}: {message}{hint}", file=sys.stderr)
        raise SystemExit(2)


def _split(values: Sequence[str] | None) -> list[str] | None:
    """``--runtime=a,b --runtime=c`` → [a, b, c]."""
    if not values:
        return None
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number — use e.g. --repeat=5") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not ≥ 1 — use e.g. --repeat=5")
    return value


def _count(option: str, maximum: int, default: Any = None) -> Callable[[str], int]:
    """A whole number from 1 to ``maximum``; the message names the option, the value and the range."""
    example = f"{option}={default if isinstance(default, int) else min(5, maximum)}"

    def count(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number — use e.g. {example}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{value} is not ≥ 1 — use e.g. {example}")
        if value > maximum:
            raise argparse.ArgumentTypeError(f"{value} is more than {maximum} — use 1 to {maximum}, e.g. {example}")
        return value

    return count


def _bounded_number(low: float, high: float, example: str, low_allowed: bool = True) -> Callable[[str], float]:
    """A finite number in [low, high] (or (low, high] without ``low_allowed``) for options like --settle."""
    shown = f"{'from' if low_allowed else 'above'} {low:g} {'to' if low_allowed else 'up to'} {high:g}"

    def number(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number — use one {shown}, e.g. {example}") from None
        in_range = math.isfinite(value) and (value >= low if low_allowed else value > low) and value <= high
        if not in_range:
            raise argparse.ArgumentTypeError(f"{text} is out of range — use a number {shown}, e.g. {example}")
        return value

    return number


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 2**63 - 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a seed — use a whole number from 0 to 2**63-1, e.g. --seed=1"
        )
    return value


_RESULTS_FIX = "pass a results directory (it is created if missing), e.g. --results=results"


def results_problem(path: Path, written: bool) -> str | None:
    """Why ``path`` cannot be the results directory (read, or also ``written``), with the fix; None if it can."""
    try:
        return _existing_results_problem(path, written) if path.exists() else _new_results_problem(path, written)
    except (OSError, ValueError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        return f"is not a usable path ({reason}) — {_RESULTS_FIX}"


def _existing_results_problem(path: Path, written: bool) -> str | None:
    if not path.is_dir():
        return f"is {'a file' if path.is_file() else 'a device or special file'}, not a directory — {_RESULTS_FIX}"
    if not os.access(path, os.R_OK | os.X_OK):
        return "is not readable — fix its permissions, or pass another results directory"
    if written and os.statvfs(path).f_flag & os.ST_RDONLY:
        return "is on a read-only file system — remount it read-write, or pass --results on a writable one"
    if written and not os.access(path, os.W_OK):
        return "is not writable — pass a directory you can write to (e.g. a copy of it), or fix its permissions"
    return None


def _new_results_problem(path: Path, written: bool) -> str | None:
    ancestor = path.absolute().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"cannot be created: {ancestor} is not a directory — {_RESULTS_FIX}"
    if written and not os.access(ancestor, os.W_OK | os.X_OK):
        return f"cannot be created: {ancestor} is not writable — pass a directory you can write to"
    return None


def matrix_parser() -> _Parser:
    parser = _Parser(prog="nox -s matrix --", description="Run workloads for runtimes × hardware profiles.")
    parser.add_argument("--matrix", default="default", help="matrix in matrices/matrix.yaml (default: default)")
    parser.add_argument("--runtime", action="append", help="runtime name(s), comma separated or repeated")
    parser.add_argument("--hardware", action="append", help="hardware profile name(s)")
    parser.add_argument("--workload", action="append", help="workload name(s) or tag:TAG")
    parser.add_argument("--size", help="data size (e.g. tiny, small, large)")
    parser.add_argument("--repeat", type=_positive, help="measured repeats per case (overrides the workloads')")
    parser.add_argument("--address", help="scheduler address for the 'address' backend, e.g. tcp://10.0.0.5:8786")
    parser.add_argument("--results", type=Path, default=ROOT / "results", help="results directory")
    parser.add_argument("--rebuild", action="store_true", help="rebuild environments even if a build exists")
    parser.add_argument("--dry-run", action="store_true", help="print the plan, run nothing")
    parser.add_argument("--list", action="store_true", help="print the workload catalogue and exit")
    return parser


def cmd_matrix(argv: Sequence[str]) -> int:
    from framework.compaction import compact_if_due
    from framework.matrix import Selection, build_plan
    from framework.pipeline import MatrixOptions, run_matrix
    from framework.query import Results
    from framework.summary import run_summary

    args = matrix_parser().parse_args(argv)
    if args.list:
        return cmd_workloads([])
    selection = Selection(
        matrix=args.matrix,
        runtimes=_split(args.runtime),
        hardware=_split(args.hardware),
        workloads=_split(args.workload),
        size=args.size,
        repeat=args.repeat,
    )
    if args.dry_run:
        from framework.config import load_catalog

        plan = build_plan(load_catalog(), selection)
        for planned in plan.cases:
            print(
                f"{planned.runtime.name:<12} {planned.hardware.name:<16} {planned.case.case_id}"
                f"  size={planned.case.size}  repeats={planned.case.workload.repeats}"
            )
        for skipped in plan.skipped:
            print(f"skip {skipped.runtime} × {skipped.hardware} × {skipped.case_id}: {skipped.reason}")
        return 0
    report = run_matrix(MatrixOptions(selection, args.results, address=args.address, rebuild=args.rebuild))
    for skipped in report.plan.skipped:
        print(f"skipped {skipped.runtime} × {skipped.hardware} × {skipped.case_id}: {skipped.reason}")
    with Results(args.results) as results:
        print()
        for headline in report.unusable:  # first: the loudest finding (no table of setup errors above it)
            print(headline)
        print(f"run {report.run_id} — results in {args.results}")
        print(run_summary(results, report.run_id))
        _, [(not_passed,)] = results.sql(
            "SELECT count(*) FROM rows WHERE run_id = ? AND outcome <> 'passed'", [report.run_id]
        )
    for line in compact_if_due(args.results):
        print(line)
    # Failures are results, recorded and shown; the exit code tells CI that some case did not pass.
    return 1 if not_passed else 0


def cmd_sql(argv: Sequence[str]) -> int:
    from framework.config import load_catalog
    from framework.findings import findings_table, load_findings
    from framework.query import Results
    from framework.summary import format_table

    parser = _Parser(prog="nox -s sql --", description="Read-only SQL over all results.", results_read_only=True)
    parser.add_argument("query", nargs="?", help="one SELECT statement; omit to list the views and their columns")
    parser.add_argument("--results", type=Path, default=ROOT / "results", help="results directory")
    parser.add_argument("--json", action="store_true", help="print rows as JSON lines")
    args = parser.parse_args(argv)
    with Results(args.results) as results:
        results.add_table("findings", findings_table(load_findings(load_catalog())))
        if not args.query:
            for view, described in results.views().items():
                print(f"{view}: " + ", ".join(f"{name} {kind}" for name, kind in described))
            return 0
        columns, rows = results.sql(args.query)
    if args.json:
        for row in rows:
            print(json.dumps(dict(zip(columns, row)), default=str))
    else:
        print(format_table(columns, rows))
        print(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return 0


def cmd_schema(argv: Sequence[str]) -> int:
    from framework.schema import export_schemas

    parser = _Parser(prog="nox -s schema --", description="Write JSON Schemas for the YAML files.")
    parser.add_argument("--check", action="store_true", help="fail if the committed schemas are out of date")
    args = parser.parse_args(argv)
    stale = export_schemas(ROOT / "matrices" / "schemas", check=args.check)
    if args.check and stale:
        print(f"out of date: {', '.join(stale)} — run `nox -s schema`", file=sys.stderr)
        return 1
    return 0


def cmd_workloads(argv: Sequence[str]) -> int:
    """The catalogue: each workload with its tags, sizes, cases and description."""
    from framework.config import load_catalog
    from framework.matrix import expand_workload
    from framework.summary import format_table

    parser = _Parser(prog="nox -s workloads --", description="List the workload catalogue.")
    parser.add_argument("--tag", help="only workloads with this tag")
    args = parser.parse_args(argv)
    catalog = load_catalog()
    rows = []
    for workload in catalog.workloads.values():
        if args.tag and args.tag not in workload.tags:
            continue
        cases, _ = expand_workload(workload, None)
        rows.append(
            [
                workload.name,
                ", ".join(workload.tags),
                ", ".join(workload.sizes) or "–",
                str(len(cases)),
                workload.description,
            ]
        )
    print(format_table(["workload", "tags", "sizes", "cases", "description"], rows, max_width=120))
    print(f"({len(rows)} workloads; run one with: nox -s matrix -- --workload=NAME --size=SIZE)")
    return 0


def stability_parser() -> _Parser:
    parser = _Parser(
        prog="nox -s stability --",
        description="Fuzz a runtime's cluster behaviour under faults (hypothesis); replay recorded failures.",
    )
    parser.add_argument("--runtime", action="append", help="runtime name(s), comma separated (default: latest)")
    parser.add_argument("--profile", default="ci", help="budget: ci (minutes) or nightly (hours, shrinking)")
    parser.add_argument("--tier", action="append", help="inprocess and/or process (default: both)")
    parser.add_argument("--examples", type=_positive, help="examples per tier (overrides the profile)")
    parser.add_argument("--steps", type=_positive, help="steps per example (overrides the profile)")
    parser.add_argument("--seed", type=_seed, help="hypothesis seed (default: random; recorded with the results)")
    parser.add_argument(
        "--settle",
        type=_bounded_number(0, 3600, "--settle=10"),
        help="seconds futures get to finish once faults stop",
    )
    parser.add_argument("--no-regressions", action="store_true", help="skip the saved regression cases")
    parser.add_argument("--replay", metavar="FAILURE_ID", help="re-run a recorded failure and report its hit rate")
    parser.add_argument("--times", type=_positive, default=5, help="replays of --replay (default: 5)")
    parser.add_argument("--no-save", action="store_true", help="with --replay: do not save it as a regression case")
    parser.add_argument(
        "--shrink", action="store_true", help="with --replay: first drop steps while it still fails (delta debugging)"
    )
    parser.add_argument("--results", type=Path, default=ROOT / "results", help="results directory")
    parser.add_argument("--rebuild", action="store_true", help="rebuild environments even if a build exists")
    return parser


def cmd_stability(argv: Sequence[str]) -> int:
    from framework.query import Results
    from framework.stability import TIERS, StabilityOptions, replay, run_stability
    from framework.summary import format_table

    args = stability_parser().parse_args(argv)
    if args.replay:
        runtimes = _split(args.runtime)
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
        runtimes=_split(args.runtime) or ["latest"],
        profile=args.profile,
        tiers=tuple(_split(args.tier) or TIERS),
        examples=args.examples,
        steps=args.steps,
        seed=args.seed,
        settle_s=args.settle,
        results_dir=args.results,
        rebuild=args.rebuild,
        regressions=not args.no_regressions,
    )
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
    print()
    print(f"stability run {report.run_id} — results in {args.results}")
    print(format_table(columns, rows, max_width=150))
    if not rows:  # a run that recorded nothing tested nothing: never a pass
        print(f"stability run {report.run_id} recorded no batch — nothing was tested; see the lines above for why")
        return 1
    failed = [row for row in rows if row[3] != "passed"]
    for row in failed:
        if row[7]:
            print(f"replay: nox -s stability -- --replay={row[7]}")
    return 1 if failed else 0


def compare_parser() -> _Parser:
    parser = _Parser(
        prog="nox -s compare --",
        description="A/B: run two sides interleaved (or take stored results) and judge every case × metric.",
    )
    parser.add_argument("--baseline", required=True, help="RUNTIME[@HARDWARE], e.g. stable or stable@local-threads")
    parser.add_argument("--candidate", required=True, help="RUNTIME[@HARDWARE]; the same as --baseline for A/A")
    parser.add_argument("--baseline-config", action="append", default=[], metavar="KEY=VALUE", help="Dask config")
    parser.add_argument("--candidate-config", action="append", default=[], metavar="KEY=VALUE", help="Dask config")
    parser.add_argument("--hardware", default="local", help="hardware profile of sides without @HARDWARE")
    parser.add_argument("--workload", action="append", help="workload name(s) or tag:TAG (default: the matrix's)")
    parser.add_argument("--matrix", default="default", help="matrix whose workloads and size are the default")
    parser.add_argument("--size", help="data size (default: the matrix's)")
    parser.add_argument("--repeat", type=_positive, default=5, help="rounds, i.e. repeats per side (default: 5)")
    parser.add_argument("--until-decided", action="store_true", help="add rounds until every metric is decided")
    parser.add_argument("--budget", type=_positive, default=30, help="most rounds with --until-decided (default 30)")
    parser.add_argument(
        "--time-budget",
        type=_bounded_number(0, 7 * 86400, "--time-budget=3600", low_allowed=False),
        metavar="SECONDS",
        help="stop adding rounds after this long (at most a week)",
    )
    parser.add_argument("--metric", action="append", help="wall, peak_memory, mean_memory, spill (default: all)")
    parser.add_argument("--min-effect", action="append", help="smallest change that matters, e.g. wall=10%%")
    parser.add_argument("--alpha", type=float, default=0.01, help="false-alarm rate per comparison (default 0.01)")
    parser.add_argument("--from-results", action="store_true", help="compare stored rows; run nothing")
    parser.add_argument("--baseline-where", help="with --from-results: SQL filter of the baseline's rows")
    parser.add_argument("--candidate-where", help="with --from-results: SQL filter of the candidate's rows")
    parser.add_argument("--all-runs", action="store_true", help="with --from-results: pool every run, not the newest")
    parser.add_argument("--address", help="scheduler address for the 'address' backend")
    parser.add_argument("--results", type=Path, default=ROOT / "results", help="results directory")
    parser.add_argument("--rebuild", action="store_true", help="rebuild environments even if a build exists")
    return parser


def cmd_compare(argv: Sequence[str]) -> int:
    from framework import compare, compare_stored
    from framework.config import load_catalog
    from framework.stats import parse_effects

    args = compare_parser().parse_args(argv)
    if not 0 < args.alpha < 0.5:
        raise SelectionError(f"--alpha={args.alpha} is not between 0 and 0.5 — use e.g. --alpha=0.01")
    metrics = compare.metric_names(_split(args.metric))
    effects = parse_effects(args.min_effect)
    if args.from_results:
        report = compare_stored.from_results(
            args.results,
            (args.baseline, args.baseline_where or compare_stored.side_filter(args.baseline)),
            (args.candidate, args.candidate_where or compare_stored.side_filter(args.candidate)),
            metrics=metrics,
            min_effects=effects,
            alpha=args.alpha,
            latest_only=not args.all_runs,
            workloads=_split(args.workload),
        )
    else:
        catalog = load_catalog()
        baseline = compare.resolve_side(args.baseline, catalog, args.hardware, args.baseline_config)
        candidate = compare.resolve_side(args.candidate, catalog, args.hardware, args.candidate_config)
        cases, skipped = compare.plan_cases(catalog, baseline, _split(args.workload), args.size, args.matrix)
        for reason in skipped:
            print(f"skipped {reason}")
        options = compare.CompareOptions(
            baseline,
            candidate,
            cases,
            args.results,
            repeat=args.repeat,
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
    print()
    print(compare.compare_text(report))
    failed = report.failures(compare.CANDIDATE)
    # Regressions and candidate failures are findings, recorded and shown; the exit code tells CI.
    return 1 if report.regressed or failed else 0


def cmd_export(argv: Sequence[str]) -> int:
    """A runtime's lock (resolved today, or as a run recorded it) as a file a production user installs."""
    from framework import export
    from framework.config import load_catalog

    parser = _Parser(
        prog="nox -s export --",
        description="Write a runtime's lock as a file to install in production.",
        results_read_only=True,
    )
    parser.add_argument("--runtime", help="runtime in matrices/runtimes.yaml, resolved today (with --run: which one)")
    parser.add_argument("--format", default="requirements", help="requirements (with hashes, default) or pylock")
    parser.add_argument("--out", type=Path, help="file to write (default: exports/<runtime>-requirements.txt or"
                        " exports/pylock.<runtime>.toml)")  # fmt: skip
    parser.add_argument("--run", metavar="RUN_ID", help="export the lock this run recorded instead of resolving today")
    parser.add_argument("--results", type=Path, default=ROOT / "results", help="results directory (for --run)")
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

    parser = _Parser(
        prog="nox -s reproduce --",
        description="Rebuild a recorded run's exact environment from its stored lock and run its cases again.",
    )
    parser.add_argument("--run", required=True, metavar="RUN_ID", help="the run to reproduce (see the runs view)")
    parser.add_argument("--case", action="append", help="case id(s) of the run, comma separated (default: all)")
    parser.add_argument("--repeat", type=_positive, help="measured repeats per case (default: as recorded)")
    parser.add_argument("--address", help="scheduler address, when the run's hardware is an 'address' profile")
    parser.add_argument("--results", type=Path, default=ROOT / "results", help="results directory")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the environment even if it still exists")
    args = parser.parse_args(argv)
    options = ReproduceOptions(
        args.run, args.results, _split(args.case), args.repeat, address=args.address, rebuild=args.rebuild
    )
    report = reproduce(options)
    if report.unusable is not None:
        print(report.unusable)
        return 1
    print()
    print(format_report(report))
    print(f"results in {args.results}")
    # Failures are results, recorded and shown; the exit code tells CI that some case did not pass.
    return 1 if any(outcome.not_passed for outcome in report.outcomes) else 0


COMMANDS: dict[str, Callable[[Sequence[str]], int]] = {
    "matrix": cmd_matrix,
    "sql": cmd_sql,
    "schema": cmd_schema,
    "workloads": cmd_workloads,
    "stability": cmd_stability,
    "compare": cmd_compare,
    "regressions": lambda argv: _feature("framework.history", argv),
    "bisect": lambda argv: _feature("framework.bisect", argv),
    "bless": lambda argv: _feature("framework.blessing", argv),
    "report": lambda argv: _feature("framework.report", argv),
    "compact": lambda argv: _feature("framework.compaction", argv),
    "guard": lambda argv: _feature("framework.promotion", argv),
    "export": cmd_export,
    "reproduce": cmd_reproduce,
}


def _feature(module: str, argv: Sequence[str]) -> int:
    """Commands whose parser lives beside their feature: ``module.command(argv)``."""
    import importlib

    command: Callable[[Sequence[str]], int] = importlib.import_module(module).command
    return command(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in COMMANDS:
        print(f"usage: python -m framework.cli {{{','.join(COMMANDS)}}} ...", file=sys.stderr)
        return 2
    try:
        return COMMANDS[args[0]](args[1:])
    except (FrameworkError, RowsUnwritableError, OSError, KeyboardInterrupt, lifetime.Stopped) as error:
        line, code = _failure(error)
        print(line, file=sys.stderr)
        return code


def _failure(error: BaseException) -> tuple[str, int]:
    """The one line and exit code for what stopped a command; anything else (a bug) is raised with its traceback."""
    if isinstance(error, FrameworkError):
        return str(error), error.exit_code
    if isinstance(error, RowsUnwritableError):  # the controller's own rows (disk full, read-only …)
        return cannot_write(str(error.path), error.errno, error.reason), 2
    if isinstance(error, OSError) and error.errno in WRITE_ERRNOS:
        return cannot_write(str(error.filename or "results"), error.errno, error.strerror or ""), 2
    kept = "cases not finished are recorded as interrupted; finished ones are kept"
    if isinstance(error, KeyboardInterrupt):
        return f"interrupted (SIGINT) — {kept}", 130
    if isinstance(error, lifetime.Stopped):
        return f"{error.why} — {kept}", error.exit_code
    raise error  # not the disk's state nor a stop: a bug, whose traceback is wanted


if __name__ == "__main__":
    lifetime.install()  # stop cleanly on SIGTERM/SIGHUP, and when the parent (nox, a shell) is gone
    sys.exit(main())
