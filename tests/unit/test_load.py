"""The machine's load over an execution (framework/in_runtime/load.py) and where results measured while it was
overloaded are flagged: the matrix summary, compare, bless and the report."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from test_blessing import CRITERIA, passing_evidence

from framework.blessing import decide, format_verdict
from framework.compare import BASELINE, CANDIDATE, CaseMetric, ComparisonReport, compare_text, count_overloaded
from framework.compare import record_rows as comparison_record_rows
from framework.in_runtime.load import LoadWatch, not_measured, overloaded, read_cpu_stall_us, read_cpu_times
from framework.query import Results
from framework.report.layout import overloaded_note
from framework.summary import run_summary

PSI = "some avg10=1.00 avg60=0.50 avg300=0.10 total={some}\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
STAT = "cpu  {user} 0 100 {idle} 0 0 0 {steal} 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\nintr 1\n"


def fake_proc(root: Path, some: int, user: int, idle: int, steal: int) -> Path:
    (root / "pressure").mkdir(parents=True, exist_ok=True)
    (root / "pressure" / "cpu").write_text(PSI.format(some=some))
    (root / "stat").write_text(STAT.format(user=user, idle=idle, steal=steal))
    return root


class Clock:
    def __init__(self, *times: float) -> None:
        self.times = list(times)

    def __call__(self) -> float:
        return self.times.pop(0)


def test_the_readings_over_a_case_are_its_pressure_steal_and_highest_load(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, some=1_000_000, user=1000, idle=1000, steal=0)
    loads = iter([1.5, 3.5])  # at the start, at the end (the sampler thread reads nothing in 2 s of fake time)
    watch = LoadWatch(proc, lambda: (next(loads), 0.0, 0.0), cores=2, sample_s=60, clock=Clock(10.0, 12.0))
    with watch:
        # 2 s of case: some task stalled 0.5 s of it; 400 jiffies passed, 40 of them stolen
        fake_proc(tmp_path, some=1_500_000, user=1300, idle=1060, steal=40)

    assert watch.values == {"load_avg_1m": 3.5, "cpu_pressure": 0.25, "cpu_steal": 0.1, "overloaded": True}
    assert watch.missing == {}


def test_without_proc_or_a_load_average_every_value_is_null_with_its_reason(tmp_path: Path) -> None:
    def no_loadavg() -> tuple[float, float, float]:
        raise OSError("Load average was unobtainable")

    with LoadWatch(tmp_path / "none", no_loadavg, cores=2, clock=Clock(0.0, 1.0)) as watch:
        pass

    assert watch.values == dict.fromkeys(("load_avg_1m", "cpu_pressure", "cpu_steal", "overloaded"))
    assert "Load average was unobtainable" in watch.missing["load_avg_1m"]
    assert watch.missing["overloaded"] == watch.missing["load_avg_1m"]
    assert "no CPU pressure information" in watch.missing["cpu_pressure"] and "PSI" in watch.missing["cpu_pressure"]
    assert "no CPU steal information" in watch.missing["cpu_steal"]


def test_files_that_say_nothing_usable_are_reasons_not_zeros(tmp_path: Path) -> None:
    (tmp_path / "cpu").write_text("full avg10=0.00 total=3\n")
    (tmp_path / "stat").write_text("intr 1 2 3\n")

    assert read_cpu_stall_us(tmp_path / "cpu") == (None, f"{tmp_path / 'cpu'}: no 'some … total=' line in "
                                                   "'full avg10=0.00 total=3\\n'")  # fmt: skip
    value, why = read_cpu_times(tmp_path / "stat")
    assert value is None and "not a 'cpu' line" in why


def test_a_case_shorter_than_a_tick_has_no_steal_figure(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, some=5, user=10, idle=10, steal=0)
    with LoadWatch(proc, lambda: (0.5, 0.0, 0.0), cores=4, clock=Clock(0.0, 0.001)) as watch:
        pass

    assert watch.values["cpu_steal"] is None and "shorter than one tick" in watch.missing["cpu_steal"]
    assert watch.values["cpu_pressure"] == 0.0 and watch.values["overloaded"] is False


@pytest.mark.parametrize(
    ("load", "cores", "expected"),
    [(2.0, 2, False), (2.01, 2, True), (16.0, 2, True), (None, 2, None), (3.0, None, None)],
)
def test_overloaded_means_a_load_average_above_the_cores(load: float | None, cores: int | None, expected: Any) -> None:
    assert overloaded(load, cores) is expected


def test_a_row_that_measured_nothing_says_why_for_each_column() -> None:
    values, missing = not_measured("the case never ran")
    assert values == dict.fromkeys(missing) and set(missing.values()) == {"the case never ran"}


# --------------------------------------------------------------------------------------------------
# Where it is flagged


def test_the_summary_marks_cases_measured_overloaded_and_says_so_under_the_table(
    results_dir: Path, case_row: Any, write_run: Any
) -> None:
    first, second = "2026-01-01T00:00:00+00:00", "2026-01-02T00:00:00+00:00"
    quiet = {"load_avg_1m": 0.5, "overloaded": False, "cpu_count": 2}
    write_run(
        [
            case_row(run_id="run-1", run_started_at=first, case_id=c, repeat=r, **quiet)
            for c in ("a", "b", "c")
            for r in (0, 1)
        ]
    )
    write_run(
        [
            case_row(
                run_id="run-2", run_started_at=second, case_id="a", load_avg_1m=16.0, overloaded=True, cpu_count=2
            ),
            case_row(run_id="run-2", run_started_at=second, case_id="a", repeat=1, **quiet),
            case_row(run_id="run-2", run_started_at=second, case_id="b", **quiet),
            case_row(run_id="run-2", run_started_at=second, case_id="c", **{**quiet, "load_avg_1m": None}),
        ]
    )
    with Results(results_dir) as results:
        text = run_summary(results, "run-2")

    lines = {line.split()[0]: line for line in text.splitlines() if line.startswith("  ") and line.split()[0] in "abc"}
    assert "1.00 s !" in lines["a"] and "≈ !" in lines["a"]  # the Δ, judged against the repeats' noise, flagged too
    assert "!" not in lines["b"] and "!" not in lines["c"]
    assert (
        "!  1 case was measured while the machine was overloaded (load > cores; up to 16.0 on 2 cores): its times"
        " are not comparable"
    ) in text


def test_the_summary_of_a_quiet_run_says_nothing_about_load(results_dir: Path, case_row: Any, write_run: Any) -> None:
    write_run([case_row(run_id="run-1", load_avg_1m=0.3, overloaded=False, cpu_count=8)])
    with Results(results_dir) as results:
        assert "overloaded" not in run_summary(results, "run-1")


def _rows(case_id: str, loads: list[float], cores: int = 2) -> list[dict[str, Any]]:
    return [
        {"case_id": case_id, "phase": "measure", "load_avg_1m": load, "overloaded": load > cores, "repeat": i}
        for i, load in enumerate(loads)
    ]


def test_compare_counts_each_sides_overloaded_runs_and_says_so() -> None:
    rows = {BASELINE: _rows("a", [0.5, 0.7]), CANDIDATE: _rows("a", [9.0, 0.4]) + _rows("b", [3.0])}
    counted = count_overloaded(rows)
    assert counted == {(BASELINE, "a"): (0, 2, 0.7), (CANDIDATE, "a"): (1, 2, 9.0), (CANDIDATE, "b"): (1, 1, 3.0)}

    line = CaseMetric("w", "a", "tiny", "local", "wall", None, "no samples")
    report = ComparisonReport("cmp-1", "interleaved", "stable", "latest", [line], {}, {}, overloaded=counted)
    text = compare_text(report)

    assert (
        "  ! latest: 2 of 3 measured run(s) (2 case(s)) taken while the machine was overloaded (load > cores, up to"
        " 9.0): their times are not comparable"
    ) in text.splitlines()
    assert "! stable" not in text
    [record] = comparison_record_rows(report, {})
    assert record["detail"]["overloaded"] == {BASELINE: 0, CANDIDATE: 1}


def test_a_verdict_resting_on_overloaded_runs_says_so_without_failing_on_it() -> None:
    evidence = passing_evidence()
    key = next(iter(evidence.metrics))
    metrics = {**evidence.metrics, key: dataclasses.replace(evidence.metrics[key], overloaded=(0, 3))}

    verdict = decide(CRITERIA, dataclasses.replace(evidence, metrics=metrics))

    assert verdict.blessed
    [loaded] = [check for check in verdict.checks if "[measured overloaded:" in check.reason]
    assert "rests on 0 baseline and 3 candidate run(s) taken at load > cores" in loaded.reason
    assert "! this verdict rests in part on runs measured while the machine was overloaded" in format_verdict(verdict)
    assert "overloaded" not in format_verdict(decide(CRITERIA, evidence))


def test_a_stability_failure_measured_overloaded_says_it_may_be_the_machines() -> None:
    from framework.evidence import StabilityBatch, StabilityEvidence

    failed = StabilityBatch("stab-2", "fuzz[process]", "timeout", "liveness: stuck", "F1", 3, 16.0, True)
    [check] = decide(CRITERIA, passing_evidence(stability=StabilityEvidence("stab-2", (failed,)))).failed

    assert "[measured overloaded: load 16.0 > cores — it may be the machine's, not the runtime's" in check.reason


def test_the_report_notes_a_run_measured_overloaded() -> None:
    assert overloaded_note({"overloaded": 0}) == ""
    note = overloaded_note({"overloaded": 3, "max_load": 16.04, "cpu_count": 2})
    assert (
        "3 measured repeats were taken while the machine was overloaded (load average &gt; cores, up to 16.0 on 2"
        in (note)
    )
    assert overloaded_note({"overloaded": 1}, short=True).endswith(">(1 overloaded)</span>")


def test_the_reports_run_lines_count_the_overloaded_measured_repeats(
    results_dir: Path, case_row: Any, write_run: Any
) -> None:
    from framework.report.data import cases

    loaded = {"load_avg_1m": 5.0, "overloaded": True, "cpu_count": 2}
    write_run(
        [
            case_row(run_id="run-1", case_id="a", phase="warmup", **loaded),  # a warm-up is not a measurement
            case_row(run_id="run-1", case_id="a", **loaded),
            case_row(run_id="run-1", case_id="b", load_avg_1m=1.0, overloaded=False, cpu_count=2),
        ]
    )
    with Results(results_dir) as results:
        [run] = cases(results).runs()

    assert (run["overloaded"], run["max_load"], run["cpu_count"]) == (1, 5.0, 2)
