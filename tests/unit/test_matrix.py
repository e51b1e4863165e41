"""framework.matrix: matrices → concrete cases, with include/exclude rules, hardware needs and the command line.

The catalog is tests/resources/good/ (runtimes latest, pinned, dated; hardware small, big, remote, cloud;
workloads mean_var, scale_local, groupby_agg, shuffle); single rules are tried on matrices built here.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from framework.config import Catalog, load_catalog
from framework.in_runtime.errors import FrameworkError, SelectionError
from framework.matrix import (
    DEFAULT_MATRIX,
    Case,
    Plan,
    PlannedCase,
    Selection,
    Skipped,
    build_plan,
    case_id,
    expand_workload,
    hardware_problem,
    rule_matches,
    selector_matches,
)
from framework.models import AddressHardware, CoiledHardware, LocalHardware, Matrix, MatrixRule, Runtime, Workload

GOOD = Path(__file__).resolve().parents[1] / "resources" / "good"
GROUPBY_IDS = ["groupby_agg[by=name]", "groupby_agg[by=id]"]
SHUFFLE_IDS = [
    "shuffle[npartitions=4,method=tasks]",
    "shuffle[npartitions=4,method=p2p]",
    "shuffle[npartitions=8,method=tasks]",
    "shuffle[npartitions=8,method=p2p]",
]


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(GOOD)


def workload(**fields: Any) -> Workload:
    return Workload.model_validate(
        {"name": "w", "description": "A workload.", "function": "workloads.dataframes:w", **fields}
    )


def local(name: str = "local", **fields: Any) -> LocalHardware:
    return LocalHardware.model_validate(
        {"name": name, "backend": "local", "n_workers": 2, "memory_limit_per_worker": "4GiB", **fields}
    )


def with_matrix(catalog: Catalog, **fields: Any) -> Catalog:
    """The catalog with one matrix, 'm', made of ``fields``."""
    matrix = Matrix.model_validate({"name": "m", **fields})
    return dataclasses.replace(catalog, matrices={"m": matrix})


def triples(plan: Plan) -> list[tuple[str, str, str]]:
    return [(planned.runtime.name, planned.hardware.name, planned.case.case_id) for planned in plan.cases]


def skipped(plan: Plan) -> list[tuple[str, str, str, str]]:
    return [(skip.runtime, skip.hardware, skip.case_id, skip.reason) for skip in plan.skipped]


def selection_error(catalog: Catalog, selection: Selection) -> str:
    with pytest.raises(SelectionError) as raised:
        build_plan(catalog, selection)
    return str(raised.value)


# --------------------------------------------------------------------------------------------------
# expand_workload and case ids


def test_workload_without_grid_or_sizes_is_one_case() -> None:
    plain = workload(params={"rows": 10})
    cases, reason = expand_workload(plain, None)
    assert reason is None
    assert cases == [Case(plain, "w", {"rows": 10}, None)]


def test_grid_is_a_product_in_declaration_order() -> None:
    grid = workload(grid={"a": [1, 2], "b": ["x", "y", "z"]})
    cases, reason = expand_workload(grid, None)
    assert reason is None
    assert [case.case_id for case in cases] == [
        "w[a=1,b=x]",
        "w[a=1,b=y]",
        "w[a=1,b=z]",
        "w[a=2,b=x]",
        "w[a=2,b=y]",
        "w[a=2,b=z]",
    ]
    assert cases[4].params == {"a": 2, "b": "y"}
    assert all(case.workload is grid for case in cases)


def test_case_ids_of_real_workloads(catalog: Catalog) -> None:
    cases, _ = expand_workload(catalog.workloads["groupby_agg"], "tiny")
    assert [case.case_id for case in cases] == GROUPBY_IDS
    cases, _ = expand_workload(catalog.workloads["shuffle"], "tiny")
    assert [case.case_id for case in cases] == SHUFFLE_IDS


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("id", "id"),
        (8, "8"),
        (0.5, "0.5"),
        (True, "true"),
        (None, "null"),
        ([1, 2], "[1,2]"),
        ({"b": 2, "a": 1}, '{"a":1,"b":2}'),
        ("with space", "with space"),
        # Strings that would read as another value, or as more keys, are quoted.
        ("1", '"1"'),
        ("true", '"true"'),
        ("null", '"null"'),
        ("[1]", '"[1]"'),
        ("a,b=c", '"a,b=c"'),
        (" padded", '" padded"'),
    ],
)
def test_case_id_shows_values_compactly(value: object, shown: str) -> None:
    assert case_id(workload(), {"x": value}) == f"w[x={shown}]"


def test_case_id_without_grid_is_the_workload_name() -> None:
    assert case_id(workload(), {}) == "w"


def test_case_ids_are_unique_within_a_workload() -> None:
    grid = {"a": [1, "1", True, "true", None, "null", 1.0], "b": [[1], [1, 2], "[1]", "x", "x,a=1"]}
    cases, _ = expand_workload(workload(grid=grid), None)
    ids = [case.case_id for case in cases]
    assert len(ids) == 35
    assert len(set(ids)) == len(ids)


def test_sizes_are_merged_over_params_and_under_the_grid() -> None:
    sized = workload(
        params={"seed": 0, "freq": "1s"},
        grid={"by": ["id"]},
        sizes={"tiny": {"days": 1, "freq": "10s"}, "small": {"days": 10}},
    )
    [case], reason = expand_workload(sized, "tiny")
    assert reason is None
    assert case.params == {"seed": 0, "freq": "10s", "days": 1, "by": "id"}
    assert case.size == "tiny"
    [case], _ = expand_workload(sized, "small")
    assert case.params == {"seed": 0, "freq": "1s", "days": 10, "by": "id"}
    assert case.size == "small"
    # A size is not part of the case id: results of different sizes are told apart by the size column.
    assert case.case_id == "w[by=id]"


def test_grid_overrides_a_size_parameter() -> None:
    [case], _ = expand_workload(workload(grid={"days": [5]}, sizes={"tiny": {"days": 1}}), "tiny")
    assert case.params == {"days": 5}


def test_no_size_asked_picks_the_first_declared() -> None:
    [case], reason = expand_workload(workload(sizes={"small": {"n": 2}, "tiny": {"n": 1}}), None)
    assert reason is None
    assert (case.size, case.params) == ("small", {"n": 2})


def test_missing_size_is_a_skip_reason() -> None:
    cases, reason = expand_workload(workload(grid={"a": [1, 2]}, sizes={"tiny": {}, "small": {}}), "large")
    assert cases == []
    assert reason == "declares no size 'large' (it has tiny, small)"


def test_workload_without_sizes_runs_at_any_size() -> None:
    [case], reason = expand_workload(workload(params={"n": 1}), "large")
    assert reason is None
    assert (case.size, case.params) == (None, {"n": 1})


def test_expansion_does_not_share_params_between_cases() -> None:
    cases, _ = expand_workload(workload(params={"n": 1}, grid={"a": [1, 2]}), None)
    cases[0].params["n"] = 99
    assert cases[1].params["n"] == 1


# --------------------------------------------------------------------------------------------------
# Selectors, rules and hardware needs


@pytest.mark.parametrize(
    ("selector", "matches"),
    [("*", True), ("w", True), ("v", False), ("tag:smoke", True), ("tag:array", False), ("tag:w", False)],
)
def test_selector_matches(selector: str, matches: bool) -> None:
    assert selector_matches(selector, workload(tags=["smoke", "dataframe"])) is matches


@pytest.mark.parametrize(
    ("rule", "matches"),
    [
        ({}, True),
        ({"runtime": "latest"}, True),
        ({"runtime": "stable"}, False),
        ({"hardware": "local"}, True),
        ({"hardware": "cloud"}, False),
        ({"workload": "tag:smoke"}, True),
        ({"runtime": "latest", "hardware": "local", "workload": "w"}, True),
        ({"runtime": "latest", "hardware": "local", "workload": "v"}, False),
    ],
)
def test_rule_matches(rule: dict[str, str], matches: bool) -> None:
    assert rule_matches(MatrixRule(**rule), "latest", "local", workload(tags=["smoke"])) is matches


@pytest.mark.parametrize(
    ("requires", "problem"),
    [
        ({}, None),
        ({"min_workers": 2, "min_threads_per_worker": 1, "min_memory_per_worker": "4GiB"}, None),
        ({"min_workers": 3}, "needs ≥ 3 workers, profile has 2"),
        ({"min_threads_per_worker": 4}, "needs ≥ 4 threads per worker, profile has 1"),
        ({"min_memory_per_worker": "6GiB"}, "needs ≥ 6.0GiB per worker, profile has 4.0GiB"),
        ({"backends": ["local"]}, None),
        ({"backends": ["address", "coiled"]}, "needs backend address or coiled, profile is local"),
    ],
)
def test_hardware_problem_on_a_local_profile(requires: dict[str, Any], problem: str | None) -> None:
    assert hardware_problem(workload(requires=requires), local()) == problem


def test_hardware_problem_checks_backend_first() -> None:
    needs = workload(requires={"backends": ["coiled"], "min_workers": 100})
    assert hardware_problem(needs, local()) == "needs backend coiled, profile is local"


def test_unknown_sizes_are_not_held_against_a_profile() -> None:
    remote = AddressHardware.model_validate({"name": "remote", "backend": "address"})
    big_needs = workload(requires={"min_workers": 100, "min_threads_per_worker": 8, "min_memory_per_worker": "1TiB"})
    assert hardware_problem(big_needs, remote) is None
    cloud = CoiledHardware.model_validate(
        {"name": "cloud", "backend": "coiled", "n_workers": 10, "worker_vm_types": ["a"], "scheduler_vm_types": ["a"]}
    )
    assert hardware_problem(workload(requires={"min_memory_per_worker": "1TiB"}), cloud) is None
    assert hardware_problem(workload(requires={"min_workers": 11}), cloud) == "needs ≥ 11 workers, profile has 10"


# --------------------------------------------------------------------------------------------------
# build_plan: the product, hardware needs and sizes


def test_default_selection_uses_the_default_matrix(catalog: Catalog) -> None:
    assert Selection().matrix == DEFAULT_MATRIX == "default"
    assert build_plan(catalog, Selection()) == build_plan(catalog, Selection(matrix="default"))


def test_default_matrix_product(catalog: Catalog) -> None:
    plan = build_plan(catalog, Selection())
    assert triples(plan) == [
        *(("latest", "small", case) for case in GROUPBY_IDS),
        ("latest", "big", "mean_var"),
        *(("latest", "big", case) for case in GROUPBY_IDS),
        *(("pinned", "small", case) for case in GROUPBY_IDS),
        ("pinned", "big", "mean_var"),
        *(("pinned", "big", case) for case in GROUPBY_IDS),
    ]
    assert all(planned.runtime is catalog.runtimes[planned.runtime.name] for planned in plan.cases)
    assert all(planned.hardware is catalog.hardware[planned.hardware.name] for planned in plan.cases)
    assert {planned.case.size for planned in plan.cases} == {"tiny", None}


def test_too_small_hardware_is_skipped_with_the_reason(catalog: Catalog) -> None:
    plan = build_plan(catalog, Selection())
    reason = "needs ≥ 4.0GiB per worker, profile has 1.0GiB"
    assert skipped(plan) == [("latest", "small", "mean_var", reason), ("pinned", "small", "mean_var", reason)]


def test_hardware_needs_across_backends(catalog: Catalog) -> None:
    plan = build_plan(catalog, Selection(matrix="everything"))
    assert skipped(plan) == [
        ("latest", "small", "mean_var", "needs ≥ 4.0GiB per worker, profile has 1.0GiB"),
        ("latest", "small", "scale_local", "needs ≥ 2 threads per worker, profile has 1"),
        ("latest", "small", "shuffle", "needs ≥ 2 workers, profile has 1"),
        ("latest", "remote", "scale_local", "needs backend local, profile is address"),
        ("latest", "cloud", "scale_local", "needs backend local, profile is coiled"),
    ]
    ran = {(hardware, case.split("[")[0]) for _, hardware, case in triples(plan)}
    assert ("big", "scale_local") in ran
    assert ("remote", "shuffle") in ran  # unknown worker count: not held against the profile
    assert ("cloud", "mean_var") in ran


def test_matrix_size_missing_in_a_workload_is_skipped(catalog: Catalog) -> None:
    plan = build_plan(catalog, Selection(matrix="sized"))
    assert triples(plan) == [("latest", "big", case) for case in GROUPBY_IDS]
    assert [planned.case.params["days"] for planned in plan.cases] == [10, 10]
    assert skipped(plan) == [("latest", "big", "shuffle", "declares no size 'small' (it has tiny)")]


def test_selection_size_overrides_the_matrix(catalog: Catalog) -> None:
    plan = build_plan(catalog, Selection(size="small", runtimes=["latest"], hardware=["big"]))
    assert triples(plan) == [("latest", "big", "mean_var"), *(("latest", "big", case) for case in GROUPBY_IDS)]
    assert [planned.case.size for planned in plan.cases] == [None, "small", "small"]


def test_unknown_size_is_a_selection_error(catalog: Catalog) -> None:
    message = selection_error(catalog, Selection(size="smal"))
    assert message == "unknown size 'smal' — did you mean 'small'? known: small, tiny"


def test_repeat_overrides_every_workload(catalog: Catalog) -> None:
    plan = build_plan(catalog, Selection(repeat=7))
    assert plan.cases
    assert {planned.case.workload.repeats for planned in plan.cases} == {7}
    # The rest of the workload and the catalog itself are untouched.
    groupby = next(p.case.workload for p in plan.cases if p.case.workload.name == "groupby_agg")
    assert (groupby.warmup, groupby.timeout) == (1, 90.0)
    assert catalog.workloads["groupby_agg"].repeats == 2


def test_without_repeat_the_workloads_own_repeats(catalog: Catalog) -> None:
    plan = build_plan(catalog, Selection())
    repeats = {planned.case.workload.name: planned.case.workload.repeats for planned in plan.cases}
    assert repeats == {"groupby_agg": 2, "mean_var": 3}


# --------------------------------------------------------------------------------------------------
# build_plan: exclude and include rules


def test_exclude_by_runtime(catalog: Catalog) -> None:
    rules = with_matrix(
        catalog,
        runtimes=["latest", "pinned"],
        hardware=["big"],
        workloads=["groupby_agg"],
        exclude=[{"runtime": "pinned"}],
    )
    plan = build_plan(rules, Selection(matrix="m"))
    assert triples(plan) == [("latest", "big", case) for case in GROUPBY_IDS]
    assert skipped(plan) == [("pinned", "big", "groupby_agg", "excluded by matrix rule {'runtime': 'pinned'}")]


def test_exclude_by_tag(catalog: Catalog) -> None:
    rules = with_matrix(
        catalog, runtimes=["latest"], hardware=["big"], workloads=["*"], exclude=[{"workload": "tag:dataframe"}]
    )
    plan = build_plan(rules, Selection(matrix="m"))
    assert {planned.case.workload.name for planned in plan.cases} == {"mean_var", "scale_local"}
    assert [(skip.case_id, skip.reason) for skip in plan.skipped] == [
        ("groupby_agg", "excluded by matrix rule {'workload': 'tag:dataframe'}"),
        ("shuffle", "excluded by matrix rule {'workload': 'tag:dataframe'}"),
    ]


def test_exclude_by_hardware_and_runtime_together(catalog: Catalog) -> None:
    rules = with_matrix(
        catalog,
        runtimes=["latest", "pinned"],
        hardware=["small", "big"],
        workloads=["groupby_agg"],
        exclude=[{"runtime": "pinned", "hardware": "small"}],
    )
    plan = build_plan(rules, Selection(matrix="m"))
    assert sorted({(runtime, hardware) for runtime, hardware, _ in triples(plan)}) == [
        ("latest", "big"),
        ("latest", "small"),
        ("pinned", "big"),
    ]
    assert [(skip.runtime, skip.hardware) for skip in plan.skipped] == [("pinned", "small")]


def test_include_adds_a_combination_outside_the_product(catalog: Catalog) -> None:
    plan = build_plan(catalog, Selection(matrix="ruled"))
    assert ("dated", "remote", "mean_var") in triples(plan)
    assert "dated" not in catalog.matrices["ruled"].runtimes
    assert "remote" not in catalog.matrices["ruled"].hardware


def test_include_with_a_tag_adds_every_matching_workload(catalog: Catalog) -> None:
    rules = with_matrix(
        catalog,
        runtimes=["latest"],
        hardware=["big"],
        workloads=["groupby_agg"],
        include=[{"runtime": "dated", "hardware": "big", "workload": "tag:array"}],
    )
    assert triples(build_plan(rules, Selection(matrix="m"))) == [
        *(("latest", "big", case) for case in GROUPBY_IDS),
        ("dated", "big", "mean_var"),
        ("dated", "big", "scale_local"),
    ]


def test_include_inside_the_product_adds_nothing(catalog: Catalog) -> None:
    rules = with_matrix(
        catalog,
        runtimes=["latest"],
        hardware=["big"],
        workloads=["groupby_agg"],
        include=[{"runtime": "latest", "hardware": "big", "workload": "groupby_agg"}],
    )
    assert triples(build_plan(rules, Selection(matrix="m"))) == [("latest", "big", case) for case in GROUPBY_IDS]


def test_include_overrides_exclude_and_is_not_reported_skipped(catalog: Catalog) -> None:
    plan = build_plan(catalog, Selection(matrix="ruled"))
    assert triples(plan) == [
        ("latest", "big", "mean_var"),
        *(("latest", "big", case) for case in GROUPBY_IDS),
        *(("latest", "big", case) for case in SHUFFLE_IDS),
        ("pinned", "big", "mean_var"),
        ("dated", "remote", "mean_var"),
        *(("pinned", "big", case) for case in GROUPBY_IDS),  # excluded by tag, included by name
    ]
    assert skipped(plan) == [
        ("latest", "big", "scale_local", "excluded by matrix rule {'workload': 'scale_local'}"),
        ("pinned", "big", "scale_local", "excluded by matrix rule {'workload': 'scale_local'}"),
        ("pinned", "big", "shuffle", "excluded by matrix rule {'runtime': 'pinned', 'workload': 'tag:dataframe'}"),
    ]


def test_included_combination_still_needs_its_hardware(catalog: Catalog) -> None:
    rules = with_matrix(
        catalog,
        runtimes=["latest"],
        hardware=["big"],
        workloads=["groupby_agg"],
        include=[{"runtime": "latest", "hardware": "small", "workload": "mean_var"}],
    )
    plan = build_plan(rules, Selection(matrix="m"))
    assert all(hardware == "big" for _, hardware, _ in triples(plan))
    assert skipped(plan) == [("latest", "small", "mean_var", "needs ≥ 4.0GiB per worker, profile has 1.0GiB")]


# --------------------------------------------------------------------------------------------------
# build_plan: narrowing from the command line


def test_narrowing_runtimes_drops_includes_outside_them(catalog: Catalog) -> None:
    plan = build_plan(catalog, Selection(matrix="ruled", runtimes=["latest"]))
    assert {runtime for runtime, _, _ in triples(plan)} == {"latest"}
    assert len(plan.cases) == 7


def test_narrowing_hardware_keeps_includes_inside_it(catalog: Catalog) -> None:
    plan = build_plan(catalog, Selection(matrix="ruled", hardware=["big"]))
    found = triples(plan)
    assert ("dated", "remote", "mean_var") not in found  # remote was not asked for
    assert ("pinned", "big", "groupby_agg[by=id]") in found  # big was


def test_narrowing_workloads_keeps_only_matching_includes(catalog: Catalog) -> None:
    plan = build_plan(catalog, Selection(matrix="ruled", workloads=["groupby_agg"]))
    assert triples(plan) == [
        *(("latest", "big", case) for case in GROUPBY_IDS),
        *(("pinned", "big", case) for case in GROUPBY_IDS),
    ]
    assert plan.skipped == []


def test_narrowing_to_an_include_gives_it_once(catalog: Catalog) -> None:
    plan = build_plan(catalog, Selection(matrix="ruled", runtimes=["dated"], hardware=["remote"], workloads=["*"]))
    assert triples(plan) == [
        ("dated", "remote", "mean_var"),
        *(("dated", "remote", case) for case in GROUPBY_IDS),
        *(("dated", "remote", case) for case in SHUFFLE_IDS),
    ]
    assert skipped(plan) == [("dated", "remote", "scale_local", "excluded by matrix rule {'workload': 'scale_local'}")]


def test_selection_may_name_runtimes_outside_the_matrix(catalog: Catalog) -> None:
    plan = build_plan(catalog, Selection(runtimes=["dated"], hardware=["big"], workloads=["tag:smoke"]))
    assert triples(plan) == [("dated", "big", "mean_var"), *(("dated", "big", case) for case in GROUPBY_IDS)]


def test_selection_by_tag_and_name(catalog: Catalog) -> None:
    plan = build_plan(catalog, Selection(matrix="everything", hardware=["big"], workloads=["tag:array", "shuffle"]))
    assert [case for _, _, case in triples(plan)] == ["mean_var", "scale_local", *SHUFFLE_IDS]


# --------------------------------------------------------------------------------------------------
# build_plan: unknown names


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        (
            Selection(matrix="defualt"),
            "unknown matrix 'defualt' — did you mean 'default'? known: default, everything, ruled, sized",
        ),
        (Selection(runtimes=["latest", "lates"]), "unknown runtime 'lates' — did you mean 'latest'? known: dated,"),
        (Selection(hardware=["bigg"]), "unknown hardware profile 'bigg' — did you mean 'big'? known: big, cloud,"),
        (
            Selection(workloads=["groupby"]),
            "unknown workload 'groupby' — did you mean 'groupby_agg'? known: groupby_agg",
        ),
        (
            Selection(workloads=["tag:smok"]),
            "unknown tag 'smok' — did you mean 'smoke'? known: array, dataframe, smoke",
        ),
        (Selection(hardware=["zzzzzz"]), "unknown hardware profile 'zzzzzz' known: big, cloud, remote, small"),
    ],
)
def test_unknown_names_suggest_the_near_miss(catalog: Catalog, selection: Selection, message: str) -> None:
    assert selection_error(catalog, selection).startswith(message)


def test_selection_error_is_a_framework_error(catalog: Catalog) -> None:
    with pytest.raises(FrameworkError) as raised:
        build_plan(catalog, Selection(matrix="nope"))
    assert isinstance(raised.value, SelectionError)
    assert raised.value.exit_code == 2


# --------------------------------------------------------------------------------------------------
# Plan.groups


def test_groups_follow_first_appearance(catalog: Catalog) -> None:
    groups = build_plan(catalog, Selection(matrix="ruled")).groups()
    assert [(runtime.name, hardware.name) for runtime, hardware, _ in groups] == [
        ("latest", "big"),
        ("pinned", "big"),
        ("dated", "remote"),
    ]
    runtime, hardware, cases = groups[1]
    assert runtime is catalog.runtimes["pinned"] and hardware is catalog.hardware["big"]
    # The include added after dated/remote joins the pinned/big group: one environment, one cluster.
    assert [case.case_id for case in cases] == ["mean_var", *GROUPBY_IDS]


def test_groups_of_the_default_matrix(catalog: Catalog) -> None:
    groups = build_plan(catalog, Selection()).groups()
    assert [(runtime.name, hardware.name, len(cases)) for runtime, hardware, cases in groups] == [
        ("latest", "small", 2),
        ("latest", "big", 3),
        ("pinned", "small", 2),
        ("pinned", "big", 3),
    ]


def test_groups_of_an_empty_plan() -> None:
    assert Plan([], []).groups() == []


def test_groups_keep_cases_in_plan_order() -> None:
    runtime = Runtime.model_validate({"name": "r", "python": "3.11", "packages": {"dask": ""}})
    one, two = local("one"), local("two")
    cases = [Case(workload(), f"w[i={index}]", {"i": index}, None) for index in range(4)]
    plan = Plan(
        [
            PlannedCase(runtime, one, cases[0]),
            PlannedCase(runtime, two, cases[1]),
            PlannedCase(runtime, one, cases[2]),
            PlannedCase(runtime, two, cases[3]),
        ],
        [Skipped("r", "one", "v", "why")],
    )
    assert plan.groups() == [(runtime, one, [cases[0], cases[2]]), (runtime, two, [cases[1], cases[3]])]


# --------------------------------------------------------------------------------------------------
# The shipped configuration


def test_shipped_matrices_plan() -> None:
    shipped = load_catalog()
    for name in shipped.matrices:
        plan = build_plan(shipped, Selection(matrix=name))
        assert plan.cases or plan.skipped, name
        for planned in plan.cases:
            assert planned.runtime.name in shipped.runtimes
            assert planned.case.workload.name in shipped.workloads


def test_a_workload_declared_without_warmup_runs_one_warm_up_and_warmup_0_runs_none() -> None:
    from framework.engine import case_payload
    from framework.matrix import Case

    undeclared = case_payload(Case(workload(), "w", {}, None))
    cold = case_payload(Case(workload(warmup=0), "w", {}, None))

    assert (undeclared["warmup"], undeclared["repeats"]) == (1, 3)  # the runner's plan: 1 warm-up, 3 measured
    assert cold["warmup"] == 0


def test_the_catalogue_keeps_its_cold_first_runs() -> None:
    # Guards and stability cases whose first run is the point (a fresh cluster's behaviour) declare warmup: 0.
    declared = {name: spec.warmup for name, spec in load_catalog().workloads.items()}

    assert declared["spill_reduce"] == 0 and declared["worker_death_in_flight"] == 0
    assert declared["groupby_agg"] == 1
