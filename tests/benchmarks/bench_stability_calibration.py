"""Stability calibration: how often does the chaos fuzzer fail, and for whose fault, release by release?

A benchmark that prints figures; it asserts nothing. A stability verdict that fails every release tells nothing, so
the fuzzer's own false alarms are measured here the way ``calibration`` measures the statistics':

1. **Run** the fuzzer (``nox -s stability --keep-going``'s batches, without the saved regression cases: a batch
   that fails goes on in a fresh process with the examples left, so it shows every class it meets, not only the
   first, each met in a clean process) for several seeds on:
   - each *documented pair* — the release with a historical hang and the release that fixed it (``PAIRS``);
   - the releases given with ``--runtimes`` beside them (default ``stable``: a current release).
   Seeds run in the same order on every runtime, seed by seed, so the machine's load falls on all of them alike;
   each batch records the load average it ran under.
2. **Classify** every failure by its signature (:mod:`framework.failure_signatures`) and look each class up in
   ``matrices/known_failures.yaml``: a class listed there with a ``reproducer`` is *distributed's* (a standalone
   script outside the harness shows it); one listed without is *known, unexplained*; one not listed is
   *UNEXPLAINED* — a harness false alarm until shown otherwise.
3. **Print** a table of classes × (runtime, tier) with counts over the seeds, then one line per documented pair:
   does the buggy release meet the pair's own class in every seed's batch, and does the fixed release never meet it
   (failing at most with classes shown to be distributed's, which are counted and named)?

    nox -s bench -- stability-calibration [--runtimes=stable] [--seeds=3] [--first-seed=1] [--tier=inprocess]
        [--profile=ci] [--examples=N] [--results=DIR] [--analyse=DIR]

Exit status: 0 when every batch ran (whatever it found), 1 when a batch could not run (an unusable runtime, a
runner that died) or nothing was measured, 2 for bad options.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import datetime as dt
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from framework.config import ROOT, load_catalog
from framework.engine import new_run_id, prepare_environment
from framework.failure_signatures import of_record, of_row
from framework.in_runtime.errors import FrameworkError
from framework.known_failures import KnownFailure, load_known_failures, match
from framework.query import Results
from framework.results import ResultsStore
from framework.stability import PROFILES, TIERS, StabilityOptions, StabilityReport, fuzz_batch, planned


@dataclasses.dataclass(frozen=True)
class Pair:
    """A historical hang the project documents: the release that has it and the release that fixed it."""

    issue: str
    buggy: str
    fixed: str
    known: tuple[str, ...]  # its entries in matrices/known_failures.yaml: the classes the buggy release fails with
    tiers: tuple[str, ...]  # the tiers whose rules reach it: a seed meets it when any of its batches there does


# Keep-going batches run every example, so a first failure of another bug (distributed#8702 ends most batches on
# 2022.10.x) no longer hides the pair's own: every tier counts, the in-process one with its 5× the examples.
PAIRS = (
    Pair(
        "distributed#7223",
        "dask-2022.10.1",
        "dask-2022.10.2",
        ("distributed_7223", "distributed_7223_dependents", "distributed_7223_seceded"),
        TIERS,
    ),
    Pair(
        "distributed#8702",
        "dask-2024.6.0",
        "dask-2024.6.1",
        (
            "distributed_8702",
            "distributed_8702_hang",
            "distributed_8702_hang_queued",
            "distributed_8702_queued_on_missing_data",
            "distributed_8702_queued_on_missing_data_seceded",
            "distributed_8702_queued_to_processing",
        ),
        TIERS,
    ),
)
DEFAULT_OTHERS = ("stable",)
PASSED = "passed"


def options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="nox -s bench -- stability-calibration", description=__doc__.split("\n")[0])
    parser.add_argument("--runtimes", default=",".join(DEFAULT_OTHERS), help="releases beside the documented pairs")
    parser.add_argument("--no-pairs", action="store_true", help="only --runtimes, not the documented pairs")
    parser.add_argument("--seeds", type=int, default=3, help="batches per runtime and tier (default 3)")
    parser.add_argument("--first-seed", type=int, default=1, help="seeds are first-seed … first-seed + seeds − 1")
    parser.add_argument("--tier", default=",".join(TIERS), help="tiers to fuzz (default both)")
    parser.add_argument("--profile", default="ci", choices=PROFILES)
    parser.add_argument("--examples", type=int, default=None, help="examples per batch (default: the profile's)")
    parser.add_argument("--results", type=Path, default=None, help="store for the runs (default a new one)")
    parser.add_argument(
        "--analyse", default=None, help="only re-analyse stores this benchmark filled (DIR[,DIR…], read as one)"
    )
    args = parser.parse_args()
    args.tiers = tuple(tier.strip() for tier in args.tier.split(",") if tier.strip())
    unknown = [tier for tier in args.tiers if tier not in TIERS]
    if unknown or args.seeds < 1:
        parser.error(f"--tier={args.tier}: use {', '.join(TIERS)}" if unknown else "--seeds must be at least 1")
    return args


def runtime_names(args: argparse.Namespace) -> list[str]:
    names: list[str] = []
    for pair in () if args.no_pairs else PAIRS:
        names += [pair.buggy, pair.fixed]
    names += [name.strip() for name in args.runtimes.split(",") if name.strip()]
    return list(dict.fromkeys(names))


def measure(args: argparse.Namespace, names: list[str], store_dir: Path) -> list[str]:
    """Every (seed, runtime) batch, seed by seed; returns the problems that kept a batch from running."""
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    base = StabilityOptions(
        runtimes=names,
        profile=args.profile,
        tiers=args.tiers,
        examples=args.examples,
        results_dir=store_dir,
        regressions=False,  # the fuzzer alone: saved regression cases are replays, not fuzzing
        keep_going=True,  # past a first failure: a release with one known bug still shows the next
    )
    runtimes, _ = planned(base)  # bad runtime names fail here, before anything is built
    store = ResultsStore(store_dir)
    started = dt.datetime.now(dt.timezone.utc)
    problems: list[str] = []
    environments = {}
    for runtime in runtimes:
        environment = prepare_environment(runtime, ROOT, store, False, started)
        environments[runtime.name] = environment
    began = time.monotonic()
    for index, seed in enumerate(seeds):
        for name, environment in environments.items():
            report = StabilityReport(new_run_id())
            print(f"--- seed {seed} ({index + 1}/{len(seeds)}) on {name}, {(time.monotonic() - began) / 60:.0f} min in")
            fuzz_batch(environment, dataclasses.replace(base, seed=seed), store, report, started, seed, [])
            problems += report.unusable
            if not report.published:
                problems.append(f"{name} seed {seed}: no rows were written")
    return problems


@dataclasses.dataclass
class Batch:
    """One seed's batch on one runtime and tier: its keep-going parts (each in a fresh process) taken together."""

    runtime: str
    distributed: str
    tier: str
    seed: int
    outcome: str  # the first part's
    examples: int | None
    seconds: float
    load: float | None
    signature: str | None  # the first failure's class
    failure_id: str | None
    signatures: tuple[str, ...] = ()  # every part's failure class, in order: each met in a fresh process
    # Later failures of one process (the fuzzer's keep-going of 2026-12-06 ran on in the process that failed):
    # possibly consequences of the first failure's leftovers, so shown but never counted.
    after_failure: tuple[str, ...] = ()

    def meets(self, signature: str) -> bool:
        return signature in self.signatures


def batches(store_dirs: list[Path]) -> list[Batch]:
    rows: list[Any] = []
    records: dict[str, Path] = {}
    for store_dir in store_dirs:
        for path in (store_dir / "stability" / "failures").glob("*/failure.json"):
            records[path.parent.name] = path
        results = Results(store_dir)
        try:
            columns, found = results.sql(
                "SELECT runtime, distributed_version, case_id, outcome, params, extra_metrics, wall_s, load_avg_1m,"
                " error, traceback, workload, failure_id, started_at FROM rows WHERE workload = 'stability.fuzz'"
            )
        finally:
            results.close()
        rows += found
    rows.sort(key=lambda values: values[-1])
    out: dict[tuple[str, str, int], Batch] = {}
    for values in rows:
        row = dict(zip(columns, values))
        params = json.loads(row["params"] or "{}")
        extra = json.loads(row["extra_metrics"] or "{}")
        tier = params.get("tier") or str(row["case_id"]).removeprefix("fuzz[").rstrip("]")
        seed = int(params.get("batch_seed", params.get("seed", -1)))
        signature = None if row["outcome"] == PASSED else of_row(row).text
        later = []
        for number in range(2, int(extra.get("failures") or 0) + 1):  # the same-process keep-going's records
            path = records.get(f"{row['failure_id']}-{number}")
            if path is not None:
                later.append(of_record(json.loads(path.read_text())).text)
        key = (row["runtime"], tier, seed)
        batch = out.get(key)
        if batch is None:
            out[key] = Batch(
                row["runtime"],
                row["distributed_version"] or "?",
                tier,
                seed,
                row["outcome"],
                extra.get("examples"),
                float(row["wall_s"] or 0.0),
                row["load_avg_1m"],
                signature,
                row["failure_id"],
                (signature,) if signature else (),
                tuple(later),
            )
            continue
        loads = [load for load in (batch.load, row["load_avg_1m"]) if load is not None]
        out[key] = dataclasses.replace(  # a keep-going part of the batch
            batch,
            examples=(batch.examples or 0) + (extra.get("examples") or 0),
            seconds=batch.seconds + float(row["wall_s"] or 0.0),
            load=max(loads) if loads else None,
            signatures=batch.signatures + ((signature,) if signature else ()),
            after_failure=batch.after_failure + tuple(later),
        )
    return list(out.values())


def resolution(signature: str, known: dict[str, KnownFailure]) -> str:
    found = match(known, signature)
    if found is None:
        return "UNEXPLAINED: not in matrices/known_failures.yaml — a harness false alarm until shown otherwise"
    if found.entry.reproducer:
        return f"distributed's ({found.name}): standalone reproducer {found.entry.reproducer}"
    return f"known ({found.name}), no standalone reproducer yet: {found.entry.link}"


def analyse(store_dirs: list[Path], names: list[str]) -> int:
    found = batches(store_dirs)
    if not found:
        shown = ", ".join(map(str, store_dirs))
        print(f"stability-calibration: no stability batches in {shown} — nothing was measured", file=sys.stderr)
        return 1
    known = load_known_failures(ROOT)
    runtimes = [name for name in names if any(b.runtime == name for b in found)] or sorted({b.runtime for b in found})
    tiers = [tier for tier in TIERS if any(b.tier == tier for b in found)]
    columns = [(runtime, tier) for runtime in runtimes for tier in tiers if cells_of(found, runtime, tier)]
    cells: dict[tuple[str, str], list[Batch]] = collections.defaultdict(list)
    for batch in found:
        cells[(batch.runtime, batch.tier)].append(batch)
    versions = {b.runtime: b.distributed for b in found}

    print("\nEvery batch (seed order as run; load = the highest 1-minute load average while it ran, 2 cores):")
    print(f"{'runtime':<16} {'tier':<9} {'seed':>4} {'outcome':<8} {'examples':>8} {'seconds':>8} {'load':>5}  class")
    for batch in found:
        load = f"{batch.load:.1f}" if batch.load is not None else "–"
        print(
            f"{batch.runtime:<16} {batch.tier:<9} {batch.seed:>4} {batch.outcome:<8} {batch.examples or 0:>8}"
            f" {batch.seconds:>8.0f} {load:>5}  {' | '.join(batch.signatures) or '–'}"
            + (f"  [then, in the same process: {' | '.join(batch.after_failure)}]" if batch.after_failure else "")
        )

    classes = sorted({text for b in found for text in b.signatures}, key=lambda text: (text.split(":")[0], text))
    print("\nFailure classes × runtime/tier (batches that met the class / batches):")
    header = "".join(f" {runtime[:16]:>16}/{tier[:4]}" for runtime, tier in columns)
    print(f"{'class':<12}{header}")
    print(f"{'passed':<12}" + "".join(f" {_count(cells[c], None):>21}" for c in columns))
    for number, text in enumerate(classes, 1):
        print(f"{'class ' + str(number):<12}" + "".join(f" {_count(cells[c], text):>21}" for c in columns))
    print("  (distributed: " + ", ".join(f"{name} {versions.get(name, '?')}" for name in runtimes) + ")")
    for number, text in enumerate(classes, 1):
        print(f"class {number}: {text}\n    → {resolution(text, known)}")

    later = collections.Counter(text for b in found for text in b.after_failure)
    if later:
        print("\nMet only after an earlier failure in the same process (possibly its consequence; not counted):")
        for text, count in later.most_common():
            print(f"  {count}× {text}\n    → {resolution(text, known)}")

    print("\nDocumented pairs:")
    for pair in PAIRS:
        print("  " + pair_line(pair, cells, known))
    others = [name for name in runtimes if all(name not in (p.buggy, p.fixed) for p in PAIRS)]
    for name in others:
        runs = [b for b in found if b.runtime == name]
        false = [b for b in runs if unexplained_in(b, known)]
        upstream = [b for b in runs if b.signatures and b not in false]
        print(
            f"  {name} (distributed {versions.get(name, '?')}): {sum(b.outcome == PASSED for b in runs)}/{len(runs)}"
            f" batches passed; {len(upstream)} failed with a known class, {len(false)} UNEXPLAINED"
        )
    unexplained = [b for b in found if unexplained_in(b, known)]
    total = len(found)
    print(
        f"\nHarness false alarms (failures of an unexplained class): {len(unexplained)} of {total} batches"
        f" ({100 * len(unexplained) / total:.0f} %)."
    )
    loads = [b.load for b in found if b.load is not None]
    if loads:
        median = statistics.median(loads)
        print(f"Load while measured: median of each batch's highest 1-minute load {median:.1f} on 2 cores.")
    return 0


def unexplained_in(batch: Batch, known: dict[str, KnownFailure]) -> bool:
    """A class not listed, or listed without a standalone reproducer: not shown to be distributed's."""
    return any((found := match(known, text)) is None or not found.entry.reproducer for text in batch.signatures)


def cells_of(found: list[Batch], runtime: str, tier: str) -> list[Batch]:
    return [batch for batch in found if batch.runtime == runtime and batch.tier == tier]


def _count(batches: list[Batch], signature: str | None) -> str:
    if not batches:
        return "–"
    if signature is None:
        return f"{sum(b.outcome == PASSED for b in batches)}/{len(batches)}"
    hits = sum(b.meets(signature) for b in batches)
    return f"{hits}/{len(batches)}" if hits else "·"


def pair_line(pair: Pair, cells: dict[tuple[str, str], list[Batch]], known: dict[str, KnownFailure]) -> str:
    missing = [name for name in pair.known if name not in known]
    if missing:
        return f"{pair.issue}: matrices/known_failures.yaml has no entry {missing[0]!r} — its class is unknown"
    own = {known[name].signature for name in pair.known}
    buggy = [b for tier in pair.tiers for b in cells.get((pair.buggy, tier), [])]
    fixed = [b for tier in pair.tiers for b in cells.get((pair.fixed, tier), [])]
    if not buggy or not fixed:
        return f"{pair.issue}: not measured (tiers {', '.join(pair.tiers)} of {pair.buggy} and {pair.fixed})"
    seeds = sorted({b.seed for b in buggy})
    caught = sum(any(own & set(b.signatures) for b in buggy if b.seed == seed) for seed in seeds)
    wrongly = sum(bool(own & set(b.signatures)) for b in fixed)
    clean = sum(b.outcome == PASSED for b in fixed)
    unexplained = [b for b in fixed if unexplained_in(b, known)]
    upstream = [b for b in fixed if b.signatures and not own & set(b.signatures) and b not in unexplained]
    met = caught == len(seeds) and wrongly == 0 and not unexplained
    tiers = sorted({b.tier for b in buggy + fixed})
    return (
        f"{pair.issue} ({', '.join(tiers)}): buggy {pair.buggy} met it in {caught}/{len(seeds)} seeds; fixed"
        f" {pair.fixed} showed it in {wrongly}/{len(fixed)} batches, passed {clean}/{len(fixed)}"
        + (f", {len(upstream)} failed with another known distributed class" if upstream else "")
        + (f", {len(unexplained)} with an UNEXPLAINED class" if unexplained else "")
        + (" — GOAL MET" if met else " — GOAL NOT MET")
    )


def main() -> int:
    args = options()
    names = runtime_names(args)
    try:
        load_catalog(ROOT)
        if args.analyse is not None:
            return analyse([Path(part) for part in args.analyse.split(",") if part], names)
        store_dir = args.results or ROOT / ".blessing" / "stability-calibration" / new_run_id()
        tiers = ", ".join(args.tiers)
        print(f"stability calibration into {store_dir}: {', '.join(names)} × seeds {args.seeds} × {tiers}")
        problems = measure(args, names, store_dir)
        code = analyse([store_dir], names)
    except FrameworkError as error:
        print(f"stability-calibration: {error}", file=sys.stderr)
        return 2
    for problem in problems:
        print(f"NOT MEASURED: {problem}", file=sys.stderr)
    return 1 if problems else code


if __name__ == "__main__":
    sys.exit(main())
