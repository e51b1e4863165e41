"""`reproduce` end to end in a copy of the project: a small runtime's matrix run is recorded, the runtime's YAML then
changes (other dask, distributed and numpy), its environment is deleted — and `reproduce --run=` still rebuilds the
recorded lock, runs the recorded case again as a new run and prints recorded vs now with intervals.

The copy is run as the nox sessions run it (``python -m framework.cli VERB`` with the copy as the project root), so
its environments and config are its own; `nox -s reproduce` itself is run from the project for its one-line refusal.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from nox_session import ROOT, nox

from framework.environments import ENVS_DIR, MARKER, parse_lock
from framework.query import Results

pytestmark = pytest.mark.environment

RECORDED = {"dask[array]": "==2026.3.0", "distributed": "==2026.3.0", "numpy": "==2.4.4"}
CHANGED = {"dask[array]": "==2026.1.0", "distributed": "==2026.1.0", "numpy": "==2.3.5"}


def declare(project: Path, packages: dict[str, str]) -> None:
    """The runtime ``repro`` in the copy's matrices/runtimes.yaml, with these packages."""
    path = project / "matrices" / "runtimes.yaml"
    data = yaml.safe_load(path.read_text())
    data["runtimes"]["repro"] = {"python": "3.11", "as_of": "2026-04-15", "packages": packages}
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def cli(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")}
    return subprocess.run(
        [sys.executable, "-m", "framework.cli", *args],
        cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str, subprocess.CompletedProcess[str]]:
    project = tmp_path_factory.mktemp("project")
    ignore = shutil.ignore_patterns("__pycache__", "schemas")
    for folder in ("framework", "workloads", "matrices"):
        shutil.copytree(ROOT / folder, project / folder, ignore=ignore)
    results = project / "results"
    declare(project, RECORDED)
    matrix = cli(project, "matrix", "--runtime=repro", "--hardware=local-inprocess", "--workload=array_mean_var",
                 "--repeat=3", f"--results={results}")  # fmt: skip
    assert matrix.returncode == 0, matrix.stdout[-4000:]
    assert str(project / ENVS_DIR / "repro-") in matrix.stdout  # the copy's own environment, not the project's
    with Results(results) as store:
        [(run_id,)] = store.sql("SELECT DISTINCT run_id FROM rows")[1]

    declare(project, CHANGED)  # the YAML moves on …
    for built in (project / ENVS_DIR).glob("repro-*"):
        shutil.rmtree(built)  # … and the environment is gone
    process = cli(project, "reproduce", f"--run={run_id}", f"--results={results}")
    return project, results, run_id, process


def test_it_rebuilds_the_recorded_lock_not_the_changed_spec(
    reproduced: tuple[Path, Path, str, subprocess.CompletedProcess[str]],
) -> None:
    project, results, run_id, process = reproduced
    assert process.returncode == 0, process.stdout[-4000:]
    with Results(results) as store:
        [(env_hash, lock)] = store.sql("SELECT env_hash, lock FROM environments")[1]
        _, rows = store.sql("SELECT run_id, env_hash, runtime_spec, packages FROM rows WHERE run_id <> ?", [run_id])
    recorded = parse_lock(lock)
    assert recorded["numpy"] == "2.4.4"
    assert recorded["dask"] == recorded["distributed"] == "2026.3.0"
    assert "built in" in process.stdout  # really rebuilt (the environment had been deleted) …
    assert (project / ENVS_DIR / f"repro-{env_hash}" / MARKER).read_text() == lock  # … from the recorded lock
    assert rows, "the reproduction stored no rows"
    assert {row[0] for row in rows} != {run_id}  # a new run
    for _, row_env_hash, spec, packages in rows:
        assert row_env_hash == env_hash  # the very environment the run recorded
        assert json.loads(spec)["packages"] == RECORDED  # its recorded spec, not today's YAML
        installed = json.loads(packages)
        assert {name: installed[name] for name in recorded} == recorded  # what the runner found installed


def test_it_prints_recorded_vs_now_with_intervals(
    reproduced: tuple[Path, Path, str, subprocess.CompletedProcess[str]],
) -> None:
    _, _, run_id, process = reproduced
    assert process.returncode == 0, process.stdout[-4000:]
    output = process.stdout
    assert f"reproduces run {run_id}" in output
    assert "repro × local-inprocess — environment " in output
    assert "(the recorded one) from the stored lock, with hashes; the same " in output
    table = output[output.index("case  ") :].splitlines()
    assert table[2].startswith("array_mean_var  3/3 → 3/3")
    for line, label in zip(table[2:6], ("wall time", "peak memory", "mean memory", "spill")):
        assert label in line
        change = r"[+-][\d.]+ %"
        assert re.search(rf"{change}\s+{change} to {change}", line), line  # the change and its 95 % interval
    assert "reproduce with --repeat=9 for a verdict" in output


def test_the_session_refuses_an_unknown_run_in_one_line(tmp_path: Path) -> None:
    process = nox("-s", "reproduce", "--", "--run=20991231T000000Z-nope00", f"--results={tmp_path}")

    assert process.returncode != 0
    assert (
        f"no run '20991231T000000Z-nope00' in {tmp_path} — list recent runs with: nox -s sql --"
        ' "SELECT DISTINCT run_id, runtime FROM runs ORDER BY 1 DESC LIMIT 10"'
    ) in process.stdout
    assert "Traceback" not in process.stdout
