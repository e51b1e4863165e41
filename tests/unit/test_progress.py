"""framework/progress.py: a bar on a terminal, plain throttled status lines elsewhere, never an error into the run.

Also the matrix's counting of executions from the runner's lines (``framework.engine.ExecutionProgress``).
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from rich.console import Console

from framework import progress as progress_module
from framework.engine import CaseGroup
from framework.execution_lines import ExecutionProgress
from framework.progress import ENV, Progress, RunnerProgress, choose_mode, duration, echo, runner_line


class Clock:
    """A clock the test moves by hand: no sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Broken(io.StringIO):
    """A terminal that went away."""

    def write(self, text: str) -> int:
        raise OSError(5, "Input/output error")

    def isatty(self) -> bool:
        return True


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _no_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.delenv("TERM", raising=False)


def terminal_console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=140, color_system=None), out


# --- plain: CI logs and pipes ---------------------------------------------------------------------------------------


def test_without_a_terminal_lines_are_plain_and_the_status_comes_at_most_every_30_s() -> None:
    stream, clock = io.StringIO(), Clock()
    with Progress("matrix", 400, "executions", stream=stream, clock=clock) as progress:
        assert progress.mode == "plain"
        for index in range(120):
            clock.now += 1.0  # 120 executions in 2 minutes: four status lines, not 120
            progress.note(f"[latest × local] case measure {index + 1}: passed in 1.00 s")
            progress.advance(1, current=f"case {index + 1}", failed=int(index < 3))

    text = stream.getvalue()
    assert "\r" not in text and "\x1b" not in text
    statuses = [line for line in text.splitlines() if line.startswith("progress: ")]
    assert statuses[0] == "progress: 30/400 executions, 3 failed, ETA 6 min"  # 1 s each, 370 left
    assert len(statuses) == 5  # at 30, 60, 90, 120 s, and the last line: the run took longer than 30 s
    assert statuses[-1] == "progress: 120/400 executions, 3 failed, in 2 min"
    assert len([line for line in text.splitlines() if line.startswith("[latest × local]")]) == 120


def test_eta_is_the_mean_time_per_unit_times_the_units_left() -> None:
    clock = Clock()
    with Progress("matrix", 10, "executions", mode="plain", stream=io.StringIO(), clock=clock) as progress:
        assert progress.eta() == ""  # nothing done yet: no guess
        clock.now += 40
        progress.advance(4)
        assert progress.eta_s() == pytest.approx(60.0)  # 10 s per unit, 6 left
        clock.now += 5  # half-way through the fifth
        assert progress.eta_s() == pytest.approx(55.0)
        assert progress.eta() == "ETA 55 s"


def test_time_spent_in_setup_is_left_out_of_the_eta() -> None:
    clock = Clock()
    with Progress("matrix", 10, "executions", mode="plain", stream=io.StringIO(), clock=clock) as progress:
        with progress.setup("environment for latest"):
            clock.now += 300  # a 5-minute build
        assert progress.current == "environment for latest"
        clock.now += 20
        progress.advance(2)
        assert progress.eta_s() == pytest.approx(80.0)  # 10 s per unit, not 160


@pytest.mark.parametrize(
    ("bound", "expected"),
    [("exact", "progress: 3/7 steps"), ("about", "progress: 3/~7 steps"), ("at most", "progress: 3/≤7 steps")],
)
def test_a_total_that_is_an_estimate_or_a_bound_says_so(bound: Any, expected: str) -> None:
    with Progress("bisect", 7, "steps", bound=bound, mode="plain", stream=io.StringIO()) as progress:
        progress.advance(3)
        assert progress.status().split(",")[0] == expected


def test_the_total_can_be_raised_and_grows_when_passed() -> None:
    with Progress("bisect", 3, "steps", bound="about", mode="plain", stream=io.StringIO()) as progress:
        progress.advance(4)
        assert progress.total == 4
        progress.total = 6
        assert progress.counts() == "4/~6 steps"
        progress.total = 1
        assert progress.total == 4, "never below what is done"


def test_a_short_run_prints_no_status_at_all() -> None:
    stream, clock = io.StringIO(), Clock()
    with Progress("compare", 4, "runs", stream=stream, clock=clock) as progress:
        clock.now += 10
        progress.advance(4)
    assert stream.getvalue() == ""


@pytest.mark.parametrize(("seconds", "expected"), [(3.2, "3 s"), (59.4, "59 s"), (61, "1 min"), (7265, "2 h 01 min")])
def test_duration(seconds: float, expected: str) -> None:
    assert duration(seconds) == expected


# --- choosing the mode ----------------------------------------------------------------------------------------------


def test_mode_is_bar_on_a_terminal_plain_elsewhere_and_the_environment_overrides(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert choose_mode(Terminal()) == ("bar", None)
    assert choose_mode(io.StringIO()) == ("plain", None)
    monkeypatch.setenv("TERM", "dumb")
    assert choose_mode(Terminal()) == ("plain", None)
    for wanted in ("bar", "plain", "off", " OFF "):
        monkeypatch.setenv(ENV, wanted)
        assert choose_mode(io.StringIO())[0] == wanted.strip().lower()


def test_an_unknown_mode_in_the_environment_is_named_and_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "fancy")
    stream = io.StringIO()
    with Progress("matrix", 1, "executions", stream=stream):
        pass
    assert stream.getvalue() == (
        "DASK_BLESSING_PROGRESS='fancy' is not one of bar, plain, off — showing progress as if it were unset\n"
    )


def test_off_prints_no_progress_only_the_notes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "off")
    stream, clock = io.StringIO(), Clock()
    with Progress("matrix", 100, "executions", stream=stream, clock=clock) as progress:
        for _ in range(100):
            clock.now += 60
            progress.advance(1, current="case", failed=1)
        assert stream.getvalue() == ""
        progress.note("a line of the run")
    assert stream.getvalue() == "a line of the run\n"


# --- the bar ----------------------------------------------------------------------------------------------------


def test_the_bar_shows_the_title_counts_failures_eta_and_current_item_with_notes_above() -> None:
    console, out = terminal_console()
    clock = Clock()
    with Progress("matrix", 40, "executions", mode="bar", console=console, clock=clock) as progress:
        for index in range(4):
            clock.now += 10
            progress.note(f"[latest × local] groupby_agg[by=name] measure {index + 1}: passed in 1.17 s")
            current = f"latest × local · groupby_agg[by=name] ({index + 2}/5)"
            progress.advance(1, failed=int(index == 3), current=current)
        running = out.getvalue()

    shown = [bar for bar in re.split(r"[\r\n]", running) if "executions" in bar][-1]  # the bar as last drawn
    for part in ("matrix", "4/40 executions", "1 failed", "ETA 6 min", "latest × local · groupby_agg[by=name] (5/5)"):
        assert part in shown, f"{part!r} not in the bar: {shown!r}"
    assert "[latest × local] groupby_agg[by=name] measure 4: passed in 1.17 s" in running, "notes print as they are"
    left = [bar for bar in re.split(r"[\r\n]", out.getvalue()) if "executions" in bar][-1]
    assert "4/40 executions" in left and "groupby_agg" not in left, "once over, the bar names nothing as running"


def test_a_broken_terminal_never_raises_into_the_run() -> None:
    broken = Console(file=Broken(), force_terminal=True)
    fallback = io.StringIO()
    with Progress("matrix", 10, "executions", mode="bar", console=broken, stream=fallback) as progress:
        progress.advance(1, current="case")
        progress.note("still shown")
        progress.total = 20
    assert progress.mode == "plain", "the bar gave way to plain lines"
    assert "still shown\n" in fallback.getvalue()

    with Progress("matrix", 10, "executions", mode="plain", stream=Broken(), clock=Clock()) as silent:
        silent.note("nowhere to go")
        silent.advance(5)


def test_a_bar_that_fails_gives_stdout_and_stderr_back() -> None:
    import sys

    before = (sys.stdout, sys.stderr)
    with Progress("matrix", 10, "executions", mode="bar", console=Console(file=Broken(), force_terminal=True)) as p:
        p.note("x")
    assert (sys.stdout, sys.stderr) == before


# --- one run inside another, and runners that report their own progress ----------------------------------------------


def test_a_progress_inside_another_prints_through_the_outer_one() -> None:
    stream = io.StringIO()
    with Progress("bisect", 5, "steps", mode="plain", stream=stream) as outer:
        with Progress("replay", 3, "replays", mode="plain", stream=io.StringIO()) as inner:
            inner.note("a replay line")
            inner.advance(3)
        echo("a line from anywhere")
    assert outer.done == 0
    assert stream.getvalue() == "a line from anywhere\n".join(["a replay line\n", ""])


def test_echo_without_progress_goes_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    echo("hello")
    assert capsys.readouterr().err == "hello\n"


def test_a_runner_reports_its_own_progress_in_lines_the_controller_does_not_echo(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(ENV, "plain")
    reported = RunnerProgress()

    assert reported.take(runner_line(title="stability latest", total=48, unit="examples")) is True
    assert reported.take(runner_line(current="[latest] fuzz[inprocess], 40 examples")) is True
    assert reported.take(runner_line(advance=40, failed=1)) is True
    assert reported.take("[latest] fuzz[inprocess]: passed in 12.0 s") is False
    assert reported.take("progress> {not json") is True, "a garbled progress line is dropped, not echoed"
    shown = reported.progress
    assert shown is not None
    assert (shown.title, shown.done, shown.total, shown.failed) == ("stability latest", 40, 48, 1)
    assert shown.current == "[latest] fuzz[inprocess], 40 examples"
    reported.close()
    assert progress_module._shown == []
    assert capsys.readouterr().err == ""


def test_a_runner_inside_a_run_that_counts_leaves_the_counting_to_it() -> None:
    with Progress("bisect", 5, "steps", mode="plain", stream=io.StringIO()) as outer:
        reported = RunnerProgress()
        reported.take(runner_line(title="replay x", total=3, unit="replays"))
        reported.take(runner_line(advance=1))
        assert reported.progress is None
        reported.close()
    assert outer.done == 0


# --- the matrix: executions counted from the runner's lines -----------------------------------------------------------


def _group(*cases: tuple[str, int, int]) -> CaseGroup:
    environment: Any = SimpleNamespace(runtime=SimpleNamespace(name="latest"))
    hardware: Any = SimpleNamespace(name="local")
    planned: Any = [
        SimpleNamespace(case_id=case_id, workload=SimpleNamespace(warmup=warmup, repeats=repeats))
        for case_id, warmup, repeats in cases
    ]
    return CaseGroup(environment, hardware, planned)


def test_the_matrix_counts_each_execution_line_and_shows_what_runs_next() -> None:
    stream = io.StringIO()
    with Progress("matrix", 7, "executions", mode="plain", stream=stream) as progress:
        lines = ExecutionProgress(progress, _group(("a[by=x y]", 1, 2), ("b", 1, 3)))
        assert progress.current == "latest × local · a[by=x y] (1/3)"
        lines("[latest × local] a[by=x y] warmup 1: passed in 2.00 s")
        lines("[latest × local] a[by=x y] measure 1: failed in 0.50 s")
        assert (progress.done, progress.failed) == (2, 1)
        assert progress.current == "latest × local · a[by=x y] (3/3)"
        lines("a line of the workload's own")
        lines("[latest × local] a[by=x y] measure 2: passed in 0.40 s")
        assert progress.current == "latest × local · b (1/4)"
        lines("[latest × local] b warmup 1: timeout in 60.00 s")  # a timeout ends the case: the rest at the end
        lines.finish([{"outcome": "passed"}, {"outcome": "failed"}, {"outcome": "timeout"}])
        assert (progress.done, progress.failed) == (7, 2)
    assert "a line of the workload's own\n" in stream.getvalue()


def test_a_case_whose_setup_fails_counts_all_its_executions_and_one_failure() -> None:
    with Progress("matrix", 8, "executions", mode="off", stream=io.StringIO()) as progress:
        lines = ExecutionProgress(progress, _group(("a", 1, 3), ("b", 1, 3)))
        lines("[latest × local] a setup: fixture s3 failed: no moto")
        assert (progress.done, progress.failed) == (4, 1)
        lines("[latest × local] b warmup 1: passed in 1.00 s")
        assert progress.done == 5


def test_a_runner_that_dies_counts_the_cases_it_never_reported_as_failures() -> None:
    with Progress("matrix", 4, "executions", mode="off", stream=io.StringIO()) as progress:
        lines = ExecutionProgress(progress, _group(("a", 0, 2), ("b", 0, 2)))
        lines("[latest × local] a measure 1: passed in 1.00 s")
        lines.finish([{"outcome": "passed"}, {"outcome": "error"}, {"outcome": "error"}])
        assert (progress.done, progress.failed) == (4, 2)


def test_the_matrix_module_parses_the_runners_own_wording() -> None:
    # framework/in_runtime/runner.py prints these; if its wording changes, the counting must follow.
    source = (Path(__file__).parents[2] / "framework" / "in_runtime" / "runner.py").read_text(encoding="utf-8")
    assert """_log(f"{label} {phase} {repeat + 1}: {row['outcome']} in {row['wall_s']:.2f} s")""" in source
    assert """_log(f"{label} setup: {error}")""" in source
    assert """label = f"[{plan['runtime']['name']} × {plan['hardware']['name']}] {case['case_id']}\"""" in source


def test_the_console_shows_one_line_per_case_and_every_execution_that_did_not_pass_at_once() -> None:
    stream = io.StringIO()
    with Progress("matrix", 9, "executions", mode="plain", stream=stream) as progress:
        lines = ExecutionProgress(progress, _group(("a", 1, 3), ("b", 1, 3), ("c", 0, 1)))
        lines("[latest × local] a warmup 1: passed in 2.00 s")
        for seconds in ("0.40", "0.30", "0.50"):
            lines(f"[latest × local] a measure 1: passed in {seconds} s")
        lines("[latest × local] b warmup 1: passed in 1.00 s")
        lines("[latest × local] b measure 1: failed in 0.20 s")
        lines("[latest × local] b measure 2: timeout in 60.00 s")  # the timeout ends the case early
        lines("[latest × local] c setup: fixture s3 failed: no moto")
        lines.finish([])
    printed = [line for line in stream.getvalue().splitlines() if not line.startswith("progress:")]
    assert printed == [
        "[latest × local] a: passed — 1 warm-up + 3 measured, 0.30–0.50 s",
        "[latest × local] b measure 1: failed in 0.20 s",
        "[latest × local] b measure 2: timeout in 60.00 s",
        "[latest × local] b: NOT PASSED (2 failed, timeout) — 1 warm-up + 2 measured of 4 planned",
        "[latest × local] c setup: fixture s3 failed: no moto",
    ]
