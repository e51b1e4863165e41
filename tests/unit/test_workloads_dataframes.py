"""The DataFrame workloads of workloads/dataframes.yaml: each passes at its tiny size, and its own check fails — with a
message that says what is wrong — when Dask hands it a wrong answer."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from workload_testing import in_process_client, tiny_params

from framework.config import load_catalog
from framework.in_runtime.checks import WorkloadCheckFailed
from workloads import dataframes, synthetic

WORKLOADS = ("h2o_groupby", "join_big_big", "join_big_small", "set_index_random", "dataframe_shuffle")
TINY_ROWS = 200_000  # every tiny size but the copy-on-write chain's


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    """One in-process cluster for the module; afterwards no thread of it may be left running."""
    with in_process_client() as dask_client:
        yield dask_client


def run(workload: str, **grid: Any) -> dict[str, float]:
    """Run one tiny case through the function its YAML names, imported as the runner imports it."""
    module, _, name = load_catalog().workloads[workload].function.partition(":")
    function: Callable[..., dict[str, float]] = getattr(importlib.import_module(module), name)
    result: dict[str, float] = function(**tiny_params(workload, **grid))
    return result


def wrong_compute(monkeypatch: pytest.MonkeyPatch, perturb: Callable[[Any], Any], which: int = 0) -> list[int]:
    """Make ``dask.compute`` hand back one wrong result (the first by default), as a buggy scheduler would."""
    import dask

    compute = dask.compute
    calls: list[int] = []

    def compute_wrongly(*args: Any, **kwargs: Any) -> tuple[Any, ...]:
        results = compute(*args, **kwargs)
        calls.append(len(results))
        return tuple(perturb(value) if i == which else value for i, value in enumerate(results))

    monkeypatch.setattr(dask, "compute", compute_wrongly)
    return calls


def wrong_collection_compute(monkeypatch: pytest.MonkeyPatch, perturb: Callable[[Any], Any]) -> list[int]:
    """Make ``.compute()`` of a Dask DataFrame or Series (the workload's answer) come back altered by ``perturb``."""
    import dask.dataframe as dd

    calls: list[int] = []
    for collection in (dd.DataFrame, dd.Series):
        compute = collection.compute

        def compute_wrongly(self: Any, *args: Any, _compute: Any = compute, **kwargs: Any) -> Any:
            calls.append(1)
            return perturb(_compute(self, *args, **kwargs).copy())

        monkeypatch.setattr(collection, "compute", compute_wrongly)
    return calls


def _nudge(row: int, column: int, amount: float) -> Callable[[Any], Any]:
    def perturb(frame: Any) -> Any:
        if frame.ndim == 1:
            frame.iloc[row] += amount
        else:
            frame.iloc[row, column] += amount
        return frame

    return perturb


# ---------------------------------------------------------------------------------------------------------------
# Helpers that need no cluster


def test_the_catalogue_declares_every_size_for_every_workload() -> None:
    catalog = load_catalog()
    for name in (*WORKLOADS, "dataframe_cow_chain"):
        workload = catalog.workloads[name]
        assert {"tiny", "small", "large"} <= set(workload.sizes), name
        assert "dataframe" in workload.tags and "integration" in workload.tags, name
        assert workload.function.startswith("workloads.dataframes:"), name


def test_partition_specs_cover_every_row_once_in_near_equal_parts() -> None:
    specs = synthetic.partition_specs(10, 4)
    assert specs == [(0, 0, 4), (1, 4, 3), (2, 7, 3)]
    assert synthetic.partition_specs(0, 5) == [(0, 0, 0)]


def test_row_total_takes_rows_or_bytes_never_both() -> None:
    assert synthetic.row_total(7, None, 100) == 7
    assert synthetic.row_total(None, 1000, 80) == 12
    with pytest.raises(ValueError, match=r"^give the size as rows or as target_bytes, not both or neither"):
        synthetic.row_total(7, 1000, 80)
    with pytest.raises(ValueError, match=r"not both or neither"):
        synthetic.row_total(None, None, 80)


def test_shuffle_keyword_is_found_by_feature_detection() -> None:
    import dask.dataframe as dd

    assert dataframes.shuffle_keyword(dd.DataFrame.shuffle) == "shuffle_method"  # dask 2024.12 → 2026

    def legacy(self: Any, on: str, shuffle: str | None = None) -> None: ...  # dask's pre-2024 spelling

    def neither(self: Any, on: str) -> None: ...

    assert dataframes.shuffle_keyword(legacy) == "shuffle"
    with pytest.raises(TypeError, match=r"neither takes no shuffle method argument"):
        dataframes.shuffle_keyword(neither)


def test_keyed_partitions_hold_a_bijection_of_the_row_numbers() -> None:
    multiplier = dataframes._coprime_multiplier(1000, seed=0)
    frame = pd.concat(
        dataframes._keyed_partition(spec, 1000, 1000, multiplier, "l", 1, 0)
        for spec in synthetic.partition_specs(1000, 300)
    )
    assert sorted(frame["key"]) == list(range(1000))
    assert list(frame["lidx"]) == list(range(1000))
    assert frame["lx0"].between(0, 1).all()


def test_unknown_h2o_query_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"^unknown h2o query 'q10' — use one of q1, q2, q3, q4, q5, q6, q7, q8, q9$"):
        dataframes.h2o_groupby("q10", rows=10)


# ---------------------------------------------------------------------------------------------------------------
# h2o groupby


@pytest.mark.cluster
@pytest.mark.parametrize("query", [f"q{i}" for i in range(1, 10)])
def test_h2o_groupby_passes_at_tiny_size(client: Any, query: str) -> None:
    extra = run("h2o_groupby", query=query)

    # k = 100: id1, id4 have 100 values; id1 × id2 and id4 × id5 10,000 (all present); id3, id6 rows / k.
    groups = {"q1": 100, "q2": 10_000, "q3": 2_000, "q4": 100, "q5": 2_000, "q6": 10_000, "q7": 2_000, "q9": 10_000}
    assert extra == {"rows": TINY_ROWS, "answer_rows": groups.get(query, 2 * 2_000)}  # q8: two rows per id6


def _drop_first_group(frame: Any) -> Any:
    return frame.iloc[1:]


@pytest.mark.cluster
@pytest.mark.parametrize(
    ("query", "perturb", "message"),
    [
        ("q1", _drop_first_group, r"^q1: groups differ: 99 vs 100 groups$"),
        ("q2", _nudge(5, 0, 1), r"^q2: v1 per group: 1 of 10000 values differ; first at \(\d+,\): got \d+\.0"),
        ("q3", _nudge(-1, 1, 1e-6), r"^q3: v3 per group: 1 of 2000 values differ; first at \(\d+,\)"),
        ("q6", _nudge(0, 0, 10.0), r"^q6: median of v3 for group \(\d+, \d+\) is \d+\.\d+, with \d+ values below and"),
        ("q6", _nudge(0, 1, 1e-6), r"^q6: std per group: 1 of 10000 values differ; first at \(\d+,\)"),
        ("q7", _nudge(1, 0, 1), r"^q7: range_v1_v2 per group: 1 of 2000 values differ; first at \(\d+,\)"),
        ("q8", _nudge(0, 0, -1e-5), r"^q8: v3 per group: 1 of 4000 values differ"),
        ("q9", _nudge(0, 0, 0.01), r"^q9: r2 per group: 1 of 10000 values differ; first at \(\d+,\)"),
    ],
)
def test_h2o_groupby_check_fails_on_a_wrong_answer(
    client: Any, monkeypatch: pytest.MonkeyPatch, query: str, perturb: Callable[[Any], Any], message: str
) -> None:
    calls = wrong_collection_compute(monkeypatch, perturb)

    with pytest.raises(WorkloadCheckFailed, match=message):
        run("h2o_groupby", query=query)
    assert calls == [1]  # the answer, computed once; the reference takes plain tasks


# ---------------------------------------------------------------------------------------------------------------
# Joins

# Tiny: 200,000 left rows; right keys 0..R-1 once each, left keys spread over R / 0.75: 3/4 of the left rows match.
BIG_BIG_ROWS = 150_000
BIG_SMALL_ROWS = 149_982  # R = 2,000: 200,000 · 2,000 / 2,667 rounded up


@pytest.mark.cluster
@pytest.mark.parametrize("method", ["tasks", "p2p"])
def test_join_big_big_passes_at_tiny_size(client: Any, method: str) -> None:
    extra = run("join_big_big", method=method)
    assert extra == {"left_rows": TINY_ROWS, "right_rows": TINY_ROWS, "joined_rows": BIG_BIG_ROWS}


@pytest.mark.cluster
def test_join_big_small_passes_at_tiny_size(client: Any) -> None:
    extra = run("join_big_small")
    assert extra == {"left_rows": TINY_ROWS, "right_rows": 2_000, "joined_rows": BIG_SMALL_ROWS}


def _one_more(value: Any) -> Any:
    return value + 1


def _shift_sum(column: str) -> Callable[[Any], Any]:
    def perturb(sums: Any) -> Any:
        sums = sums.copy()
        sums[column] += 1e-3
        return sums

    return perturb


@pytest.mark.cluster
@pytest.mark.parametrize(
    ("which", "perturb", "message"),
    [
        (0, _one_more, rf"^join gave {BIG_BIG_ROWS + 1} rows, expected {BIG_BIG_ROWS}$"),
        (1, _one_more, r"^1 joined rows pair a left row with the wrong right row$"),
        (2, _one_more, r"^sum of lidx over the join: got (\d+), expected (\d+)$"),
        (3, _shift_sum("rx1"), r"^sum of rx1 over the join: 1 of 1 values differ"),
    ],
)
def test_join_check_fails_on_a_wrong_answer(
    client: Any, monkeypatch: pytest.MonkeyPatch, which: int, perturb: Callable[[Any], Any], message: str
) -> None:
    calls = wrong_compute(monkeypatch, perturb, which)

    with pytest.raises(WorkloadCheckFailed, match=message):
        run("join_big_big", method="tasks")
    assert calls == [8]  # one compute of the join's rows, wrong pairs and sums, and each side's sums


@pytest.mark.cluster
@pytest.mark.parametrize("workload", ["join_big_big", "join_big_small"])
def test_join_check_fails_when_rows_are_paired_wrongly(
    client: Any, monkeypatch: pytest.MonkeyPatch, workload: str
) -> None:
    """A merge that pairs rows wrongly keeps row counts and column sums: only the per-row key check can tell."""
    merge = pd.DataFrame.merge

    def mispairing_merge(self: pd.DataFrame, *args: Any, **kwargs: Any) -> pd.DataFrame:
        out = merge(self, *args, **kwargs)
        if "ridx" in out and len(out) > 1:
            out["ridx"] = np.roll(out["ridx"].to_numpy(), 1)  # dask's merge tasks call DataFrame.merge
        return out

    monkeypatch.setattr(pd.DataFrame, "merge", mispairing_merge)

    with pytest.raises(WorkloadCheckFailed, match=r"^\d+ joined rows pair a left row with the wrong right row$"):
        run(workload, **({"method": "tasks"} if workload == "join_big_big" else {}))


# ---------------------------------------------------------------------------------------------------------------
# set_index


@pytest.mark.cluster
@pytest.mark.parametrize("method", ["tasks", "p2p"])
def test_set_index_random_passes_at_tiny_size(client: Any, method: str) -> None:
    extra = run("set_index_random", method=method)
    assert extra["rows"] == TINY_ROWS
    assert extra["partitions"] >= 1


def _partition_stat(number: int, **changes: Any) -> Callable[[Any], Any]:
    def perturb(stats: list[dict[str, Any]]) -> list[dict[str, Any]]:
        stats = [dict(s) for s in stats]
        for key, change in changes.items():
            stats[number][key] = change(stats[number][key])
        return stats

    return perturb


@pytest.mark.cluster
@pytest.mark.parametrize(
    ("perturb", "message"),
    [
        (_partition_stat(1, monotonic=lambda _: False), r"^partition 1: index not sorted$"),
        (_partition_stat(0, max=lambda _: 2.0), r"^partition 0: index \[\S+, 2\.0\] outside its divisions$"),
        (_partition_stat(-1, rows=lambda n: n - 1), rf"^set_index gave {TINY_ROWS - 1} rows, expected {TINY_ROWS}$"),
        (_partition_stat(0, hash=lambda h: h + 1), r"^row hashes differ: set_index changed some rows$"),
        (lambda stats: stats[:-1], r"^set_index gave 3 partitions, its divisions delimit 4$"),
    ],
)
def test_set_index_check_fails_on_a_wrong_answer(
    client: Any, monkeypatch: pytest.MonkeyPatch, perturb: Callable[[Any], Any], message: str
) -> None:
    calls = wrong_compute(monkeypatch, perturb)

    with pytest.raises(WorkloadCheckFailed, match=message):
        run("set_index_random", method="tasks")
    assert calls == [2]  # one compute of (partitions after, partitions before)


@pytest.mark.cluster
def test_set_index_check_fails_when_partitions_are_left_unsorted(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """dask sorts each output partition with DataFrame.sort_index: skip it, as a bug would."""
    monkeypatch.setattr(pd.DataFrame, "sort_index", lambda self, *args, **kwargs: self)

    with pytest.raises(WorkloadCheckFailed, match=r"^partition \d+: index not sorted$"):
        run("set_index_random", method="tasks")


# ---------------------------------------------------------------------------------------------------------------
# shuffle


@pytest.mark.cluster
@pytest.mark.parametrize("method", ["tasks", "p2p"])
def test_dataframe_shuffle_passes_at_tiny_size(client: Any, method: str) -> None:
    extra = run("dataframe_shuffle", method=method)
    # 200,000 draws from 10,000 keys: every key is drawn (each is missed with probability e⁻²⁰).
    assert extra == {"rows": TINY_ROWS, "partitions": 4, "keys": 10_000}


def _key_also_in_partition_one(stats: list[dict[str, Any]]) -> list[dict[str, Any]]:
    stats = [dict(s) for s in stats]
    stats[1]["keys"] = np.append(stats[1]["keys"], stats[0]["keys"][0])
    return stats


@pytest.mark.cluster
@pytest.mark.parametrize(
    ("perturb", "message"),
    [
        (_key_also_in_partition_one, r"^key \d+ is in partitions 0 and 1 \(and maybe more\)$"),
        (_partition_stat(2, rows=lambda n: n + 1), rf"^shuffle gave {TINY_ROWS + 1} rows, expected {TINY_ROWS}$"),
        (_partition_stat(3, hash=lambda h: h - 1), r"^row hashes differ: the shuffle changed some rows$"),
    ],
)
def test_dataframe_shuffle_check_fails_on_a_wrong_answer(
    client: Any, monkeypatch: pytest.MonkeyPatch, perturb: Callable[[Any], Any], message: str
) -> None:
    calls = wrong_compute(monkeypatch, perturb)

    with pytest.raises(WorkloadCheckFailed, match=message):
        run("dataframe_shuffle", method="p2p")
    assert calls == [2]


# ---------------------------------------------------------------------------------------------------------------
# copy-on-write chain


@pytest.mark.cluster
def test_dataframe_cow_chain_passes_at_tiny_size(client: Any) -> None:
    extra = run("dataframe_cow_chain")
    # 50 generated columns; the chain keeps f2 onwards (48) and adds `total`.
    assert extra == {"rows": 50_000, "columns": 49}


@pytest.mark.cluster
def test_dataframe_cow_chain_check_fails_when_dask_fills_the_wrong_value(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dask.dataframe as dd

    fillna = dd.DataFrame.fillna
    monkeypatch.setattr(
        dd.DataFrame, "fillna", lambda self, value=None, **kw: fillna(self, {k: v - 1 for k, v in value.items()}, **kw)
    )

    with pytest.raises(WorkloadCheckFailed, match=r"^partition 0: row hashes differ from pandas'$"):
        run("dataframe_cow_chain")


@pytest.mark.cluster
def test_dataframe_cow_chain_check_fails_when_dask_casts_to_another_dtype(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dask.dataframe as dd

    astype = dd.DataFrame.astype
    monkeypatch.setattr(dd.DataFrame, "astype", lambda self, dtype, **kw: astype(self, {"i0": "float32"}, **kw))

    with pytest.raises(WorkloadCheckFailed, match=r"^partition 0: columns \[.*'i0:float32'.*\] != pandas' \[.*"):
        run("dataframe_cow_chain")


@pytest.mark.cluster
def test_dataframe_cow_chain_check_fails_when_a_row_is_lost(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def lose_a_row(digests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**digests[0], "rows": digests[0]["rows"] - 1}, *digests[1:]]

    calls = wrong_compute(monkeypatch, lose_a_row)

    with pytest.raises(WorkloadCheckFailed, match=r"^partition 0: 12499 rows, pandas 12500$"):
        run("dataframe_cow_chain")
    assert calls == [2]
