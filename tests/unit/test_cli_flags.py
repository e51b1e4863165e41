"""Flags with one meaning on every verb: ``--repeat`` (measured repeats per case per environment), ``--rounds``
(compare's interleaved rounds), ``--dry-run`` on every verb that runs workloads, ``--json`` on every verb that prints
a table. Nothing here builds an environment or runs a workload."""

from __future__ import annotations

import pytest

from framework import cli


def _run(capsys, argv):
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_compare_s_old_repeat_is_one_line_naming_rounds_never_a_changed_meaning(capsys):
    with pytest.raises(SystemExit) as stopped:
        cli.main(["compare", "--baseline=latest", "--candidate=latest", "--repeat=5"])
    out, err = capsys.readouterr()
    assert stopped.value.code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert "--repeat is now --rounds" in err and "use --rounds=N" in err


def test_rounds_is_a_bounded_count(capsys):
    with pytest.raises(SystemExit) as stopped:
        cli.main(["compare", "--baseline=latest", "--candidate=latest", "--rounds=0"])
    assert stopped.value.code == 2
    assert "argument --rounds: 0 is not ≥ 1" in capsys.readouterr().err


# --- --dry-run: every verb that runs workloads prints its plan and builds and runs nothing ---------------------


@pytest.fixture
def nothing_runs(monkeypatch):
    """Any build or run fails the test: a dry run must not reach them."""

    def forbidden(*args, **kwargs):
        raise AssertionError("a dry run built or ran something")

    from framework import compare, engine, pipeline, reproduce, stability
    from framework.bisect import session

    for module, name in [
        (compare, "run_interleaved"),
        (engine, "prepare_environment"),
        (pipeline, "run_matrix"),
        (reproduce, "reproduce"),
        (stability, "run_stability"),
        (session, "prepare_environment"),
        (session, "ReleaseRunner"),
    ]:
        monkeypatch.setattr(module, name, forbidden)


def _dry(capsys, argv):
    code, out, err = _run(capsys, argv)
    assert code == 0, err
    last = out.strip().splitlines()[-1]
    assert last.startswith("dry run:") and "nothing was built or run" in last
    return out


def test_matrix_dry_run_counts_the_executions(nothing_runs, results_dir, capsys):
    out = _dry(capsys, ["matrix", "--dry-run", "--runtime=latest", "--workload=array_mean_var", "--repeat=4",
                        f"--results={results_dir}"])  # fmt: skip
    assert "environment latest:" in out
    assert "1 case(s) on 1 runtime × hardware group(s) — would run" in out and "(4 measured," in out


def test_compare_dry_run_counts_rounds_cases_and_sides(nothing_runs, results_dir, capsys):
    argv = ["compare", "--dry-run", "--baseline=stable", "--candidate=latest", "--workload=array_mean_var"]
    out = _dry(capsys, [*argv, "--rounds=3", f"--results={results_dir}"])
    assert "baseline stable vs candidate latest: 1 case(s)" in out
    assert "environment stable:" in out and "environment latest:" in out
    assert "3 interleaved round(s) × 1 case(s) × 2 sides" in out and "(6 measured," in out
    out = _dry(capsys, [*argv, "--until-decided", "--budget=7", f"--results={results_dir}"])
    assert "up to 7 round(s) until decided" in out and "(14 measured," in out
    out = _dry(capsys, [*argv, "--from-results", f"--results={results_dir}"])
    assert "--from-results builds and runs nothing" in out


def test_stability_dry_run_names_runtimes_tiers_and_examples(nothing_runs, results_dir, capsys):
    argv = ["stability", "--dry-run", "--runtime=latest", "--tier=inprocess", "--examples=3", "--no-regressions"]
    out = _dry(capsys, [*argv, f"--results={results_dir}"])
    assert "environment latest:" in out
    assert "would replay 0 saved regression case(s), then fuzz tier(s) inprocess with 3 example(s) per tier" in out
    out = _dry(capsys, ["stability", "--dry-run", "--replay=F1", "--times=2", f"--results={results_dir}"])
    assert "would replay failure F1 2 time(s)" in out


def test_reproduce_dry_run_lists_the_recorded_cases(nothing_runs, results_dir, write_run, case_row, capsys):
    from tests.unit.test_reproduce import RUN, recorded_rows

    write_run(recorded_rows(case_row))
    out = _dry(capsys, ["reproduce", "--dry-run", f"--run={RUN}", "--repeat=2", f"--results={results_dir}"])
    assert "environment latest from the" in out and "array_mean_var  size=tiny  repeats=2" in out
    assert "(2 measured," in out


def test_bisect_dry_run_says_how_many_releases_would_be_built(nothing_runs, monkeypatch, results_dir, capsys):
    from test_releases import DASK

    from framework.bisect import session
    from framework.releases import parse_releases

    monkeypatch.setattr(session, "list_releases", lambda name, index: parse_releases(DASK))
    argv = ["bisect", "--dry-run", "--package=dask", "--good=2024.12.1", "--bad=2025.5.0", "--metric=peak_memory"]
    out = _dry(capsys, [*argv, "--workload=array_mean_var", "--repeat=5", f"--results={results_dir}"])
    assert "array_mean_var: about" in out and "5 repeat(s) each" in out
