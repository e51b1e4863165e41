"""DataFrame workloads of the catalogue: h2o groupby queries, joins, set_index, shuffles and a copy-on-write chain.

Data is generated per partition from ``(seed, partition)``, so any task can regenerate any partition. Each check
takes another path to the same answer: pandas on the same partitions (partial aggregates combined by a tree of plain
tasks — no Dask groupby, merge or shuffle), closed forms, or order-independent row hashes summed per partition.
Sizes are given in ``rows`` or in ``target_bytes`` (resolved from the cluster's memory), never both.
"""

from __future__ import annotations

import functools
import inspect
import math
from typing import Any, Callable, Optional

from framework.checks import check, check_close
from workloads.synthetic import generated_frame, row_count, row_total

HASH_MODULUS = 2**64
H2O_BYTES_PER_ROW = 80  # 3 short pyarrow strings (≈ 30 B) + 6 int64 + 1 float64: an estimate, fixed so rows never vary


# --------------------------------------------------------------------------------------------------
# Generated data


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


def _keyed_partition(
    spec: tuple[int, int, int], total_rows: int, key_domain: int, multiplier: int, prefix: str, payload: int, seed: int
) -> Any:
    """Row i has ``{prefix}idx = i`` and key ``perm(i) · key_domain // total_rows``, perm(i) = multiplier · i mod total.

    perm is a bijection of 0..total-1, so the keys are known in closed form yet land in scrambled order.
    """
    import numpy as np
    import pandas as pd

    partition, start, rows = spec
    position = np.arange(start, start + rows, dtype="int64")
    key = (multiplier * position % total_rows) * key_domain // total_rows
    frame = pd.DataFrame({"key": key, f"{prefix}idx": position})
    rng = np.random.default_rng([seed, partition])
    for column in range(payload):
        frame[f"{prefix}x{column}"] = rng.random(rows)
    return frame


def _random_key_partition(spec: tuple[int, int, int], key: str, n_keys: int, payload: int, seed: int) -> Any:
    """``key``: random ints in [0, n_keys) (floats in [0, 1) when n_keys is 0); ``idx`` the row number; payload."""
    import numpy as np
    import pandas as pd

    partition, start, rows = spec
    rng = np.random.default_rng([seed, partition])
    values = rng.random(rows) if n_keys == 0 else rng.integers(0, n_keys, rows)
    frame = pd.DataFrame({key: values, "idx": np.arange(start, start + rows, dtype="int64")})
    for column in range(payload):
        frame[f"x{column}"] = rng.random(rows)
    return frame


def _coprime_multiplier(total: int, seed: int) -> int:
    """A multiplier near a million, coprime with ``total``: i → multiplier · i mod total is then a bijection."""
    multiplier = 1_000_003 + 2 * seed
    while math.gcd(multiplier, total) != 1:
        multiplier += 1
    return multiplier


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


def _per_partition(ddf: Any, function: Callable[[Any], Any]) -> list[Any]:
    import dask

    return [dask.delayed(function)(part) for part in ddf.to_delayed()]


def _row_hash(frame: Any, columns: list[str]) -> int:
    """Order-independent fingerprint of the rows (values of ``columns``, index ignored): the sum of row hashes."""
    import pandas as pd

    return int(pd.util.hash_pandas_object(frame[columns], index=False).to_numpy().sum(dtype="uint64"))


def _hash_total(hashes: list[int]) -> int:
    return sum(hashes) % HASH_MODULUS


def shuffle_keyword(method: Callable[..., Any]) -> str:
    """The name of the shuffle-method argument of a Dask DataFrame method: ``shuffle_method`` or older ``shuffle``."""
    parameters = inspect.signature(method).parameters
    for name in ("shuffle_method", "shuffle"):
        if name in parameters:
            return name
    raise TypeError(f"{method.__qualname__} takes no shuffle method argument (parameters: {list(parameters)})")


# --------------------------------------------------------------------------------------------------
# h2o groupby

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


# --------------------------------------------------------------------------------------------------
# Joins


def _matched_right_partials(
    frame: Any, right_rows: int, inverse: int, key_domain: int, left_rows: int, payload: int
) -> Any:
    """Right rows (key k) with what the join must give them: k's right idx is perm⁻¹(k); k has this many left rows."""
    import numpy as np
    import pandas as pd

    key = frame["key"].to_numpy()
    # Left keys are m · D // L for m in 0..L-1: key k is held by the m in [ceil(k·L/D), ceil((k+1)·L/D)).
    left_count = np.minimum(-(-(key + 1) * left_rows // key_domain), left_rows) - np.minimum(
        -(-key * left_rows // key_domain), left_rows
    )
    sums = {"ridx": int((key * inverse % right_rows * left_count).sum())}
    for column in range(payload):
        sums[f"rx{column}"] = float((frame[f"rx{column}"].to_numpy() * left_count).sum())
    return pd.DataFrame(sums, index=[0])


def join_generated(
    rows: Optional[int] = None,
    target_bytes: Optional[int] = None,
    right_fraction: float = 1.0,
    match_fraction: float = 0.75,
    payload_columns: int = 2,
    partition_rows: int = 500_000,
    right_partition_rows: Optional[int] = None,
    broadcast: Optional[bool] = None,
    method: Optional[str] = None,
    seed: int = 0,
) -> dict[str, float]:
    """Inner merge of a left frame (``rows``) with a right frame of ``right_fraction`` as many rows, on ``key``.

    Right keys are 0..R-1, each once; left keys are spread over 0..R/match_fraction, so about ``match_fraction`` of
    the left rows find their one right row. The check: the row count in closed form; every joined row's key agrees
    with both of its idx columns (the keys are a known bijection of the row numbers); and the sums of idx and payload
    columns over the join equal sums taken from each side alone, without a merge.
    """
    import dask

    left_rows = row_total(rows, target_bytes, 8 * (2 + payload_columns))
    right_rows = max(1, round(left_rows * right_fraction))
    key_domain = max(right_rows, math.ceil(right_rows / match_fraction))
    left_multiplier = _coprime_multiplier(left_rows, seed)
    right_multiplier = _coprime_multiplier(right_rows, seed + 1)
    if max(left_rows, right_rows) * max(key_domain, right_rows, left_multiplier, right_multiplier) >= 2**63:
        raise ValueError(f"{left_rows} rows: keys would overflow int64 — declare a smaller size")
    left = generated_frame(
        _keyed_partition,
        left_rows,
        partition_rows,
        total_rows=left_rows,
        key_domain=key_domain,
        multiplier=left_multiplier,
        prefix="l",
        payload=payload_columns,
        seed=seed,
    )
    right = generated_frame(
        _keyed_partition,
        right_rows,
        right_partition_rows or partition_rows,
        total_rows=right_rows,
        key_domain=right_rows,
        multiplier=right_multiplier,
        prefix="r",
        payload=payload_columns,
        seed=seed + 1,
    )
    options: dict[str, Any] = {}
    if method is not None:
        options[shuffle_keyword(type(left).merge)] = method
    if broadcast is not None:
        options["broadcast"] = broadcast
    joined = left.merge(right, on="key", how="inner", **options)

    payload = [f"{side}x{c}" for side in "lr" for c in range(payload_columns)]
    left_key_of = (joined["lidx"] * left_multiplier % left_rows) * key_domain // left_rows
    right_key_of = joined["ridx"] * right_multiplier % right_rows
    wrong_rows = ((joined["key"] != left_key_of) | (joined["key"] != right_key_of)).sum()
    matched_left = left[left["key"] < right_rows]
    matched_right = functools.partial(
        _matched_right_partials,
        right_rows=right_rows,
        inverse=pow(right_multiplier, -1, right_rows) if right_rows > 1 else 0,
        key_domain=key_domain,
        left_rows=left_rows,
        payload=payload_columns,
    )
    right_partials = right.map_partitions(matched_right, meta=matched_right(right._meta).iloc[:0])
    left_payload = [f"lx{c}" for c in range(payload_columns)]
    # Integer sums apart from the floats, so they stay int64: exact, even beyond 2**53.
    (got_rows, bad, got_idx, got_payload, *expected_sums) = dask.compute(
        row_count(joined),
        wrong_rows,
        joined[["lidx", "ridx"]].sum(),
        joined[payload].sum(),
        matched_left["lidx"].sum(),
        right_partials["ridx"].sum(),
        matched_left[left_payload].sum(),
        right_partials[[f"rx{c}" for c in range(payload_columns)]].sum(),
    )
    expected_rows = min(left_rows, -(-right_rows * left_rows // key_domain))
    check(int(got_rows) == expected_rows, f"join gave {int(got_rows)} rows, expected {expected_rows}")
    check(int(bad) == 0, f"{int(bad)} joined rows pair a left row with the wrong right row")
    left_idx, right_idx, left_sums, right_sums = expected_sums
    for column, want in (("lidx", int(left_idx)), ("ridx", int(right_idx))):
        got = int(got_idx[column])
        check(got == want, f"sum of {column} over the join: got {got}, expected {want}")
    expected = {**left_sums.to_dict(), **right_sums.to_dict()}
    for column in payload:
        check_close(got_payload[column], expected[column], f"sum of {column} over the join", rtol=1e-9)
    return {"left_rows": float(left_rows), "right_rows": float(right_rows), "joined_rows": float(got_rows)}


# --------------------------------------------------------------------------------------------------
# set_index and shuffle


def _sorted_partition_stats(frame: Any, columns: list[str]) -> dict[str, Any]:
    index = frame.index
    return {
        "rows": len(frame),
        "min": index.min() if len(frame) else None,
        "max": index.max() if len(frame) else None,
        "monotonic": bool(index.is_monotonic_increasing),
        "hash": _row_hash(frame.reset_index(), columns),
    }


def _input_stats(frame: Any, columns: list[str]) -> dict[str, Any]:
    return {"rows": len(frame), "hash": _row_hash(frame, columns)}


def set_index_random(
    rows: Optional[int] = None,
    target_bytes: Optional[int] = None,
    payload_columns: int = 2,
    partition_rows: int = 500_000,
    method: Optional[str] = None,
    seed: int = 0,
) -> dict[str, float]:
    """``set_index`` on a column of random floats (a sample for divisions, then a shuffle).

    The check: divisions known and sorted; every partition sorted and inside its divisions; no row lost, added or
    changed (row count, and the sum of row hashes before and after).
    """
    import dask

    total = row_total(rows, target_bytes, 8 * (2 + payload_columns))
    ddf = generated_frame(
        _random_key_partition, total, partition_rows, key="key", n_keys=0, payload=payload_columns, seed=seed
    )
    columns = list(ddf.columns)
    options = {} if method is None else {shuffle_keyword(type(ddf).set_index): method}
    result = ddf.set_index("key", **options)
    after, before = dask.compute(
        _per_partition(result, functools.partial(_sorted_partition_stats, columns=columns)),
        _per_partition(ddf, functools.partial(_input_stats, columns=columns)),
    )
    divisions = result.divisions
    check(None not in divisions, f"divisions unknown after set_index: {divisions[:3]}…")
    check(
        all(a <= b for a, b in zip(divisions, divisions[1:])),
        f"divisions not sorted: {list(divisions)}",
    )
    check(
        len(after) == len(divisions) - 1,
        f"set_index gave {len(after)} partitions, its divisions delimit {len(divisions) - 1}",
    )
    for number, stats in enumerate(after):
        check(stats["monotonic"], f"partition {number}: index not sorted")
        if stats["rows"]:
            low, high, last = divisions[number], divisions[number + 1], number == len(after) - 1
            inside = low <= stats["min"] and (stats["max"] <= high if last else stats["max"] < high)
            check(inside, f"partition {number}: index [{stats['min']}, {stats['max']}] outside its divisions")
    rows_after = sum(stats["rows"] for stats in after)
    check(rows_after == total, f"set_index gave {rows_after} rows, expected {total}")
    check(
        _hash_total([s["hash"] for s in after]) == _hash_total([s["hash"] for s in before]),
        "row hashes differ: set_index changed some rows",
    )
    return {"rows": float(total), "partitions": float(len(after))}


def _shuffled_partition_stats(frame: Any, columns: list[str]) -> dict[str, Any]:
    return {"rows": len(frame), "hash": _row_hash(frame, columns), "keys": frame["key"].unique()}


def shuffle_by_key(
    rows: Optional[int] = None,
    target_bytes: Optional[int] = None,
    n_keys: int = 10_000,
    npartitions: Optional[int] = None,
    payload_columns: int = 2,
    partition_rows: int = 500_000,
    method: Optional[str] = None,
    seed: int = 0,
) -> dict[str, float]:
    """Hash-shuffle a frame on a random integer key with ``DataFrame.shuffle``, by the given method.

    The check: every key lands in exactly one output partition; no row lost, added or changed (row count and the
    sum of row hashes before and after).
    """
    import dask
    import numpy as np

    total = row_total(rows, target_bytes, 8 * (2 + payload_columns))
    ddf = generated_frame(
        _random_key_partition, total, partition_rows, key="key", n_keys=n_keys, payload=payload_columns, seed=seed
    )
    columns = list(ddf.columns)
    options = {} if method is None else {shuffle_keyword(type(ddf).shuffle): method}
    result = ddf.shuffle(on="key", npartitions=npartitions, **options)
    after, before = dask.compute(
        _per_partition(result, functools.partial(_shuffled_partition_stats, columns=columns)),
        _per_partition(ddf, functools.partial(_input_stats, columns=columns)),
    )
    owner = np.concatenate([np.full(len(s["keys"]), number) for number, s in enumerate(after)])
    keys = np.concatenate([s["keys"] for s in after])
    order = np.argsort(keys, kind="stable")
    repeated = np.flatnonzero(keys[order][1:] == keys[order][:-1])
    if len(repeated):
        first = order[repeated[0]]
        second = order[repeated[0] + 1]
        check(False, f"key {keys[first]} is in partitions {owner[first]} and {owner[second]} (and maybe more)")
    rows_after = sum(s["rows"] for s in after)
    check(rows_after == total, f"shuffle gave {rows_after} rows, expected {total}")
    check(
        _hash_total([s["hash"] for s in after]) == _hash_total([s["hash"] for s in before]),
        "row hashes differ: the shuffle changed some rows",
    )
    return {"rows": float(total), "partitions": float(len(after)), "keys": float(len(keys))}


# --------------------------------------------------------------------------------------------------
# Copy-on-write chain


def _wide_partition(spec: tuple[int, int, int], floats: int, ints: int, strings: int, seed: int) -> Any:
    """Float columns with 10 % missing values, int columns, and short string columns drawn from x, y, z, xx."""
    import numpy as np
    import pandas as pd

    partition, _, rows = spec
    rng = np.random.default_rng([seed, partition])
    columns: dict[str, Any] = {}
    for i in range(floats):
        values = rng.random(rows)
        values[rng.random(rows) < 0.1] = np.nan
        columns[f"f{i}"] = values
    for i in range(ints):
        columns[f"i{i}"] = rng.integers(0, 1000, rows)
    words = np.array(["x", "y", "z", "xx"], dtype=object)
    for i in range(strings):
        columns[f"s{i}"] = words[rng.integers(0, len(words), rows)]
    return pd.DataFrame(columns)


def _cow_chain(frame: Any) -> Any:
    """rename → replace → fillna → astype → where → assign → a column slice: the same code for Dask and pandas."""
    floats = [column for column in frame.columns if column.startswith("f")]
    out = frame.rename(columns={"f1": "f1_renamed"})
    out = out.replace("x", "xxx")
    out = out.fillna(dict.fromkeys(floats[2:], 100.0))
    out = out.astype({"i0": "float64"})
    out = out.assign(i0=out["i0"].where(out["i1"] > 500, -1.0), total=out["f2"] + out["i1"])
    return out.loc[:, "f2":]


def _digest(frame: Any) -> dict[str, Any]:
    return {
        "rows": len(frame),
        "columns": [f"{name}:{dtype}" for name, dtype in frame.dtypes.items()],
        "hash": _row_hash(frame, list(frame.columns)),
    }


def cow_chain(
    rows: Optional[int] = None,
    target_bytes: Optional[int] = None,
    float_columns: int = 20,
    int_columns: int = 20,
    string_columns: int = 10,
    partition_rows: int = 200_000,
    seed: int = 0,
) -> dict[str, float]:
    """A chain of column operations (as coiled/benchmarks' test_dataframe_cow_chain) on a wide generated frame.

    The check runs the same chain in pandas on each partition (``map_partitions``: no Dask expression optimisation)
    and compares every partition: rows, columns with their dtypes, and the sum of row hashes.
    """
    import dask

    bytes_per_row = 8 * (float_columns + int_columns + string_columns)
    total = row_total(rows, target_bytes, bytes_per_row)
    ddf = generated_frame(
        _wide_partition,
        total,
        partition_rows,
        floats=float_columns,
        ints=int_columns,
        strings=string_columns,
        seed=seed,
    )
    result = _cow_chain(ddf)
    got, expected = dask.compute(
        _per_partition(result, _digest),
        _per_partition(ddf.map_partitions(_cow_chain), _digest),
    )
    check(len(got) == len(expected), f"{len(got)} partitions, expected {len(expected)}")
    for number, (mine, theirs) in enumerate(zip(got, expected)):
        check(
            mine["columns"] == theirs["columns"],
            f"partition {number}: columns {mine['columns']} != pandas' {theirs['columns']}",
        )
        check(mine["rows"] == theirs["rows"], f"partition {number}: {mine['rows']} rows, pandas {theirs['rows']}")
        check(mine["hash"] == theirs["hash"], f"partition {number}: row hashes differ from pandas'")
    rows_seen = sum(digest["rows"] for digest in got)
    check(rows_seen == total, f"chain gave {rows_seen} rows, expected {total}")
    return {"rows": float(total), "columns": float(len(got[0]["columns"]) if got else 0)}
