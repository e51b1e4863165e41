"""framework/criteria.py: matrices/blessing.yaml → models, checked against the catalogue; the cases a set selects.

Every refusal names the file, the field, the offending value and the fix.
"""

from __future__ import annotations

import datetime as dt
import json
import textwrap
from pathlib import Path

import pytest

from framework.config import Catalog, load_catalog
from framework.criteria import (
    METRIC_NAMES,
    BlessingFile,
    Criteria,
    load_all_criteria,
    load_criteria,
    scope,
)
from framework.in_runtime.errors import ConfigError, FrameworkError, SelectionError
from framework.stats import METRICS

VALID = """\
criteria:
  default:
    description: This machine.
    baseline: stable
    hardware: local
    size: tiny
    must_pass: ["tag:smoke", array_mean_var]
    stability:
      profile: nightly
      tiers: [process]
      examples: 5
    metrics:
      workloads: [groupby_agg]
      repeat: 6
      max_regression: {wall: 25%, peak_memory: "2.5 %"}
    max_age: 36h
  minimal:
    baseline: previous
    must_pass: ["*"]
"""


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "blessing.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def refusal(catalog: Catalog, path: Path) -> str:
    with pytest.raises(ConfigError) as raised:
        load_all_criteria(catalog, path)
    assert raised.value.exit_code == 2
    return str(raised.value)


def with_default(body: str) -> str:
    """A file whose `default` set is ``body`` (YAML lines of the set, unindented)."""
    return "criteria:\n  default:\n" + textwrap.indent(textwrap.dedent(body), "    ")


def assert_in_order(line: str, *parts: str) -> None:
    position = 0
    for part in parts:
        found = line.find(part, position)
        assert found >= 0, f"{part!r} not found in order in {line!r}"
        position = found + len(part)


# --------------------------------------------------------------------------------------------------
# Valid files


def test_the_shipped_criteria_are_valid_against_the_catalogue(catalog: Catalog) -> None:
    criteria = load_all_criteria(catalog)

    assert {"default", "release", "quick"} <= set(criteria)
    for spec in criteria.values():
        assert spec.baseline in catalog.runtimes
        assert spec.hardware in catalog.hardware
    assert criteria["default"].stability is not None
    assert criteria["default"].metrics is not None


def test_a_valid_file_reads_percentages_ages_and_defaults(catalog: Catalog, tmp_path: Path) -> None:
    criteria = load_all_criteria(catalog, write(tmp_path, VALID))

    spec = criteria["default"]
    assert spec.must_pass == ["tag:smoke", "array_mean_var"]
    assert spec.max_age == dt.timedelta(hours=36)
    assert spec.stability is not None
    assert (spec.stability.profile, spec.stability.tiers, spec.stability.examples) == ("nightly", ["process"], 5)
    assert spec.metrics is not None
    assert spec.metrics.allowances == {"wall": 0.25, "peak_memory": 0.025}
    assert (spec.metrics.repeat, spec.metrics.alpha, spec.metrics.inconclusive) == (6, 0.01, "fail")
    minimal = criteria["minimal"]
    assert (minimal.hardware, minimal.size, minimal.stability, minimal.metrics) == ("local", None, None, None)
    assert minimal.max_age == dt.timedelta(days=7)


def test_a_set_dumps_as_the_file_spells_it_and_reads_back_the_same(catalog: Catalog, tmp_path: Path) -> None:
    spec = load_all_criteria(catalog, write(tmp_path, VALID))["default"]

    dumped = spec.model_dump(mode="json")

    assert dumped["max_age"] == "36h"
    assert dumped["metrics"]["max_regression"] == {"wall": "25%", "peak_memory": "2.5%"}
    assert Criteria.model_validate(json.loads(json.dumps(dumped))) == spec


def test_soak_and_health_limits_read_in_their_units_and_dump_as_written(catalog: Catalog, tmp_path: Path) -> None:
    text = VALID.replace(
        "    max_age: 36h\n",
        "    soak: {max_leak: 512KiB/repeat, max_idle_growth: 1.5MiB/min}\n"
        "    health: {workloads: ['tag:smoke'], max: {scheduler_loop_max: 500ms, scheduler_rss: 2GiB}}\n"
        "    max_age: 36h\n",
    )
    spec = load_all_criteria(catalog, write(tmp_path, text))["default"]
    assert spec.soak is not None and spec.health is not None
    assert (spec.soak.leak_limit, spec.soak.idle_limit) == (512 * 1024, 1.5 * 2**20)
    assert (spec.soak.workloads, spec.soak.series, spec.soak.inconclusive) == (["tag:leak"], ["unmanaged"], "fail")
    assert spec.health.limits == {"scheduler_loop_max": 0.5, "scheduler_rss": 2 * 2**30}

    dumped = spec.model_dump(mode="json")

    assert (dumped["soak"]["max_leak"], dumped["soak"]["max_idle_growth"]) == ("512KiB/repeat", "1.5MiB/min")
    assert dumped["health"]["max"] == {"scheduler_loop_max": "500ms", "scheduler_rss": "2GiB"}
    assert Criteria.model_validate(json.loads(json.dumps(dumped))) == spec


def test_the_metric_names_are_those_of_the_statistics() -> None:
    assert set(METRIC_NAMES) == set(METRICS)


def test_the_json_schema_lists_metrics_and_spells_ages_and_percentages_as_strings() -> None:
    schema = BlessingFile.model_json_schema()
    metrics = schema["$defs"]["MetricsCriterion"]["properties"]
    criteria = schema["$defs"]["Criteria"]["properties"]

    assert set(metrics["max_regression"]["propertyNames"]["enum"]) == set(METRIC_NAMES)
    assert metrics["max_regression"]["additionalProperties"]["type"] == "string"
    assert criteria["max_age"]["type"] == "string"
    assert criteria["max_age"]["default"] == "7d"


def test_a_set_is_chosen_by_name_with_the_near_miss_for_a_typo(catalog: Catalog, tmp_path: Path) -> None:
    path = write(tmp_path, VALID)
    assert load_criteria(catalog, "minimal", path).baseline == "previous"

    with pytest.raises(SelectionError) as raised:
        load_criteria(catalog, "defualt", path)

    message = str(raised.value)
    assert isinstance(raised.value, FrameworkError)
    assert_in_order(message, "--criteria=defualt", "did you mean 'default'?", "known: default, minimal", str(path))


# --------------------------------------------------------------------------------------------------
# One mistake each: file, field, value, fix


@pytest.mark.parametrize(
    ("body", "parts"),
    [
        pytest.param(
            "baseline: stable\nmust_pas: ['*']\n",
            ["criteria.default", "unknown field 'must_pas'", "did you mean 'must_pass'?"],
            id="unknown-field",
        ),
        pytest.param(
            "baseline: stable\nmetrics: {workloads: [groupby_agg], max_regression: {wall: 10}}\n",
            ["criteria.default.metrics.max_regression.wall", "10 is not a percentage", "write e.g. '10%'"],
            id="percent-without-sign",
        ),
        pytest.param(
            "baseline: stable\nmetrics: {workloads: [groupby_agg], max_regression: {wal: 10%}}\n",
            ["criteria.default.metrics.max_regression", "unknown metric 'wal'", "did you mean 'wall'?", "spill"],
            id="unknown-metric",
        ),
        pytest.param(
            "baseline: stable\nmetrics: {workloads: [groupby_agg], max_regression: {}}\n",
            ["criteria.default.metrics.max_regression", "give at least one entry"],
            id="no-metric",
        ),
        pytest.param(
            "baseline: stable\nmust_pass: ['*']\nmax_age: 7 days\n",
            ["criteria.default.max_age", "'7 days' is not an age", "write e.g. '7d'"],
            id="age",
        ),
        pytest.param(
            "baseline: stable\nstability: {profile: weekly}\n",
            ["criteria.default.stability.profile", "'ci' or 'nightly'", "'weekly'", "use one of the listed values"],
            id="profile",
        ),
        pytest.param(
            "baseline: stable\nstability: {tiers: [inprocess, inprocess]}\n",
            ["criteria.default.stability.tiers", "a tier is listed twice", "list each once"],
            id="tier-twice",
        ),
        pytest.param(
            "baseline: stable\nmetrics: {workloads: [groupby_agg], repeat: 3, max_regression: {wall: 10%}}\n",
            [
                "criteria.default.metrics",
                "repeat 3 can never show a regression at alpha 0.01 (the smallest p-value is 0.100)",
                "use repeat ≥ 5",
            ],
            id="repeat-too-small",
        ),
        pytest.param(
            "baseline: stable\n"
            "metrics: {workloads: [groupby_agg], repeat: 7, until_decided: 4, max_regression: {wall: 10%}}\n",
            ["criteria.default.metrics", "until_decided 4 is below repeat 7", "use ≥ 7"],
            id="budget-below-repeat",
        ),
        pytest.param(
            "baseline: stable\ndescription: nothing\n",
            ["criteria.default", "declares nothing to check", "add must_pass, stability, metrics, soak or health"],
            id="nothing-to-check",
        ),
        pytest.param(
            "must_pass: ['*']\n",
            ["criteria.default.baseline", "Field required", "add it"],
            id="no-baseline",
        ),
        pytest.param(
            "baseline: stable\nsoak: {max_leak: 1MiB, max_idle_growth: 2MiB/min}\n",
            ["criteria.default.soak.max_leak", "'1MiB' is not a rate of bytes per repeat", "write e.g. '1MiB/repeat'"],
            id="leak-without-per",
        ),
        pytest.param(
            "baseline: stable\nsoak: {max_leak: 1MiB/repeat, max_idle_growth: 2MiB/repeat}\n",
            ["criteria.default.soak.max_idle_growth", "'2MiB/repeat' is not a rate of bytes per min", "'1MiB/min'"],
            id="idle-per-repeat",
        ),
        pytest.param(
            "baseline: stable\nsoak: {max_leak: 1MiB/repeat}\n",
            ["criteria.default.soak.max_idle_growth", "Field required", "add it"],
            id="idle-limit-missing",
        ),
        pytest.param(
            "baseline: stable\nsoak: {max_leak: 1MiB/repeat, max_idle_growth: 2MiB/min, series: [rss]}\n",
            ["criteria.default.soak.series.0", "'unmanaged', 'worker_rss' or 'scheduler_rss'", "'rss'"],
            id="series",
        ),
        pytest.param(
            "baseline: stable\nhealth: {workloads: [groupby_agg], max: {scheduler_loop_max: 3}}\n",
            ["criteria.default.health.max", "scheduler_loop_max: '3' is not an amount in seconds", "'3s' or '500ms'"],
            id="health-without-unit",
        ),
        pytest.param(
            "baseline: stable\nhealth: {workloads: [groupby_agg], max: {scheduler_rss: 3s}}\n",
            ["criteria.default.health.max", "scheduler_rss: '3s' is not an amount in bytes", "'2GiB'"],
            id="health-wrong-unit",
        ),
        pytest.param(
            "baseline: stable\nhealth: {workloads: [groupby_agg], max: {scheduler_loop: 3s}}\n",
            ["criteria.default.health.max", "unknown metric 'scheduler_loop'", "did you mean"],
            id="health-unknown-metric",
        ),
        pytest.param(
            "baseline: stable\nmust_pass: ['tag:']\n",
            ["criteria.default.must_pass.0", "'tag:'", "use a workload name, 'tag:TAG' or '*'"],
            id="selector-form",
        ),
    ],
)
def test_a_mistake_in_the_file_is_one_line_with_field_value_and_fix(
    catalog: Catalog, tmp_path: Path, body: str, parts: list[str]
) -> None:
    path = write(tmp_path, with_default(body))

    message = refusal(catalog, path)

    assert len(message.splitlines()) == 1, message
    assert_in_order(message, str(path), *parts)


@pytest.mark.parametrize(
    ("body", "parts"),
    [
        pytest.param(
            "baseline: stabel\nmust_pass: ['*']\n",
            ["criteria.default.baseline", "unknown runtime 'stabel'", "did you mean 'stable'?"],
            id="runtime",
        ),
        pytest.param(
            "baseline: stable\nhardware: lokal\nmust_pass: ['*']\n",
            ["criteria.default.hardware", "unknown hardware profile 'lokal'", "did you mean 'local'?"],
            id="hardware",
        ),
        pytest.param(
            "baseline: stable\nmust_pass: [groupby_ag]\n",
            ["criteria.default.must_pass.0", "unknown workload 'groupby_ag'", "did you mean 'groupby_agg'?"],
            id="workload",
        ),
        pytest.param(
            "baseline: stable\nmetrics: {workloads: ['tag:smok'], max_regression: {wall: 10%}}\n",
            ["criteria.default.metrics.workloads.0", "unknown tag 'smok'", "did you mean 'smoke'?"],
            id="tag",
        ),
        pytest.param(
            "baseline: stable\nsize: tinny\nmust_pass: ['*']\n",
            ["criteria.default.size", "unknown size 'tinny'", "did you mean 'tiny'?"],
            id="size",
        ),
    ],
)
def test_a_name_the_catalogue_does_not_declare_is_refused_with_the_near_miss(
    catalog: Catalog, tmp_path: Path, body: str, parts: list[str]
) -> None:
    path = write(tmp_path, with_default(body))

    message = refusal(catalog, path)

    assert len(message.splitlines()) == 1, message
    assert_in_order(message, str(path), *parts)


def test_every_set_is_checked_not_only_the_one_asked_for(catalog: Catalog, tmp_path: Path) -> None:
    path = write(tmp_path, VALID + "  broken:\n    baseline: nosuch\n    must_pass: ['*']\n")

    with pytest.raises(ConfigError, match=r"criteria\.broken\.baseline: unknown runtime 'nosuch'"):
        load_criteria(catalog, "default", path)


def test_a_duplicate_set_is_refused_with_its_line(catalog: Catalog, tmp_path: Path) -> None:
    path = write(tmp_path, VALID + "  minimal:\n    baseline: stable\n    must_pass: ['*']\n")

    assert_in_order(refusal(catalog, path), str(path), "duplicate key 'minimal'", "fix the syntax")


# --------------------------------------------------------------------------------------------------
# Scope: the cases a set names on its hardware


def test_scope_expands_selectors_into_the_cases_of_the_size(catalog: Catalog) -> None:
    spec = Criteria.model_validate(
        {
            "baseline": "stable",
            "size": "tiny",
            "must_pass": ["tag:smoke", "groupby_agg"],
            "metrics": {"workloads": ["array_mean_var"], "max_regression": {"wall": "10%"}},
        }
    )

    found = scope(catalog, spec, "latest", "local")

    must_pass = sorted(case.case_id for case in found.must_pass)
    assert must_pass == ["array_mean_var", "groupby_agg[by=id]", "groupby_agg[by=name]", "parquet_roundtrip"]
    assert {case.size for case in found.must_pass} == {"tiny"}
    assert [case.case_id for case in found.compared] == ["array_mean_var"]
    assert found.unrunnable == {}
    assert found.skipped == ()


def test_scope_selects_soak_and_health_cases_and_leaves_guards_out(catalog: Catalog) -> None:
    spec = Criteria.model_validate(
        {
            "baseline": "stable",
            "size": "tiny",
            "soak": {"workloads": ["tag:soak"], "max_leak": "1MiB/repeat", "max_idle_growth": "2MiB/min"},
            "health": {"workloads": ["array_mean_var"], "max": {"scheduler_loop_max": "3s"}},
        }
    )

    found = scope(catalog, spec, "latest", "local")

    soak = sorted(case.case_id for case in found.soak)
    assert "leak_groupby_agg[by=id]" in soak and "idle_memory_growth" in soak
    assert "scale_down_keeps_data" not in soak  # a guard of the findings ledger: judged through it
    assert [case.case_id for case in found.health] == ["array_mean_var"]
    assert {case.case_id for case in found.measured} == {*soak, "array_mean_var"}


def test_scope_names_a_selector_whose_cases_cannot_run_on_the_hardware(catalog: Catalog) -> None:
    # local-threads has one worker; worker_death_in_flight needs two.
    spec = Criteria.model_validate({"baseline": "stable", "must_pass": ["tag:worker-death", "array_mean_var"]})

    found = scope(catalog, spec, "latest", "local-threads")

    assert [case.case_id for case in found.must_pass] == ["array_mean_var"]
    assert list(found.unrunnable) == [("must_pass", "tag:worker-death")]
    assert "needs ≥ 2 workers" in found.unrunnable[("must_pass", "tag:worker-death")]
    assert any(line.startswith("worker_death_in_flight on local-threads") for line in found.skipped)
