"""``--dry-run``: what a verb that runs workloads would build and run, and how many executions — nothing is built,
nothing runs, nothing is written.

Each verb checks its options as a real run does (a mistake is still one line and exit 2), then prints its plan here
and exits 0. An environment is "reused" when a complete build of today's spec exists, else it "would be built".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from framework.matrix import Case, PlannedCase
    from framework.models import Runtime
    from framework.reproduce import ReproduceOptions
    from framework.stability import StabilityOptions


def environment_lines(runtimes: Iterable[Runtime], root: Path) -> list[str]:
    """One line per runtime: the environment it would reuse, or that it would be built."""
    from framework.environments import existing_environment

    lines = []
    for runtime in {runtime.name: runtime for runtime in runtimes}.values():
        found = existing_environment(runtime, root)
        if found is None:
            lines.append(f"environment {runtime.name}: would be built (no complete build of today's spec)")
        else:
            lines.append(f"environment {runtime.name}: reused {found.path} (env_hash {found.env_hash})")
    return lines


def executions(count: int, what: str = "execution") -> str:
    return f"{count} {what}{'s' if count != 1 else ''}"


def matrix_plan(planned: Sequence[PlannedCase], root: Path) -> list[str]:
    """The totals under the matrix's per-case lines: environments, then measured and warm-up executions."""
    measured = sum(p.case.workload.repeats for p in planned)
    warmups = sum(p.case.workload.warmup for p in planned)
    groups = {(p.runtime.name, p.hardware.name) for p in planned}
    return [
        *environment_lines((p.runtime for p in planned), root),
        f"dry run: {len(planned)} case(s) on {len(groups)} runtime × hardware group(s) — would run"
        f" {executions(measured + warmups)} ({measured} measured, {warmups} warm-up); nothing was built or run",
    ]


def compare_plan(
    baseline: tuple[str, Runtime],
    candidate: tuple[str, Runtime],
    cases: Sequence[Case],
    rounds: int,
    budget: int | None,
    root: Path,
) -> list[str]:
    """A comparison's plan: the sides, the cases, the rounds and the executions (at most, with --until-decided)."""
    most = budget if budget is not None else rounds
    measured = most * 2 * len(cases)  # each round measures every case once per side, after its warm-ups
    warmups = most * 2 * sum(case.workload.warmup for case in cases)
    lines = [f"baseline {baseline[0]} vs candidate {candidate[0]}: {len(cases)} case(s)"]
    lines += [f"  {case.case_id}  size={case.size}" for case in cases]
    lines += environment_lines((baseline[1], candidate[1]), root)
    how = f"up to {most} round(s) until decided" if budget is not None else f"{rounds} interleaved round(s)"
    lines.append(
        f"dry run: {how} × {len(cases)} case(s) × 2 sides — would run {'up to ' if budget is not None else ''}"
        f"{executions(measured + warmups)} ({measured} measured, {warmups} warm-up); nothing was built or run"
    )
    return lines


def stability_plan(options: StabilityOptions) -> list[str]:
    """The runtimes, their environments, the saved regression cases and the fuzzing budget of a stability run."""
    from framework.stability import planned

    runtimes, regressions = planned(options)
    regressions = regressions if options.regressions else []
    examples = f"{options.examples} example(s)" if options.examples else f"the {options.profile} profile's examples"
    steps = f"{options.steps} step(s) each" if options.steps else f"the {options.profile} profile's steps"
    return [
        *environment_lines(runtimes, options.root),
        *(f"regression case {case.id} ({case.tier})" for case in regressions),
        f"dry run: on each of {len(runtimes)} runtime(s) ({', '.join(r.name for r in runtimes)}) would replay"
        f" {len(regressions)} saved regression case(s), then fuzz tier(s) {', '.join(options.tiers)} with"
        f" {examples} per tier, {steps}; nothing was built or run",
    ]


def reproduce_plan(options: ReproduceOptions) -> list[str]:
    """Each recorded group's environment (rebuilt from its lock), hardware and cases, and the executions."""
    from framework.config import load_catalog
    from framework.reproduce import plan_reproduction

    _, planned = plan_reproduction(options, load_catalog(options.root))
    lines = []
    total = warmups = 0
    for group, hardware, cases in planned:
        lines.append(
            f"environment {group.runtime.name} from the {group.lock_source} (recorded env_hash {group.env_hash})"
            f" on {hardware.name}: {len(cases)} case(s)"
        )
        lines += [f"  {case.case_id}  size={case.size}  repeats={case.workload.repeats}" for case in cases]
        total += sum(case.workload.repeats for case in cases)
        warmups += sum(case.workload.warmup for case in cases)
    lines.append(
        f"dry run: would rebuild {len(planned)} environment(s) from their locks (reused where one still exists) and"
        f" run {executions(total + warmups)} ({total} measured, {warmups} warm-up); nothing was built or run"
    )
    return lines
