"""A synthetic but realistic results history, in the store's real layout and schema. Deterministic (seeded).

What it writes under ``root`` (as ``nox -s matrix`` / ``compare`` / ``regressions`` / ``bless`` would):

    cases/<run_id>__<runtime>__<hardware>.parquet   one file per nightly run × runtime (``CASE_SCHEMA``), each
                                                    catalogue case at size ``tiny`` × (1 warm-up + 5 repeats)
    environments/<env_hash>.parquet                 each environment's lock (``ResultsStore.record_environment``)
    comparisons/, regressions/, verdicts/           a few decision records (``history_records``)

The history: one run a day, ending on ``END``, of three runtimes that move through real-looking releases the way
the runtime card resolves them — ``latest`` the newest of everything before the run's day, ``stable`` pinned to
the newest dask that had ``STABLE_LAG_DAYS`` of use (re-pinned when a newer one qualifies), ``previous`` the
ecosystem as of 15 January of the year before. Values are log-normal around each case's level (noise per repeat
and a smaller drift per run); the levels step at known versions (``STEPS``); a few executions fail, raise or
time out, and one case raises for every run of one dask release (``STREAK``).

    from history_synth import synthesize
    history = synthesize(Path("/tmp/store"), rows=5_000)
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import hashlib
import json
import math
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from packaging.requirements import Requirement
from packaging.version import Version

from framework.config import load_catalog
from framework.environments import environment_hash, runtime_hash
from framework.in_runtime import provenance
from framework.matrix import expand_workload
from framework.models import Runtime
from framework.results import CASE_SCHEMA, SCHEMA_VERSION, ResultsStore, write_atomic

SEED = 20261127
END = dt.date(2026, 11, 26)  # the newest run's day
RUNTIMES = ("latest", "stable", "previous")  # run in this order each night
HARDWARE = "local"
SIZE = "tiny"
WARMUP, REPEATS = 1, 5
STABLE_LAG_DAYS = 225  # stable = the newest dask with this much use (2026.3.0 on END, as runtimes.yaml pins)
MiB = 2**20
_UTC = dt.timezone.utc
_STRING = pa.string()
_HOME = "/home/ci/dask-blessing"  # where the synthetic runner lives (paths in tracebacks and executables)

# Release dates (as the package index shows them) of the packages whose versions move; dask and distributed
# are released together.
_RELEASES = {
    "dask": """
        2022-12-16 2022.12.1  2023-01-13 2023.1.0  2023-06-09 2023.6.0  2023-12-15 2023.12.1  2024-01-12 2024.1.0
        2024-02-09 2024.2.0  2024-03-11 2024.3.0  2024-04-05 2024.4.0  2024-05-03 2024.5.0  2024-05-31 2024.5.2
        2024-06-07 2024.6.0  2024-06-21 2024.6.2  2024-07-12 2024.7.0  2024-07-19 2024.7.1  2024-08-09 2024.8.0
        2024-08-30 2024.8.2  2024-09-13 2024.9.0  2024-09-27 2024.9.1  2024-10-11 2024.10.0  2024-11-08 2024.11.0
        2024-11-14 2024.11.2  2024-12-03 2024.12.0  2024-12-17 2024.12.1  2025-01-17 2025.1.0  2025-02-14 2025.2.0
        2025-03-14 2025.3.0  2025-04-11 2025.4.0  2025-04-25 2025.4.1  2025-05-09 2025.5.0  2025-05-20 2025.5.1
        2025-07-01 2025.7.0  2025-09-05 2025.9.0  2025-09-19 2025.9.1  2025-10-10 2025.10.0  2025-11-14 2025.11.0
        2025-12-12 2025.12.0  2026-01-16 2026.1.0  2026-02-13 2026.2.0  2026-03-13 2026.3.0  2026-04-17 2026.4.0
        2026-05-15 2026.5.0  2026-06-12 2026.6.0  2026-07-10 2026.7.0  2026-08-14 2026.8.0""",
    "pandas": """
        2022-11-22 1.5.2  2023-04-03 2.0.0  2023-08-30 2.1.0  2023-12-08 2.1.4  2024-01-20 2.2.0  2024-04-10 2.2.2
        2024-09-20 2.2.3  2026-01-21 3.0.0  2026-03-02 3.0.1  2026-04-01 3.0.2  2026-07-20 3.1.0  2026-09-10 3.1.1""",
    "numpy": """
        2022-12-26 1.24.1  2023-06-25 1.25.0  2023-09-16 1.26.0  2024-01-02 1.26.3  2024-02-05 1.26.4
        2024-06-16 2.0.0  2024-07-21 2.0.1  2024-08-18 2.1.0  2024-11-02 2.1.3  2024-12-08 2.2.0  2024-12-21 2.2.1
        2025-03-16 2.2.4  2025-05-17 2.2.6  2025-06-07 2.3.0  2025-10-15 2.3.4  2025-12-20 2.4.0  2026-03-30 2.4.4
        2026-08-01 2.4.6""",
    "pyarrow": """
        2022-11-22 10.0.1  2023-05-02 12.0.0  2023-11-01 14.0.0  2023-12-18 14.0.2  2024-01-21 15.0.0
        2024-04-20 16.0.0  2024-07-16 17.0.0  2024-10-28 18.0.0  2024-11-26 18.1.0  2025-01-16 19.0.0
        2025-04-27 20.0.0  2025-07-17 21.0.0  2025-10-24 22.0.0  2026-01-18 23.0.0  2026-02-20 23.0.1
        2026-04-20 24.0.0  2026-07-15 25.0.0  2026-10-20 26.0.1""",
}
RELEASES: dict[str, list[tuple[dt.date, str]]] = {
    name: [(dt.date.fromisoformat(day), version) for day, version in zip(text.split()[::2], text.split()[1::2])]
    for name, text in _RELEASES.items()
}
RELEASES["distributed"] = RELEASES["dask"]
# The rest of an environment, at versions that do not move here (the card's packages and their dependencies).
FIXED_VERSIONS = {
    "bokeh": "3.6.2", "click": "8.1.8", "cloudpickle": "3.1.1", "coiled": "1.77.0", "duckdb": "1.1.3",
    "fsspec": "2024.12.0", "hypothesis": "6.123.2", "jinja2": "3.1.5", "locket": "1.0.0", "lz4": "4.3.3",
    "moto": "5.0.26", "msgpack": "1.1.0", "packaging": "24.2", "partd": "1.4.2", "psutil": "6.1.1",
    "pydantic": "2.10.5", "pyyaml": "6.0.2", "s3fs": "2024.12.0", "scikit-learn": "1.6.1",
    "sortedcontainers": "2.4.0", "tblib": "3.0.0", "toolz": "1.0.0", "tornado": "6.4.2", "urllib3": "2.3.0",
    "xarray": "2025.1.1", "xgboost-cpu": "2.1.3", "zarr": "2.18.4", "zict": "3.0.0",
}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Step:
    """A real change of level: ``column`` of every case tagged ``tag`` is multiplied by ``factor`` in runs whose
    ``package`` is at ``version`` or newer."""

    package: str
    version: str
    tag: str
    column: str
    factor: float


STEPS = (
    Step("dask", "2025.2.0", "dataframe", "peak_memory_bytes", 1.25),
    Step("dask", "2025.12.0", "array", "peak_memory_bytes", 0.85),
    Step("pyarrow", "24.0.0", "parquet", "wall_s", 1.12),
)
# One case raises in every run of one dask release (and passes again after it).
STREAK = (
    "xgboost_regression[api=sklearn]",
    "dask",
    "2025.9.0",
    "TypeError: fit() got an unexpected keyword argument 'eval_set'",
)
ERRORS = (
    "KeyError: 'id'",
    "ValueError: Length mismatch: Expected axis has 3 elements, new values have 4 elements",
    "distributed.comm.core.CommClosedError: in <TCP (closed) ConnectionPool.gather local=tcp://127.0.0.1:41922>",
    "RuntimeError: P2P shuffle 5f1c0a failed during transfer phase",
    "FutureCancelledError: ('getitem-5e7b', 3) cancelled for reason: lost dependencies",
)  # fmt: skip
FAILURES = ("WorkloadCheckFailed: sum of groups 1203 != rows 1204", "AssertionError: result has 99 rows, expected 100")


@dataclasses.dataclass(frozen=True)
class History:
    root: Path
    rows: int
    files: int  # case files
    runs: int
    cases: int  # distinct case ids
    environments: int
    records: dict[str, int]  # kind → rows written
    seconds: float


@dataclasses.dataclass(frozen=True)
class _Cases:
    """The catalogue's cases at SIZE, with each one's level of every metric (numpy arrays, one entry a case)."""

    ids: list[str]
    workloads: list[str]
    functions: list[str]
    params: list[str]
    tags: list[list[str]]
    timeout_s: np.ndarray
    wall_s: np.ndarray
    wall_noise: np.ndarray
    peak_bytes: np.ndarray
    mean_share: np.ndarray
    spill_bytes: np.ndarray
    tasks: np.ndarray
    extra: list[str]
    counters_lost: np.ndarray  # worker-death / restart cases: spill counters cannot be read


@dataclasses.dataclass(frozen=True)
class _Environment:
    runtime: str
    as_of: dt.date | None
    versions: dict[str, str]
    spec: str  # runtime_spec JSON
    runtime_hash: str
    env_hash: str
    requirements: list[str]


def synthesize(root: Path, rows: int = 1_000_000, *, seed: int = SEED, end: dt.date = END) -> History:
    """Write a history of exactly ``rows`` case rows (the newest run is cut short to fit) plus its records."""
    if rows < 1:
        raise ValueError(f"rows must be ≥ 1, got {rows}")
    clock = time.perf_counter()
    catalog = load_catalog()
    cases = _catalogue_cases(catalog, seed)
    store = ResultsStore(root)
    per_file = len(cases.ids) * (WARMUP + REPEATS)
    n_runs = math.ceil(rows / (per_file * len(RUNTIMES)))
    hardware = catalog.hardware[HARDWARE]
    machine = _machine(hardware.model_dump(mode="json"))
    environments: dict[str, _Environment] = {}
    left, files = rows, 0
    for index in range(n_runs):
        day = end - dt.timedelta(days=n_runs - 1 - index)
        rng = np.random.default_rng([seed, day.toordinal()])
        started = dt.datetime.combine(day, dt.time(2, 0), _UTC) + dt.timedelta(seconds=int(rng.integers(0, 1200)))
        run_id = f"{started:%Y%m%dT%H%M%SZ}-{rng.integers(0, 2**24):06x}"
        now_us = _micros(started)
        for position, name in enumerate(RUNTIMES):
            if left == 0:
                break
            environment = _environment(catalog.runtimes[name], day)
            if environment.env_hash not in environments:
                environments[environment.env_hash] = environment
                store.record_environment(_environment_row(environment, started))
            now_us += int(rng.uniform(40, 90) if name == "latest" else rng.uniform(2, 6)) * 10**6  # env resolve/reuse
            file_rng = np.random.default_rng([seed, day.toordinal(), position])
            table, now_us = _case_file(cases, environment, run_id, started, now_us, machine, file_rng, day, seed)
            table = table.slice(0, min(left, table.num_rows))
            write_atomic(table, store.cases_dir / f"{run_id}__{name}__{HARDWARE}.parquet")
            left -= table.num_rows
            files += 1
    from history_records import write_records  # it reads this module's names: imported once this one exists

    records = write_records(root, catalog, seed)
    seconds = time.perf_counter() - clock
    return History(root, rows, files, n_runs, len(cases.ids), len(environments), records, seconds)


# --------------------------------------------------------------------------------------------------
# Cases, versions and environments


def _catalogue_cases(catalog: Any, seed: int) -> _Cases:
    found: dict[str, list[Any]] = {key: [] for key in _Cases.__dataclass_fields__}
    for workload in catalog.workloads.values():
        expanded, _reason = expand_workload(workload, SIZE)  # a workload without SIZE is not in the history
        for case in expanded:
            rng = np.random.default_rng([seed, zlib.crc32(case.case_id.encode())])
            tags = list(workload.tags)
            found["ids"].append(case.case_id)
            found["workloads"].append(workload.name)
            found["functions"].append(workload.function)
            found["params"].append(json.dumps(case.params, sort_keys=True, default=str))
            found["tags"].append(tags)
            found["timeout_s"].append(float(workload.timeout))
            found["wall_s"].append(math.exp(rng.uniform(math.log(0.15), math.log(20.0))))
            found["wall_noise"].append(rng.uniform(0.03, 0.10))
            found["peak_bytes"].append(math.exp(rng.uniform(math.log(300 * MiB), math.log(3072 * MiB))))
            found["mean_share"].append(rng.uniform(0.55, 0.9))
            spills = "spill" in tags
            found["spill_bytes"].append(
                math.exp(rng.uniform(math.log(512 * MiB), math.log(4096 * MiB))) if spills else 0
            )
            found["tasks"].append(int(math.exp(rng.uniform(math.log(20), math.log(20_000)))))
            found["extra"].append(json.dumps({"rows": float(int(10 ** rng.uniform(4, 7)))}))
            found["counters_lost"].append(bool({"worker-death", "restart"} & set(tags)))
    texts = ("ids", "workloads", "functions", "params", "tags", "extra")
    arrays = {key: np.asarray(value) for key, value in found.items() if key not in texts}
    return _Cases(**{key: found[key] for key in texts}, **arrays)


def version_at(package: str, cutoff: dt.date) -> str:
    """The newest release of ``package`` published before ``cutoff`` (uv's --exclude-newer)."""
    releases = RELEASES[package]
    index = bisect.bisect_left([day for day, _ in releases], cutoff) - 1
    return releases[max(index, 0)][1]


def _as_of(runtime: str, day: dt.date) -> dt.date | None:
    if runtime == "latest":
        return None
    if runtime == "previous":
        return dt.date(day.year - 1, 1, 15)
    eligible = [released for released, _ in RELEASES["dask"] if released <= day - dt.timedelta(days=STABLE_LAG_DAYS)]
    return (eligible[-1] if eligible else RELEASES["dask"][0][0]) + dt.timedelta(days=1)


def _environment(declared: Runtime, day: dt.date) -> _Environment:
    """The runtime as that night's run resolved it: exact versions, the hashes of its spec and environment."""
    as_of = _as_of(declared.name, day)
    cutoff = as_of or day
    versions = {**FIXED_VERSIONS, **{package: version_at(package, cutoff) for package in RELEASES}}
    for key in declared.packages:
        versions.setdefault(Requirement(key).name, "1.0.0")  # a package added to the card later: any version
    runtime = declared
    if as_of is not None:  # pinned runtimes: every package of the card at its as-of version
        pins = {key: f"=={versions[Requirement(key).name]}" for key in declared.packages}
        runtime = declared.model_copy(update={"as_of": as_of, "packages": pins})
    spec = json.dumps(runtime.model_dump(mode="json"), sort_keys=True)
    requirements = runtime.requirements
    ordered = dict(sorted(versions.items()))
    lock = "".join(f"{name}=={version}\n" for name, version in ordered.items())
    return _Environment(
        declared.name,
        as_of,
        ordered,
        spec,
        runtime_hash(runtime),
        environment_hash(lock, runtime.python),  # environments are named by their lock
        requirements,
    )


def _environment_row(environment: _Environment, built: dt.datetime) -> dict[str, Any]:
    return {
        "env_hash": environment.env_hash,
        "runtime": environment.runtime,
        "runtime_hash": environment.runtime_hash,
        "python": "3.11",
        "built_at": built,
        "requirements": environment.requirements,
        "lock": "".join(f"{name}=={version}\n" for name, version in environment.versions.items()),
    }


# The one machine of the history, as the runner fingerprints it (its facts agree with the columns above).
_FINGERPRINT = {
    "cpu_model": "Intel(R) Xeon(R) Processor",
    "cores": 2,
    "memory_gib": 24,
    "kernel": "6.18.44",
    "virtualisation": "hypervisor flag",
    "arch": "x86_64",
}


def _machine(hardware_spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "hardware": HARDWARE,
        "hardware_backend": "local",
        "hardware_spec": json.dumps(hardware_spec, sort_keys=True),
        "cluster_workers": 2,
        "cluster_threads": 2,
        "cluster_memory_limit_bytes": 8 * 2**30,
        "os": "Linux-6.18.44-x86_64-with-glibc2.36",
        "cpu_model": "Intel(R) Xeon(R) Processor",
        "cpu_count": 2,
        "ram_bytes": 25_325_268_992,
        "hostname": "bench-runner-1",
        **{
            name: json.dumps(value, sort_keys=True) if isinstance(value, dict) else value
            for name, value in provenance.identity(_FINGERPRINT, "runner").items()
        },
        "python_version": "3.11.7",
        "python_implementation": "CPython",
        "settings_scope": "cluster",
        "dask_config": "{}",
        "env_vars": json.dumps({"MALLOC_TRIM_THRESHOLD_": "65536", "PYTHONPATH": None, "PYTHONUNBUFFERED": None}),
    }


def _factors(cases: _Cases, versions: dict[str, str], column: str) -> np.ndarray:
    factor = np.ones(len(cases.ids))
    for step in STEPS:
        if step.column == column and Version(versions[step.package]) >= Version(step.version):
            factor *= np.array([step.factor if step.tag in tags else 1.0 for tags in cases.tags])
    return factor


# --------------------------------------------------------------------------------------------------
# One case file


def _case_file(
    cases: _Cases,
    environment: _Environment,
    run_id: str,
    run_started: dt.datetime,
    now_us: int,
    machine: dict[str, Any],
    rng: np.random.Generator,
    day: dt.date,
    seed: int,
) -> tuple[pa.Table, int]:
    """Every case × (warm-ups + repeats) of one runtime in one run; returns the table and when it ended (µs)."""
    k, per = len(cases.ids), WARMUP + REPEATS
    n = k * per
    case = np.repeat(np.arange(k), per)
    slot = np.tile(np.arange(per), k)
    warm = slot < WARMUP
    versions = environment.versions

    # levels × steps × drift of this run × noise of this repeat (warm-ups pay first-use costs)
    wall = cases.wall_s * _factors(cases, versions, "wall_s") * np.exp(rng.normal(0, 0.03, k))
    wall = (
        wall[case] * np.exp(rng.normal(0, 1, n) * cases.wall_noise[case]) * np.where(warm, rng.uniform(1.2, 1.6, n), 1)
    )
    peak = cases.peak_bytes * _factors(cases, versions, "peak_memory_bytes") * np.exp(rng.normal(0, 0.004, k))
    peak = peak[case] * np.exp(rng.normal(0, 0.008, n))
    mean = (cases.peak_bytes * cases.mean_share)[case] * np.exp(rng.normal(0, 0.01, n))
    spilled = cases.spill_bytes[case] * np.exp(rng.normal(0, 0.03, n))

    # outcomes: 0 passed, 1 failed, 2 error, 3 timeout
    stability = np.array(["stability" in tags for tags in cases.tags])[case]
    draw = rng.random(n)
    p_error, p_timeout = np.where(stability, 0.005, 0.002), np.where(stability, 0.002, 0.0003)
    outcome = np.select([draw < 0.0005, draw < 0.0005 + p_error, draw < 0.0005 + p_error + p_timeout], [1, 2, 3], 0)
    streak_case, package, version, streak_error = STREAK
    streak = versions.get(package) == version and streak_case in cases.ids
    if streak:
        outcome[case == cases.ids.index(streak_case)] = 2
    timeout_s = cases.timeout_s[case]
    wall = np.where(outcome == 2, wall * rng.uniform(0.05, 1.0, n), wall)
    wall = np.where(outcome == 3, timeout_s + rng.uniform(0, 0.5, n), wall)
    no_memory = (outcome == 0) & (rng.random(n) < 0.002)  # the probe had no answer in time: NULL, never 0
    counters_lost = (outcome == 3) | cases.counters_lost[case]

    overhead = rng.uniform(0.012, 0.02, n)
    gaps = rng.uniform(0.05, 0.3, n)
    ends = now_us + np.cumsum(np.round((wall + overhead + gaps) * 1e6).astype(np.int64))
    starts = ends - np.round((wall + overhead) * 1e6).astype(np.int64)

    tasks = cases.tasks[case]
    share = rng.uniform(0.4, 0.6, n)
    ports = rng.integers(32768, 60999, 2)
    errors, tracebacks, missing, dumps, by_worker = [], [], [], [], []
    for i in range(n):
        code, name = int(outcome[i]), cases.ids[int(case[i])]
        phase_repeat = f"{'warmup' if warm[i] else 'measure'}{slot[i] if warm[i] else slot[i] - WARMUP}"
        error = None
        if code == 1:
            error = FAILURES[int(draw[i] * 1e6) % len(FAILURES)]
        elif code == 2:
            error = streak_error if streak and name == streak_case else ERRORS[int(draw[i] * 1e6) % len(ERRORS)]
        elif code == 3:
            error = f"exceeded the case timeout of {timeout_s[i]:g} s"
        errors.append(error)
        tracebacks.append(_traceback(cases.functions[int(case[i])], error) if code in (1, 2) else None)
        dumps.append(f"dumps/{run_id}/{name}-{phase_repeat}.msgpack.gz" if code == 3 else None)
        reasons = {}
        if code == 3:
            reasons.update(dict.fromkeys(_TIMEOUT_COUNTERS, "case timed out before its counters could be read"))
        elif counters_lost[i]:
            reasons.update(dict.fromkeys(_SPILL_COUNTERS, "a worker restarted during the case: counters lost"))
        if no_memory[i]:
            reasons.update(dict.fromkeys(_MEMORY, "memory probe: no worker answered within 2 s"))
        if counters_lost[i] and code != 3:
            reasons.update(dict.fromkeys(_WORKER_HEALTH, _WORKER_HEALTH_LOST))
        missing.append(json.dumps(reasons, sort_keys=True))
        done = int(tasks[i] * (1 if code != 2 else share[i]))
        first = int(done * share[i])
        by_worker.append(
            None
            if code == 3
            else f'{{"tcp://127.0.0.1:{ports[0]}": {first}, "tcp://127.0.0.1:{ports[1]}": {done - first}}}'
        )

    # The machine's load over each execution, from a generator of its own (the draws above keep their values): mostly
    # quiet, now and then overloaded (load above the 2 cores), as a shared CI machine is.
    load_rng = np.random.default_rng([seed, zlib.crc32(f"{run_id}/{environment.runtime}".encode())])
    load = load_rng.uniform(0.2, 1.6, n) + np.where(load_rng.random(n) < 0.01, load_rng.uniform(1.5, 5, n), 0)
    pressure = np.minimum(load_rng.uniform(0, 0.1, n) * load, 1)
    steal = load_rng.uniform(0, 0.01, n)
    # Scheduler and worker health, from a generator of its own too: short stalls, now and then one of a second
    # (a stall of ≥ 0.1 s counts towards the blocked totals); scheduler CPU by tasks; GC pauses of milliseconds.
    health_rng = np.random.default_rng([seed, zlib.crc32(f"health/{run_id}/{environment.runtime}".encode())])
    stall = np.where(health_rng.random(n) < 0.03, health_rng.uniform(0.1, 1.5, n), 0.0)
    scheduler_max = health_rng.uniform(0.002, 0.06, n) + stall
    scheduler_blocked = stall * health_rng.uniform(1, 2, n)
    worker_stall = np.where(health_rng.random(n) < 0.05, health_rng.uniform(0.1, 0.8, n), 0.0)
    worker_max = health_rng.uniform(0.002, 0.08, n) + worker_stall
    worker_blocked = worker_stall * health_rng.uniform(1, 3, n)
    scheduler_cpu = tasks * 0.0004 * health_rng.lognormal(0, 0.05, n) + 0.01 * wall
    scheduler_rss = (160 * MiB + tasks * 2048) * health_rng.lognormal(0, 0.01, n)
    scheduler_gc = tasks * 2e-6 * health_rng.lognormal(0, 0.2, n)
    worker_gc = wall * 0.004 * health_rng.lognormal(0, 0.3, n)
    worker_lost = counters_lost & (outcome != 3)

    def column(values: Any, kind: pa.DataType, null: Any = None) -> pa.Array:
        return pa.array(values, type=kind, mask=None if null is None else np.asarray(null, dtype=bool))

    def constant(value: Any, kind: pa.DataType = _STRING) -> pa.Array:
        return pa.repeat(pa.scalar(value, kind), n)

    def per_case(values: list[Any], kind: pa.DataType = _STRING) -> pa.Array:
        return pa.array(values, type=kind).take(pa.array(case))

    passed = outcome == 0
    spill_null = counters_lost
    timed_out = outcome == 3
    data = {
        "schema_version": constant(SCHEMA_VERSION, pa.int32()),
        "run_id": constant(run_id),
        "run_started_at": constant(run_started, CASE_SCHEMA.field("run_started_at").type),
        "run_group": constant(run_id),  # a nightly run that was not split: its own group
        "shard": constant(None),
        "workload": per_case(cases.workloads),
        "case_id": per_case(cases.ids),
        "function": per_case(cases.functions),
        "size": constant(SIZE),
        "params": per_case(cases.params),
        "tags": per_case(cases.tags, pa.list_(pa.string())),
        "phase": column(np.where(warm, "warmup", "measure"), pa.string()),
        "repeat": column(np.where(warm, slot, slot - WARMUP), pa.int32()),
        "timeout_s": column(timeout_s, pa.float64()),
        "outcome": pa.array(["passed", "failed", "error", "timeout"]).take(pa.array(outcome)),
        "error": column(errors, pa.string()),
        "traceback": column(tracebacks, pa.string()),
        "started_at": column(starts, CASE_SCHEMA.field("started_at").type),
        "ended_at": column(ends, CASE_SCHEMA.field("ended_at").type),
        "wall_s": column(wall, pa.float64()),
        "peak_memory_bytes": column(peak.astype(np.int64), pa.int64(), no_memory),
        "mean_memory_bytes": column(mean.astype(np.int64), pa.int64(), no_memory),
        "memory_samples": column(np.where(no_memory, 0, np.maximum(wall / 0.01, 1)).astype(np.int32), pa.int32()),
        "memory_method": constant("rss-probe"),
        "spilled_bytes": column(spilled.astype(np.int64), pa.int64(), spill_null),
        "unspilled_bytes": column((spilled * share).astype(np.int64), pa.int64(), spill_null),
        "spill_count": column((spilled // (8 * MiB)).astype(np.int64), pa.int64(), spill_null),
        "spill_time_s": column(spilled / 400e6, pa.float64(), spill_null),
        "compute_time_s": column(wall * 2 * rng.uniform(0.6, 0.9, n), pa.float64(), timed_out),
        "transfer_time_s": column(wall * rng.uniform(0.01, 0.1, n), pa.float64(), timed_out),
        "deserialize_time_s": column(wall * rng.uniform(0, 0.01, n), pa.float64()),
        "tasks": column(tasks, pa.int64(), timed_out),
        "tasks_erred": column(np.where(outcome == 2, 1, 0), pa.int64(), timed_out),
        "tasks_by_worker": column(by_worker, pa.string()),
        "extra_metrics": column([cases.extra[c] if ok else None for c, ok in zip(case, passed)], pa.string()),
        "missing": column(missing, pa.string()),
        "load_avg_1m": column(load, pa.float64()),
        "cpu_pressure": column(pressure, pa.float64()),
        "cpu_steal": column(steal, pa.float64()),
        "overloaded": column(load > machine["cpu_count"], pa.bool_()),
        "scheduler_loop_max_s": column(scheduler_max, pa.float64()),
        "scheduler_loop_blocked_s": column(scheduler_blocked, pa.float64()),
        "worker_loop_max_s": column(worker_max, pa.float64(), worker_lost),
        "worker_loop_blocked_s": column(worker_blocked, pa.float64(), worker_lost),
        "scheduler_cpu_s": column(scheduler_cpu, pa.float64()),
        "scheduler_peak_rss_bytes": column(scheduler_rss.astype(np.int64), pa.int64()),
        "scheduler_gc_s": column(scheduler_gc, pa.float64()),
        "worker_gc_s": column(worker_gc, pa.float64(), worker_lost),
        "cluster_dump": column(dumps, pa.string()),
        "failure_id": constant(None),
        "runtime": constant(environment.runtime),
        "runtime_hash": constant(environment.runtime_hash),
        "env_hash": constant(environment.env_hash),
        "runtime_spec": constant(environment.spec),
        "packages": constant(json.dumps(versions, sort_keys=True)),
        "worker_packages": constant(None),  # a local cluster: its workers are this environment
        "dask_version": constant(versions["dask"]),
        "distributed_version": constant(versions["distributed"]),
        "executable": constant(f"{_HOME}/.blessing/envs/{environment.runtime}-{environment.env_hash}/bin/python"),
        "git_commit": constant(hashlib.sha1(f"{seed}-{day.toordinal() // 7}".encode()).hexdigest()),
        "git_dirty": constant(False, pa.bool_()),
        **{name: constant(value, CASE_SCHEMA.field(name).type) for name, value in machine.items()},
    }
    # Columns this history does not fill (newer than it) are NULL, as in files older than them.
    arrays = [
        data[name] if name in data else constant(None, CASE_SCHEMA.field(name).type) for name in CASE_SCHEMA.names
    ]
    return pa.Table.from_arrays(arrays, schema=CASE_SCHEMA), int(ends[-1])


_TIMEOUT_COUNTERS = ("tasks", "compute_time_s", "transfer_time_s", "spilled_bytes", "spill_time_s")
_SPILL_COUNTERS = ("spilled_bytes", "unspilled_bytes", "spill_count", "spill_time_s")
_MEMORY = ("peak_memory_bytes", "mean_memory_bytes")
_WORKER_HEALTH = ("worker_loop_max_s", "worker_loop_blocked_s", "worker_gc_s")
_WORKER_HEALTH_LOST = "1 worker(s) left during the execution (e.g. tcp://127.0.0.1:40111): their figures went with them"


def _traceback(function: str, error: str | None) -> str:
    module, name = function.split(":")
    return (
        "Traceback (most recent call last):\n"
        f'  File "{_HOME}/framework/in_runtime/runner.py", line 84, in target\n'
        "    outcome['value'] = function(**params)\n"
        f'  File "{_HOME}/{module.replace(".", "/")}.py", line 42, in {name}\n'
        "    return result.compute()\n"
        f"{error}\n"
    )


def _micros(moment: dt.datetime) -> int:
    return (moment - dt.datetime(1970, 1, 1, tzinfo=_UTC)) // dt.timedelta(microseconds=1)


# --------------------------------------------------------------------------------------------------
# Decision records: what `compare --from-results`, `regressions` and `bless` would have written
