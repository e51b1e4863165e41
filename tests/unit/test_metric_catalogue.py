"""framework/metric_catalogue.py: each entry is consistent with the results it reads, and every reader offers it."""

from __future__ import annotations

import math

import pyarrow as pa
import pytest

from framework.cli.run import compare_parser
from framework.cli.verdicts import bisect_parser, regressions_parser
from framework.in_runtime.errors import SelectionError
from framework.metric_catalogue import METRIC_NAMES, METRICS, MiB, metric
from framework.results import CASE_COLUMNS


def test_every_metric_reads_a_numeric_column_of_the_results():
    for name, spec in METRICS.items():
        assert spec.name == name
        assert spec.column in CASE_COLUMNS, f"{name}: {spec.column} is not a column of framework.results"
        column_type = CASE_COLUMNS[spec.column]
        assert pa.types.is_integer(column_type) or pa.types.is_floating(column_type)
    assert len({spec.column for spec in METRICS.values()}) == len(METRICS)


def test_names_labels_and_headings_tell_the_metrics_apart():
    for field in ("label", "heading"):
        assert len({getattr(spec, field) for spec in METRICS.values()}) == len(METRICS), field
    assert tuple(METRICS) == METRIC_NAMES


def test_a_value_is_shown_in_its_unit_and_a_missing_one_as_a_dash():
    assert METRICS["wall"].show(0.2134) == "0.213 s"
    assert METRICS["peak_memory"].show(364.2 * MiB) == "364.2 MiB"
    assert METRICS["spill"].show(0) == "0 B"
    assert METRICS["mean_memory"].show(3 * 1024**4) == "3.0 TiB"
    for spec in METRICS.values():
        assert spec.show(None) == "–"
        assert spec.show(math.nan) == "–"


def test_a_metric_is_found_by_name_or_column_and_a_near_miss_is_named():
    for spec in METRICS.values():
        assert metric(spec.name) is spec
        assert metric(spec.column) is spec
    with pytest.raises(SelectionError, match="did you mean 'spill'"):
        metric("spil")


@pytest.mark.parametrize("parser", [regressions_parser, compare_parser, bisect_parser])
def test_every_command_that_picks_a_metric_offers_every_metric(parser):
    (option,) = [action for action in parser()._actions if "--metric" in action.option_strings]
    assert option.help is not None
    for name in METRICS:
        assert name in option.help
