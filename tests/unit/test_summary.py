"""framework/summary.py: the end-of-run table (with the change vs the previous run, judged against the case's noise)
and the table printer."""

from __future__ import annotations

import re

import pytest

from framework.in_runtime import provenance
from framework.query import Results
from framework.summary import format_table, human_bytes, run_summary

RUN_1 = "2026-01-01T00:00:00+00:00"
RUN_2 = "2026-01-02T00:00:00+00:00"


def _blocks(text: str) -> dict[str, dict[str, list[str]]]:
    """The summary's blocks: heading → rows split into cells, keyed by the case column (before "Not passed")."""
    blocks: dict[str, dict[str, list[str]]] = {}
    heading = None
    for line in text.split("\n\nNot passed:", 1)[0].splitlines():
        if line and not line.startswith(" "):
            heading = line
            if heading[0].isdigit():  # the totals line
                break
            blocks[heading] = {}
        elif line.startswith("  ") and heading is not None:
            cells = line.split()
            if cells[0] != "case" and not cells[0].startswith("--"):
                blocks[heading][cells[0]] = cells
    return blocks


def _lines_by_case(text: str, block: str = "latest × local") -> dict[str, list[str]]:
    """The rows of one runtime × hardware block, keyed by case: case outcome passed wall "s" Δwall … tasks."""
    [heading] = [heading for heading in _blocks(text) if heading.startswith(block + " ")]
    return _blocks(text)[heading]


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

    # case outcome passed wall "s" Δwall "%" peak "MiB" Δpeak spilled unit tasks
    assert rows["a"][:3] == ["a", "passed", "2/2"]
    assert rows["a"][3:7] == ["1.10", "s", "+10", "%"]  # both runs' repeats agree: +10 % is beyond their noise
    assert rows["a"][7:10] == ["95.0", "MiB", "≈"]  # median of 90 MiB and the default 100 MiB: -5 %, within noise


def test_one_block_per_runtime_and_hardware_under_a_heading_with_dask_and_size(history):
    text = run_summary(history, "run-2")

    assert [line for line in text.splitlines() if line and not line.startswith(" ")][:2] == [
        "latest × local — dask 2026.1.0, size tiny",
        "Not passed:",
    ]
    assert "latest" not in "".join(line for line in text.splitlines() if line.startswith("  a "))


def test_a_case_with_no_passed_previous_run_is_new(history):
    rows = _lines_by_case(run_summary(history, "run-2"))

    assert rows["d"][4:6] == ["s", "new"], "run-1's failed d is no baseline"
    assert rows["d"][-3:] == ["3.0", "GiB", "–"], "spilled in GiB, unknown task count as a dash"
    assert rows["b"][4:6] == ["s", "new"]


def test_the_baseline_is_the_same_runtime_only(history):
    rows = _lines_by_case(run_summary(history, "run-2"))

    assert rows["c"][5] == "new", "stable's c of run-1 is not latest's baseline"


def test_the_baseline_is_a_run_on_the_same_kind_of_machine(results_dir, case_row, write_run):
    machine_a = {"cpu_model": "EPYC", "cores": 4, "memory_gib": 16, "kernel": "6", "virtualisation": None, "arch": "x"}
    machine_b = {**machine_a, "cores": 8}
    for run, day, machine, wall in (
        ("run-1", 1, machine_a, 1.0),
        ("run-2", 2, machine_b, 1.4),
        ("run-3", 3, machine_a, 1.1),
    ):
        at = f"2026-01-0{day}T00:00:00+00:00"
        write_run(
            [
                case_row(
                    run_id=run,
                    run_started_at=at,
                    case_id="a",
                    repeat=repeat,
                    wall_s=wall,
                    **provenance.identity(machine, "runner"),
                )
                for repeat in (0, 1)  # repeats that agree: any change is beyond their noise
            ]
        )
    with Results(results_dir) as results:
        on_b, back_on_a = run_summary(results, "run-2"), run_summary(results, "run-3")

    assert _lines_by_case(on_b)["a"][4:6] == ["s", "new"]  # not +40 %: run-1 ran on another kind of machine
    assert re.search(r"\n  machine class 8c-16g-\w+: its first run here \(earlier runs: 4c-16g-\w+\) — changes", on_b)
    assert _lines_by_case(back_on_a)["a"][4:7] == ["s", "+10", "%"]  # against run-1, the last run on its class
    assert "machine class" not in back_on_a


def test_a_later_run_is_never_the_baseline(history):
    text = run_summary(history, "run-1")
    rows = _lines_by_case(text)

    assert rows["a"][5] == "new"
    assert set(rows) == {"a", "d"}
    assert set(_lines_by_case(text, "stable × local")) == {"c"}


def test_failed_cases_come_first_in_capitals_with_their_error_under_the_table(history):
    text = run_summary(history, "run-2")
    rows = _lines_by_case(text)

    assert list(rows) == ["b", "a", "c", "d"], "not passed first, then by case"
    assert rows["b"][1:3] == ["FAILED", "0/1"]
    not_passed = text.split("\n\nNot passed:\n")[1].split("\n\n")[0]
    assert not_passed.splitlines() == ["  latest × local × b: WorkloadCheckFailed: sum is 41, expected 42"]
    assert "old failure" not in text


def test_the_last_line_counts_the_cases_by_outcome(history):
    assert run_summary(history, "run-2").splitlines()[-1] == "4 cases: 3 passed, 1 failed, 0 error, 0 timeout"


def test_a_failure_with_a_previous_run_shows_no_change(results_dir, case_row, write_run):
    write_run([case_row(run_id="run-1", run_started_at=RUN_1, wall_s=1.0)])
    write_run([case_row(run_id="run-2", run_started_at=RUN_2, wall_s=60.0, outcome="timeout", error="timed out")])

    with Results(results_dir) as results:
        rows = _lines_by_case(run_summary(results, "run-2"))

    assert rows["groupby_agg[by=id]"][1:7] == ["TIMEOUT", "0/1", "60.00", "s", "–", "100.0"]


def test_blocks_line_up_and_mixed_sizes_get_a_column(results_dir, case_row, write_run):
    write_run([case_row(run_id="run-1", case_id="a", size="tiny"), case_row(run_id="run-1", case_id="b", size="small")])
    write_run([case_row(run_id="run-1", case_id="a-much-longer-case-name", runtime="stable", dask_version=None)])

    with Results(results_dir) as results:
        text = run_summary(results, "run-1")

    lines = text.splitlines()
    assert "latest × local — dask 2026.1.0" in lines, "sizes differ: not in the heading"
    assert "stable × local" in lines, "no dask version, mixed sizes: the heading is the pair only"
    headers = [line for line in lines if line.lstrip().startswith("case ")]
    assert len(headers) == 2 and headers[0] == headers[1]
    assert headers[0].split()[:3] == ["case", "size", "outcome"]
    assert sorted(cells[1] for cells in _blocks(text)["latest × local — dask 2026.1.0"].values()) == ["small", "tiny"]


def test_a_run_where_everything_passed_has_no_not_passed_section(results_dir, case_row, write_run):
    write_run([case_row(run_id="run-1")])

    with Results(results_dir) as results:
        text = run_summary(results, "run-1")

    assert "Not passed" not in text
    assert len(text.splitlines()) == 6  # heading, header, rule, row, blank, totals
    assert text.splitlines()[-1] == "1 case: 1 passed, 0 failed, 0 error, 0 timeout"


def test_a_setup_failure_shows_its_error_and_no_measurements(results_dir, case_row, write_run):
    write_run([case_row(run_id="run-1", phase="setup", outcome="error", error="ImportError: zarr", wall_s=None)])

    with Results(results_dir) as results:
        text = run_summary(results, "run-1")

    cells = _lines_by_case(text)["groupby_agg[by=id]"]
    assert cells[1:5] == ["ERROR", "0/0", "–", "new"]
    assert "Not passed:\n  latest × local × groupby_agg[by=id]: ImportError: zarr\n\n1 case: 0 passed" in text


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


def test_format_table_aligns_named_columns_right():
    text = format_table(["name", "wall"], [["a", "1.00 s"], ["b", "12.00 s"]], right=["wall"])

    assert text.splitlines()[2:] == ["a      1.00 s", "b     12.00 s"]


def test_format_table_with_no_rows_prints_the_header():
    assert format_table(["run_id", "n"], []).splitlines() == ["run_id  n", "------  -"]


def test_a_previous_run_with_other_parameters_is_not_the_baseline(results_dir, case_row, write_run):
    # The same case id and size, re-declared with other parameters (e.g. a resized workload): not comparable.
    write_run([case_row(run_id="run-1", run_started_at=RUN_1, case_id="a", params={"rows": 100}, wall_s=1.0)])
    write_run([case_row(run_id="run-2", run_started_at=RUN_2, case_id="a", params={"rows": 200}, wall_s=2.0)])

    with Results(results_dir) as results:
        rows = _lines_by_case(run_summary(results, "run-2"))

    assert rows["a"][3:6] == ["2.00", "s", "new"]


def test_a_case_cut_short_is_interrupted_never_a_pass_and_has_no_change(results_dir, case_row, write_run):
    write_run([case_row(run_id="run-1", run_started_at=RUN_1, case_id="a", wall_s=1.0)])
    write_run(
        [
            case_row(run_id="run-2", run_started_at=RUN_2, case_id="a", wall_s=2.0),
            case_row(run_id="run-2", run_started_at=RUN_2, case_id="a", repeat=1, wall_s=2.0),
            case_row(
                run_id="run-2",
                run_started_at=RUN_2,
                case_id="a",
                repeat=2,
                outcome="interrupted",
                wall_s=None,
                error="interrupted: the runner was killed by SIGKILL at measured repeat 3 of 6 (2 measured)",
            ),
        ]
    )
    with Results(results_dir) as results:
        text = run_summary(results, "run-2")

    cells = _lines_by_case(text)["a"]
    assert cells[1:3] == ["INTERRUPTED", "2/3"]
    assert "+100 %" not in text  # a change from a run cut short is not reported
    assert "interrupted: the runner was killed by SIGKILL at measured repeat 3 of 6" in text
    assert text.endswith("1 case: 0 passed, 0 failed, 0 error, 0 timeout, 1 interrupted")


# --- Δ against the case's noise (framework/noise.py) ---------------------------------------------------------


def _run(case_row, run_id: str, day: int, walls: list[float], case_id: str = "a") -> list[dict]:
    at = f"2026-01-{day:02d}T00:00:00+00:00"
    return [
        case_row(run_id=run_id, run_started_at=at, case_id=case_id, repeat=n, wall_s=wall)
        for n, wall in enumerate(walls)
    ]


def test_the_same_runtime_twice_within_its_repeats_noise_is_approximately_equal_said_once(
    results_dir, case_row, write_run
):
    # Like stable against itself minutes apart: medians 0.18 → 0.51 s (+176 %), but the repeats scatter as much.
    write_run(
        _run(case_row, "run-1", 1, [0.158, 0.467, 0.185]) + _run(case_row, "run-1", 1, [0.33, 0.24, 0.34], case_id="b")
    )
    write_run(
        _run(case_row, "run-2", 2, [0.51, 0.632, 0.251]) + _run(case_row, "run-2", 2, [0.29, 0.43, 0.34], case_id="b")
    )

    with Results(results_dir) as results:
        text = run_summary(results, "run-2")
        verbose = run_summary(results, "run-2", verbose=True)

    rows = _lines_by_case(text)
    assert [rows[case][5] for case in "ab"] == ["≈", "≈"]  # Δ wall
    assert [rows[case][8] for case in "ab"] == ["≈", "≈"]  # Δ peak (the default 100 MiB on both sides)
    assert "+176 %" not in text
    assert text.count("judged by the repeats at hand") == 1
    assert "4 Δ cells judged by the repeats at hand (fewer than 5 earlier runs): drift between runs" in text
    verbose_a = next(line for line in verbose.splitlines() if line.startswith("  a "))
    assert re.search(r"≈ \(\+176 %, ±\d+ %\)", verbose_a), verbose_a
    assert verbose_a.endswith("repeats (3+3)")


def test_a_single_repeat_per_run_has_no_noise_a_dash_and_why_once(results_dir, case_row, write_run):
    write_run(_run(case_row, "run-1", 1, [1.0]) + _run(case_row, "run-1", 1, [1.0], case_id="b"))
    write_run(_run(case_row, "run-2", 2, [3.0]) + _run(case_row, "run-2", 2, [1.0], case_id="b"))

    with Results(results_dir) as results:
        text = run_summary(results, "run-2")

    rows = _lines_by_case(text)
    assert rows["a"][3:9] == ["3.00", "s", "–", "100.0", "MiB", "–"]
    assert "+200 %" not in text
    [note] = [line for line in text.splitlines() if "no noise to judge a change by" in line]
    assert note.startswith("–  4 Δ cells: no noise to judge a change by (fewer than 2 passed repeats on a side")


def test_with_enough_history_the_noise_is_the_spread_of_earlier_runs(results_dir, case_row, write_run):
    for day, median in enumerate([1.0, 1.1, 0.95, 1.05, 1.0, 0.9], start=1):
        write_run(
            _run(case_row, f"run-{day}", day, [median] * 3)
            + _run(case_row, f"run-{day}", day, [median] * 3, case_id="b")
        )
    # Both cases: repeats that agree exactly; a's +10 % is within the runs' spread, b's doubling is not.
    write_run(_run(case_row, "run-7", 7, [0.99] * 3) + _run(case_row, "run-7", 7, [1.8] * 3, case_id="b"))

    with Results(results_dir) as results:
        text = run_summary(results, "run-7")
        verbose = run_summary(results, "run-7", verbose=True)

    rows = _lines_by_case(text)
    assert rows["a"][5] == "≈", "+10 % vs run-6, within the history's noise (the repeats alone would call it)"
    assert rows["b"][5:7] == ["+100", "%"]
    assert "repeats at hand" not in text
    assert all(line.endswith("history (6 runs)") for line in verbose.splitlines() if line.startswith(("  a ", "  b ")))


def test_the_github_step_summary_shows_the_same_table(results_dir, case_row, write_run, monkeypatch, tmp_path):
    from types import SimpleNamespace

    from framework import cli, pipeline

    write_run(_run(case_row, "run-1", 1, [0.158, 0.467, 0.185]))
    write_run(_run(case_row, "run-2", 2, [0.51, 0.632, 0.251]))
    report = SimpleNamespace(run_id="run-2", plan=SimpleNamespace(skipped=[]), unusable=[], shard=None, run_group=None)
    monkeypatch.setattr(pipeline, "run_matrix", lambda options: report)
    markdown = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(markdown))

    assert cli.main(["matrix", f"--results={results_dir}", "--verbose"]) == 0

    with Results(results_dir) as results:
        table = run_summary(results, "run-2", verbose=True)
    assert table in markdown.read_text()
    assert "≈ (+176 %, ±" in markdown.read_text()
