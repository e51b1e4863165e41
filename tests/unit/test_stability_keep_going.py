"""Keep-going (``nox -s stability -- --keep-going``): a batch that failed with examples left goes on in a fresh runner
process, part after part, each seeded from the batch's seed, until its examples are spent or a part passes."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import pytest

from framework import stability
from framework.results import ResultsStore


def fuzz_row(tier: str, outcome: str, wanted: int, done: int, failure_id: str | None) -> dict[str, Any]:
    return {
        "workload": "stability.fuzz",
        "outcome": outcome,
        "failure_id": failure_id,
        "params": {"tier": tier, "examples_wanted": wanted},
        "extra_metrics": {"examples": done},
    }


def run_keep_going(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, first: list[dict[str, Any]], parts: list[list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """The plans _keep_going hands to the runner, each part's runner answering with the next of ``parts``."""
    plans: list[dict[str, Any]] = []
    answers = iter(parts)

    def execute(plan: dict[str, Any], *_: Any) -> Path:
        plans.append(plan)
        return tmp_path / f"part{plan['part']}.parquet"

    monkeypatch.setattr(stability, "_execute", execute)
    monkeypatch.setattr(stability, "_rows_of", lambda _: next(answers))
    plan = {"run_id": "R", "tiers": ["inprocess", "process"], "examples": None, "seed": 5, "regressions": ["case"]}
    environment = types.SimpleNamespace(runtime=types.SimpleNamespace(name="stable"))
    report = stability.StabilityReport("R")
    stability._keep_going(plan, environment, ResultsStore(tmp_path / "store"), tmp_path, 60.0, report, first)
    assert len(report.rows) == sum(len(rows) for rows in parts[: len(plans)])
    return plans


def test_a_failed_batch_goes_on_in_fresh_parts_until_its_examples_are_spent(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    first = [fuzz_row("inprocess", "failed", 40, 12, "R-stable-inprocess"), fuzz_row("process", "passed", 8, 8, None)]
    parts = [
        [fuzz_row("inprocess", "timeout", 28, 20, "R-stable-inprocess-part1")],  # fails again, 8 left
        [fuzz_row("inprocess", "failed", 8, 8, "R-stable-inprocess-part2")],  # fails on its last example: spent
    ]

    plans = run_keep_going(monkeypatch, tmp_path, first, parts)

    assert [(p["tiers"], p["part"], p["examples"]) for p in plans] == [(["inprocess"], 1, 28), (["inprocess"], 2, 8)]
    assert all(p["batch_seed"] == 5 and p["regressions"] == [] and p["batch_examples"] is None for p in plans)
    assert [p["seed"] for p in plans] == [stability.continuation_seed(5, 1), stability.continuation_seed(5, 2)]
    assert len({5, *(p["seed"] for p in plans)}) == 3, "each part draws other examples"
    assert plans[0]["rows_path"] != plans[1]["rows_path"]


def test_a_part_that_passes_or_a_batch_that_did_not_fail_ends_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    first = [fuzz_row("inprocess", "failed", 40, 3, "R-stable-inprocess")]
    plans = run_keep_going(monkeypatch, tmp_path, first, [[fuzz_row("inprocess", "passed", 37, 37, None)]])
    assert [p["part"] for p in plans] == [1]

    passed = [fuzz_row("inprocess", "passed", 40, 40, None), fuzz_row("process", "passed", 8, 8, None)]
    assert run_keep_going(monkeypatch, tmp_path, passed, []) == []


def test_a_runner_that_died_is_not_continued(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # no failure record: the runner died or the runtime was unusable — that is the batch's answer, said once
    died = [fuzz_row("inprocess", "error", 40, 0, None)]
    assert run_keep_going(monkeypatch, tmp_path, died, []) == []


def test_continuation_seeds_are_the_batch_seed_first_then_derived() -> None:
    assert stability.continuation_seed(5, 0) == 5
    assert stability.continuation_seed(5, 1) != stability.continuation_seed(5, 2) != 5
    assert stability.continuation_seed(2**31 - 1, 3) < 2**31
