"""The job summary a verb appends in a GitHub workflow: fenced printouts, redacted, nothing outside a workflow."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from framework import step_summary


def test_outside_a_workflow_nothing_is_written(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)

    assert step_summary.add("Matrix run r1", "a table") is None
    assert list(tmp_path.iterdir()) == []


def test_sections_are_appended_in_order_with_heading_headline_and_the_printout(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    target = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(target))

    step_summary.add("Matrix run r1", "case  outcome\nx     passed", headline="1 case: 1 passed")
    step_summary.add("Comparison c1", "2 regressed")

    assert target.read_text() == (
        "## Matrix run r1\n\n**1 case: 1 passed**\n\n```text\ncase  outcome\nx     passed\n```\n\n"
        "## Comparison c1\n\n```text\n2 regressed\n```\n\n"
    )


def test_a_secret_the_process_knows_never_reaches_the_summary(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    target = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(target))
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-value-xyz")

    step_summary.add("Matrix run r1", "error: denied with key s3cr3t-value-xyz")

    assert "s3cr3t-value-xyz" not in target.read_text()


def test_an_unwritable_summary_is_said_and_is_not_an_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "missing" / "summary.md"))

    assert step_summary.add("Matrix run r1", "text") is None
    assert "the job summary could not be written" in capsys.readouterr().err


@given(st.text(alphabet="`ab\n", max_size=40))
def test_no_printout_can_close_its_fence_early(text: str) -> None:
    fenced = step_summary.fenced(text)
    fence = fenced.split("text\n", 1)[0]

    inside = fenced[len(fence) + len("text\n") : -len(fence)]
    assert fence not in inside
    assert inside == text.rstrip() + "\n"
