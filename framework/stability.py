"""Stability runs, controller side: ``nox -s stability``.

    runtime → build its environment → chaos runner inside it (framework.chaos.run) → rows → Parquet

The runner replays every saved regression case (``workloads/regressions/*.json``) first, then fuzzes each tier
with hypothesis. A failure is recorded under ``results/stability/failures/<id>/``; ``--replay=<id>`` re-runs
it N times in the runtime it failed in (rebuilt from the recorded spec), reports how often it reproduces and,
if it does, saves it as a regression case that every later run executes first.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from framework.config import DEFAULT_RESULTS, ROOT, load_catalog
from framework.engine import (
    keep_log,
    new_run_id,
    prepare_environment,
    remove_plan,
    run_runner,
    runtime_payload,
    say,
    unfinished_rows,
    usable,
    write_plan,
)
from framework.in_runtime import provenance
from framework.in_runtime.errors import ConfigError, FrameworkError, SelectionError, near_miss
from framework.in_runtime.redaction import masked_note, without_masked
from framework.in_runtime.runner import PROTOCOL, RowWriter
from framework.models import Runtime
from framework.results import SCHEMA_VERSION, ResultsStore
from framework.salvage import salvage

TIERS = ("inprocess", "process")
PROFILES = ("ci", "nightly")
# Whole-run time budgets (the runner is killed past them); a hang inside is caught much earlier, per step.
BUDGET_S = {"ci": 45 * 60, "nightly": 12 * 3600}
REGRESSION_BUDGET_S = 5 * 60
REGRESSIONS_DIR = Path("workloads") / "regressions"


class StabilityError(FrameworkError):
    """A stability run was asked for something that cannot be done (unknown failure id, runtime lacks hypothesis)."""


class RegressionCase(BaseModel):
    """A saved failing program (``workloads/regressions/<id>.json``): replayed first by every stability run."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9_.+-]+$")
    tier: Literal["inprocess", "process"]
    description: str = ""
    program: list[dict[str, Any]] = Field(min_length=1)
    settle_s: float = Field(default=30.0, gt=0)
    found: dict[str, Any] = Field(default_factory=dict, description="runtime, versions and error when it was found")
    reproduced: dict[str, Any] = Field(default_factory=dict, description="hits and runs of the replay that saved it")


def load_regressions(root: Path) -> list[RegressionCase]:
    cases = []
    for path in sorted((root / REGRESSIONS_DIR).glob("*.json")):
        shown = path.relative_to(root) if path.is_relative_to(root) else path
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ConfigError(
                f"{shown}: not valid JSON ({error.msg} at line {error.lineno}) — fix or delete it"
            ) from None
        try:
            case = RegressionCase.model_validate(data)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "(top level)"
            raise ConfigError(
                f"{shown}: {where}: {first['msg']} (got {str(first.get('input'))[:80]!r})"
                " — regression cases are written by `nox -s stability -- --replay=ID`; restore or delete it"
            ) from None
        if case.program[0].get("op") != "start":
            raise ConfigError(f"{shown}: program[0]: must be the 'start' step with the cluster config — restore it")
        cases.append(case)
    return cases


@dataclasses.dataclass(frozen=True)
class StabilityOptions:
    runtimes: list[str]
    profile: str = "ci"
    tiers: tuple[str, ...] = TIERS
    examples: int | None = None
    steps: int | None = None
    seed: int | None = None
    settle_s: float | None = None
    results_dir: Path = DEFAULT_RESULTS
    root: Path = ROOT
    rebuild: bool = False
    regressions: bool = True
    # Fuzz past a failure: a batch that failed before its examples ran out goes on in a fresh runner process with
    # the examples left (a part of its own, seeded from the batch's seed), until they are spent.
    keep_going: bool = False


@dataclasses.dataclass
class StabilityReport:
    run_id: str
    published: list[Path] = dataclasses.field(default_factory=list)
    rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    unusable: list[str] = dataclasses.field(default_factory=list)  # "latest is UNUSABLE: …" per runtime


def _check_runtime(runtime: Runtime) -> None:
    names = {name.split("[")[0].lower() for name in runtime.packages}
    missing = [name for name in ("distributed", "hypothesis") if name not in names]
    if missing:
        raise StabilityError(
            f"matrices/runtimes.yaml: runtimes.{runtime.name}.packages: no {' or '.join(missing)} — the stability"
            f' fuzzer runs inside the runtime\'s environment; add `{missing[0]}: ""` (as_of pins it to its day)'
        )


def _base_plan(
    run_id: str, started: dt.datetime, environment: Any, store: ResultsStore, root: Path, mode: str
) -> dict[str, Any]:
    runtime = environment.runtime
    name = f"{run_id}__{runtime.name}__chaos"
    return {
        "protocol": PROTOCOL,
        "schema_version": SCHEMA_VERSION,
        "mode": mode,
        "run_id": run_id,
        "run_started_at": started.isoformat(),
        "run_group": run_id,  # a stability run is never split
        "shard": None,
        "runtime": runtime_payload(environment),
        # The fuzzer starts its own LocalClusters (sized by each example's drawn config) on this machine.
        "hardware": {"name": "chaos", "backend": "local", "note": "clusters drawn per example by the fuzzer"},
        "rows_path": str(store.staging_file(name)),
        "failures_dir": str(store.root / "stability" / "failures"),
        "log_path": str(store.root / "stability" / "logs" / f"{run_id}__{runtime.name}.log"),
        "work_dir": str(root / ".blessing" / "chaos"),
        "provenance": provenance.git_commit(root),
    }


def _execute(plan: dict[str, Any], environment: Any, store: ResultsStore, root: Path, budget_s: float) -> Path | None:
    rows_path = Path(plan["rows_path"])
    rows_path.parent.mkdir(parents=True, exist_ok=True)
    Path(plan["work_dir"]).mkdir(parents=True, exist_ok=True)
    # The clusters log to a private file while they run; results/ gets its redacted copy when the runner ends.
    scratch = Path(tempfile.mkdtemp(prefix="blessing-stability-"))
    raw_log = scratch / "cluster.log"
    plan_path = write_plan({**plan, "raw_log_path": str(raw_log)})
    try:
        code, tail = run_runner(environment, plan_path, budget_s, root, module="framework.chaos.run")
    finally:
        remove_plan(plan_path)
        keep_log(raw_log, Path(plan["log_path"]), plan["runtime"])
        shutil.rmtree(scratch, ignore_errors=True)
    if code not in (0, 1):
        # The runner died: a row for the run itself (as if it were one case), so the failure is in the results
        # rather than only in a log.
        last = tail.strip().splitlines()[-1] if tail.strip() else "no output"
        _whole_run_failed(plan, environment, budget_s, f"stability runner exited with code {code}: {last}")
    return store.publish(rows_path)


def _whole_run_failed(plan: dict[str, Any], environment: Any, budget_s: float, reason: str) -> None:
    """One ``error`` row for the whole batch (as if it were one case): a runner that died, a runtime unusable."""
    whole_run = {
        "case_id": f"stability[{plan['mode']}]",
        "workload": f"stability.{plan['mode']}",
        "function": "framework.chaos.run:run",
        "size": None,
        "params": {k: plan.get(k) for k in ("profile", "seed", "examples", "tiers")},
        "tags": ["stability"],
        "timeout_s": budget_s,
    }
    rows_path = Path(plan["rows_path"])
    extra = unfinished_rows({**plan, "cases": [whole_run]}, rows_path, reason, environment)
    if extra:
        rows_path.parent.mkdir(parents=True, exist_ok=True)
        writer = RowWriter(rows_path)
        for row in extra:
            writer.write(row)
        writer.close()


def planned(options: StabilityOptions) -> tuple[list[Runtime], list[RegressionCase]]:
    """The runtimes and saved regression cases a run would test; FrameworkError for bad input (nothing runs)."""
    if options.profile not in PROFILES:
        raise SelectionError(f"--profile={options.profile}: unknown profile — use one of {', '.join(PROFILES)}")
    for tier in options.tiers:
        if tier not in TIERS:
            raise SelectionError(near_miss(tier, TIERS, "tier"))
    catalog = load_catalog(options.root)
    runtimes = [catalog.runtime(name) for name in options.runtimes]
    for runtime in runtimes:
        _check_runtime(runtime)
    return runtimes, [case for case in load_regressions(options.root) if case.tier in options.tiers]


def run_stability(options: StabilityOptions) -> StabilityReport:
    """Regression cases, then the fuzzer, for each runtime. Raises FrameworkError for bad input before running."""
    runtimes, regressions = planned(options)
    store = ResultsStore(options.results_dir)
    salvage(store)
    started = dt.datetime.now(dt.timezone.utc)
    report = StabilityReport(new_run_id(started))
    seed = options.seed if options.seed is not None else secrets.randbelow(2**31)
    for runtime in runtimes:
        environment = prepare_environment(runtime, options.root, store, options.rebuild, started, report.run_id)
        fuzz_batch(environment, options, store, report, started, seed, regressions)
    return report


def fuzz_batch(
    environment: Any,
    options: StabilityOptions,
    store: ResultsStore,
    report: StabilityReport,
    started: dt.datetime,
    seed: int,
    regressions: list[RegressionCase],
) -> None:
    """One runtime's regression cases and fuzz batches (one seed) in its prepared environment, into ``report``."""
    runtime = environment.runtime
    plan = {
        **_base_plan(report.run_id, started, environment, store, options.root, "fuzz"),
        "profile": options.profile,
        "tiers": list(options.tiers),
        "examples": options.examples,
        "steps": options.steps,
        "seed": seed,
        "settle_s": options.settle_s,
        "regressions": [case.model_dump(mode="json") for case in regressions] if options.regressions else [],
    }
    say(
        f"stability run {report.run_id} on {runtime.name!r}: {len(plan['regressions'])} regression case(s),"
        f" then tiers {', '.join(options.tiers)} (profile {options.profile}, seed {seed}) …"
    )
    budget = BUDGET_S[options.profile] + REGRESSION_BUDGET_S * len(plan["regressions"])
    if environment.health is not None and not environment.health.usable:
        # A failed batch with the cause: never an empty table and a pass.
        report.unusable.append(environment.health.headline(runtime.name))
        _whole_run_failed(plan, environment, budget, environment.health.headline(runtime.name))
        published = store.publish(Path(plan["rows_path"]))
    else:
        published = _execute(plan, environment, store, options.root, budget)
    if published is not None:
        report.published.append(published)
        report.rows.extend(_rows_of(published))
        if options.keep_going:
            _keep_going(plan, environment, store, options.root, budget, report, _rows_of(published))


def continuation_seed(seed: int, part: int) -> int:
    """The seed of part ``part`` of a keep-going batch seeded ``seed`` (part 0 is the batch itself)."""
    return seed if part == 0 else (seed * 1_000_003 + part) % 2**31


def _keep_going(
    plan: dict[str, Any],
    environment: Any,
    store: ResultsStore,
    root: Path,
    budget: float,
    report: StabilityReport,
    rows: list[dict[str, Any]],
) -> None:
    """Each tier's batch that failed with examples left goes on in a fresh runner process, part after part.

    A fresh process, not the same one: a failed example can leave threads, locks and clients behind in the process
    (a hung task's thread, a leaked rejoin()), and the examples after it would be judged in what it left.
    """
    runtime = environment.runtime.name
    for tier in plan["tiers"]:
        row, part = _fuzz_row(rows, tier), 0
        while row is not None and row.get("outcome") != "passed" and row.get("failure_id"):
            params, extra = _json(row.get("params")), _json(row.get("extra_metrics"))
            left = int(params.get("examples_wanted") or 0) - int(extra.get("examples") or 0)
            if left <= 0:
                break
            part += 1
            say(f"[{runtime}] keep-going: {tier} goes on in a fresh process, {left} example(s) left (part {part}) …")
            part_plan = {
                **plan,
                "tiers": [tier],
                "examples": left,
                "batch_examples": plan["examples"],
                "seed": continuation_seed(plan["seed"], part),
                "batch_seed": plan["seed"],
                "part": part,
                "regressions": [],
                "rows_path": str(store.staging_file(f"{plan['run_id']}__{runtime}__chaos-{tier}-part{part}")),
            }
            published = _execute(part_plan, environment, store, root, budget)
            if published is None:
                break
            report.published.append(published)
            part_rows = _rows_of(published)
            report.rows.extend(part_rows)
            row = _fuzz_row(part_rows, tier)


def _fuzz_row(rows: list[dict[str, Any]], tier: str) -> dict[str, Any] | None:
    return next(
        (r for r in rows if r.get("workload") == "stability.fuzz" and _json(r.get("params")).get("tier") == tier),
        None,
    )


def _json(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    return json.loads(value) if value else {}


# --- replay ---------------------------------------------------------------------------------------------------


def failure_record(results_dir: Path, failure_id: str) -> dict[str, Any]:
    failures = results_dir / "stability" / "failures"
    path = failures / failure_id / "failure.json"
    if not path.exists():
        known = [p.name for p in failures.iterdir() if (p / "failure.json").exists()] if failures.exists() else []
        raise StabilityError(
            f"--replay={failure_id}: {near_miss(failure_id, known, 'failure id')} — list them with"
            ' nox -s sql -- "SELECT failure_id, runtime, error FROM rows WHERE failure_id IS NOT NULL"'
        )
    record: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return record


@dataclasses.dataclass
class ReplayReport:
    run_id: str
    failure_id: str
    runtime: str
    hits: int
    runs: int
    saved: Path | None
    published: Path | None
    errors: list[str]


def replay(
    failure_id: str,
    times: int = 5,
    results_dir: Path = DEFAULT_RESULTS,
    root: Path = ROOT,
    save: bool = True,
    runtime_name: str | None = None,
    shrink_first: bool = False,
    record: dict[str, Any] | None = None,
    until_hit: bool = False,
) -> ReplayReport:
    """Re-run a recorded failure ``times`` times in its runtime (or ``runtime_name``); save it if it reproduces.

    ``record`` replays that failure record instead of the one stored under ``failure_id`` — bisection passes
    a regression case, or a record whose runtime is a release's derived runtime. ``until_hit`` stops at the
    first replay that fails (bisection's question is only whether it reproduces).
    """
    record = record if record is not None else failure_record(results_dir, failure_id)
    if shrink_first:
        record = shrink_failure(record, results_dir, root, runtime_name)
        failure_id = record["failure_id"]
    runtime = _replay_runtime(record, root, runtime_name)
    _check_runtime(runtime)
    store = ResultsStore(results_dir)
    started = dt.datetime.now(dt.timezone.utc)
    run_id = new_run_id(started)
    environment = usable(prepare_environment(runtime, root, store, False, started, run_id), f"replay {failure_id}")
    plan = {
        **_base_plan(run_id, started, environment, store, root, "replay"),
        "replay": record,
        "times": times,
        "until_hit": until_hit,
    }
    say(f"replaying {failure_id} ({record['kind']}: {record['error'][:160]}) {times}× on {runtime.name!r} …")
    settle = float(record.get("settle_s") or 30.0)
    budget = 300 + times * (settle + 120 + 10 * len(record["program"]))
    published = _execute(plan, environment, store, root, budget)
    rows = _rows_of(published)
    hits = sum(1 for row in rows if row["outcome"] in ("failed", "timeout"))
    errors = [str(row.get("error")) for row in rows if row.get("error")]
    saved = None
    if save and hits:
        saved = save_regression(record, hits, len(rows), runtime.name, root)
    return ReplayReport(run_id, failure_id, runtime.name, hits, len(rows), saved, published, errors)


def _replay_runtime(record: dict[str, Any], root: Path, runtime_name: str | None) -> Runtime:
    if runtime_name:
        return load_catalog(root).runtime(runtime_name)
    # The runtime exactly as it was when the failure was found, even if runtimes.yaml changed since.
    spec, dropped = without_masked(record["runtime_spec"])
    if dropped:
        say(masked_note(f"failure {record.get('failure_id')}'s runtime {record['runtime']!r}", dropped))
    return Runtime.model_validate({**spec, "name": record["runtime"]})


def shrink_failure(record: dict[str, Any], results_dir: Path, root: Path, runtime_name: str | None) -> dict[str, Any]:
    """Delta-debug the recorded program in its runtime; return the record of the minimal failing program."""
    runtime = _replay_runtime(record, root, runtime_name)
    store = ResultsStore(results_dir)
    started = dt.datetime.now(dt.timezone.utc)
    run_id = new_run_id(started)
    environment = usable(prepare_environment(runtime, root, store, False, started, run_id), "shrink")
    plan = {**_base_plan(run_id, started, environment, store, root, "shrink"), "replay": record, "tries": 2}
    steps = len(record["program"]) - 1
    say(f"shrinking {record['failure_id']} ({steps} steps) on {runtime.name!r}: dropping steps while it fails …")
    settle = float(record.get("settle_s") or 30.0)
    published = _execute(plan, environment, store, root, 600 + steps * steps * 2 * (settle + 30))
    shrunk = [row for row in _rows_of(published) if row.get("failure_id")]
    if not shrunk:
        raise StabilityError(
            f"--shrink: {record['failure_id']} did not fail again on {runtime.name!r} while shrinking —"
            " replay it without --shrink to measure how often it reproduces"
        )
    return failure_record(results_dir, str(shrunk[-1]["failure_id"]))


def _rows_of(published: Path | None) -> list[dict[str, Any]]:
    if published is None:
        return []
    import pyarrow.parquet as pq

    return [dict(row) for row in pq.read_table(published).to_pylist()]


def save_regression(record: dict[str, Any], hits: int, runs: int, runtime: str, root: Path) -> Path:
    """Keep a reproduced failure as a regression case (never overwriting one already saved)."""
    target = root / REGRESSIONS_DIR / f"{record['failure_id']}.json"
    if target.exists():
        return target
    case = RegressionCase(
        id=record["failure_id"],
        tier=record["tier"],
        description=str(record["error"])[:300],  # "<invariant>: <error>", as recorded
        program=record["program"],
        settle_s=float(record.get("settle_s") or 30.0),
        found={
            "runtime": record["runtime"],
            "versions": record["versions"],
            "run_id": record["run_id"],
            "created_at": record["created_at"],
            "source": record.get("source", {}),
        },
        reproduced={"hits": hits, "runs": runs, "runtime": runtime, "at": dt.date.today().isoformat()},
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    partial.write_text(json.dumps(case.model_dump(mode="json"), indent=1) + "\n", encoding="utf-8")
    partial.replace(target)
    return target
