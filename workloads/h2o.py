"""The h2o groupby queries q1–q9 (h2o.ai's db-benchmark, as coiled/benchmarks runs them) on a generated h2o table.

Each query's answer is checked against pandas on the same partitions: partial aggregates combined by a tree of plain
tasks — no Dask groupby, merge or shuffle — computed apart from Dask's answer. Declared in
``workloads/dataframes.yaml`` as ``workloads.dataframes:h2o_groupby``, the DataFrame domain's path.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional

from framework.in_runtime.checks import check, check_close
from workloads.synthetic import generated_frame, row_total

H2O_BYTES_PER_ROW = 80  # 3 short pyarrow strings (≈ 30 B) + 6 int64 + 1 float64: an estimate, fixed so rows never vary


# --------------------------------------------------------------------------------------------------
# The table


def _h2o_partition(spec: tuple[int, int, int], total_rows: int, k: int, seed: int) -> Any:
    """h2o's groupby table: id1, id2 ∈ k strings; id3 ∈ total/k strings; id4, id5 ∈ 1..k; id6 ∈ 1..total/k."""
    import numpy as np
    import pandas as pd

    partition, _, rows = spec
    rng = np.random.default_rng([seed, partition])
    many = max(1, total_rows // k)
    few_labels = np.array([f"id{i:03d}" for i in range(1, k + 1)], dtype=object)
    id3_codes = rng.integers(1, many + 1, rows)
    present, where = np.unique(id3_codes, return_inverse=True)
    id3 = np.array([f"id{i:010d}" for i in present], dtype=object)[where.reshape(-1)]
    return pd.DataFrame(
        {
            "id1": few_labels[rng.integers(0, k, rows)],
            "id2": few_labels[rng.integers(0, k, rows)],
            "id3": id3,
            "id4": rng.integers(1, k + 1, rows),
            "id5": rng.integers(1, k + 1, rows),
            "id6": rng.integers(1, many + 1, rows),
            "v1": rng.integers(1, 6, rows),
            "v2": rng.integers(1, 16, rows),
            "v3": np.round(rng.uniform(0, 100, rows), 6),
        }
    )


# --------------------------------------------------------------------------------------------------
# Reductions that take no Dask DataFrame code path: plain tasks over the partitions


def _tree(ddf: Any, chunk: Callable[[Any], Any], combine: Callable[[list[Any]], Any], split_every: int = 8) -> Any:
    """``chunk`` on every partition, then ``combine`` over groups of ``split_every`` until one value is left."""
    import dask

    level = [dask.delayed(chunk)(part) for part in ddf.to_delayed()]
    while True:
        level = [dask.delayed(combine)(level[i : i + split_every]) for i in range(0, len(level), split_every)]
        if len(level) == 1:
            return level[0]


def _answer_and_reference(answer: Any, reference: Any) -> tuple[Any, Any]:
    """Dask's answer by ``.compute()``, as a user gets it, then the reference of plain tasks in a compute of its own.

    Not one ``dask.compute(answer, reference)``: from dask 2025.4.0 such a mixed compute returns its results out of
    order (guard ``mixed_compute_order``), and dask 2024.11.1–2025.3.x (with pandas 2.2)
    lose the output key of ``groupby(string column, dropna=False)`` there (FutureCancelledError; guard
    ``groupby_dropna_keys``; both in matrices/findings.yaml).
    """
    import dask

    got = answer.compute()
    (expected,) = dask.compute(reference)
    return got, expected


# --------------------------------------------------------------------------------------------------
# The queries

# Queries whose partial aggregates combine exactly: keys, then column → aggregation.
_DECOMPOSABLE: dict[str, tuple[list[str], dict[str, str]]] = {
    "q1": (["id1"], {"v1": "sum"}),
    "q2": (["id1", "id2"], {"v1": "sum"}),
    "q3": (["id3"], {"v1": "sum", "v3": "mean"}),
    "q4": (["id4"], {"v1": "mean", "v2": "mean", "v3": "mean"}),
    "q5": (["id6"], {"v1": "sum", "v2": "sum", "v3": "sum"}),
    "q7": (["id3"], {"v1": "max", "v2": "min"}),
}
_COMBINE = {"sum": "sum", "count": "sum", "max": "max", "min": "min"}


def _partials(frame: Any, keys: list[str], partials: dict[str, tuple[str, str]]) -> Any:
    return frame.groupby(keys, dropna=False, observed=True).agg(**partials)


def _combine_partials(frames: list[Any], how: dict[str, str]) -> Any:
    import pandas as pd

    stacked = pd.concat(frames)
    return stacked.groupby(level=list(range(stacked.index.nlevels)), dropna=False).agg(how)


def _sorted(frame: Any) -> Any:
    return frame.sort_index(kind="stable")


def _h2o_decomposable(ddf: Any, query: str) -> tuple[Any, Any]:
    """Sums, means, minima and maxima: Dask's answer, and pandas' partial aggregates combined by a tree."""
    import pandas as pd

    keys, aggregations = _DECOMPOSABLE[query]
    table = ddf[keys + list(aggregations)]
    answer = table.groupby(keys, dropna=False, observed=True).agg(aggregations)
    partials: dict[str, tuple[str, str]] = {}
    for column, how in aggregations.items():
        for part in ("sum", "count") if how == "mean" else (how,):
            partials[f"{column}_{part}"] = (column, part)
    tree = _tree(
        table,
        functools.partial(_partials, keys=keys, partials=partials),
        functools.partial(_combine_partials, how={name: _COMBINE[how] for name, (_, how) in partials.items()}),
    )
    got, combined = _answer_and_reference(answer, tree)
    expected = pd.DataFrame(index=combined.index)
    for column, how in aggregations.items():
        if how == "mean":
            expected[column] = combined[f"{column}_sum"] / combined[f"{column}_count"]
        else:
            expected[column] = combined[f"{column}_{how}"]
    if query == "q7":
        got = got.assign(range_v1_v2=got["v1"] - got["v2"])[["range_v1_v2"]]
        expected = expected.assign(range_v1_v2=expected["v1"] - expected["v2"])[["range_v1_v2"]]
    return _sorted(got), _sorted(expected)


def _spread_partials(frame: Any, keys: list[str], column: str, shift: float) -> Any:
    centred = frame[column] - shift
    return (
        frame.assign(_n=1, _s=centred, _ss=centred * centred)
        .groupby(keys, dropna=False, observed=True)[["_n", "_s", "_ss"]]
        .sum()
    )


def _around_median(frame: Any, medians: Any, keys: list[str], column: str) -> Any:
    """Per group: how many values lie below and above the given median."""
    joined = frame[[*keys, column]].merge(medians, left_on=keys, right_index=True, how="inner")
    return (
        joined.assign(_below=joined[column] < joined["_median"], _above=joined[column] > joined["_median"])
        .groupby(keys, dropna=False, observed=True)[["_below", "_above"]]
        .sum()
    )


def _h2o_q6(ddf: Any) -> tuple[Any, Any]:
    """Median and standard deviation of v3 by id4, id5.

    std: against centred sums of squares combined by a tree. median: a second pass counts, per group, the values
    below and above Dask's median — at most half of the group may lie on either side.
    """
    import dask
    import numpy as np

    keys = ["id4", "id5"]
    table = ddf[[*keys, "v3"]]
    answer = table.groupby(keys, dropna=False, observed=True).agg({"v3": ["median", "std"]})
    spread = _tree(
        table,
        functools.partial(_spread_partials, keys=keys, column="v3", shift=50.0),
        functools.partial(_combine_partials, how={"_n": "sum", "_s": "sum", "_ss": "sum"}),
    )
    got, combined = _answer_and_reference(answer, spread)
    got.columns = ["median", "std"]
    got, combined = _sorted(got), _sorted(combined)
    around = _tree(
        table,
        functools.partial(
            _around_median, medians=got[["median"]].rename(columns={"median": "_median"}), keys=keys, column="v3"
        ),
        functools.partial(_combine_partials, how={"_below": "sum", "_above": "sum"}),
    )
    (counted,) = dask.compute(around)
    counted = counted.reindex(got.index, fill_value=0)
    group_sizes = combined["_n"].reindex(got.index, fill_value=0).to_numpy()
    outside = (2 * counted["_below"].to_numpy() > group_sizes) | (2 * counted["_above"].to_numpy() > group_sizes)
    if outside.any():
        first = int(np.argmax(outside))
        check(
            False,
            f"q6: median of v3 for group {tuple(int(key) for key in got.index[first])} is"
            f" {float(got['median'].iloc[first])!r}, with"
            f" {int(counted['_below'].iloc[first])} values below and {int(counted['_above'].iloc[first])} above"
            f" out of {int(group_sizes[first])}",
        )
    with np.errstate(invalid="ignore", divide="ignore"):
        variance = (combined["_ss"] - combined["_s"] ** 2 / combined["_n"]) / (combined["_n"] - 1)
    return got[["std"]], np.sqrt(variance.where(combined["_n"] > 1)).to_frame("std")


def _top_two(frame: Any) -> Any:
    return frame.sort_values("v3", ascending=False, kind="stable").groupby("id6", dropna=False).head(2)


def _combine_top_two(frames: list[Any]) -> Any:
    import pandas as pd

    return _top_two(pd.concat(frames))


def _by_group_and_value(frame: Any) -> Any:
    return frame.sort_values(["id6", "v3"], kind="stable").set_index("id6")[["v3"]]


def _h2o_q8(ddf: Any) -> tuple[Any, Any]:
    """The two largest v3 per id6 (a groupby-apply: a shuffle), against per-partition top twos combined by a tree."""
    table = ddf[["id6", "v3"]]
    answer = table.groupby("id6", dropna=False, observed=True)["v3"].apply(
        lambda values: values.nlargest(2), meta=("v3", "float64")
    )
    got, tops = _answer_and_reference(answer, _tree(table, _top_two, _combine_top_two))
    return _by_group_and_value(got.reset_index(level=0)), _by_group_and_value(tops)


def _moment_partials(frame: Any, keys: list[str]) -> Any:
    x, y = frame["v1"], frame["v2"]
    return (
        frame.assign(_n=1, _x=x, _y=y, _xx=x * x, _yy=y * y, _xy=x * y)
        .groupby(keys, dropna=False, observed=True)[["_n", "_x", "_y", "_xx", "_yy", "_xy"]]
        .sum()
    )


def _r2(frame: Any) -> Any:
    import pandas as pd

    return pd.Series({"r2": frame.corr()["v1"]["v2"] ** 2})


def _h2o_q9(ddf: Any) -> tuple[Any, Any]:
    """r² of v1 and v2 by id2, id4 (a groupby-apply), against exact integer moments combined by a tree."""
    import numpy as np

    keys = ["id2", "id4"]
    table = ddf[[*keys, "v1", "v2"]]
    answer = table.groupby(keys, dropna=False, observed=True)[["v1", "v2"]].apply(_r2, meta={"r2": "float64"})
    moments = _tree(
        table,
        functools.partial(_moment_partials, keys=keys),
        functools.partial(_combine_partials, how=dict.fromkeys(["_n", "_x", "_y", "_xx", "_yy", "_xy"], "sum")),
    )
    got, m = _answer_and_reference(answer, moments)
    # Integer sums: exact in int64; only the last steps are floating point.
    covariance = (m["_n"] * m["_xy"] - m["_x"] * m["_y"]).astype("float64")
    var_x = (m["_n"] * m["_xx"] - m["_x"] ** 2).astype("float64")
    var_y = (m["_n"] * m["_yy"] - m["_y"] ** 2).astype("float64")
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = (covariance**2 / (var_x * var_y)).where((var_x > 0) & (var_y > 0) & (m["_n"] > 1))
    return _sorted(got), _sorted(r2.to_frame("r2"))


_H2O: dict[str, Callable[[Any], tuple[Any, Any]]] = {
    **{name: functools.partial(_h2o_decomposable, query=name) for name in _DECOMPOSABLE},
    "q6": _h2o_q6,
    "q8": _h2o_q8,
    "q9": _h2o_q9,
}


def h2o_groupby(
    query: str,
    rows: Optional[int] = None,
    target_bytes: Optional[int] = None,
    k: int = 100,
    partition_rows: int = 1_000_000,
    seed: int = 0,
) -> dict[str, float]:
    """One of the h2o groupby queries q1–q9 (as coiled/benchmarks runs them) on a generated h2o table.

    q1–q5, q7: sums, means, minima and maxima, checked against pandas' partial aggregates of the same partitions
    combined by a tree of plain tasks; q6 (median, std), q8 (top two per group), q9 (r² per group): see their
    helpers. Groups must match exactly, integer sums exactly, floating-point values within 1e-9.
    """
    if query not in _H2O:
        raise ValueError(f"unknown h2o query {query!r} — use one of {', '.join(sorted(_H2O))}")
    total = row_total(rows, target_bytes, H2O_BYTES_PER_ROW)
    ddf = generated_frame(_h2o_partition, total, partition_rows, total_rows=total, k=k, seed=seed)
    got, expected = _H2O[query](ddf)
    check(got.index.equals(expected.index), f"{query}: groups differ: {len(got)} vs {len(expected)} groups")
    for column in expected.columns:
        exact = got[column].dtype.kind in "iu"
        what = f"{query}: {column} per group"
        tolerance = {"rtol": 0.0} if exact else {"rtol": 1e-9, "atol": 1e-12}  # r² of unrelated columns is ≈ 0
        check_close(got[column].to_numpy(), expected[column].to_numpy(), what, **tolerance)
    return {"rows": float(total), "answer_rows": float(len(got))}
