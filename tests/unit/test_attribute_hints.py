"""compare prints the attribute command for its largest regression when the two sides ran on different locks (their
rows' environment hashes), with the sides' run ids as the ends — and nothing when the locks are the same."""

from __future__ import annotations

from framework.attribute.hints import attribute_command, locks_differ, versions_differ
from framework.compare import BASELINE, CANDIDATE, CaseMetric, ComparisonReport, compare_text
from framework.metric_catalogue import metric
from framework.stats import compare_samples

WALL = metric("wall")


def report(env_hashes: dict[str, list[str]]) -> ComparisonReport:
    slower = compare_samples([1.0, 1.01, 0.99, 1.02, 1.0, 0.98, 1.01], [1.9, 1.95, 2.0, 1.92, 1.97, 1.93, 1.96], WALL)
    same = compare_samples([1.0, 1.01, 0.99, 1.02, 1.0], [1.0, 1.02, 0.99, 1.01, 1.0], WALL)
    lines = [
        CaseMetric("groupby_agg", "groupby_agg[by=name]", "tiny", "local", "wall", slower),
        CaseMetric("sum", "sum", "tiny", "local", "wall", same),
    ]
    run_ids = {BASELINE: ["20261206T100000Z-aaaaaa"], CANDIDATE: ["20261206T100100Z-bbbbbb"]}
    return ComparisonReport("c1", "interleaved", "stable", "latest", lines, {}, run_ids, env_hashes=env_hashes)


def test_compare_prints_the_attribute_command_for_the_largest_regression_when_the_locks_differ() -> None:
    text = compare_text(report({BASELINE: ["e1"], CANDIDATE: ["e2"]}))
    assert (
        "which package? the locks differ: nox -s attribute -- --baseline=20261206T100000Z-aaaaaa"
        " --candidate=20261206T100100Z-bbbbbb --workload='groupby_agg[by=name]' --metric=wall"
    ) in text, text
    assert "nox -s attribute" not in compare_text(report({BASELINE: ["e1"], CANDIDATE: ["e1"]}))
    assert "nox -s attribute" not in compare_text(report({}))  # not known: not claimed


def test_the_command_quotes_what_a_shell_would_split() -> None:
    assert attribute_command("stable", "latest", "sum", "wall") == (
        "nox -s attribute -- --baseline=stable --candidate=latest --workload=sum --metric=wall"
    )
    assert "--workload='a b[x=1]'" in attribute_command("a", "b", "a b[x=1]", "wall")
    assert locks_differ({BASELINE: ["e1"], CANDIDATE: ["e1", "e2"]})
    assert not locks_differ({BASELINE: [], CANDIDATE: ["e2"]})
    assert versions_differ({"dask": "1"}, {"dask": "2"}) and not versions_differ({}, {"dask": "2"})
