"""The `matrix` and `sql` nox sessions end to end, run from the project root exactly as a user types them.

Two runtimes (`latest`, and `previous` frozen at 2025-01-15) each get their own uv environment, run one workload on
a local cluster and write Parquet; the results must show two different Dask releases, every measured repeat passed.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from nox_session import nox
from packaging.version import Version

from framework.environments import parse_lock
from framework.query import Results

pytestmark = pytest.mark.environment

PREVIOUS_DASK = "2024.12.1"  # matrices/runtimes.yaml: runtimes.previous.packages


def files_under(directory: Path) -> list[str]:
    return sorted(str(path.relative_to(directory)) for path in directory.rglob("*") if path.is_file())


@pytest.fixture(scope="module")
def matrix_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    results = tmp_path_factory.mktemp("nox-matrix") / "results"
    process = nox(
        "-s",
        "matrix",
        "--",
        "--runtime=latest,previous",
        "--workload=array_mean_var",
        "--repeat=2",
        f"--results={results}",
    )
    return process, results


def test_matrix_session_succeeds_and_prints_a_summary_of_both_runtimes(
    matrix_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    process, results = matrix_run
    assert process.returncode == 0, process.stdout[-4000:]
    output = process.stdout
    assert f"— results in {results}" in output
    summary = output[output.index("— results in") :].splitlines()
    for runtime in ("latest", "previous"):
        # one block per runtime × hardware: a heading, the column names, a rule, then a row per case
        heading = next((i for i, line in enumerate(summary) if line.startswith(f"{runtime} × local")), None)
        assert heading is not None, f"no summary block for {runtime}:\n" + "\n".join(summary)
        assert summary[heading + 3].split()[:3] == ["array_mean_var", "passed", "2/2"], "\n".join(summary)
    assert "Session matrix was successful" in output
    # a quiet console: cluster and library logs are in the run's log files, whose place is said once
    assert output.count("cluster and library logs: ") == 1
    assert "Traceback" not in output and "Warning" not in output
    assert {path.name.split("__")[1] for path in (results / "logs").glob("*.log")} == {"latest", "previous"}


def test_matrix_session_publishes_and_leaves_nothing_staged(
    matrix_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    process, results = matrix_run
    assert process.returncode == 0, process.stdout[-4000:]
    cases = files_under(results / "cases")
    assert len(cases) == 2  # one Parquet file per runtime × hardware
    assert {name.split("__")[1] for name in cases} == {"latest", "previous"}
    assert files_under(results / ".staging") == []  # no plan or row file left behind


def test_sql_session_shows_two_dask_releases_every_repeat_passed(
    matrix_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    process, results = matrix_run
    assert process.returncode == 0, process.stdout[-4000:]
    query = (
        "SELECT runtime, dask_version, count(*) AS measured, count(*) FILTER (WHERE outcome = 'passed') AS passed,"
        " count(wall_s) AS timed, min(wall_s) AS fastest_s FROM cases GROUP BY ALL ORDER BY runtime"
    )

    sql = nox("-s", "sql", "--", query, f"--results={results}", "--json")

    assert sql.returncode == 0, sql.stdout[-4000:]
    rows: list[dict[str, Any]] = [json.loads(line) for line in sql.stdout.splitlines() if line.startswith("{")]
    assert [row["runtime"] for row in rows] == ["latest", "previous"]
    latest, previous = rows
    for row in rows:
        assert row["measured"] == row["passed"] == row["timed"] == 2, row
        assert row["fastest_s"] > 0
    assert previous["dask_version"] == PREVIOUS_DASK
    assert Version(latest["dask_version"]) > Version(PREVIOUS_DASK)  # 2026.x when this was written


def test_results_record_each_environments_lock_and_every_execution(
    matrix_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    process, results = matrix_run
    assert process.returncode == 0, process.stdout[-4000:]
    with Results(results) as store:
        _, environments = store.sql("SELECT runtime, env_hash, lock FROM environments ORDER BY runtime")
        _, executions = store.sql(
            "SELECT runtime, any_value(env_hash), any_value(dask_version), any_value(distributed_version),"
            " list(phase ORDER BY phase, repeat), bool_and(outcome = 'passed'), count(DISTINCT run_id)"
            " FROM rows GROUP BY runtime ORDER BY runtime"
        )
    assert [runtime for runtime, _, _ in environments] == ["latest", "previous"]
    locks = {runtime: (env_hash, parse_lock(lock)) for runtime, env_hash, lock in environments}
    for runtime, env_hash, dask_version, distributed_version, phases, all_passed, runs in executions:
        lock_hash, lock = locks[runtime]
        assert env_hash == lock_hash  # the rows point at the environment they ran in
        # What the runner found installed is what the environment's lock says.
        assert lock["dask"] == dask_version
        assert lock["distributed"] == distributed_version
        assert phases == ["measure", "measure", "warmup"]
        assert all_passed
        assert runs == 1
    assert locks["latest"][1]["dask"] != locks["previous"][1]["dask"]


def test_unknown_runtime_fails_in_one_line_with_the_near_miss_and_writes_nothing(tmp_path: Path) -> None:
    results = tmp_path / "results"
    (results / "cases").mkdir(parents=True)
    (results / "cases" / "earlier.parquet").write_bytes(b"a file from an earlier run")
    before = files_under(results)

    process = nox("-s", "matrix", "--", "--runtime=lates", "--workload=array_mean_var", f"--results={results}")

    assert process.returncode != 0
    hints = [line for line in process.stdout.splitlines() if "did you mean 'latest'" in line]
    assert len(hints) == 1
    assert hints[0].startswith("unknown runtime 'lates' — did you mean 'latest'? known: ")
    assert ", latest, previous, stable" in hints[0]
    assert "Traceback" not in process.stdout
    assert "Session matrix failed" in process.stdout
    assert files_under(results) == before
    assert not (results / ".staging").exists()
