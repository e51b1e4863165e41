"""framework/history.py: series from a results directory, the scan, accepted changes, new findings, the command."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import re

import numpy as np
import pyarrow.parquet as pq
import pytest

from framework.cli.verdicts import cmd_regressions
from framework.config import ROOT
from framework.history import ScanOptions, load_accepted, load_series, markdown, report_text, scan
from framework.in_runtime import provenance
from framework.in_runtime.errors import ConfigError, SelectionError
from framework.metric_catalogue import METRICS
from framework.query import Results
from framework.records import write_record
from framework.stats import MiB

DAY0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
CASE = "parquet_roundtrip"


@pytest.fixture
def history(case_row, write_run):
    """``history([400] * 12 + [520] * 6)`` writes one run a day, peak memory at those MiB; returns the run ids."""

    def write(peaks_mib, *, runtime="latest", case_id=CASE, workload=CASE, versions=None, first_day=0, seed=0, **row):
        rng = np.random.default_rng(seed)
        run_ids = []
        for n, peak in enumerate(peaks_mib):
            at = DAY0 + dt.timedelta(days=first_day + n, hours=1 if runtime == "latest" else 2)
            run_id = f"{at:%Y%m%dT%H%M%SZ}-{runtime[:4]}{first_day + n:02d}"
            dask = versions[n] if versions else "2026.1.0"
            write_run(
                [
                    case_row(
                        **{
                            "run_id": run_id,
                            "run_started_at": at.isoformat(),
                            "runtime": runtime,
                            "workload": workload,
                            "case_id": case_id,
                            "params": {},
                            "repeat": repeat,
                            "wall_s": 2.0 * math.exp(rng.normal(0, 0.03)),
                            "peak_memory_bytes": None
                            if peak is None
                            else int(peak * MiB * math.exp(rng.normal(0, 0.01))),
                            "mean_memory_bytes": int(200 * MiB * math.exp(rng.normal(0, 0.01))),
                            "spilled_bytes": 0,
                            "dask_version": dask,
                            "packages": {"dask": dask, "pyarrow": "21.0.0"},
                            **row,
                        }
                    )
                    for repeat in range(3)
                ]
            )
            run_ids.append(run_id)
        return run_ids

    return write


@pytest.fixture
def options(results_dir, tmp_path):
    def make(**overrides):
        return ScanOptions(**{"results_dir": results_dir, "accepted_file": tmp_path / "none.yaml", **overrides})

    return make


def run(results_dir, tmp_path, *argv):
    return cmd_regressions([f"--results={results_dir}", f"--accepted={tmp_path / 'no-accepted.yaml'}", *argv])


# ---------------------------------------------------------------- the scan


def test_a_peak_memory_step_is_an_open_new_regression_recorded_with_its_evidence(history, options, results_dir):
    run_ids = history([400] * 12 + [520] * 6)

    report = scan(options())

    assert report.n_series == len(METRICS)  # every metric of the catalogue, of one case
    [finding] = report.findings
    assert (finding.metric, finding.change.direction, finding.status, finding.new) == (
        "peak_memory",
        "regression",
        "open",
        True,
    )
    assert finding.after.run_id == run_ids[12]
    assert finding.before.run_id == run_ids[11]
    with Results(results_dir) as results:
        columns, rows = results.sql("SELECT * FROM regressions")
    [row] = [dict(zip(columns, values)) for values in rows]
    assert row["scan_id"] == report.scan_id
    assert row["series"] == f"local@unknown-machine|latest|{CASE}|tiny|peak_memory"
    assert (row["along"], row["status"], row["direction"], row["new"]) == ("date", "open", "regression", True)
    assert row["change_run_id"] == run_ids[12]
    assert row["ratio"] == pytest.approx(1.3, abs=0.03)
    assert (row["runs_before"], row["runs_after"]) == (12, 6)
    assert row["p_value"] < 0.01
    detail = json.loads(row["detail"])
    assert row["ci_low"] < 1.3 < row["ci_high"]
    assert [point["run_id"] for point in detail["points"]] == run_ids


def test_the_sentence_says_what_where_how_much_when_and_how_sure(history, options):
    run_ids = history([400] * 12 + [520] * 6, versions=["2026.1.0"] * 12 + ["2026.2.0"] * 6)

    [finding] = scan(options(), write=False).findings
    sentence = finding.sentence()

    assert re.fullmatch(
        rf"peak memory of {re.escape(CASE)} \(tiny\) on local \[unknown-machine\] / latest rose"
        r" \+30 % \(95 % CI \+\d\d % to \+\d\d %\),"
        rf" 399\.\d MiB → 520\.\d MiB, at run {run_ids[12]} \(dask 2026\.1\.0 → 2026\.2\.0\), p = 0\.002,"
        r" 12 runs before, 6 after",
        sentence,
    ), sentence


def test_an_interval_without_an_upper_bound_reads_as_infinity(history, options):
    history([400] * 12 + [520] * 6)
    [finding] = scan(options(), write=False).findings

    unbounded = dataclasses.replace(finding, change=dataclasses.replace(finding.change, ci_high=math.inf))

    assert re.search(r" rose \+30 % \(95 % CI \+\d\d % to \+∞ %\), ", unbounded.sentence()), unbounded.sentence()


def test_a_second_scan_does_not_report_the_same_change_as_new(history, options):
    history([400] * 12 + [520] * 6)

    first, second = scan(options()), scan(options())

    assert [f.new for f in first.findings] == [True]
    assert [(f.status, f.new) for f in second.findings] == [("open", False)]


def test_a_pending_change_that_becomes_open_is_new_once_more(history, options):
    history([400] * 12 + [520])
    [pending] = scan(options()).findings
    assert (pending.status, pending.new, pending.change.runs_after) == ("pending", True, 1)
    assert "pending" in pending.sentence()

    history([520] * 4, first_day=13)
    [opened] = scan(options()).findings

    assert (opened.status, opened.new, opened.after.run_id) == ("open", True, pending.after.run_id)


def test_series_are_per_runtime_along_dates_and_per_package_version_along_versions(history, options):
    """Two runtimes run on alternate days, each flat; ordered by dask version the step shows. 2025.10 > 2025.9."""
    history([400] * 8, runtime="old", versions=["2025.9.0"] * 8)
    history([520] * 8, runtime="new", versions=["2025.10.0"] * 8)

    assert scan(options(), write=False).findings == []
    [finding] = scan(options(along="version"), write=False).findings

    assert finding.key == f"local@unknown-machine|*|{CASE}|tiny|peak_memory"
    assert (finding.change.direction, finding.after.runtime) == ("regression", "new")
    assert finding.versions == ("2025.9.0", "2025.10.0")
    assert (finding.change.runs_before, finding.change.runs_after) == (8, 8)
    assert "at run" in finding.sentence() and " of new (dask 2025.9.0 → 2025.10.0)" in finding.sentence()


def test_along_versions_orders_by_another_package_from_the_packages_column(history, options):
    history([400] * 6, runtime="old", packages={"dask": "2026.1.0", "pyarrow": "20.0.0"})
    history([520] * 6, runtime="new", first_day=-6, packages={"dask": "2026.1.0", "pyarrow": "21.0.0"})

    [finding] = scan(options(along="version", package="PyArrow"), write=False).findings

    assert finding.versions == ("20.0.0", "21.0.0")
    assert "(PyArrow 20.0.0 → 21.0.0)" in finding.sentence()


def test_failed_and_timed_out_runs_are_not_measurements(history, options, results_dir):
    history([400] * 16)
    history([4000] * 3, first_day=16, outcome="timeout")
    history([4000] * 3, first_day=19, outcome="failed", error="AssertionError: wrong answer")

    report = scan(options(), write=False)
    with Results(results_dir) as results:
        [series] = load_series(results, options())

    assert report.findings == []
    assert len(series.points) == 16


def test_a_metric_that_was_not_measured_is_skipped_not_taken_as_zero(history, options):
    history([400] * 6 + [None] * 4 + [400] * 6)

    report = scan(options(metrics=("peak_memory",)), write=False)

    assert report.findings == []
    assert report.n_series == 1


def test_filters_select_series_and_a_typo_gets_the_near_miss(history, options):
    history([400] * 12 + [520] * 6)
    history([400] * 18, case_id="groupby_agg[by=id]", workload="groupby_agg", first_day=30)

    assert len(scan(options(workloads=("groupby_agg",)), write=False).findings) == 0
    assert len(scan(options(workloads=(CASE,), hardware=("local",), runtimes=("latest",)), write=False).findings) == 1
    with pytest.raises(SelectionError, match=r"unknown hardware profile 'lokal' — did you mean 'local'\?"):
        scan(options(hardware=("lokal",)))
    with pytest.raises(SelectionError, match=r"unknown workload 'groupby_ag' — did you mean 'groupby_agg'\?"):
        scan(options(workloads=("groupby_ag",)))
    with pytest.raises(SelectionError, match=r"unknown metric 'peak_memroy' — did you mean 'peak_memory'\?"):
        scan(options(metrics=("peak_memroy",)))


def test_a_star_in_a_filter_matches_any_text_and_brackets_are_literal(history, options):
    history([400] * 12 + [520] * 6, runtime="bisect-dask-2025.1.0")
    history([400] * 18, runtime="latest", first_day=30)

    assert len(scan(options(runtimes=("bisect-*",)), write=False).findings) == 1
    assert len(scan(options(runtimes=("*test",)), write=False).findings) == 0
    with pytest.raises(SelectionError, match=r"unknown runtime 'sweep-\*'"):
        scan(options(runtimes=("sweep-*",)))
    with pytest.raises(SelectionError, match=r"unknown workload 'parquet_\[x\]'"):
        scan(options(workloads=("parquet_[x]",)))


def test_an_empty_results_directory_is_an_empty_history(options, results_dir):
    report = scan(options())

    assert (report.n_series, report.findings) == (0, [])
    assert report.record == results_dir / "regressions" / f"{report.scan_id}.parquet"
    with Results(results_dir) as results:
        assert results.sql("SELECT count(*) FROM regressions")[1] == [(0,)]
    assert "No change found." in markdown(report)


# ---------------------------------------------------------------- machine classes

FP_A = {
    "cpu_model": "AMD EPYC 7763",
    "cores": 4,
    "memory_gib": 16,
    "kernel": "6.5",
    "virtualisation": "kvm",
    "arch": "x86_64",
}
FP_B = {**FP_A, "cpu_model": "Intel Xeon 8370C", "cores": 8, "memory_gib": 32}


def _on(fingerprint):
    """Row columns of a run whose workers ran on this machine (as the runner writes them)."""
    return provenance.identity(fingerprint, "runner")


def _machine_history(history):
    """12 runs on machine A at 400 MiB, then 6 on machine B at 560 MiB (+40 %): the move is the machine's."""
    first = history([400] * 12, **_on(FP_A))
    later = history([560] * 6, first_day=12, seed=1, **_on(FP_B))
    return first, later


def test_a_new_machine_starts_its_own_series_with_a_note_never_a_change_point(history, options, results_dir, tmp_path):
    _, later = _machine_history(history)

    report = scan(options())

    assert report.findings == []
    assert report.n_series == 2 * len(METRICS)  # two series (one per machine class) × every metric
    [note] = report.machines
    a, b = (provenance.identity(fp, "runner")["machine_id"] for fp in (FP_A, FP_B))
    assert (note.hardware, note.run_id) == ("local", later[0])
    assert re.fullmatch(r"8c-32g-[0-9a-f]{6}", note.machine_class)
    assert re.fullmatch(r"4c-16g-[0-9a-f]{6}", note.earlier[0])
    text = report_text(report)
    assert f"note: machine class {note.machine_class} first seen on local in run {later[0]}" in text
    assert "new series, not compared with earlier runs (on 4c-16g-" in text
    assert "### New machine classes" in markdown(report)
    assert a != b
    assert run(results_dir, tmp_path) == 0  # nothing to fail on


def test_a_pool_in_the_policy_puts_both_machines_in_one_series_and_the_change_is_found(history, options, tmp_path):
    _machine_history(history)
    a, b = (provenance.identity(fp, "runner")["machine_id"] for fp in (FP_A, FP_B))
    policy = tmp_path / "machines.yaml"
    policy.write_text(f"pools:\n  ci:\n    machine_ids: ['{a}', '{b}']\n")

    report = scan(options(machines_file=policy))

    [finding] = report.findings
    assert (finding.metric, finding.change.direction, finding.series.machine_class) == (
        "peak_memory",
        "regression",
        "ci",
    )
    assert finding.change.ratio == pytest.approx(1.4, abs=0.04)
    assert finding.key == f"local@ci|latest|{CASE}|tiny|peak_memory"
    assert report.machines == []


def test_rows_from_before_fingerprints_continue_the_series_of_their_machine(history, options):
    """Schema-2 rows carry only cpu_model, cpu_count and ram_bytes: the step across the upgrade is still found."""
    legacy = {"cpu_model": FP_A["cpu_model"], "cpu_count": 4, "ram_bytes": int(15.6 * 2**30), "schema_version": 2}
    history([400] * 12, **legacy)
    history([520] * 6, first_day=12, seed=1, **{**legacy, **_on(FP_A), "schema_version": 3})

    report = scan(options(), write=False)

    [finding] = report.findings
    assert finding.after.run_id.endswith("12")
    assert report.machines == []


def test_a_change_found_before_machine_classes_is_not_new_again(history, options, results_dir):
    history([400] * 12 + [520] * 6)
    old = scan(options())
    with Results(results_dir) as results:
        [(series,)] = results.sql("SELECT series FROM regressions")[1]
    assert series.startswith("local@unknown-machine|")
    # As a scan before machine classes recorded it: the series key without the class.
    rows = pq.read_table(old.record).to_pylist()
    rows[0]["series"] = series.replace("@unknown-machine", "")
    old.record.unlink()
    write_record(results_dir, "regressions", old.scan_id, rows)

    [finding] = scan(options()).findings
    assert not finding.new


# ---------------------------------------------------------------- accepted changes


def test_an_accepted_change_is_reported_as_accepted_not_open(history, options, tmp_path):
    run_ids = history([400] * 12 + [520] * 6)
    accepted = tmp_path / "accepted.yaml"
    accepted.write_text(
        "accepted:\n"
        f"  - {{metric: peak_memory, case_id: {CASE}, run_id: {run_ids[12]}, reason: arrow strings, accepted_by: jo}}\n"
        "  - {metric: wall, workload: groupby_agg, version: 2026.2.0, reason: x, accepted_by: jo}\n"
    )

    report = scan(options(accepted_file=accepted))

    [finding] = report.findings
    assert (finding.status, finding.new, finding.accepted.accepted_by) == ("accepted", False, "jo")
    assert finding.sentence().endswith("— accepted by jo: arrow strings")
    assert report.unmatched == [1]
    assert "### Accepted (accepted.yaml)" in markdown(report)


def test_a_change_can_be_accepted_by_the_version_it_came_with(history, options, tmp_path):
    history([400] * 12 + [520] * 6, versions=["2026.1.0"] * 12 + ["2026.2.0"] * 6)
    accepted = tmp_path / "accepted.yaml"
    entry = "{metric: peak_memory, workload: parquet_roundtrip, hardware: local, reason: r, accepted_by: jo"
    accepted.write_text(f"accepted:\n  - {entry}, version: 2026.2.0}}\n")
    assert [f.status for f in scan(options(accepted_file=accepted), write=False).findings] == ["accepted"]

    accepted.write_text(f"accepted:\n  - {entry}, version: 2026.1.0}}\n")  # the version before: not this change
    assert [f.status for f in scan(options(accepted_file=accepted), write=False).findings] == ["open"]


def test_the_shipped_accepted_file_is_valid_and_empty():
    assert load_accepted(ROOT / "matrices" / "accepted.yaml") == []


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            "{metric: wal, case_id: a, run_id: r, reason: x, accepted_by: jo}",
            "accepted.0.metric: unknown metric 'wal' — did you mean 'wall'? known: mean_memory, peak_memory,"
            " scheduler_cpu, scheduler_gc, scheduler_loop_blocked, scheduler_loop_max, scheduler_rss, spill, wall,"
            " worker_gc, worker_loop_blocked, worker_loop_max (got 'wal')",
        ),
        (
            "{metric: wall, run_id: r, reason: x, accepted_by: jo}",
            "accepted.0: names no series — add case_id or workload (got {",
        ),
        (
            "{metric: wall, case_id: a, reason: x, accepted_by: jo}",
            "accepted.0: names the change by neither or both of run_id and version — give exactly one (got {",
        ),
        (
            "{metric: wall, case_id: a, run_id: r, version: '1.0', reason: x, accepted_by: jo}",
            "accepted.0: names the change by neither or both of run_id and version — give exactly one (got {",
        ),
        (
            "{metric: wall, case_id: a, run_id: r, reason: '  ', accepted_by: jo}",
            "accepted.0.reason: is empty — an accepted change says why, and who accepted it (got '  ')",
        ),
        (
            "{metric: wall, case_id: a, run_id: r, reason: x}",
            "accepted.0.accepted_by: Field required — add it",
        ),
        (
            "{metric: wall, case_id: a, run_id: r, reason: x, accepted_by: jo, acepted_on: 2026-01-01}",
            "accepted.0: unknown field 'acepted_on' — did you mean 'accepted_by'?",
        ),
        (
            "{metric: wall, case_id: a, version: 2026.2, reason: x, accepted_by: jo}",
            "accepted.0.version: Input should be a valid string (got 2026.2) — quote it as a string",
        ),
    ],
)
def test_mistakes_in_accepted_yaml_name_the_file_field_value_and_fix(tmp_path, entry, message):
    path = tmp_path / "accepted.yaml"
    path.write_text(f"accepted:\n  - {entry}\n")

    with pytest.raises(ConfigError) as caught:
        load_accepted(path)

    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


# ---------------------------------------------------------------- the command


def test_command_exits_1_on_a_new_regression_then_0_once_it_is_known(history, results_dir, tmp_path, capsys):
    history([400] * 12 + [520] * 6)

    assert run(results_dir, tmp_path) == 1
    printed = capsys.readouterr().out
    assert "1 open regression (1 new)" in printed
    assert f"open regressions:\n  NEW peak memory of {CASE}" in printed
    assert run(results_dir, tmp_path) == 0
    assert run(results_dir, tmp_path, "--fail-on=open") == 1
    assert run(results_dir, tmp_path, "--fail-on=never") == 0


def test_improvements_and_pending_changes_do_not_fail(history, results_dir, tmp_path, capsys):
    history([520] * 12 + [400] * 6)
    history([400] * 12 + [520], case_id="groupby_agg[by=id]", workload="groupby_agg", first_day=30)

    assert run(results_dir, tmp_path, "--metric=peak_memory") == 0

    printed = capsys.readouterr().out
    assert "0 open regressions (0 new), 1 improvement, 1 pending" in printed
    assert f"improvements:\n  NEW peak memory of {CASE}" in printed
    assert "pending:\n  NEW peak memory of groupby_agg[by=id]" in printed


def test_command_options_reach_the_scan(history, results_dir, tmp_path):
    history([400] * 12 + [520] * 6)

    assert run(results_dir, tmp_path, "--min-effect=peak_memory=50%") == 0
    assert run(results_dir, tmp_path, "--metric=wall,spill") == 0
    assert run(results_dir, tmp_path, "--persistence=7") == 0  # 6 runs after: pending
    assert run(results_dir, tmp_path, f"--workload={CASE}", "--metric=peak_memory_bytes", "--runtime=latest") == 1
    assert run(results_dir, tmp_path, "--alpha=0.001", "--fail-on=open") == 1  # more permutations, same answer
    assert run(results_dir, tmp_path, "--alpha=0.0001", "--fail-on=open") == 0  # 6 runs after cannot show that


def test_command_writes_markdown_and_appends_the_github_step_summary(
    history, results_dir, tmp_path, monkeypatch, capsys
):
    history([400] * 12 + [520] * 6)
    summary = tmp_path / "step-summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))

    run(results_dir, tmp_path)

    written = (results_dir / "regressions.md").read_text()
    assert written.startswith("## Regressions over history — scan `")
    assert "### Open regressions\n\n| | finding |\n|---|---|\n| **new** | peak memory of parquet_roundtrip" in written
    assert summary.read_text() == "earlier step\n" + written + "\n"
    run(results_dir, tmp_path, f"--markdown={tmp_path / 'out' / 'r.md'}")
    assert "| open | peak memory of" in (tmp_path / "out" / "r.md").read_text()
    assert f"summary: {tmp_path / 'out' / 'r.md'}" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--alpha=2"], "argument --alpha: 2 is not between 0 and 1 — use e.g. --alpha=0.01"),
        (["--persistence=0"], "argument --persistence: '0' is not a whole number ≥ 1 — use e.g. --persistence=2"),
        (["--along=release"], "argument --along: invalid choice: 'release'"),
        (["--fail-on=all"], "argument --fail-on: invalid choice: 'all'"),
        (["--persistance=3"], "did you mean --persistence?"),
    ],
)
def test_command_line_mistakes_exit_2_with_one_line(results_dir, tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as caught:
        run(results_dir, tmp_path, *argv)

    assert caught.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("nox -s regressions --: ")
    assert message in error


def test_unknown_metric_and_bad_min_effect_are_selection_errors(results_dir, tmp_path):
    with pytest.raises(SelectionError, match="did you mean 'peak_memory'"):
        run(results_dir, tmp_path, "--metric=peak_memroy")
    with pytest.raises(SelectionError, match="is not METRIC=PERCENT"):
        run(results_dir, tmp_path, "--min-effect=wall")


@pytest.mark.parametrize("mode, found", [("interleaved", 0), ("sequential", 0), ("bisect", 1)])
def test_the_rounds_of_an_ab_comparison_are_not_history(history, options, results_dir, mode, found):
    """A comparison's rounds (fresh runners, minutes apart) are its evidence: mixed into the runtime's series they
    read as a step. Runs a bisection made stay history (a sweep is a history along versions)."""
    history([400] * 12)
    rounds = history([520] * 6, first_day=12)  # the candidate side of an A/B, recorded under the same runtime
    detail = {"run_ids": {"baseline": [], "candidate": rounds}}
    record = {"comparison_id": "c1", "mode": mode, "detail": json.dumps(detail)}
    write_record(results_dir, "comparisons", "c1", [record])

    report = scan(options())

    assert len([f for f in report.findings if f.metric == "peak_memory"]) == found


def test_an_open_regression_between_runs_on_different_packages_prints_the_attribute_command(history, options):
    """The versions moved at the change: regressions says how to find which package did it (runs as the ends)."""
    run_ids = history([400] * 12 + [520] * 6, versions=["2026.1.0"] * 12 + ["2026.2.0"] * 6)
    text = report_text(scan(options()))
    expected = (
        f"which package? the locks differ: nox -s attribute -- --baseline={run_ids[11]} --candidate={run_ids[12]}"
        f" --workload={CASE} --metric=peak_memory"
    )
    assert expected in text, text


def test_a_regression_on_the_same_packages_prints_no_attribute_command(history, options):
    history([400] * 12 + [520] * 6)
    assert "nox -s attribute" not in report_text(scan(options()))
