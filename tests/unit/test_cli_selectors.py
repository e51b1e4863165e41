"""framework/cli/selectors.py: ``--tag=X`` is ``--workload=tag:X`` on every verb that selects workloads, and an
unknown name or tag is one line with the near miss and exit 2 — never an empty result with exit 0.

Nothing here runs a workload: matrix runs with --dry-run, the others stop at the selection.
"""

from __future__ import annotations

import pytest

from framework import cli
from framework.config import load_catalog


def _run(capsys, argv):
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "argv",
    [
        ["workloads"],
        ["matrix", "--dry-run", "--runtime=latest"],
        ["compare", "--baseline=latest", "--candidate=latest"],
        ["compare", "--from-results", "--baseline=latest", "--candidate=stable"],
        ["regressions"],
        ["bisect", "--package=dask", "--good=2024.1.0", "--bad=2024.2.0", "--metric=wall"],
    ],
)
@pytest.mark.parametrize("spelling", ["--tag=smok", "--workload=tag:smok"])
def test_an_unknown_tag_is_one_line_with_the_near_miss_and_exit_2(argv, spelling, results_dir, capsys):
    code, out, err = _run(
        capsys, [*argv, spelling, f"--results={results_dir}"] if argv[0] != "workloads" else [*argv, spelling]
    )
    assert code == 2, (out, err)
    assert out == ""
    line = err.strip()
    assert "\n" not in line and "unknown tag 'smok'" in line and "did you mean 'smoke'?" in line


@pytest.mark.parametrize("argv", [["workloads"], ["matrix", "--dry-run", "--runtime=latest"]])
def test_an_unknown_workload_is_one_line_with_the_near_miss_and_exit_2(argv, capsys):
    code, out, err = _run(capsys, [*argv, "--workload=array_mean_vr"])
    assert code == 2 and out == ""
    assert "did you mean 'array_mean_var'?" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("argv", [["workloads"], ["matrix", "--dry-run", "--runtime=latest"]])
def test_tag_and_workload_tag_select_the_same(argv, capsys):
    by_tag = _run(capsys, [*argv, "--tag=smoke"])
    by_selector = _run(capsys, [*argv, "--workload=tag:smoke"])
    assert by_tag == by_selector
    assert by_tag[0] == 0
    smoke = [name for name, workload in load_catalog().workloads.items() if "smoke" in workload.tags]
    assert smoke and all(name in by_tag[1] for name in smoke)
    others = [name for name in load_catalog().workloads if name not in smoke]
    assert not any(f"{name} " in by_tag[1] for name in others)


def test_a_verb_about_one_workload_refuses_a_tag_naming_several(results_dir, capsys):
    argv = ["bisect", "--package=dask", "--good=2024.1.0", "--bad=2024.2.0", "--metric=wall", "--tag=smoke"]
    code, out, err = _run(capsys, [*argv, f"--results={results_dir}"])
    assert code == 2 and out == ""
    assert "selects 3 workloads" in err and "use --workload=NAME" in err


def test_stored_rows_selected_by_a_tag_are_its_workloads(results_dir, case_row, write_run, capsys):
    write_run([case_row(case_id="array_mean_var", workload="array_mean_var", run_id="r1")])
    code, out, err = _run(capsys, ["regressions", f"--results={results_dir}", "--tag=array", "--markdown=/dev/null"])
    assert code == 0, err
    assert "regression scan" in out
    code, out, err = _run(capsys, ["regressions", f"--results={results_dir}", "--tag=xarray", "--markdown=/dev/null"])
    assert code == 2 and out == ""
    assert "--tag=xarray: no measured runs of its workloads" in err
