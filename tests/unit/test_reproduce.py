"""framework/reproduce.py: what a recorded run is rebuilt from (its stored lock and spec, never today's), the cases it
runs again, and recorded vs now side by side — from synthetic rows; the real rebuild is tests/integration."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from framework.cli import main
from framework.config import Catalog, load_catalog
from framework.environments import BuiltEnvironment
from framework.health import Health
from framework.in_runtime.errors import SelectionError
from framework.metric_catalogue import METRIC_NAMES
from framework.models import LocalHardware
from framework.query import Results
from framework.reproduce import (
    cases_today,
    format_side_by_side,
    load_run,
    recorded_hardware,
    repeats_for_a_verdict,
    side_by_side,
)
from framework.results import ResultsStore
from framework.vocabulary import percent

RUN = "20261201T000000Z-abcdef"
MiB = 2**20
# As the recorded run declared it — not what matrices/runtimes.yaml says today.
SPEC = {
    "description": "",
    "python": "3.11",
    "packages": {"dask[array]": "==2026.1.0", "distributed": "==2026.1.0"},
    "as_of": None,
    "env": {"MALLOC_TRIM_THRESHOLD_": "1"},
    "dask_config": {"distributed.scheduler.worker-saturation": 1.5},
    "lockstep": [["dask", "distributed"]],
    "retired_field": "a field today's model no longer has",
}
HARDWARE = {
    "name": "local",
    "description": "",
    "backend": "local",
    "n_workers": 3,  # today's `local` has 2: the recorded profile is what runs
    "threads_per_worker": 1,
    "memory_limit_per_worker": 2 * 2**30,
    "processes": True,
}
LOCK = "dask==2026.1.0 \\\n    --hash=sha256:aa\ndistributed==2026.1.0 \\\n    --hash=sha256:bb\n"
INSTALLED = {"dask": "2026.1.0", "distributed": "2026.1.0", "toolz": "1.0.0"}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def recorded_rows(case_row: Any, case_id: str = "array_mean_var", walls: tuple[float, ...] = (1.0, 1.1, 0.9),
                  **fields: Any) -> list[dict[str, Any]]:  # fmt: skip
    """One warm-up and a measured repeat per wall time, of one case of RUN."""
    common = {
        "run_id": fields.pop("run_id", RUN),
        "workload": case_id.split("[", maxsplit=1)[0],
        "case_id": case_id,
        "function": "workloads.array:mean_var_reduction",
        "params": {"rows": 123, "cols": 7},
        "size": "tiny",
        "runtime_spec": SPEC,
        "hardware_spec": HARDWARE,
        "packages": INSTALLED,
        **fields,
    }
    rows = [case_row(phase="warmup", repeat=0, wall_s=5.0, **common)]
    rows += [case_row(phase="measure", repeat=index, wall_s=wall, **common) for index, wall in enumerate(walls)]
    return rows


@pytest.fixture
def recorded(results_dir: Path, write_run: Any, case_row: Any) -> Path:
    """RUN in the store: two cases, and the lock stored for its environment."""
    write_run(recorded_rows(case_row) + recorded_rows(case_row, "groupby_agg[by=id]", walls=(2.0, 2.0)))
    environment = {"env_hash": "e" * 16, "runtime": "latest", "python": "3.11", "lock": LOCK}
    ResultsStore(results_dir).record_environment({**environment, "built_at": dt.datetime(2026, 12, 1)})
    return results_dir


def load(results_dir: Path, cases: list[str] | None = None) -> Any:
    with Results(results_dir) as results:
        return load_run(results, RUN, cases)


# --------------------------------------------------------------------------------------------------
# What a run is rebuilt from


def test_a_run_is_rebuilt_from_its_stored_lock_and_recorded_spec(recorded: Path) -> None:
    run = load(recorded)

    [group] = run.groups
    assert group.lock == LOCK
    assert group.lock_source == "stored lock, with hashes"
    assert (group.env_hash, group.label) == ("e" * 16, "latest × local")
    runtime = group.runtime
    assert runtime.name == "latest"
    assert runtime.packages == SPEC["packages"]  # the recorded spec, not today's runtimes.yaml
    assert runtime.dask_config == SPEC["dask_config"]
    assert runtime.env == SPEC["env"]
    assert [(c.case_id, c.params, c.size, c.measured) for c in group.cases] == [
        ("array_mean_var", {"rows": 123, "cols": 7}, "tiny", 3),
        ("groupby_agg[by=id]", {"rows": 123, "cols": 7}, "tiny", 2),
    ]
    assert group.installed == INSTALLED


def test_a_lock_stored_as_uv_pip_freeze_is_used_as_it_is(results_dir: Path, write_run: Any, case_row: Any) -> None:
    write_run(recorded_rows(case_row))
    freeze = "dask==2026.1.0\ndistributed==2026.1.0\n"
    ResultsStore(results_dir).record_environment({"env_hash": "e" * 16, "runtime": "latest", "lock": freeze})

    [group] = load(results_dir).groups

    assert (group.lock, group.lock_source) == (freeze, "stored lock, pins without hashes (uv pip freeze)")


def test_a_run_without_a_stored_lock_is_rebuilt_from_the_versions_its_rows_recorded(
    results_dir: Path, write_run: Any, case_row: Any
) -> None:
    write_run(recorded_rows(case_row))

    [group] = load(results_dir).groups

    assert group.lock == "dask==2026.1.0\ndistributed==2026.1.0\ntoolz==1.0.0\n"
    assert group.lock_source == "no lock stored — the versions its rows recorded as installed"


def test_a_run_group_id_loads_every_shard_s_cases_by_environment(
    results_dir: Path, write_run: Any, case_row: Any
) -> None:
    shard = {"run_group": "nightly-1"}
    write_run(recorded_rows(case_row, run_id="shard-1", shard="1/2", **shard))
    other = recorded_rows(case_row, "groupby_agg[by=id]", run_id="shard-2", shard="2/2", env_hash="f" * 16, **shard)
    write_run(other)  # the other machine built the runtime anew

    with Results(results_dir) as results:
        run = load_run(results, "nightly-1")
        alone = load_run(results, "shard-2")

    assert sorted((g.env_hash, [c.case_id for c in g.cases]) for g in run.groups) == [
        ("e" * 16, ["array_mean_var"]),
        ("f" * 16, ["groupby_agg[by=id]"]),
    ]
    assert [c.case_id for g in alone.groups for c in g.cases] == ["groupby_agg[by=id]"]


def test_an_unknown_run_is_one_line_naming_it_and_how_to_list_runs(results_dir: Path, capsys: Any) -> None:
    code = main(["reproduce", "--run=20991231T000000Z-nope00", f"--results={results_dir}"])

    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith(f"no run '20991231T000000Z-nope00' in {results_dir} — list recent runs with: ")
    assert err.endswith('nox -s sql -- "SELECT DISTINCT run_id, runtime FROM runs ORDER BY 1 DESC LIMIT 10"')
    assert "\n" not in err


def test_an_unknown_case_of_the_run_gets_the_near_miss(recorded: Path) -> None:
    with pytest.raises(SelectionError, match=r"unknown case of run .* 'array_mean_vr' — did you mean 'array_mean_var'"):
        load(recorded, ["array_mean_vr"])
    assert [c.case_id for c in load(recorded, ["array_mean_var"]).groups[0].cases] == ["array_mean_var"]


def test_the_cases_run_again_take_todays_function_with_the_recorded_params(recorded: Path, catalog: Catalog) -> None:
    [group] = load(recorded).groups

    cases = cases_today(group, catalog, RUN, repeat=None)

    assert [(c.case_id, c.params, c.size, c.workload.repeats) for c in cases] == [
        ("array_mean_var", {"rows": 123, "cols": 7}, "tiny", 3),  # as many measured repeats as recorded
        ("groupby_agg[by=id]", {"rows": 123, "cols": 7}, "tiny", 2),
    ]
    assert cases[0].workload.function == catalog.workloads["array_mean_var"].function
    assert [c.workload.repeats for c in cases_today(group, catalog, RUN, repeat=7)] == [7, 7]


def test_a_workload_gone_from_the_catalog_is_one_line_exit_2(
    results_dir: Path, write_run: Any, case_row: Any, capsys: Any
) -> None:
    write_run(recorded_rows(case_row, "retired_workload[x=1]"))

    code = main(["reproduce", f"--run={RUN}", f"--results={results_dir}"])

    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == (
        f"run {RUN}: workload 'retired_workload' (case retired_workload[x=1]) is not in today's workloads/*.yaml"
        " — it cannot be run again; see what exists with nox -s workloads"
    )


def test_the_recorded_hardware_profile_is_what_runs(catalog: Catalog) -> None:
    profile = recorded_hardware("local", HARDWARE, catalog, RUN)
    assert isinstance(profile, LocalHardware)
    assert (profile.n_workers, profile.memory_limit_per_worker) == (3, 2 * 2**30)
    # not recorded in full: the catalog's profile of that name, else a one-line error
    assert recorded_hardware("local", None, catalog, RUN) == catalog.hardware["local"]
    with pytest.raises(SelectionError, match=r"ran on hardware 'gone'.* declare a profile of that name"):
        recorded_hardware("gone", {"backend": "local"}, catalog, RUN)


def test_it_builds_the_recorded_lock_never_resolves_and_stops_at_an_unusable_environment(
    recorded: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any, tmp_path: Path
) -> None:
    built: list[tuple[str, str, str]] = []

    def build_from_lock(runtime: Any, lock: str, root: Path, rebuild: bool = False) -> BuiltEnvironment:
        built.append((runtime.name, runtime.packages["distributed"], lock))
        return BuiltEnvironment(runtime, tmp_path / "env", "e" * 16, "r" * 16, lock, False, 1.0)

    def resolve(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a reproduction must never resolve again")

    cause = "import distributed failed: ImportError: cannot import name 'x' from 'dask'"
    monkeypatch.setattr("framework.environments.build_from_lock", build_from_lock)
    monkeypatch.setattr("framework.resolution.resolve", resolve)
    monkeypatch.setattr("framework.health.check_health", lambda environment, root: Health(False, cause, 0.1))
    monkeypatch.setattr("framework.engine.run_group", lambda *a, **k: pytest.fail("an unusable runtime ran"))

    code = main(["reproduce", f"--run={RUN}", f"--results={recorded}"])

    assert code == 1
    assert capsys.readouterr().out.strip() == f"latest is UNUSABLE: {cause}"
    assert built == [("latest", "==2026.1.0", LOCK)]
    with Results(recorded) as results:
        _, health = results.sql("SELECT runtime, usable, cause FROM health")
    assert health == [("latest", False, cause)]


# --------------------------------------------------------------------------------------------------
# Recorded vs now


def test_side_by_side_compares_every_metric_with_ratio_and_interval(case_row: Any) -> None:
    then = [1.0, 1.05, 0.95, 1.02, 0.98, 1.01, 0.99, 1.03]
    now = [2 * wall for wall in then]
    recorded = recorded_rows(case_row, walls=tuple(then))
    again = recorded_rows(case_row, walls=tuple(now), run_id="new")

    lines = side_by_side(["array_mean_var"], recorded, again)

    assert [line.metric for line in lines] == list(METRIC_NAMES)
    wall = lines[0]
    assert wall.result is not None
    assert wall.result.ratio == pytest.approx(2.0)
    assert wall.result.ci_low <= 2.0 <= wall.result.ci_high
    assert wall.result.verdict == "regressed"
    table = format_side_by_side(lines).splitlines()
    assert table[0].split() == ["case", "passed", "(then", "→", "now)", "metric", "recorded", "now", "change", "95",
                                "%", "CI", "verdict"]  # fmt: skip
    first = table[2]
    assert first.startswith("array_mean_var  8/8 → 8/8")
    assert "wall time" in first
    assert " 1 s " in first  # medians 1.005 s and 2.01 s, as nox -s compare shows them
    assert " 2.01 s " in first
    assert "+100 %" in first
    assert f"{percent(wall.result.ci_low)} to {percent(wall.result.ci_high)}" in first
    assert first.endswith("regressed")
    peak = table[3]
    assert peak.split()[:2] == ["peak", "memory"]  # the case is named once, on its first line
    assert "100.0 MiB" in peak
    assert "+0.0 %" in peak
    assert "spill" in table[5]
    assert "0 B" in table[5]


def test_a_metric_with_too_few_values_is_shown_not_compared(case_row: Any) -> None:
    recorded = recorded_rows(case_row, walls=(1.0, 1.1, 0.9))
    again = recorded_rows(case_row, walls=(1.0,), run_id="new", peak_memory_bytes=None)

    lines = side_by_side(["array_mean_var"], recorded, again, metrics=("wall", "peak_memory"))

    assert [line.result for line in lines] == [None, None]
    table = format_side_by_side(lines).splitlines()
    assert "3/3 → 1/1" in table[2]
    assert table[2].endswith("  –  n = 3 vs 1  unusable")
    assert "n = 3 vs 0" in table[3]


def test_few_repeats_say_how_many_would_give_a_verdict(case_row: Any) -> None:
    lines = side_by_side(["array_mean_var"], recorded_rows(case_row), recorded_rows(case_row, run_id="new"), ["wall"])

    table = format_side_by_side(lines)

    assert "inconclusive" in table.splitlines()[2]
    assert table.splitlines()[-1] == (
        "inconclusive: 3 recorded against 3 repeats cannot reach p < 0.01 — reproduce with --repeat=9 for a verdict"
    )
    assert repeats_for_a_verdict(3, 0.01) == 9  # 2 / C(12, 3) = 0.009 < 0.01; 2 / C(11, 3) = 0.012 is not
    assert repeats_for_a_verdict(1, 0.01) is None


def test_failed_repeats_count_in_passed_and_are_left_out_of_the_values(case_row: Any) -> None:
    recorded = recorded_rows(case_row)
    again = recorded_rows(case_row, run_id="new")
    again[1] = case_row(**{**recorded_rows(case_row)[1], "run_id": "new", "outcome": "failed", "wall_s": 99.0})

    [line] = side_by_side(["array_mean_var"], recorded, again, ["wall"])

    assert line.passed == ("3/3", "2/3")
    assert line.now == (1.1, 0.9)
