"""How much the runner adds to what it measures. A benchmark that prints figures; it asserts nothing.

For each workload at size ``small`` (params from workloads/smoke.yaml), on one LocalCluster of the ``local``
hardware profile (2 worker processes × 1 thread), interleaved so drift hits both alike:

    bare       time.perf_counter() around ``function(**params)`` — what a user would time by hand
    framework  ``wall_s`` of ``framework.in_runtime.runner.run_case`` — the figure stored in the results

and, per case, the fixed cost of the whole measured step around the call (task/spill counters before and after,
memory sampler start and stop, the case thread), both as ``run_case``'s own time minus its ``wall_s`` and as the
whole ``run_case`` of a workload that does nothing.

    nox -s bench -- overhead
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from framework.config import load_catalog
from framework.in_runtime.clusters import ClusterSession
from framework.in_runtime.runner import load_function, run_case
from framework.matrix import expand_workload

REPEATS = 7
SIZE = "small"
HARDWARE = "local"
WORKLOADS = ("groupby_agg", "array_mean_var")
NOOP = "builtins:dict"  # dict() → {}: a workload that returns no figures and takes no time


def case_of(workload_name: str) -> dict[str, Any]:
    """The first case of the workload at SIZE, as the pipeline hands it to the runner."""
    workload = load_catalog().workloads[workload_name]
    cases, reason = expand_workload(workload, SIZE)
    if reason:
        raise SystemExit(f"{workload_name}: {reason}")
    case = cases[0]
    return {"case_id": case.case_id, "function": workload.function, "params": case.params, "timeout_s": 600.0}


def framework_run(session: ClusterSession, case: dict[str, Any], repeat: int, dumps: Path) -> tuple[float, float]:
    """(wall_s as the framework records it, time of the whole run_case call)."""
    started = time.perf_counter()
    row = run_case(session, case, "measure", repeat, dumps)
    whole = time.perf_counter() - started
    if row["outcome"] != "passed":
        raise SystemExit(f"{case['case_id']}: {row['outcome']}: {row.get('error')}")
    return float(row["wall_s"]), whole


def bare_run(case: dict[str, Any]) -> float:
    function = load_function(case["function"])
    started = time.perf_counter()
    function(**case["params"])
    return time.perf_counter() - started


def main() -> int:
    hardware = load_catalog().hardware[HARDWARE].model_dump(mode="json")
    cases = [case_of(name) for name in WORKLOADS]
    noop = {"case_id": "noop", "function": NOOP, "params": {}, "timeout_s": 60.0}
    lines = []
    with ClusterSession(hardware) as session, tempfile.TemporaryDirectory(prefix="blessing-bench-") as scratch:
        dumps = Path(scratch)
        shape = session.shape()
        print(
            f"cluster: {shape['cluster_workers']} workers × {shape['cluster_threads'] // shape['cluster_workers']}"
            f" thread(s), hardware profile {HARDWARE!r}; size {SIZE!r}; {REPEATS} interleaved repeats each",
            file=sys.stderr,
        )
        for case in cases:
            # One of each first: imports, the scheduler plugin, first-use caches — not what is compared.
            bare_run(case)
            framework_run(session, case, 0, dumps)
            bare, framework, whole = [], [], []
            for repeat in range(REPEATS):
                bare.append(bare_run(case))
                wall, total = framework_run(session, case, repeat, dumps)
                framework.append(wall)
                whole.append(total)
                print(
                    f"  {case['case_id']} {repeat + 1}/{REPEATS}: bare {bare[-1]:.3f} s, framework {wall:.3f} s",
                    file=sys.stderr,
                )
            lines.append((case["case_id"], bare, framework, whole))
        framework_run(session, noop, 0, dumps)
        noop_whole = [framework_run(session, noop, repeat, dumps)[1] for repeat in range(REPEATS)]

    header = ("case", "bare median", "(min–max)", "framework median", "(min–max)", "ratio", "step overhead")
    rows = []
    for case_id, bare, framework, whole in lines:
        bare_median, framework_median = statistics.median(bare), statistics.median(framework)
        step_ms = statistics.median(total - wall for total, wall in zip(whole, framework)) * 1000
        rows.append(
            (
                case_id,
                f"{bare_median:.3f} s",
                f"({min(bare):.2f}–{max(bare):.2f})",
                f"{framework_median:.3f} s",
                f"({min(framework):.2f}–{max(framework):.2f})",
                f"{framework_median / bare_median:.3f}",
                f"{step_ms:.0f} ms",
            )
        )
    widths = [max(len(str(row[i])) for row in (header, *rows)) for i in range(len(header))]
    print()
    for row in (header, tuple("-" * width for width in widths), *rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    print()
    print(
        f"fixed cost of the measured step (run_case of a no-op workload: counters, memory sampler, case thread):"
        f" median {statistics.median(noop_whole) * 1000:.0f} ms, min {min(noop_whole) * 1000:.0f} ms,"
        f" max {max(noop_whole) * 1000:.0f} ms over {REPEATS}"
    )
    print("ratio = median framework wall_s ÷ median bare perf_counter time; step overhead = median(run_case − wall_s)")
    print(
        f"load average at the end: {', '.join(f'{load:.2f}' for load in os.getloadavg())} (other work skews both alike)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
