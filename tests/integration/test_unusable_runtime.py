"""Upstream moved and the runtime cannot import: every verb says so loudly and exits non-zero.

A copy of the project (framework, workloads, matrices) whose ``latest`` resolves against a local package index the
test builds: dask 2.0 is out, distributed has only 1.0 — and distributed 1.0 imports a name dask no longer has, as
distributed 2021.4.1 does with dask 2026.11.0. ``stable`` is a small runtime that imports fine. The commands run as
``python -m framework.cli …`` in the copy (the nox sessions call exactly that).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from package_index import LocalIndex

from framework.query import Results

pytestmark = pytest.mark.environment

ROOT = Path(__file__).resolve().parents[2]
OLD = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
CAUSE = "import distributed failed: ImportError: cannot import name 'collections_to_dsk' from 'dask.base'"
HEADLINE = f"latest is UNUSABLE: {CAUSE}"
RUNTIMES = """\
runtimes:
  latest:
    python: "3.11"
    packages: {dask: "", distributed: "", hypothesis: ""}
  stable:
    python: "3.11"
    packages: {toy-lib: "==1.0"}
  previous:
    python: "3.11"
    packages: {toy-lib: "==1.0"}
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """The project copy and the environment its commands run with (the index, uv's cache)."""
    root = tmp_path_factory.mktemp("project")
    for part in ("framework", "workloads", "matrices", "docs"):
        shutil.copytree(ROOT / part, root / part, ignore=shutil.ignore_patterns("__pycache__", "schemas"))
    (root / "matrices" / "runtimes.yaml").write_text(RUNTIMES)
    with LocalIndex(root / "index") as index:
        # dask.base exists but lacks what distributed 1.0 imports from it (as dask 2026.11.0 with distributed 2021.4.1).
        fake_dask = "import sys, types\nbase = sys.modules['dask.base'] = types.ModuleType('dask.base')\n"
        index.add("dask", "1.0", source=fake_dask + "__version__ = '1.0'\n", uploaded=OLD)
        index.add("dask", "2.0", source=fake_dask + "__version__ = '2.0'\n")
        index.add("distributed", "1.0", requires=["dask"], source="from dask.base import collections_to_dsk\n")
        index.add("hypothesis", "1.0")
        index.add("toy-lib", "1.0")
        environ = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PIP_INDEX"))},
            "UV_DEFAULT_INDEX": index.url,
            "UV_CACHE_DIR": str(root / "uv-cache"),
            "PYTHONPATH": str(root),
            "DASK_BLESSING_PROGRESS": "plain",
            "DASK_BLESSING_RESOLVE_TTL": "0",
        }
        yield root, environ


def cli(project: tuple[Path, dict[str, str]], *args: str) -> subprocess.CompletedProcess[str]:
    root, environ = project
    return subprocess.run(
        [sys.executable, "-m", "framework.cli", *args, f"--results={root / 'results'}"],
        cwd=root,
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_matrix_records_a_setup_row_per_case_and_leads_with_the_cause(project: tuple[Path, dict[str, str]]) -> None:
    process = cli(project, "matrix", "--runtime=latest")

    assert process.returncode == 1, process.stdout + process.stderr
    first = process.stdout.strip().splitlines()[0]
    assert first.startswith(HEADLINE), process.stdout
    assert "Traceback" not in process.stdout + process.stderr
    note = "latest: dask 2.0 has no matching distributed on the index — using dask and distributed 1.0"
    assert note in process.stderr
    with Results(project[0] / "results") as results:
        _, rows = results.sql("SELECT DISTINCT phase, outcome, error FROM rows WHERE runtime = 'latest'")
        _, planned = results.sql("SELECT count(DISTINCT case_id) FROM rows")
        _, health = results.sql("SELECT runtime, usable, cause, note FROM health WHERE NOT usable")
    assert len(rows) == 1, rows
    phase, outcome, error = rows[0]
    assert (phase, outcome) == ("setup", "error")
    assert error.startswith(HEADLINE)
    assert planned[0][0] == 4  # every smoke case got its row
    assert [(runtime, usable) for runtime, usable, _, _ in health] == [("latest", False)]
    assert health[0][2].startswith(CAUSE)
    assert health[0][3] == note


def test_sql_selects_unusable_environments(project: tuple[Path, dict[str, str]]) -> None:
    cli(project, "matrix", "--runtime=latest")
    process = cli(project, "sql", "SELECT DISTINCT runtime, dask_version FROM health WHERE NOT usable", "--json")

    assert process.returncode == 0, process.stderr
    assert [json.loads(line) for line in process.stdout.splitlines() if line.startswith("{")] == [
        {"runtime": "latest", "dask_version": "1.0"}
    ]


def test_a_second_run_records_its_lock_diff(project: tuple[Path, dict[str, str]]) -> None:
    cli(project, "matrix", "--runtime=latest")
    process = cli(project, "matrix", "--runtime=latest")

    assert "no package changed" in process.stdout + process.stderr
    with Results(project[0] / "results") as results:
        _, changes = results.sql("SELECT DISTINCT change FROM lock_changes WHERE runtime = 'latest'")
    assert changes == [("unchanged",)]


def test_compare_stops_before_its_rounds_and_names_the_side(project: tuple[Path, dict[str, str]]) -> None:
    process = cli(project, "compare", "--baseline=stable", "--candidate=latest", "--workload=array_mean_var")

    assert process.returncode == 1, process.stdout + process.stderr
    message = process.stderr.strip().splitlines()[-1]
    assert message.startswith(f"compare stopped before its rounds: the candidate {HEADLINE}")
    assert message.endswith("— nothing was compared")
    assert "round" not in process.stdout


def test_bless_fails_with_the_cause_as_its_first_failed_check_and_stores_it(
    project: tuple[Path, dict[str, str]],
) -> None:
    process = cli(project, "bless", "--runtime=latest", "--baseline=stable")

    assert process.returncode == 1, process.stdout + process.stderr
    lines = process.stdout.splitlines()
    assert lines[0].startswith("latest is NOT BLESSED against stable")
    assert lines[1].startswith(f"  ✗ {HEADLINE}")
    with Results(project[0] / "results") as results:
        _, verdicts = results.sql("SELECT blessed, reasons FROM verdicts WHERE runtime = 'latest'")
    assert verdicts[-1][0] is False
    assert json.loads(verdicts[-1][1])[0].startswith(HEADLINE)


def test_stability_records_a_failed_batch_and_exits_non_zero(project: tuple[Path, dict[str, str]]) -> None:
    process = cli(project, "stability", "--runtime=latest", "--profile=ci")

    assert process.returncode == 1, process.stdout + process.stderr
    assert process.stdout.strip().splitlines()[0].startswith(HEADLINE)
    with Results(project[0] / "results") as results:
        _, batches = results.sql("SELECT case_id, outcome, error FROM rows WHERE workload LIKE 'stability.%'")
    assert [(case, outcome) for case, outcome, _ in batches] == [("stability[fuzz]", "error")]
    assert batches[0][2].startswith(HEADLINE)
