"""``nox -s bisect -- --sweep``: measure *every* release between two versions — a history along versions.

A bisection builds only the releases its search needs. A sweep builds all of them, runs the case on each
``--passes`` times (each pass a new run, the releases in a new random order, so drift on the machine is not
mistaken for a release's doing), and writes ordinary result rows. ``nox -s regressions -- --along=version``
then finds the change points in that history, with its own statistics, persistence and accepted changes.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from framework.bisect.oracles import ReleaseRunner, metric_samples
from framework.engine import say
from framework.in_runtime.errors import EnvironmentBuildError
from framework.metric_catalogue import METRICS, MetricSpec
from framework.models import Runtime
from framework.progress import Progress

Row = dict[str, Any]


def order_of_pass(versions: Sequence[str], index: int, seed: int = 20261127) -> list[str]:
    """Pass ``index``'s order: a seeded shuffle (repeatable), different for every pass."""
    shuffled = list(versions)
    random.Random(seed * 1000 + index).shuffle(shuffled)
    return shuffled


def run_sweep(
    versions: Sequence[str],
    passes: int,
    repeat: int,
    runner: ReleaseRunner,
    runtime_for: Callable[[str], Runtime],
) -> tuple[dict[str, list[Row]], dict[str, str]]:
    """Every release, ``passes`` times; (version → its measured rows, version → why it was not measured)."""
    rows: dict[str, list[Row]] = {version: [] for version in versions}
    skipped: dict[str, str] = {}
    total = passes * len(versions)
    done = 0
    with Progress("sweep", total, "runs") as progress:
        for index in range(passes):
            runner.run_ids.clear()  # each pass of a release is a run of its own: one point of the history
            for version in order_of_pass(versions, index):
                done += 1
                if version in skipped:
                    progress.total -= 1  # a release that could not be built is not tried again
                    continue
                progress.advance(0, current=f"pass {index + 1}/{passes}: {version}")
                clock = time.monotonic()
                try:
                    measured = runner(version, runtime_for(version), repeat)
                except EnvironmentBuildError as error:
                    skipped[version] = f"environment not built: {str(error).splitlines()[0][:200]}"
                    say(f"sweep {done}/{total}: {version} skipped — {skipped[version]}")
                    progress.advance(1)
                    continue
                rows[version] += [row for row in measured if row.get("phase") == "measure"]
                say(f"sweep {done}/{total}: {version} pass {index + 1} in {time.monotonic() - clock:.0f} s")
                progress.advance(1, failed=int(any(row.get("outcome") != "passed" for row in measured)))
    return rows, skipped


def _median(rows: Sequence[Row], spec: MetricSpec) -> str:
    values = metric_samples(rows, spec)
    return spec.show(statistics.median(values)) if values else "–"


def sweep_table(versions: Sequence[str], rows: dict[str, list[Row]], skipped: dict[str, str]) -> str:
    """One line per release: outcomes and the median of every metric over all its passes."""
    from framework.summary import format_table

    table = []
    for version in versions:
        if version in skipped:
            table.append([version, "skipped", *[""] * len(METRICS), skipped[version]])
            continue
        measured = rows[version]
        passed = sum(row.get("outcome") == "passed" for row in measured)
        error = next((str(row.get("error") or "") for row in measured if row.get("outcome") != "passed"), "")
        table.append(
            [version, f"{passed}/{len(measured)}"]
            + [_median(measured, spec) for spec in METRICS.values()]
            + [error.splitlines()[0][:80] if error else ""]
        )
    columns = ["version", "passed", *(spec.heading for spec in METRICS.values()), "first error"]
    return format_table(columns, table, max_width=100)


def run_and_print(args: argparse.Namespace, versions: Sequence[str], runner: ReleaseRunner, runtime_for: Any) -> int:
    """Run the sweep, print its table and the command that scans it; 1 when no release could be measured."""
    rows, skipped = run_sweep(versions, args.passes, args.repeat, runner, runtime_for)
    case = runner.case
    scan = (
        f'nox -s regressions -- --along=version --package={args.package} --workload="{case.case_id}"'
        f" --hardware={runner.hardware.name} --runtime='bisect-*'"
    )
    sys.stdout.write(
        f"\n{sweep_table(versions, rows, skipped)}\n"
        f"{len(versions) - len(skipped)} release(s) × {args.passes} pass(es) × {args.repeat} repeat(s) written to"
        f" {args.results}; find its change points with:\n  {scan}\n"
    )
    return 0 if any(rows[version] for version in versions) else 1
