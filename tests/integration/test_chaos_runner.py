"""The stability runner in-process: regression cases first, then a fuzz batch; failures become records that replay."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from framework.chaos import run as chaos_run
from framework.in_runtime.cluster_health import COLUMNS as HEALTH
from framework.in_runtime.runner import PROTOCOL
from framework.results import SCHEMA_VERSION, case_table, read_rows

pytestmark = pytest.mark.cluster(deadline=300)

MiB = 2**20
CONFIG = {
    "tier": "inprocess",
    "workers": 2,
    "threads": 1,
    "worker_saturation": 1.0,
    "work_stealing": True,
    "validate": False,
    "memory_limit": 256 * MiB,
}


def plan(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {
        "protocol": PROTOCOL,
        "schema_version": SCHEMA_VERSION,
        "mode": "fuzz",
        "run_id": "20261126T000000Z-aaaaaa",
        "run_started_at": "2026-11-26T00:00:00+00:00",
        "runtime": {"name": "here", "hash": "h", "env_hash": "e", "spec": {}, "env": {}, "dask_config": {}},
        "hardware": {"name": "chaos", "backend": "local"},
        "rows_path": str(tmp_path / "rows.jsonl"),
        "failures_dir": str(tmp_path / "failures"),
        "log_path": str(tmp_path / "log.txt"),
        "work_dir": str(tmp_path / "work"),
        "provenance": {"git_commit": "abc", "git_dirty": False},
        "profile": "ci",
        "tiers": ["inprocess"],
        "examples": 2,
        "steps": 4,
        "seed": 3,
        "settle_s": 20,
        "regressions": [],
        **extra,
    }


def regression(case_id: str, corrupt: bool) -> dict[str, Any]:
    graph = {"kind": "tree", "n": 6, "seed": 2, "corrupt": corrupt}
    return {
        "id": case_id,
        "tier": "inprocess",
        "program": [{"op": "start", "config": CONFIG}, {"op": "submit", "graph": graph}],
        "settle_s": 20,
    }


def test_regressions_run_first_then_the_fuzzer_and_failures_are_recorded(tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    the_plan = plan(tmp_path, regressions=[regression("healthy", False), regression("planted", True)])
    not_passed = chaos_run.run(the_plan)
    rows = read_rows(Path(the_plan["rows_path"]))
    assert [row["case_id"] for row in rows] == ["regression[healthy]", "regression[planted]", "fuzz[inprocess]"]
    healthy, planted, fuzzed = rows
    assert healthy["outcome"] == "passed"
    assert planted["outcome"] == "failed"
    assert "result: ResultError: tree0-" in planted["error"]
    # the machine's load over each replay and batch: a liveness failure at load 16 says so
    assert all(row["overloaded"] == (row["load_avg_1m"] > row["cpu_count"]) for row in rows)
    # cluster health is per case, not per fuzzed program: NULL, with the reason
    assert all(row.get(c) is None and "stability runs" in row["missing"][c] for row in rows for c in HEALTH)
    if fuzzed["outcome"] == "passed":
        assert fuzzed["extra_metrics"]["examples"] >= 2
    else:  # a real, timing-dependent finding of distributed itself (see test_nox_stability): recorded whole
        assert fuzzed["outcome"] == "failed" and fuzzed["error"], fuzzed
        assert (Path(the_plan["failures_dir"]) / fuzzed["failure_id"] / "failure.json").exists()
    assert not_passed == 1 + (fuzzed["outcome"] != "passed")
    # what the batch exercised: steps per kind (adding up to its steps), and how many examples had the proxies
    extra = fuzzed["extra_metrics"]
    assert sum(count for name, count in extra.items() if name.startswith("count_")) == extra["steps"] > 0
    assert 0 <= extra["network_examples"] <= extra["examples"]
    case_table(rows)  # every row fits the results schema

    record_dir = Path(the_plan["failures_dir"]) / planted["failure_id"]
    record = json.loads((record_dir / "failure.json").read_text())
    assert record["program"] == regression("planted", True)["program"]
    assert record["kind"] == "result"
    assert record["versions"]["distributed"]
    assert planted["cluster_dump"] and Path(planted["cluster_dump"]).exists()

    replay_plan = plan(tmp_path, mode="replay", replay=record, times=2, rows_path=str(tmp_path / "replay.jsonl"))
    assert chaos_run.run(replay_plan) == 2
    replays = read_rows(Path(replay_plan["rows_path"]))
    assert [row["outcome"] for row in replays] == ["failed", "failed"]
    assert [row["repeat"] for row in replays] == [0, 1]
    assert {row["workload"] for row in replays} == {"stability.replay"}


def test_shrinking_drops_the_steps_a_failure_does_not_need(tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    program = [
        {"op": "start", "config": CONFIG},
        {"op": "pause", "ms": 10},
        {"op": "submit", "graph": {"kind": "chain", "n": 3, "seed": 1}},
        {"op": "submit", "graph": {"kind": "dag", "n": 5, "seed": 2, "corrupt": True}},
        {"op": "add_worker"},
    ]
    record = {"failure_id": "planted", "kind": "result", "program": program, "settle_s": 20}
    shrink_plan = plan(tmp_path, mode="shrink", replay=record, tries=1)
    assert chaos_run.run(shrink_plan) == 0
    summary, final = read_rows(Path(shrink_plan["rows_path"]))
    assert summary["extra_metrics"]["steps_before"] == 4
    assert summary["extra_metrics"]["steps_after"] == 1
    assert final["outcome"] == "failed"
    shrunk = json.loads((Path(shrink_plan["failures_dir"]) / final["failure_id"] / "failure.json").read_text())
    assert shrunk["program"] == [program[0], program[3]]
    assert shrunk["source"] == {"shrunk_from": "planted", "steps_before": 4}


def test_a_keep_going_part_names_its_failure_and_its_batch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Part N of a keep-going batch (run in a fresh process by framework.stability) records its failure as
    ``<id>-partN``, with its batch's seed and the batch's own example budget beside the part's."""
    from framework.chaos import graphs

    original = graphs.node_value

    def wrong_in_workers(node: dict[str, Any], deps: list[Any], children: list[int]) -> Any:
        value = original(node, deps, children)
        try:
            from distributed import get_worker

            get_worker()
        except ValueError:
            return value
        return value + 1 if isinstance(value, int) else value  # a planted bug: every graph computes wrong

    monkeypatch.setattr(graphs, "node_value", wrong_in_workers)
    (tmp_path / "work").mkdir()
    the_plan = plan(tmp_path, examples=3, steps=3, seed=77, part=2, batch_seed=3, batch_examples=None)
    chaos_run.run(the_plan)
    [row] = read_rows(Path(the_plan["rows_path"]))
    assert row["outcome"] == "failed"
    assert row["failure_id"] == "20261126T000000Z-aaaaaa-here-inprocess-part2"
    assert row["params"]["part"] == 2 and row["params"]["batch_seed"] == 3 and row["params"]["seed"] == 77
    assert row["params"]["examples"] is None and row["params"]["examples_wanted"] == 3
    assert (Path(the_plan["failures_dir"]) / row["failure_id"] / "failure.json").exists()
