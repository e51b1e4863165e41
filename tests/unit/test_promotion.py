"""framework/promotion.py: ``nox -s guard -- --from=…`` writes a guard, its reproducer and its ledger entry, which load
together with the catalogue — or writes nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from framework.config import load_catalog, load_findings
from framework.in_runtime.errors import SelectionError
from framework.promotion import promote

GOOD = Path(__file__).resolve().parents[1] / "resources" / "good"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    shutil.copytree(GOOD, root)
    (root / "workloads" / "guards").mkdir()
    for name in ("__init__.py", "replayed.py"):
        shutil.copy(ROOT / "workloads" / "guards" / name, root / "workloads" / "guards" / name)
    return root


def _store(write_run, case_row) -> None:
    """groupby_agg passed on dask 2026.1.0 and failed on 2026.3.0."""
    case = "groupby_agg[by=id]"
    params = {"by": "id", "seed": 0, "freq": "10s", "days": 1}
    write_run([case_row(run_id="r-good", case_id=case, params=params, dask_version="2026.1.0")])
    write_run(
        [
            case_row(
                run_id="r-bad",
                case_id=case,
                params=params,
                dask_version="2026.3.0",
                distributed_version="2026.3.0",
                outcome="failed",
                error="WorkloadCheckFailed: sums differ: 41 != 42\nmore",
            )
        ]
    )


def test_a_failed_case_becomes_a_guard_its_reproducer_and_a_finding(project, results_dir, write_run, case_row):
    _store(write_run, case_row)

    promotion = promote("r-bad:groupby_agg[by=id]", results_dir, root=project)

    assert promotion.name == "groupby_agg_failed"
    guard = load_catalog(project).workloads["groupby_agg_failed"]
    assert guard.function == "workloads.dataframe:groupby_agg" and "guard" in guard.tags and "smoke" not in guard.tags
    [(name, finding)] = load_findings(load_catalog(project), project).items()
    assert name == "groupby_agg_failed"
    assert finding.summary == "groupby_agg failed on dask 2026.3.0: WorkloadCheckFailed: sums differ: 41 != 42"
    assert (finding.package, finding.first_bad, finding.first_fixed, finding.evidence) == (
        "dask",
        "2026.3.0",
        None,
        ["r-bad"],
    )
    script = (project / finding.reproducer).read_text()
    compile(script, finding.reproducer, "exec")
    assert "from workloads.dataframe import groupby_agg" in script and "'by': 'id'" in script
    assert promotion.bisect == (
        "nox -s bisect -- --package=dask --good=2026.1.0 --bad=2026.3.0 --workload=groupby_agg_failed --metric=outcome"
    )
    frames = (project / "workloads" / "frames.yaml").read_text()
    assert (GOOD / "workloads" / "frames.yaml").read_text() == frames  # the workload it came from is left as it is

    with pytest.raises(SelectionError, match="--name=groupby_agg_failed: a workload of that name exists"):
        promote("r-bad:groupby_agg[by=id]", results_dir, root=project)
    second = promote("r-bad:groupby_agg[by=id]", results_dir, name="groupby_again", root=project)
    assert set(load_findings(load_catalog(project), project)) == {"groupby_agg_failed", second.name}


def test_a_run_group_id_finds_the_failed_case_in_its_shard(project, results_dir, write_run, case_row):
    write_run([case_row(run_id="s1", run_group="nightly", shard="1/2", case_id="array_mean_var")])
    params = {"by": "id", "seed": 0, "freq": "10s", "days": 1}
    failed = {"outcome": "failed", "error": "WorkloadCheckFailed: no", "dask_version": "2026.3.0", "params": params}
    write_run([case_row(run_id="s2", run_group="nightly", shard="2/2", case_id="groupby_agg[by=id]", **failed)])

    promotion = promote("nightly:groupby_agg[by=id]", results_dir, root=project)

    [finding] = load_findings(load_catalog(project), project).values()
    assert promotion.name == "groupby_agg_failed" and finding.evidence == ["s2"]  # the shard's run, not the group


def test_a_source_with_no_failure_writes_nothing(project, results_dir, write_run, case_row):
    _store(write_run, case_row)
    before = sorted(path.relative_to(project) for path in project.rglob("*"))

    with pytest.raises(SelectionError, match=r"--from=r-good:groupby_agg\[by=id\]: no failed execution of case"):
        promote("r-good:groupby_agg[by=id]", results_dir, root=project)
    assert sorted(path.relative_to(project) for path in project.rglob("*")) == before


def test_a_case_stored_before_its_module_was_renamed_becomes_a_guard_on_todays_function(
    project, results_dir, write_run, case_row
):
    """Rows keep the function path they ran; the guard takes the path the workload of that name has now."""
    stored = case_row(
        run_id="r-old",
        case_id="groupby_agg[by=id]",
        function="workloads.renamed_since:groupby_agg",
        params={"by": "id", "days": 1},
        outcome="failed",
        error="WorkloadCheckFailed: sums differ",
    )
    write_run([stored])

    promotion = promote("r-old:groupby_agg[by=id]", results_dir, root=project)

    guard = load_catalog(project).workloads[promotion.name]
    assert guard.function == "workloads.dataframe:groupby_agg"  # tests/resources/good's module
    [(_, finding)] = load_findings(load_catalog(project), project).items()
    assert "from workloads.dataframe import groupby_agg" in (project / finding.reproducer).read_text()


def test_a_stability_failure_becomes_a_replaying_guard(project, results_dir):
    record = {
        "failure_id": "20261206T000000Z-abcdef-thread",
        "kind": "leak",
        "error": "thread 'Dask-Default-Threads-1' still blocked in rejoin",
        "program": [{"op": "start", "config": {"tier": "thread", "workers": 1}}],
        "settle_s": 5,
        "versions": {"dask": "2026.8.0", "distributed": "2026.8.0"},
        "run_id": "r-fuzz",
    }
    folder = results_dir / "stability" / "failures" / record["failure_id"]
    folder.mkdir(parents=True)
    (folder / "failure.json").write_text(json.dumps(record))

    promotion = promote(record["failure_id"], results_dir, root=project)

    guard = load_catalog(project).workloads[promotion.name]
    assert guard.function == "workloads.guards.replayed:replay_program"
    finding = load_findings(load_catalog(project), project)[promotion.name]
    assert (finding.package, finding.first_bad, finding.evidence) == ("distributed", "2026.8.0", ["r-fuzz"])
    kept = json.loads((project / "workloads" / "guards" / "programs" / f"{record['failure_id']}.json").read_text())
    assert kept["program"] == record["program"] and kept["kind"] == "leak"
    compile((project / finding.reproducer).read_text(), finding.reproducer, "exec")
    assert "--failure=20261206T000000Z-abcdef-thread" in promotion.bisect
    assert yaml.safe_load((project / "workloads" / "guards.yaml").read_text())["workloads"][promotion.name]
