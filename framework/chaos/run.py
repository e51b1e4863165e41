"""The stability run inside a runtime's environment: ``python -m framework.chaos.run PLAN.json``.

Fuzz mode: every saved regression case first (each a recorded program, replayed once), then one hypothesis
batch per tier. Replay mode: one recorded program, N times. Each becomes a row (JSON lines, fsync'd; the
controller publishes them as Parquet) and each failure a record under ``results/stability/failures/<id>/``:
the program, what broke, the versions, the cluster dump and the log tail — everything ``--replay`` needs.

The clusters' own log output goes to ``results/stability/logs/``, so the console shows progress only.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Optional, TextIO

from framework.in_runtime import cluster_health, provenance, redaction
from framework.in_runtime import load as load_probe
from framework.in_runtime.runner import (
    CONSOLE,
    EXIT_ROWS_UNWRITABLE,
    ROWS_UNWRITABLE,
    RowsUnwritableError,
    RowWriter,
    apply_runtime_settings,
    base_row,
    now,
    read_plan,
    route_output,
    say_crash,
    watch_controller,
)
from framework.progress import runner_line

# Where progress goes: the console, even after stderr is redirected to the log file (see ``main``).
_console: dict[str, TextIO] = CONSOLE
_HEALTH_NOT_MEASURED = cluster_health.not_measured(
    "not measured in stability runs: the fuzzer starts, breaks and restarts clusters of its own"
)[1]


def say(message: str) -> None:
    print(message, file=_console["stream"], flush=True)


def report_progress(**fields: Any) -> None:
    """How far the run is, for the controller to show as a bar or a status line (``framework.progress``)."""
    say(runner_line(**fields))


def examples_planned(plan: dict[str, Any]) -> dict[str, int]:
    """Each tier's examples: with one unit per regression case (a program replayed once), a fuzz run's units."""
    from framework.chaos.machine import tier_settings

    return {
        tier: int(tier_settings(plan["profile"], tier, plan.get("examples"), plan.get("steps")).max_examples)
        for tier in plan["tiers"]
    }


def _outcome(error: Optional[BaseException], kind: Optional[str]) -> str:
    if error is None and kind is None:
        return "passed"
    if kind == "liveness":
        return "timeout"  # a hang, as a workload that never finishes is recorded
    if kind in ("result", "validate", "livelock", "teardown", "invariant"):
        return "failed"
    return "error"


def write_failure(
    failures_dir: Path,
    failure_id: str,
    *,
    tier: str,
    program: list[dict[str, Any]],
    kind: str,
    error: str,
    traceback_text: str,
    dump_path: Optional[str],
    log_tail: list[str],
    plan: dict[str, Any],
    source: dict[str, Any],
) -> Path:
    """A failure's record, written once (to a temporary name, then renamed): all a replay needs. Redacted: the
    runtime spec by key, the dump's config sections by key, every text (error, traceback, log tail) by value."""
    target = failures_dir / failure_id
    partial = failures_dir / f".{failure_id}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    masked = redaction.known_secrets() | redaction.secret_values(
        plan["runtime"].get("env"), plan["runtime"].get("dask_config")
    )
    dump_name = None
    if dump_path and Path(dump_path).exists():
        dump_name = "cluster-dump" + "".join(Path(dump_path).suffixes)
        try:
            redaction.redact_dump_file(Path(dump_path), partial / dump_name, masked)
        except Exception as problem:  # an unreadable dump is not kept: it could hold what it failed to redact
            dump_name = None
            log_tail = [*log_tail, f"cluster dump not kept: it could not be redacted ({type(problem).__name__})"]
    packages = provenance.installed_packages()
    record = {
        "failure_id": failure_id,
        "created_at": now(),
        "tier": tier,
        "kind": kind,
        "error": error,
        "traceback": traceback_text,
        "program": program,
        "settle_s": plan.get("settle_s"),
        "source": source,  # how it was found: fuzz batch (profile, seed) or regression case or replay
        "runtime": plan["runtime"]["name"],
        "runtime_spec": redaction.redact_runtime_spec(plan["runtime"]["spec"]),
        "runtime_hash": plan["runtime"]["hash"],
        "versions": {
            "python": provenance.machine().get("python_version"),
            "dask": packages.get("dask"),
            "distributed": packages.get("distributed"),
            "hypothesis": packages.get("hypothesis"),
            "tornado": packages.get("tornado"),
        },
        "packages": packages,
        "cluster_dump": dump_name,
        "run_id": plan["run_id"],
    }
    record = redaction.redact_strings(record, masked)
    (partial / "failure.json").write_text(json.dumps(record, indent=1, default=str), encoding="utf-8")
    tail = redaction.redact_text("\n".join(log_tail) + "\n", masked)
    (partial / "log-tail.txt").write_text(tail, encoding="utf-8")
    partial.replace(target)
    return target


def _row(
    plan: dict[str, Any], base: dict[str, Any], workload: str, case_id: str, function: str, params: dict[str, Any]
) -> dict[str, Any]:
    return {
        **base,
        "workload": workload,
        "case_id": case_id,
        "function": function,
        "size": None,
        "params": params,
        "tags": ["stability", workload.split(".", 1)[1]],
        "phase": "measure",
        "repeat": 0,
        "timeout_s": None,
        "missing": {},
    }


def run_program_row(
    plan: dict[str, Any],
    base: dict[str, Any],
    program: list[dict[str, Any]],
    settle_s: float,
    workload: str,
    case_id: str,
    params: dict[str, Any],
    failure_id: str,
    source: dict[str, Any],
    repeat: int = 0,
) -> dict[str, Any]:
    """Replay one program once; its row (and a failure record when it fails)."""
    from framework.chaos.executor import Executor, format_traceback

    row = _row(plan, base, workload, case_id, "framework.chaos.executor:run_program", params)
    row.update(repeat=repeat, started_at=now())
    started = time.perf_counter()
    executor = Executor(program[0]["config"], settle_s=settle_s, work_dir=Path(plan["work_dir"]))
    error: Optional[BaseException] = None
    # A liveness failure at load 16 is not a distributed bug until shown. No sampler thread: the leak check counts it.
    with load_probe.LoadWatch(sample_s=None) as load:
        try:
            executor.start()
            for step in program[1:]:
                executor.apply(step)
                executor.check_state()
            executor.finish()
        except Exception as raised:
            error = raised
            executor.fail()
    row.update(
        ended_at=now(),
        wall_s=time.perf_counter() - started,
        missing={**executor.missing, **load.missing, **_HEALTH_NOT_MEASURED},
    )
    row.update(load.values)
    kind = getattr(error, "kind", "error") if error is not None else None
    row["outcome"] = _outcome(error, kind)
    if error is not None:
        row["error"] = f"{kind}: {type(error).__name__}: {error}".replace("\n", " ")[:4000]
        row["traceback"] = format_traceback(error)
        record = write_failure(
            Path(plan["failures_dir"]),
            failure_id,
            tier=program[0]["config"]["tier"],
            program=program,
            kind=str(kind),
            error=row["error"],
            traceback_text=row["traceback"],
            dump_path=executor.dump_path,
            log_tail=list(executor.log_tail.lines),
            plan=plan,
            source=source,
        )
        row["failure_id"] = failure_id
        row["cluster_dump"] = _dump_in(record)
    executor.cleanup()
    return row


def example_line(runtime: str, ended: Any) -> str:
    """One line per fuzzed example: ``[stable] inprocess example 3: 12 steps, passed in 4.2 s``."""
    return (
        f"[{runtime}] {ended.tier} example {ended.number}: {ended.steps} steps, {ended.outcome}"
        f" in {ended.seconds:.1f} s"
    )


def run_fuzz_batch(plan: dict[str, Any], base: dict[str, Any], tier: str) -> dict[str, Any]:
    from framework.chaos.machine import SETTLE_S, fuzz

    settle_s = plan.get("settle_s") or SETTLE_S[tier]
    seed = int(plan["seed"])
    params = {"tier": tier, "profile": plan["profile"], "seed": seed, "examples": plan.get("examples")}
    part = int(plan.get("part") or 0)
    if part:  # a keep-going continuation (framework.stability): part N of the batch seeded batch_seed
        params.update(part=part, batch_seed=plan["batch_seed"], examples=plan.get("batch_examples"))
    row = _row(plan, base, "stability.fuzz", f"fuzz[{tier}]", "framework.chaos.machine:fuzz", params)
    row["started_at"] = now()
    with load_probe.LoadWatch(sample_s=None) as load:
        result = fuzz(
            tier,
            plan["profile"],
            seed=seed,
            examples=plan.get("examples"),
            steps=plan.get("steps"),
            settle_s=settle_s,
            work_dir=Path(plan["work_dir"]),
            on_example=lambda ended: say(example_line(plan["runtime"]["name"], ended)),
        )
    stats = result.stats
    params.update(examples_wanted=result.examples_wanted, settle_s=settle_s)
    row.update(
        ended_at=now(),
        wall_s=result.seconds,
        params=params,
        missing={**stats.missing, **load.missing, **_HEALTH_NOT_MEASURED},
    )
    row.update(load.values)
    row["extra_metrics"] = {
        "examples": stats.examples,
        "steps": stats.steps,
        "tasks_submitted": stats.tasks,
        "failures": 1 if result.failure or result.error else 0,
        "flaky": 1 if result.flaky else 0,
        "futures_finished": stats.outcomes.get("finished", 0),
        "futures_erred": stats.outcomes.get("error", 0),
        "futures_cancelled": stats.outcomes.get("cancelled", 0),
        "slowest_settle_s": round(stats.slowest_settle_s, 3),
        **{f"seconds_{phase}": round(spent, 3) for phase, spent in stats.seconds.items()},
        **{f"count_{op}": count for op, count in sorted(stats.step_counts.items())},
        "network_examples": stats.network_examples,
        **{f"aimed_{outcome}": count for outcome, count in sorted(stats.aimed.items())},
    }
    failure = result.failure
    if failure is None and result.error is None:
        row["outcome"] = "passed"
        return row
    if failure is None:
        # hypothesis itself failed (e.g. an error in a strategy): no program to keep, but the run says so
        row["outcome"] = "error"
        row["error"] = result.error
        return row
    row["outcome"] = _outcome(AssertionError(), failure.kind)
    row["error"] = f"{failure.kind}: {failure.error}".replace("\n", " ")[:4000] + (
        " (hypothesis: flaky — it did not fail again when re-run)" if result.flaky else ""
    )
    row["traceback"] = failure.traceback
    failure_id = f"{plan['run_id']}-{plan['runtime']['name']}-{tier}" + (f"-part{part}" if part else "")
    record = write_failure(
        Path(plan["failures_dir"]),
        failure_id,
        tier=tier,
        program=failure.program,
        kind=failure.kind,
        error=row["error"],
        traceback_text=failure.traceback,
        dump_path=failure.dump_path,
        log_tail=failure.log_tail,
        plan={**plan, "settle_s": settle_s},
        source={"fuzz": params, "flaky": result.flaky, "examples_before_failure": stats.examples},
    )
    shutil.rmtree(failure.scratch, ignore_errors=True)
    row["failure_id"] = failure_id
    row["cluster_dump"] = _dump_in(record)
    return row


def _dump_in(record: Path) -> Optional[str]:
    found = sorted(record.glob("cluster-dump*"))
    return str(found[0]) if found else None


def _label(row: dict[str, Any]) -> str:
    extra = row.get("extra_metrics") or {}
    detail = f", {extra['examples']} examples, {extra['steps']} steps" if "examples" in extra else ""
    tail = f" — {row['error'][:300]}" if row.get("error") else ""
    found = f" [failure {row['failure_id']}]" if row.get("failure_id") else ""
    return f"{row['case_id']}: {row['outcome']} in {row['wall_s']:.1f} s{detail}{found}{tail}"


def fails_like(program: list[dict[str, Any]], kind: str, settle_s: float, tries: int, work_dir: Path) -> bool:
    """Whether ``program`` breaks the same invariant (``kind``) in any of ``tries`` runs."""
    from framework.chaos.executor import InvariantViolation, run_program

    for _ in range(tries):
        try:
            executor = run_program(program, settle_s=settle_s, work_dir=work_dir)
        except InvariantViolation as error:
            if error.kind == kind:
                return True
        except Exception:
            pass
        else:
            executor.cleanup()
    return False


def shrink(plan: dict[str, Any], base: dict[str, Any], record: dict[str, Any]) -> list[dict[str, Any]]:
    """Delta-debug a failing program: drop steps one at a time while it still breaks the same invariant.

    Hypothesis shrinks poorly when timing decides; this shrinks by replaying. The minimal program is run once
    more and recorded as a failure of its own (its id is in the last row), ready for ``--replay``.
    """
    settle_s = float(record.get("settle_s") or 30.0)
    tries, work_dir, kind = int(plan.get("tries", 2)), Path(plan["work_dir"]), record["kind"]
    start, steps = record["program"][0], list(record["program"][1:])
    started, runs = time.perf_counter(), 0
    changed = True
    while changed:
        changed = False
        for index in range(len(steps)):
            candidate = steps[:index] + steps[index + 1 :]
            runs += 1
            if fails_like([start, *candidate], kind, settle_s, tries, work_dir):
                say(f"[{plan['runtime']['name']}] shrink: {len(candidate)} step(s) still fail")
                steps, changed = candidate, True
                break
    row = _row(plan, base, "stability.shrink", f"shrink[{record['failure_id']}]", "framework.chaos.run:shrink", {})
    row.update(
        params={"failure_id": record["failure_id"], "tries": tries},
        started_at=now(),
        ended_at=now(),
        wall_s=time.perf_counter() - started,
        outcome="passed",
        extra_metrics={"steps_before": len(record["program"]) - 1, "steps_after": len(steps), "candidates": runs},
    )
    minimal = [start, *steps]
    final = run_program_row(
        plan,
        base,
        minimal,
        settle_s,
        "stability.replay",
        f"replay[{record['failure_id']}-shrunk]",
        {"failure_id": record["failure_id"], "shrunk": True},
        f"{plan['run_id']}-{plan['runtime']['name']}-shrunk",
        {"shrunk_from": record["failure_id"], "steps_before": len(record["program"]) - 1},
    )
    return [row, final]


def run(plan: dict[str, Any]) -> int:
    """Run the plan; return how many rows did not pass."""
    apply_runtime_settings(plan["runtime"])
    writer = RowWriter(Path(plan["rows_path"]))
    base = base_row(plan)
    base.update(cluster_workers=None, cluster_threads=None, cluster_memory_limit_bytes=None)
    not_passed = 0
    prefix = f"[{plan['runtime']['name']}]"
    try:
        if plan["mode"] == "shrink":
            for row in shrink(plan, base, plan["replay"]):
                writer.write(row)
                say(f"{prefix} {_label(row)}")
            return 0
        if plan["mode"] == "replay":
            record = plan["replay"]
            until_hit, title = bool(plan.get("until_hit")), f"replay {record['failure_id']}"
            bound = "at most" if until_hit else "exact"  # until_hit stops at the first replay that fails
            report_progress(title=title, total=int(plan["times"]), unit="replays", bound=bound)
            for attempt in range(int(plan["times"])):
                report_progress(current=f"{prefix} replay {attempt + 1}/{plan['times']}")
                row = run_program_row(
                    plan,
                    base,
                    record["program"],
                    float(record.get("settle_s") or 30.0),
                    "stability.replay",
                    f"replay[{record['failure_id']}]",
                    {"failure_id": record["failure_id"], "times": plan["times"]},
                    f"{plan['run_id']}-replay{attempt}",
                    {"replay_of": record["failure_id"], "attempt": attempt},
                    repeat=attempt,
                )
                writer.write(row)
                say(f"{prefix} replay {attempt + 1}/{plan['times']}: {_label(row)}")
                not_passed += row["outcome"] != "passed"
                report_progress(advance=1, failed=int(row["outcome"] != "passed"))
                if until_hit and row["outcome"] != "passed":
                    break  # bisection only asks whether it reproduces: one hit answers, the rest would cost hangs
            return not_passed
        examples = examples_planned(plan)
        total = len(plan.get("regressions", [])) + sum(examples.values())
        report_progress(title=f"stability {plan['runtime']['name']}", total=total, unit="examples")
        for case in plan.get("regressions", []):
            report_progress(current=f"{prefix} regression[{case['id']}]")
            row = run_program_row(
                plan,
                base,
                case["program"],
                float(case.get("settle_s") or 30.0),
                "stability.regression",
                f"regression[{case['id']}]",
                {"id": case["id"], "tier": case["tier"], "steps": len(case["program"]) - 1},
                f"{plan['run_id']}-{plan['runtime']['name']}-{case['id']}",
                {"regression": case["id"]},
            )
            writer.write(row)
            say(f"{prefix} {_label(row)}")
            not_passed += row["outcome"] != "passed"
            report_progress(advance=1, failed=int(row["outcome"] != "passed"))
        for tier in plan["tiers"]:
            say(f"{prefix} fuzzing tier {tier!r} (profile {plan['profile']}, seed {plan['seed']}) …")
            report_progress(current=f"{prefix} fuzz[{tier}], {examples[tier]} examples")
            row = run_fuzz_batch(plan, base, tier)
            writer.write(row)
            say(f"{prefix} {_label(row)}")
            not_passed += row["outcome"] != "passed"
            # The batch counts whole: it may stop at its first failure, and hypothesis does not report each example.
            report_progress(advance=examples[tier], failed=int(row["outcome"] != "passed"))
    finally:
        writer.close()
    return not_passed


def main(argv: Optional[list[str]] = None) -> int:
    plan = read_plan(argv, "framework.chaos.run")
    if plan is None:
        return 2
    # The clusters log (and their worker processes inherit stderr): send all of it to a file, keep the console
    # for progress lines. The controller gives a private file and copies it, redacted, to results/ at the end.
    route_output(Path(plan.get("raw_log_path") or plan["log_path"]))
    say(f"[{plan['runtime']['name']}] cluster logs: {plan['log_path']}")
    watch_controller()
    started = dt.datetime.now(dt.timezone.utc)
    try:
        not_passed = run(plan)
    except RowsUnwritableError as error:
        say(f"{ROWS_UNWRITABLE} errno={error.errno} {error}")
        return EXIT_ROWS_UNWRITABLE
    except Exception:
        say_crash("the stability runner")
        return 3  # not 0 or 1 (passed / some examples failed): the controller records the run as died
    say(f"[{plan['runtime']['name']}] done in {(dt.datetime.now(dt.timezone.utc) - started).total_seconds():.0f} s")
    return 1 if not_passed else 0


if __name__ == "__main__":
    sys.exit(main())
