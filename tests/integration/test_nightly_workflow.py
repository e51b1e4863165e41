"""The nightly workflow (.github/workflows/nightly.yml), its commands run here as its jobs run them.

The commands are read from the workflow file, not copied: two matrix shards as two processes at once (narrowed to
three workloads on ``latest``), their stores laid out as ``download-artifact`` lays them, the merge, the regression
scan and the report. The merged store must hold exactly the cases of the unsharded plan (``matrix --dry-run`` of the
same selection), each once, in one run group; the job summary gets a section from each step. ``bless`` is the one
step not run here (it runs stability and comparisons: tests/unit/test_blessing.py and test_nox_bless.py cover it).
Each ``nox -s VERB -- ARGS`` runs as ``python -m framework.cli VERB ARGS``, what the session runs after installing.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from framework.query import Results

pytestmark = pytest.mark.environment

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "nightly.yml"
NARROW = ["--runtime=latest", "--workload=array_mean_var,groupby_agg", "--repeat=1"]
DEADLINE_S = 900


def jobs() -> dict[str, Any]:
    return dict(yaml.safe_load(WORKFLOW.read_text())["jobs"])


def step(job: str, name: str) -> dict[str, Any]:
    return next(s for s in jobs()[job]["steps"] if s.get("name") == name)


def uses(job: str, action: str) -> dict[str, Any]:
    return next(s for s in jobs()[job]["steps"] if str(s.get("uses", "")).startswith(action))


def local_command(run: str, variables: dict[str, str], cwd: Path) -> list[str]:
    """A step's ``nox -s VERB -- ARGS`` line → ``python -m framework.cli VERB ARGS``, variables and globs expanded."""
    text = re.sub(r"\$\{\{\s*matrix\.shard\s*\}\}", variables["shard"], run.strip())
    text = re.sub(r"\$(\w+)", lambda match: variables[match.group(1)], text)
    words = shlex.split(text)
    assert words[:2] == ["nox", "-s"] and words[3] == "--", f"not a nox session command: {run!r}"
    expanded: list[str] = []
    for word in words[4:]:
        matches = sorted(str(p.relative_to(cwd)) for p in cwd.glob(word)) if any(c in word for c in "*?[") else []
        expanded += matches or [word]
    return [sys.executable, "-m", "framework.cli", words[2], *expanded]


def run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        check=False,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=DEADLINE_S,
    )


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The shard job twice (at once), then the judge job's merge, regressions and report; what each printed."""
    work = tmp_path_factory.mktemp("nightly")
    summary = work / "step-summary.md"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("GITHUB_", "AWS_"))}
    env |= {"PYTHONPATH": str(ROOT), "GITHUB_STEP_SUMMARY": str(summary)}
    variables = {"SHARDS": "2", "RUN_GROUP": "gh-4242-1", "STORE": "results", "BALANCE": "--balance=count"}
    matrix = step("shard", "matrix")["run"]
    upload = uses("shard", "actions/upload-artifact")["with"]
    download = uses("judge", "actions/download-artifact")["with"]
    shards = []
    for shard in ("1", "2"):
        directory = work / f"runner-{shard}"  # each shard runs on a machine of its own
        directory.mkdir()
        command = [*local_command(matrix, {**variables, "shard": shard}, directory), *NARROW]
        shards.append(
            (
                directory,
                subprocess.Popen(
                    command, cwd=directory, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
                ),
            )
        )
    outputs = {}
    for (directory, process), shard in zip(shards, ("1", "2")):
        outputs[f"shard {shard}"] = (process.communicate(timeout=DEADLINE_S)[0], process.returncode)
        # upload-artifact `shard-K` from path, download-artifact (pattern) into DOWNLOAD/shard-K/
        artifact = upload["name"].replace("${{ matrix.shard }}", shard)
        shutil.copytree(
            directory / upload["path"], work / download["path"] / artifact, ignore=shutil.ignore_patterns(".*")
        )  # include-hidden-files: false
    judge = work  # the judge job's checkout
    for name in ("merge", "regressions", "report"):
        process = run(local_command(step("judge", name)["run"], {**variables, "shard": ""}, judge), judge, env)
        outputs[name] = (process.stdout, process.returncode)
    dry = run([sys.executable, "-m", "framework.cli", "matrix", "--matrix=nightly", "--dry-run", *NARROW], work, env)
    planned = {
        tuple(line.split()[:3])
        for line in dry.stdout.splitlines()
        if line and not line.startswith(("skip ", "environment ", "dry run:"))
    }
    return {"work": work, "outputs": outputs, "planned": planned, "summary": summary}


def test_the_workflow_is_shards_then_one_judge_job_of_user_commands() -> None:
    workflow = jobs()
    assert workflow["shard"]["strategy"]["matrix"]["shard"] == [1, 2, 3]
    assert workflow["judge"]["needs"] == "shard"
    assert workflow["judge"]["if"] == "always()"  # a shard with failed cases is still merged, judged, reported
    commands = [s["run"] for job in workflow.values() for s in job.get("steps", []) if "nox -s" in s.get("run", "")]
    assert [shlex.split(c)[2] for c in commands] == ["matrix", "merge", "regressions", "bless", "report"]


def test_every_step_succeeds(night: dict[str, Any]) -> None:
    for name, (output, code) in night["outputs"].items():
        assert code == 0, f"{name} exited {code}:\n{output[-4000:]}"


def test_the_merged_store_holds_the_unsharded_plan_each_case_once_in_one_group(night: dict[str, Any]) -> None:
    with Results(night["work"] / "results") as results:
        _, rows = results.sql(
            "SELECT runtime, hardware, case_id, count(DISTINCT run_id), count(DISTINCT shard), any_value(run_group)"
            " FROM rows GROUP BY ALL"
        )
        _, [(groups, shards)] = results.sql("SELECT count(DISTINCT run_group), count(DISTINCT shard) FROM rows")
    assert {row[:3] for row in rows} == night["planned"]
    assert all(row[3] == 1 and row[4] == 1 for row in rows), rows  # each case ran in one shard, one run
    assert {row[5] for row in rows} == {"gh-4242-1"}
    assert (groups, shards) == (1, 2)


def test_a_second_merge_adds_nothing(night: dict[str, Any]) -> None:
    command = local_command(step("judge", "merge")["run"], {"STORE": "results", "shard": ""}, night["work"])
    before = sorted(p.relative_to(night["work"]) for p in (night["work"] / "results").rglob("*.parquet"))

    process = run(command, night["work"], {**os.environ, "PYTHONPATH": str(ROOT)})

    assert process.returncode == 0, process.stdout[-3000:]
    assert sorted(p.relative_to(night["work"]) for p in (night["work"] / "results").rglob("*.parquet")) == before


def test_the_report_is_built_and_the_job_summary_has_each_step(night: dict[str, Any]) -> None:
    assert (night["work"] / "site" / "index.html").is_file()
    summary = night["summary"].read_text()
    assert summary.count("## Matrix run ") == 2
    assert "## Regressions over history" in summary
