"""DataFrame workloads of the catalogue: a groupby of generated time series, h2o groupby queries, joins, set_index,
shuffles and a copy-on-write chain.

Data is generated (``workloads/synthetic.py``): dask's time series, or per partition from ``(seed, partition)``, so
any task can regenerate any partition. Each check takes another path to the same answer: pandas on the same
partitions (partial aggregates, or the same chain of operations), closed forms, or order-independent row hashes
summed per partition. Sizes are given in ``rows`` or in ``target_bytes`` (resolved from the cluster's memory), never
both; the time series in ``days``. The h2o queries are written in ``workloads/h2o.py`` and named through this module.
"""

from __future__ import annotations

import functools
import inspect
import math
from typing import Any, Callable, Optional

from framework.in_runtime.checks import check, check_close
from workloads.h2o import h2o_groupby
from workloads.synthetic import generated_frame, row_count, row_total, timeseries

# The functions workloads/*.yaml name as ``workloads.dataframes:NAME`` (h2o_groupby is written in workloads/h2o.py).
__all__ = ["cow_chain", "groupby_agg", "h2o_groupby", "join_generated", "set_index_random", "shuffle_by_key"]

HASH_MODULUS = 2**64


# --------------------------------------------------------------------------------------------------
# Generated data


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
# Plain tasks over the partitions (no Dask DataFrame code path), and the shuffle argument's name


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
# Groupby of dask's generated time series


def groupby_agg(
    days: int,
    freq: str = "1s",
    partition_freq: str = "1D",
    by: str = "name",
    split_out: int = 1,
    seed: int = 42,
) -> dict[str, float]:
    """Group generated time series by a key and aggregate sum / mean / count.

    The check recomputes the same aggregates by hand — per-partition partial sums combined in pandas on the
    client — which takes another code path (no shuffle, no tree reduction) to the same exact answer.
    """
    import dask
    import pandas as pd

    ddf = timeseries(days, freq, partition_freq, seed)
    result = ddf.groupby(by).agg({"x": "sum", "y": "mean", "id": "count"}, split_out=split_out)

    def partials(frame: pd.DataFrame) -> pd.DataFrame:
        grouped = frame.groupby(by)
        return pd.DataFrame({"x_sum": grouped.x.sum(), "y_sum": grouped.y.sum(), "n": grouped.id.count()})

    meta = pd.DataFrame(
        {
            "x_sum": pd.Series(dtype="float64"),
            "y_sum": pd.Series(dtype="float64"),
            "n": pd.Series(dtype="int64"),
        }
    )
    by_partition = ddf.map_partitions(partials, meta=meta)
    got, parts, rows = dask.compute(result, by_partition, row_count(ddf))

    expected = parts.groupby(level=0).sum()
    got = got.sort_index()
    expected = expected.sort_index()
    check(list(got.index) == list(expected.index), f"groups differ: {len(got)} vs {len(expected)} groups")
    check(int(got["id"].sum()) == int(rows), f"counts sum to {int(got['id'].sum())}, expected {int(rows)} rows")
    check_close(got["id"].to_numpy(), expected["n"].to_numpy(), "count per group", rtol=0)
    check_close(got["x"].to_numpy(), expected["x_sum"].to_numpy(), "sum of x per group", rtol=1e-9, atol=1e-6)
    check_close(got["y"].to_numpy(), (expected["y_sum"] / expected["n"]).to_numpy(), "mean of y per group", rtol=1e-9)
    return {"rows": float(rows), "groups": float(len(got))}


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
