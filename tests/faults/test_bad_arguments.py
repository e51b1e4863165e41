"""Bad command lines: absurd counts and unusable ``--results`` directories get one line and exit 2, nothing written.

Found by a probe: ``--repeat=99999999999999999999`` was accepted, ``--results=/dev/null`` ended in a traceback.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from framework.cli import COMMANDS, COUNT_LIMITS, main
from framework.config import ROOT

# Each verb that takes --results, with what it needs besides to get past argument parsing.
VERBS = {
    "matrix": [],
    "sql": [],
    "stability": [],
    "compare": ["--baseline=latest", "--candidate=latest"],
    "export": ["--run=20260101T000000Z-aaaaaa"],
    "reproduce": ["--run=20260101T000000Z-aaaaaa"],
    "regressions": [],
    "bisect": ["--package=dask", "--good=2024.12.1", "--bad=2025.1.0"],
    "attribute": ["--baseline=stable", "--candidate=latest"],
    "bless": [],
    "report": [],
    "compact": [],
    "guard": ["--from=20260101T000000Z-aaaaaa:groupby_agg[by=id]"],
}
AS_ROOT = os.geteuid() == 0


def refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The one line ``main(argv)`` prints before exiting 2, having printed nothing else."""
    with pytest.raises(SystemExit) as raised:
        main(argv)
    assert raised.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_every_verb_that_takes_results_is_covered(capsys: pytest.CaptureFixture[str]) -> None:
    taking = set()
    for verb in COMMANDS:
        with pytest.raises(SystemExit):
            main([verb, "--help"])
        if "--results" in capsys.readouterr().out:
            taking.add(verb)
    assert taking == set(VERBS)


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_results_that_is_a_device(verb: str, capsys: pytest.CaptureFixture[str]) -> None:
    line = refused([verb, *VERBS[verb], "--results=/dev/null"], capsys)
    assert "--results=/dev/null: is a device or special file, not a directory — pass a results directory" in line


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_results_that_is_a_regular_file(verb: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "results.parquet"
    file.write_bytes(b"not a directory")
    line = refused([verb, *VERBS[verb], f"--results={file}"], capsys)
    assert f"--results={file}: is a file, not a directory — pass a results directory" in line
    assert file.read_bytes() == b"not a directory"
    assert sorted(tmp_path.iterdir()) == [file]


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_results_inside_a_file(verb: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "file"
    file.write_text("x")
    line = refused([verb, *VERBS[verb], f"--results={file}/results"], capsys)
    assert f"--results={file}/results: cannot be created: {file} is not a directory — pass a results directory" in line
    assert sorted(tmp_path.iterdir()) == [file]


@pytest.mark.parametrize("verb", sorted(set(VERBS) - {"sql", "export", "guard"}))
def test_results_that_cannot_be_written(verb: str, capsys: pytest.CaptureFixture[str]) -> None:
    # /proc/self is a directory nobody can write to, not even root (who ignores a chmod).
    line = refused([verb, *VERBS[verb], "--results=/proc/self"], capsys)
    assert "--results=/proc/self: is not writable — pass a directory you can write to" in line
    line = refused([verb, *VERBS[verb], "--results=/proc/self/results"], capsys)
    assert "--results=/proc/self/results: cannot be created: /proc/self is not writable" in line


@pytest.mark.skipif(AS_ROOT, reason="root writes into a read-only directory")
@pytest.mark.parametrize("verb", ["matrix", "bless", "compact"])
def test_results_in_a_read_only_directory(verb: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "results"
    results.mkdir()
    results.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        line = refused([verb, *VERBS[verb], f"--results={results}"], capsys)
        assert f"--results={results}: is not writable — pass a directory you can write to" in line
        assert list(results.iterdir()) == []
    finally:
        results.chmod(stat.S_IRWXU)


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_results_at_an_unknown_kind_of_url(verb: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Every verb takes a URL for --results (tests/unit/test_object_store.py: S3), checked before anything runs."""
    line = refused([verb, *VERBS[verb], "--results=nosuch://bucket/prefix"], capsys)
    assert "--results: nosuch://bucket/prefix: cannot open this URL (Protocol not known: nosuch) — use a local" in line


def test_sql_reads_a_results_directory_it_cannot_write(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sql", "--results=/proc/self"]) == 0  # read-only: no results there, the views are listed
    assert "rows:" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("verb", "option"),
    [
        ("matrix", "--repeat"),
        ("compare", "--rounds"),
        ("compare", "--budget"),
        ("reproduce", "--repeat"),
        ("bisect", "--repeat"),
        ("bisect", "--times"),
        ("bisect", "--passes"),
        ("attribute", "--repeat"),
        ("attribute", "--times"),
        ("attribute", "--budget"),
        ("stability", "--examples"),
        ("stability", "--steps"),
        ("stability", "--times"),
    ],
)
def test_counts_are_bounded(verb: str, option: str, capsys: pytest.CaptureFixture[str]) -> None:
    limit = COUNT_LIMITS[option]
    line = refused([verb, *VERBS[verb], f"{option}=99999999999999999999"], capsys)
    assert f"argument {option}: 99999999999999999999 is more than {limit} — use 1 to {limit}, e.g. {option}=" in line
    line = refused([verb, *VERBS[verb], f"{option}={limit + 1}"], capsys)
    assert f"{limit + 1} is more than {limit}" in line
    line = refused([verb, *VERBS[verb], f"{option}=0"], capsys)
    assert f"argument {option}: 0 is not ≥ 1 — use e.g. {option}=" in line


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["stability", "--settle=nan"], "argument --settle: nan is out of range — use a number from 0 to 3600"),
        (["stability", "--settle=-1"], "argument --settle: -1 is out of range — use a number from 0 to 3600"),
        (["stability", "--seed=-1"], "argument --seed: '-1' is not a seed — use a whole number from 0 to 2**63-1"),
        (["stability", "--seed=99999999999999999999"], "'99999999999999999999' is not a seed"),
        (
            ["compare", *VERBS["compare"], "--time-budget=inf"],
            "argument --time-budget: inf is out of range — use a number above 0 up to 604800",
        ),
        (["compare", *VERBS["compare"], "--time-budget=0"], "argument --time-budget: 0 is out of range"),
    ],
)
def test_numbers_are_bounded(argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert expected in refused(argv, capsys)


def test_the_command_line_itself_prints_one_line_and_no_traceback(tmp_path: Path) -> None:
    for argv in (["matrix", "--repeat=99999999999999999999"], ["report", "--results=/dev/null"]):
        process = subprocess.run(
            [sys.executable, "-m", "framework.cli", *argv],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert process.returncode == 2, process.stderr
        assert process.stdout == ""
        assert len(process.stderr.splitlines()) == 1, process.stderr
