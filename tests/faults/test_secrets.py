"""Nothing leaked: secrets planted in a runtime's ``env`` and ``dask_config`` and in the process environment never
reach a byte under ``results/`` — rows, cluster dumps, records, failure records, logs — nor the report.

The end-to-end test runs ``python -m framework.cli matrix`` in a copy of the project (framework, workloads, matrices)
whose ``stable`` runtime is the real one plus the planted secrets: its kept resolution and built environment are
linked in, so nothing is built (and uv runs offline). One case hangs past its timeout (so the cluster is dumped) and
one raises with every secret in its message (so they reach the error and the traceback). About 20 s.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from project_copy import environ as project_environ
from project_copy import make_project
from project_copy import rows as rows_of

from framework.chaos.run import write_failure
from framework.in_runtime.redaction import MASK
from framework.records import write_record
from framework.report import build_site
from framework.results import CASE_COLUMNS, CASE_SCHEMA, SCHEMA_VERSION, write_atomic

IN_RUNTIME_ENV = "planted-secret-1"  # runtimes.stable.env.AWS_SECRET_ACCESS_KEY
IN_DASK_CONFIG = "planted-secret-2"  # runtimes.stable.dask_config["coiled.token"]
IN_PROCESS_ENV = "planted-secret-3"  # DASK_COILED__TOKEN of the person running
IN_PROCESS_CONFIG = "planted-secret-4"  # DASK_PROBE__PASSWORD: reaches every worker's Dask config
PLANTED = (IN_RUNTIME_ENV, IN_DASK_CONFIG, IN_PROCESS_ENV, IN_PROCESS_CONFIG)

PROBE_MODULE = """\
import os
import time

import dask


def hangs(seconds: float) -> None:
    dask.delayed(time.sleep)(seconds).compute()


def echoes() -> None:
    raise RuntimeError(
        f"login refused: {os.environ['AWS_SECRET_ACCESS_KEY']} {dask.config.get('coiled.token')}"
        f" {os.environ['DASK_COILED__TOKEN']} {dask.config.get('probe.password')}"
    )
"""
PROBE_WORKLOADS = """\
workloads:
  secrets_hang:
    description: Sleeps in a task past its timeout, so the cluster is dumped.
    function: workloads.fault_probe:hangs
    params: {seconds: 60}
    sizes: {tiny: {}}
    warmup: 0
    repeats: 1
    timeout: 3s
  secrets_echo:
    description: Fails with every planted secret in its message.
    function: workloads.fault_probe:echoes
    sizes: {tiny: {}}
    warmup: 0
    repeats: 1
    timeout: 1m
"""
PROBE_MATRIX = """\
matrices:
  default:
    runtimes: [stable]
    hardware: [local-threads]
    workloads: [secrets_hang, secrets_echo]
    size: tiny
"""


def leaks(directory: Path) -> list[str]:
    """Every planted secret found under ``directory``: in raw bytes, gunzipped bytes, and Parquet values decoded."""
    found = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        texts = [path.read_bytes()]
        if path.name.endswith(".gz"):
            texts.append(gzip.decompress(texts[0]))
        if path.suffix == ".parquet":
            texts.append(json.dumps(pq.read_table(path).to_pylist(), default=str).encode())
        found += [f"{path}: {secret}" for secret in PLANTED for text in texts if secret.encode() in text]
    return found


def _planted(stable: dict[str, Any]) -> dict[str, Any]:
    """The real ``stable`` runtime plus the planted secrets (env and dask_config change neither its lock nor build)."""
    stable["env"] = {**stable.get("env", {}), "AWS_SECRET_ACCESS_KEY": IN_RUNTIME_ENV}
    stable["dask_config"] = {**stable.get("dask_config", {}), "coiled.token": IN_DASK_CONFIG}
    return stable


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[subprocess.CompletedProcess[str], Path]]:
    root = make_project(tmp_path_factory.mktemp("planted"), PROBE_WORKLOADS, PROBE_MODULE, PROBE_MATRIX, _planted)
    environ = project_environ(root, DASK_COILED__TOKEN=IN_PROCESS_ENV, DASK_PROBE__PASSWORD=IN_PROCESS_CONFIG)
    process = subprocess.run(
        [sys.executable, "-m", "framework.cli", "matrix", f"--results={root / 'results'}"],
        cwd=root,
        env=environ,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    yield process, root / "results"


def test_no_planted_secret_reaches_any_byte_under_results(
    planted_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    process, results = planted_run
    rows = rows_of(results)
    assert {row["case_id"]: row["outcome"] for row in rows} == {
        "secrets_hang": "timeout",
        "secrets_echo": "error",
    }, process.stdout[-3000:] + process.stderr[-3000:]

    assert leaks(results) == []
    assert not list((results / ".staging").glob("*")), "a plan or row file was left under results/"


def test_the_keys_stay_with_their_values_masked(planted_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    _, results = planted_run
    rows = {row["case_id"]: row for row in rows_of(results)}
    echo = rows["secrets_echo"]
    spec = json.loads(echo["runtime_spec"])
    assert spec["env"]["AWS_SECRET_ACCESS_KEY"] == MASK
    assert spec["env"]["MALLOC_TRIM_THRESHOLD_"] == "65536"  # an allow-listed tuning knob keeps its value
    assert spec["dask_config"]["coiled.token"] == MASK
    assert spec["packages"]["distributed"] == "==2026.3.0"  # what reproduce needs is intact
    assert json.loads(echo["dask_config"]) == {"coiled.token": MASK}
    assert json.loads(echo["env_vars"])["AWS_SECRET_ACCESS_KEY"] is None
    assert echo["error"] == f"RuntimeError: login refused: {MASK} {MASK} {MASK} {MASK}"
    assert echo["traceback"].count(MASK) >= 4

    dump = Path(rows["secrets_hang"]["cluster_dump"])
    assert dump.parent.parent == results / "dumps"
    from distributed.cluster_dump import load_cluster_dump

    state = load_cluster_dump(str(dump))
    configs = [worker["config"] for worker in state["workers"].values() if isinstance(worker, dict)]
    assert configs, "the dump holds no worker config"
    for config in configs:
        assert config["coiled"]["token"] == MASK
        assert config["probe"]["password"] == MASK
        assert config["distributed"]["comm"]["tls"]["client"]["key"] is None  # unset stays unset
    assert any(task["key"].startswith("sleep-") for task in state["scheduler"]["tasks"].values())  # still useful


# -- old rows, failure records, records: no cluster ------------------------------------------------------------


def _unredacted_row(run_id: str) -> dict[str, Any]:
    """A row as a runner before redaction wrote it: every secret verbatim."""
    spec = {"python": "3.11", "packages": {"dask": ""}, "env": {"AWS_SECRET_ACCESS_KEY": IN_RUNTIME_ENV}}
    row: dict[str, Any] = dict.fromkeys(CASE_COLUMNS)
    row.update(
        schema_version=SCHEMA_VERSION,
        run_id=run_id,
        run_started_at=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
        started_at=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
        workload="groupby_agg",
        case_id="groupby_agg[by=id]",
        size="tiny",
        phase="measure",
        repeat=0,
        outcome="error",
        error=f"RuntimeError: login refused: {IN_RUNTIME_ENV} {IN_DASK_CONFIG}",
        traceback=f"Traceback ...\nRuntimeError: login refused: {IN_RUNTIME_ENV} {IN_DASK_CONFIG}",
        runtime="stable",
        hardware="local",
        runtime_spec=json.dumps({**spec, "dask_config": {"coiled.token": IN_DASK_CONFIG}}),
        dask_config=json.dumps({"coiled.token": IN_DASK_CONFIG}),
        env_vars=json.dumps({"AWS_SECRET_ACCESS_KEY": IN_RUNTIME_ENV}),  # a bug's worth: a value it should not have
    )
    return row


def test_the_report_redacts_rows_written_before_redaction(tmp_path: Path) -> None:
    results = tmp_path / "results"
    table = pa.Table.from_pylist([_unredacted_row("r1")], schema=CASE_SCHEMA)  # not through case_table
    write_atomic(table, results / "cases" / "r1__stable__local.parquet")
    assert leaks(results), "the planted store should hold the secrets"

    build_site(results, tmp_path / "site")

    assert leaks(tmp_path / "site") == []
    page = (tmp_path / "site" / "runs" / "r1.html").read_text()
    assert "AWS_SECRET_ACCESS_KEY" in page
    assert "coiled.token" in page


def test_a_stability_failure_record_is_redacted(tmp_path: Path) -> None:
    import msgpack

    raw_dump = tmp_path / "scratch" / "cluster-dump.msgpack.gz"
    raw_dump.parent.mkdir()
    with gzip.open(raw_dump, "wb") as handle:
        msgpack.pack({"workers": {"tcp://127.0.0.1:1": {"config": {"coiled": {"token": IN_DASK_CONFIG}}}}}, handle)
    plan = {
        "run_id": "r1",
        "runtime": {
            "name": "stable",
            "hash": "h",
            "spec": {"packages": {"dask": ""}, "env": {"AWS_SECRET_ACCESS_KEY": IN_RUNTIME_ENV}},
            "env": {"AWS_SECRET_ACCESS_KEY": IN_RUNTIME_ENV},
            "dask_config": {"coiled.token": IN_DASK_CONFIG},
        },
    }

    record = write_failure(
        tmp_path / "results" / "stability" / "failures",
        "r1-stable-process",
        tier="process",
        program=[{"op": "start", "config": {"tier": "process", "workers": 1}}],
        kind="result",
        error=f"ResultError: x != y with token {IN_DASK_CONFIG}",
        traceback_text=f"Traceback ...\n  login({IN_RUNTIME_ENV!r})",
        dump_path=str(raw_dump),
        log_tail=[f"distributed.worker INFO token={IN_DASK_CONFIG}"],
        plan=plan,
        source={"fuzz": {"seed": 1}},
    )

    assert leaks(tmp_path / "results") == []
    saved = json.loads((record / "failure.json").read_text())
    assert saved["runtime_spec"]["env"] == {"AWS_SECRET_ACCESS_KEY": MASK}
    assert saved["error"] == f"ResultError: x != y with token {MASK}"
    assert saved["cluster_dump"] == "cluster-dump.msgpack.gz"
    assert (record / "log-tail.txt").read_text() == f"distributed.worker INFO token={MASK}\n"


def test_a_record_never_holds_a_secret_the_process_knows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASK_COILED__TOKEN", IN_PROCESS_ENV)
    step = {"name": "cluster", "ok": False, "detail": f"auth failed with {IN_PROCESS_ENV}"}
    write_record(
        tmp_path / "results",
        "health",
        "r1__stable",
        [{"run_id": "r1", "runtime": "stable", "usable": False, "cause": step["detail"], "steps": [step]}],
    )

    assert leaks(tmp_path / "results") == []
    (row,) = pq.read_table(tmp_path / "results" / "health" / "r1__stable.parquet").to_pylist()
    assert row["cause"] == f"auth failed with {MASK}"


def test_a_stability_run_logs_to_results_only_redacted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from framework import stability
    from framework.results import ResultsStore

    seen: dict[str, Any] = {}

    def fake_runner(environment: Any, plan_path: Path, budget_s: float, root: Path, module: str) -> tuple[int, str]:
        plan = json.loads(plan_path.read_text())
        seen["plan_path"] = plan_path
        with Path(plan["raw_log_path"]).open("a") as log:  # what the clusters print while the runner runs
            log.write(f"distributed.nanny WARNING login {IN_RUNTIME_ENV} / {IN_DASK_CONFIG}\n")
        return 0, ""

    monkeypatch.setattr(stability, "run_runner", fake_runner)
    results = tmp_path / "results"
    log_path = results / "stability" / "logs" / "r1__stable.log"
    runtime = {
        "name": "stable",
        "env": {"AWS_SECRET_ACCESS_KEY": IN_RUNTIME_ENV},
        "dask_config": {"coiled.token": IN_DASK_CONFIG},
    }
    plan = {
        "runtime": runtime,
        "rows_path": str(results / ".staging" / "1__r1__stable__chaos.jsonl"),
        "log_path": str(log_path),
        "work_dir": str(tmp_path / "work"),
    }

    stability._execute(plan, None, ResultsStore(results), tmp_path, 60.0)

    assert log_path.read_text() == f"distributed.nanny WARNING login {MASK} / {MASK}\n"
    assert not seen["plan_path"].exists()  # the plan (real values) is gone, and was never under results/
    assert results not in seen["plan_path"].parents
    assert leaks(results) == []
