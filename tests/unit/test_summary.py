"""framework/summary.py: the end-of-run table (with the change vs the previous run) and the table printer."""

from __future__ import annotations

import pytest

from framework.query import Results
from framework.summary import change, format_table, human_bytes, run_summary

RUN_1 = "2026-01-01T00:00:00+00:00"
RUN_2 = "2026-01-02T00:00:00+00:00"


def _lines_by_case(text: str) -> dict[str, list[str]]:
    """Rows of the summary table (before "Not passed"), split into cells, keyed by the case column."""
    table = text.split("\n\n", 1)[0].splitlines()
    header = table[0].split("  ")
    assert "case" in [cell.strip() for cell in header]
    return {cells[2]: cells for cells in (line.split() for line in table[2:])}


@pytest.fixture
def history(results_dir, case_row, write_run):
    """run-1: a passes (1 s, 100 MiB), d fails. run-2: a slower and smaller, b fails, d passes, c only on stable."""
    write_run(
        [
            case_row(run_id="run-1", run_started_at=RUN_1, case_id="a", wall_s=1.0, peak_memory_bytes=100 * 2**20),
            case_row(run_id="run-1", run_started_at=RUN_1, case_id="a", repeat=1, wall_s=1.0),
            case_row(run_id="run-1", run_started_at=RUN_1, case_id="d", outcome="failed", error="old failure"),
        ]
    )
    write_run([case_row(run_id="run-1", run_started_at=RUN_1, case_id="c", runtime="stable", wall_s=0.5)])
    write_run(
        [
            case_row(run_id="run-2", run_started_at=RUN_2, case_id="a", phase="warmup", wall_s=50.0),
            case_row(run_id="run-2", run_started_at=RUN_2, case_id="a", wall_s=1.1, peak_memory_bytes=90 * 2**20),
            case_row(run_id="run-2", run_started_at=RUN_2, case_id="a", repeat=1, wall_s=1.1),
            case_row(
                run_id="run-2",
                run_started_at=RUN_2,
                case_id="b",
                outcome="failed",
                error="WorkloadCheckFailed: sum is 41, expected 42",
            ),
            case_row(run_id="run-2", run_started_at=RUN_2, case_id="d", spilled_bytes=3 * 2**30, tasks=None),
            case_row(run_id="run-2", run_started_at=RUN_2, case_id="c", wall_s=2.0),
        ]
    )
    with Results(results_dir) as results:
        yield results


def test_second_run_shows_the_change_vs_the_first(history):
    rows = _lines_by_case(run_summary(history, "run-2"))

    # runtime hardware case size outcome passed wall "s" Δwall "%" peak "MiB" Δpeak "%" spilled unit tasks
    assert rows["a"][:6] == ["latest", "local", "a", "tiny", "passed", "2/2"]
    assert rows["a"][6:10] == ["1.10", "s", "+10", "%"]
    assert rows["a"][10:14] == ["95.0", "MiB", "-5", "%"]  # median of 90 MiB and the default 100 MiB


def test_a_case_with_no_passed_previous_run_is_new(history):
    rows = _lines_by_case(run_summary(history, "run-2"))

    assert rows["d"][7:9] == ["s", "new"], "run-1's failed d is no baseline"
    assert rows["d"][-3:] == ["3.0", "GiB", "–"], "spilled in GiB, unknown task count as a dash"
    assert rows["b"][7:9] == ["s", "new"]


def test_the_baseline_is_the_same_runtime_only(history):
    rows = _lines_by_case(run_summary(history, "run-2"))

    assert rows["c"][0] == "latest"
    assert rows["c"][8] == "new", "stable's c of run-1 is not latest's baseline"


def test_a_later_run_is_never_the_baseline(history):
    rows = _lines_by_case(run_summary(history, "run-1"))

    assert rows["a"][8] == "new"
    assert set(rows) == {"a", "c", "d"}


def test_failed_cases_are_listed_under_not_passed_with_their_error(history):
    text = run_summary(history, "run-2")
    rows = _lines_by_case(text)

    assert rows["b"][4:6] == ["FAILED", "0/1"]
    _, not_passed = text.split("\n\nNot passed:\n")
    assert not_passed.splitlines() == ["  latest × local × b: WorkloadCheckFailed: sum is 41, expected 42"]
    assert "old failure" not in text


def test_a_run_where_everything_passed_has_no_not_passed_section(results_dir, case_row, write_run):
    write_run([case_row(run_id="run-1")])

    with Results(results_dir) as results:
        text = run_summary(results, "run-1")

    assert "Not passed" not in text
    assert len(text.splitlines()) == 3


def test_a_setup_failure_shows_its_error_and_no_measurements(results_dir, case_row, write_run):
    write_run([case_row(run_id="run-1", phase="setup", outcome="error", error="ImportError: zarr", wall_s=None)])

    with Results(results_dir) as results:
        text = run_summary(results, "run-1")

    cells = _lines_by_case(text)["groupby_agg[by=id]"]
    assert cells[4:7] == ["ERROR", "0/0", "–"]
    assert text.endswith("Not passed:\n  latest × local × groupby_agg[by=id]: ImportError: zarr")


@pytest.mark.parametrize(
    ("current", "previous", "expected"),
    [
        (1.1, 1.0, "+10 %"),
        (0.5, 1.0, "-50 %"),
        (1.0, 1.0, "+0 %"),
        (1.0, None, "new"),
        (None, 1.0, "–"),
        (None, None, "–"),
        (1.0, 0.0, "–"),
    ],
)
def test_change(current, previous, expected):
    assert change(current, previous) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "–"),
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (100 * 2**20, "100.0 MiB"),
        (3 * 2**30, "3.0 GiB"),
        (2**40, "1.0 TiB"),
        (2**50, "1024.0 TiB"),
        (-2048, "-2.0 KiB"),
    ],
)
def test_human_bytes(value, expected):
    assert human_bytes(value) == expected


def test_format_table_aligns_numbers_right_and_text_left():
    text = format_table(["name", "n"], [["a", 1], ["long name", 1000]])

    assert text.splitlines() == [
        "name       n",
        "---------  ----",
        "a             1",
        "long name  1000",
    ]


def test_format_table_shows_null_floats_and_cuts_long_cells():
    text = format_table(
        ["x", "note"], [[1.23456789, None], [None, "a" * 100], [12345678.9, "two\nlines"]], max_width=12
    )
    lines = text.splitlines()

    assert lines[2].split() == ["1.235", "NULL"]
    assert lines[3].split() == ["NULL", "a" * 11 + "…"]
    assert lines[4].split() == ["1.23457e+07", "two", "lines"]
    assert all(len(line) <= len("1.23457e+07") + 2 + 12 for line in lines)


def test_format_table_with_no_rows_prints_the_header():
    assert format_table(["run_id", "n"], []).splitlines() == ["run_id  n", "------  -"]


def test_a_previous_run_with_other_parameters_is_not_the_baseline(results_dir, case_row, write_run):
    # The same case id and size, re-declared with other parameters (e.g. a resized workload): not comparable.
    write_run([case_row(run_id="run-1", run_started_at=RUN_1, case_id="a", params={"rows": 100}, wall_s=1.0)])
    write_run([case_row(run_id="run-2", run_started_at=RUN_2, case_id="a", params={"rows": 200}, wall_s=2.0)])

    with Results(results_dir) as results:
        rows = _lines_by_case(run_summary(results, "run-2"))

    assert rows["a"][6:9] == ["2.00", "s", "new"]
