"""Flags with one meaning on every verb: ``--repeat`` (measured repeats per case per environment), ``--rounds``
(compare's interleaved rounds), ``--dry-run`` on every verb that runs workloads, ``--json`` on every verb that prints
a table. Nothing here builds an environment or runs a workload."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from framework import cli
from framework.config import load_catalog


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


# --- --json: every verb that prints a table prints one JSON document and nothing else on stdout ---------------


def _document(capsys, argv, code=0):
    got, out, err = _run(capsys, argv)
    assert got == code, err
    return json.loads(out)  # the whole of stdout


def test_workloads_json_lists_the_selected_catalogue(capsys):
    document = _document(capsys, ["workloads", "--tag=smoke", "--json"])
    smoke = sorted(name for name, workload in load_catalog().workloads.items() if "smoke" in workload.tags)
    assert sorted(entry["workload"] for entry in document) == smoke
    assert all("smoke" in entry["tags"] and entry["cases"] >= 1 for entry in document)


def test_compare_json_carries_the_same_counts_as_the_text(results_dir, case_row, write_run, capsys):
    rows = [
        case_row(run_id=run, runtime=runtime, case_id="groupby", workload="groupby", repeat=repeat,
                 wall_s=3.0 + 0.01 * repeat, peak_memory_bytes=int(2**30 * factor) + repeat)
        for runtime, factor, run in (("stable", 1.0, "r1"), ("latest", 1.38, "r2"))
        for repeat in range(7)
    ]  # fmt: skip
    for run in ("r1", "r2"):
        write_run([row for row in rows if row["run_id"] == run])
    argv = ["compare", "--baseline=stable", "--candidate=latest", "--from-results", f"--results={results_dir}"]
    document = _document(capsys, [*argv, "--json"], code=1)  # a regression: exit 1, as without --json
    assert document["counts"]["regressed"] >= 1
    assert document["counts"] == {word: sum(line["verdict"] == word for line in document["lines"])
                                  for word in document["counts"]}  # fmt: skip
    text = _run(capsys, argv)[1]
    assert text.strip().splitlines()[-1].startswith(f"{document['counts']['regressed']} regressed, ")
    peak = next(line for line in document["lines"] if line["metric"] == "peak_memory")
    assert peak["verdict"] == "regressed" and peak["ratio"] == pytest.approx(1.38, rel=0.01)


def test_regressions_json_is_one_document(results_dir, case_row, write_run, capsys):
    write_run([case_row(run_id="r1")])
    document = _document(capsys, ["regressions", f"--results={results_dir}", "--json", "--markdown=/dev/null"])
    assert document["findings"] == [] and document["scan_id"]


@pytest.mark.parametrize("verb", ["compare", "bless"])
def test_json_with_dry_run_is_refused_in_one_line(verb, capsys):
    extra = ["--baseline=stable", "--candidate=latest"] if verb == "compare" else []
    code, out, err = _run(capsys, [verb, *extra, "--json", "--dry-run"])
    assert code == 2 and out == "" and "--json with --dry-run" in err


def test_matrix_json_is_the_plan_in_a_dry_run_and_the_summary_rows_after_a_run(
    results_dir, case_row, write_run, monkeypatch, capsys
):
    document = _document(capsys, ["matrix", "--dry-run", "--json", "--runtime=latest", "--workload=array_mean_var"])
    assert document["dry_run"] is True
    assert [(c["runtime"], c["case_id"]) for c in document["cases"]] == [("latest", "array_mean_var")]

    from framework import pipeline

    write_run([case_row(run_id="r1", case_id="a", wall_s=1.5), case_row(run_id="r1", case_id="b", wall_s=float("nan"))])
    ran = SimpleNamespace(plan=SimpleNamespace(skipped=[]), unusable=[], run_id="r1", shard=None, run_group=None)
    monkeypatch.setattr(pipeline, "run_matrix", lambda options: ran)
    document = _document(capsys, ["matrix", "--json", "--runtime=latest", f"--results={results_dir}"])
    assert document["run_id"] == "r1"
    assert sorted(case["case_id"] for case in document["cases"]) == ["a", "b"]


def test_stability_json_is_the_run_s_table(results_dir, case_row, write_run, monkeypatch, capsys):
    from framework import stability

    write_run([case_row(run_id="s1", case_id="fuzz[inprocess]", workload="stability.fuzz")])
    monkeypatch.setattr(stability, "run_stability", lambda options: SimpleNamespace(run_id="s1", unusable=[]))
    document = _document(capsys, ["stability", "--json", f"--results={results_dir}"])
    assert [row["case_id"] for row in document["rows"]] == ["fuzz[inprocess]"]
    assert document["rows"][0]["outcome"] == "passed"


def test_reproduce_json_is_one_document(results_dir, monkeypatch, capsys):
    from framework import reproduce

    recorded = reproduce.RecordedRun("r0", "2026-12-01", [])
    monkeypatch.setattr(reproduce, "reproduce", lambda options: reproduce.ReproduceReport(recorded, "r1"))
    document = _document(capsys, ["reproduce", "--run=r0", "--json", f"--results={results_dir}"])
    assert document == {"run_id": "r1", "reproduces": "r0", "unusable": None, "groups": []}
