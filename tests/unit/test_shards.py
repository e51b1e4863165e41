"""framework/shards.py: the split of a plan into shards, its balance and determinism, and the run group on rows."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from framework import cli
from framework.config import load_catalog
from framework.in_runtime.errors import SelectionError
from framework.in_runtime.runner import base_row
from framework.matrix import Plan, Selection, build_plan
from framework.query import Results
from framework.salvage import missing_rows, sidecar_path, write_sidecar
from framework.shards import (
    Shard,
    assign,
    day_start,
    default_run_group,
    parse_run_group,
    parse_shard,
    recorded_durations,
    refuse_split,
    require_run_group,
    split_plan,
    unit_key,
    weights,
)

keys = st.tuples(*(st.text("abcxyz_[]=", min_size=1, max_size=6),) * 3, st.sampled_from(["", "tiny", "small"]))
weighed_units = st.dictionaries(keys, st.integers(1, 10**7), min_size=1, max_size=60)


@settings(max_examples=300, deadline=None)
@given(weighed_units, st.integers(1, 12), st.randoms(use_true_random=False))
def test_every_unit_goes_to_exactly_one_shard_within_the_greedy_bound_whatever_the_input_order(
    weights: dict[tuple[str, str, str, str], int], count: int, shuffler: random.Random
) -> None:
    assignment, totals = assign(weights, count)

    assert set(assignment) == set(weights) and set(assignment.values()) <= set(range(1, count + 1))
    assert [sum(w for k, w in weights.items() if assignment[k] == i) for i in range(1, count + 1)] == list(totals)
    # Greedy to the least loaded: the heaviest shard exceeds the lightest by at most one unit's weight, and the
    # longest is within Graham's 4/3 of the optimum's lower bound plus a unit (max(total/N, heaviest unit) ≤ optimum).
    assert max(totals) - min(totals) <= max(weights.values())
    assert max(totals) <= sum(weights.values()) / count + max(weights.values())
    if len(weights) >= count:
        assert all(totals), "a shard left empty while there were units enough for every shard"
    reordered = list(weights.items())
    shuffler.shuffle(reordered)
    assert assign(dict(reordered), count) == (assignment, totals)  # same answer on any machine, in any order


def test_lpt_puts_the_heaviest_units_apart() -> None:
    weights = {("r", "h", name, ""): weight for name, weight in zip("abcdef", [7, 6, 5, 4, 3, 2])}
    assignment, totals = assign(weights, 2)
    assert totals == (14, 13)  # 7+4+3 | 6+5+2: the optimum here
    assert assignment[("r", "h", "a", "")] != assignment[("r", "h", "b", "")]


@pytest.fixture(scope="module")
def plan() -> Plan:
    return build_plan(load_catalog(), Selection(size="tiny"))


def test_count_balance_splits_the_expanded_plan_into_parts_of_equal_size(plan: Plan) -> None:
    split = split_plan(plan, 5, None, "count")
    parts = [split.part(plan, Shard(index, 5)) for index in range(1, 6)]

    units = [unit_key(p) for part in parts for p in part.cases]
    assert sorted(units) == sorted(unit_key(p) for p in plan.cases)  # each unit once
    sizes = [len(part.cases) for part in parts]
    assert max(sizes) - min(sizes) <= 1 and split.from_history == 0
    assert parts[0].cases == [p for p in plan.cases if p in parts[0].cases]  # the plan's order is kept
    assert split_plan(plan, 5, None, "count").fingerprint() == split.fingerprint()
    assert split.describe()[0].startswith(f"split {split.fingerprint()} into 5 shards, balanced by count")


def test_history_balance_weighs_units_by_duration_and_estimates_the_unknown_ones(plan: Plan) -> None:
    heavy = unit_key(plan.cases[0])
    durations = {**{unit_key(p): 1.0 for p in plan.cases[1:4]}, heavy: 1000.0}

    split = split_plan(plan, 2, durations, "history")

    alone = split.assignment[heavy]
    assert [key for key, index in split.assignment.items() if index == alone] == [heavy]  # it outweighs the rest
    assert split.from_history == 4 and f"4 of {len(plan.cases)} units from history" in split.describe()[0]
    assert "s expected" in split.describe()[1]
    # A unit without history weighs the median of those with: 1 s per execution, times its executions.
    unknown = plan.cases[5]
    executions = unknown.case.workload.warmup + unknown.case.workload.repeats
    assert weights(plan, durations)[0][unit_key(unknown)] == 1000 * executions
    assert split_plan(plan, 2, durations, "count").from_history == 0  # --balance=count ignores history
    shuffled = list(plan.cases)
    random.Random(7).shuffle(shuffled)
    assert split_plan(Plan(shuffled, []), 2, dict(reversed(durations.items())), "history") == split


def test_more_shards_than_units_is_refused(plan: Plan) -> None:
    one = Plan(plan.cases[:2], [])
    with pytest.raises(SelectionError, match=r"--shard=K/3: the plan has 2 units .* use at most --shard=K/2"):
        split_plan(one, 3, None, "count")


# --- history: only runs ended before today, never the group's own ------------------------------------------------


def _rows(case_row, run_id: str, ended: dt.datetime, seconds: float, group: str | None = None, **fields) -> list[dict]:
    """A warm-up and two measured repeats of seconds each, ending at ``ended``."""
    rows = []
    for n, phase in enumerate(["warmup", "measure", "measure"]):
        start = ended - dt.timedelta(seconds=seconds * (3 - n))
        rows.append(
            case_row(
                run_id=run_id,
                run_group=group,
                run_started_at=(ended - dt.timedelta(seconds=3 * seconds)).isoformat(),
                phase=phase,
                repeat=max(n - 1, 0),
                started_at=start.isoformat(),
                ended_at=(start + dt.timedelta(seconds=seconds)).isoformat(),
                **fields,
            )
        )
    return rows


def test_recorded_durations_come_from_runs_ended_before_today_and_not_of_the_group(results_dir, case_row, write_run):
    now = dt.datetime(2026, 12, 6, 15, 0, tzinfo=dt.timezone.utc)
    yesterday = now - dt.timedelta(days=1)
    write_run(_rows(case_row, "old-1", yesterday, 2.0))
    write_run(_rows(case_row, "old-2", yesterday - dt.timedelta(hours=1), 4.0, group="old-2"))
    write_run(_rows(case_row, "today", now - dt.timedelta(hours=1), 500.0))  # a shard that finished early today
    write_run(_rows(case_row, "mine", yesterday, 900.0, group="nightly-7"))  # the group's own, started yesterday

    durations = recorded_durations(results_dir, "nightly-7", day_start(now))

    assert durations == {("latest", "local", "groupby_agg[by=id]", "tiny"): pytest.approx(3.0)}  # median of 2 and 4
    tomorrow = recorded_durations(results_dir, None, day_start(now + dt.timedelta(days=1)))
    assert tomorrow == {("latest", "local", "groupby_agg[by=id]", "tiny"): pytest.approx(252.0)}  # 2, 4, 500, 900
    assert recorded_durations(results_dir / "missing", None) == {}


def test_an_execution_counts_on_its_own_not_the_gaps_between_rounds(results_dir, case_row, write_run):
    first = dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)
    rounds = [first, first + dt.timedelta(hours=1)]  # an interleaved comparison: one repeat per round
    write_run(
        [
            case_row(run_id="ab", repeat=n, started_at=start.isoformat(), ended_at=(start + dt.timedelta(seconds=2)))
            for n, start in enumerate(rounds)
        ]
    )
    assert recorded_durations(results_dir, None, first + dt.timedelta(days=2)) == {
        ("latest", "local", "groupby_agg[by=id]", "tiny"): pytest.approx(2.0)
    }


# --- options ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("0/3", "'0/3': K must be from 1 to 3 — use e.g. --shard=1/3"),
        ("4/3", "'4/3': K must be from 1 to 3 — use e.g. --shard=1/3"),
        ("1/0", "'1/0': N must be at least 1"),
        ("junk", "'junk' is not K/N — use K/N with 1 ≤ K ≤ N"),
        ("1/3/4", "'1/3/4' is not K/N"),
    ],
)
def test_a_bad_shard_is_one_line_and_exit_2(given: str, message: str, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["matrix", f"--shard={given}", "--run-group=g"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "--shard" in err


def test_balance_without_a_shard_is_refused(capsys, tmp_path: Path) -> None:
    assert cli.main(["matrix", "--balance=count", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err == "--balance=count: only a split plan is balanced — add --shard=K/N, or drop it\n"
    assert cli.main(["matrix", "--shard=1/2", "--balance-from=nowhere", "--dry-run"]) == 2
    given = Path("nowhere").absolute()  # a relative path is the user's working directory's, said in full
    assert capsys.readouterr().err.startswith(f"--balance-from={given}: not a results directory — pass the store")


def test_a_shard_balanced_from_another_store_reads_its_history(results_dir, case_row, write_run, capsys, tmp_path):
    yesterday = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)
    write_run(_rows(case_row, "old", yesterday, 2.0, runtime="latest", hardware="local", case_id="array_mean_var"))
    args = ["matrix", "--dry-run", "--size=tiny", "--shard=1/2", f"--results={tmp_path / 'fresh'}"]

    assert cli.main([*args, f"--balance-from={results_dir}"]) == 0
    assert re.search(r"balanced by recorded durations \(1 of \d+ units from history\)", capsys.readouterr().out)
    assert cli.main(args) == 0
    assert "balanced by count (no recorded durations before today)" in capsys.readouterr().out


def test_shard_and_run_group_parse() -> None:
    assert parse_shard("2/3") == Shard(2, 3) and str(parse_shard(" 1 / 1 ")) == "1/1"
    assert parse_run_group("gh-123-1") == "gh-123-1" and parse_run_group("a" * 64) == "a" * 64
    for bad in ("", "a" * 65, "a b", "x/y", "é"):
        with pytest.raises(argparse.ArgumentTypeError, match="is not a run group id"):
            parse_run_group(bad)


def test_a_shard_without_a_run_group_takes_github_s_or_is_refused(capsys, monkeypatch, tmp_path: Path) -> None:
    assert default_run_group({"GITHUB_RUN_ID": "4711", "GITHUB_RUN_ATTEMPT": "2"}) == "gh-4711-2"
    assert require_run_group(None, Shard(1, 2), {"GITHUB_RUN_ID": "4711", "GITHUB_RUN_ATTEMPT": "2"}) == "gh-4711-2"
    assert require_run_group("mine", Shard(1, 2), {"GITHUB_RUN_ID": "4711"}) == "mine"
    assert require_run_group(None, None, {}) is None  # unsharded: each row's group is its run id
    monkeypatch.delenv("GITHUB_RUN_ID", raising=False)

    assert cli.main(["matrix", "--shard=1/2", "--workload=array_mean_var", f"--results={tmp_path}"]) == 2

    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--shard=1/2: no run group" in err and "--run-group=ID to every shard" in err


@pytest.mark.parametrize("verb", ["compare", "bless"])
def test_compare_and_bless_refuse_a_shard_and_say_what_to_do_instead(verb: str, capsys) -> None:
    assert cli.main([verb, "--shard=1/2", "--runtime=latest"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--shard=1/2: {verb} does not split into shards" in err
    assert "nox -s matrix -- --shard=K/N" in err and "nox -s merge" in err
    refuse_split(verb, ["--sharding-is-not-it"])  # only --shard itself


PLAN_NOTES = ("skip ", "environment ", "dry run:")  # the dry run's lines that are not a planned case


def test_dry_run_of_a_shard_prints_its_part_and_the_balance(capsys, tmp_path: Path) -> None:
    args = ["matrix", "--dry-run", "--size=tiny", f"--results={tmp_path}"]
    parts = []
    for index in (1, 2):
        assert cli.main([*args, f"--shard={index}/2", "--balance=count"]) == 0
        out = capsys.readouterr().out.splitlines()
        assert out[0].startswith("split ") and out[1].startswith("  shard 1/2: ") and out[2].startswith("  shard 2/2")
        assert out[3].startswith(f"shard {index}/2: ")
        parts.append({line for line in out[4:] if not line.startswith(PLAN_NOTES)})
    assert cli.main([*args]) == 0
    whole = {line for line in capsys.readouterr().out.splitlines() if not line.startswith(PLAN_NOTES)}
    assert parts[0] | parts[1] == whole and not parts[0] & parts[1]


# --- rows carry the group and the shard -----------------------------------------------------------------------------


PLAN = {
    "schema_version": 3,
    "run_id": "run-1",
    "run_started_at": "2026-12-06T00:00:00+00:00",
    "runtime": {"name": "latest", "hash": "r", "env_hash": "e", "spec": {}, "env": {}, "dask_config": {}},
    "hardware": {"name": "local", "backend": "local"},
    "cases": [{"case_id": "a", "workload": "w", "function": "m:f", "size": None, "params": {}, "tags": []}],
    "provenance": {},
}


@pytest.mark.parametrize(
    ("extra", "group", "shard"), [({}, "run-1", None), ({"run_group": "g", "shard": "2/3"}, "g", "2/3")]
)
def test_runner_and_controller_rows_carry_the_run_group_and_shard(extra, group, shard, tmp_path: Path) -> None:
    plan = {**PLAN, **extra}
    assert (base_row(plan)["run_group"], base_row(plan)["shard"]) == (group, shard)
    [setup] = missing_rows(plan, [], {}, "never ran", "cut")
    assert (setup["run_group"], setup["shard"]) == (group, shard)
    rows_path = tmp_path / "1__run-1__latest__local.jsonl"
    write_sidecar(rows_path, plan, {})  # what salvage rebuilds the rows of a killed run from
    kept = json.loads(sidecar_path(rows_path).read_text())
    assert (kept.get("run_group") or kept["run_id"], kept.get("shard")) == (group, shard)


# --- the run_groups view --------------------------------------------------------------------------------------------


def test_run_groups_view_treats_the_shards_as_one_run(results_dir, case_row, write_run):
    for run_id, shard, cases in (("s1", "1/3", "ab"), ("s2", "2/3", "c"), ("s3", "3/3", "d")):
        write_run(
            [
                case_row(run_id=run_id, run_group="nightly", shard=shard, case_id=case, outcome=outcome)
                for case in cases
                for outcome in ("passed", "failed" if case == "c" else "passed")
            ]
        )
    write_run([case_row(run_id="old", case_id="a")])  # written before run groups: a group of its own
    write_run([case_row(run_id="half", run_group="half", shard="1/2", case_id="a")])

    with Results(results_dir) as results:
        names, rows = results.sql(
            "SELECT run_group, shards_expected, shards_seen, complete, shards, run_ids, n_cases, n_measured,"
            " n_passed, n_failed, cases_in_several_runs FROM run_groups ORDER BY run_group"
        )
        _, [(summary_group, summary_shard)] = results.sql(
            "SELECT run_group, shard FROM case_summary WHERE case_id = 'c'"
        )
        _, runs = results.sql("SELECT run_id, run_group, shard FROM runs ORDER BY run_id")

    assert [dict(zip(names, row)) for row in rows] == [
        {"run_group": "half", "shards_expected": 2, "shards_seen": 1, "complete": False, "shards": ["1/2"],
         "run_ids": ["half"], "n_cases": 1, "n_measured": 1, "n_passed": 1, "n_failed": 0, "cases_in_several_runs": 0},
        {"run_group": "nightly", "shards_expected": 3, "shards_seen": 3, "complete": True,
         "shards": ["1/3", "2/3", "3/3"], "run_ids": ["s1", "s2", "s3"], "n_cases": 4, "n_measured": 8,
         "n_passed": 7, "n_failed": 1, "cases_in_several_runs": 0},
        {"run_group": "old", "shards_expected": 1, "shards_seen": 1, "complete": True, "shards": [],
         "run_ids": ["old"], "n_cases": 1, "n_measured": 1, "n_passed": 1, "n_failed": 0,
         "cases_in_several_runs": 0},
    ]  # fmt: skip
    assert (summary_group, summary_shard) == ("nightly", "2/3")
    assert ("old", "old", None) in runs and ("s2", "nightly", "2/3") in runs


def test_run_groups_view_shows_shards_that_disagreed_on_the_split(results_dir, case_row, write_run):
    write_run([case_row(run_id="s1", run_group="g", shard="1/2", case_id=c) for c in "ab"])
    write_run([case_row(run_id="s2", run_group="g", shard="2/2", case_id=c) for c in "bc"])  # b twice

    with Results(results_dir) as results:
        _, [(twice, cases)] = results.sql("SELECT cases_in_several_runs, n_cases FROM run_groups")
    assert (twice, cases) == (1, 3)


def test_latest_and_case_summary_find_each_case_of_a_group_in_its_one_shard(results_dir, case_row, write_run):
    write_run([case_row(run_id="old", case_id=case, wall_s=9.0) for case in "ab"])  # an earlier, unsplit run
    for run_id, shard, case, started in (("s1", "1/2", "a", "2026-01-02T00:00:00+00:00"),
                                         ("s2", "2/2", "b", "2026-01-02T00:05:00+00:00")):  # fmt: skip
        write_run([case_row(run_id=run_id, run_group="g", shard=shard, case_id=case, run_started_at=started)])

    with Results(results_dir) as results:
        _, latest = results.sql("SELECT case_id, run_id, run_group, shard FROM latest ORDER BY case_id")
        _, summary = results.sql("SELECT case_id, run_id FROM case_summary WHERE run_group = 'g' ORDER BY case_id")

    assert latest == [("a", "s1", "g", "1/2"), ("b", "s2", "g", "2/2")]  # not the earlier run, nor a case twice
    assert summary == [("a", "s1"), ("b", "s2")]
