"""Guard: one ``dask.compute`` that mixes DataFrame expressions with delayed objects returns each result in place.

dask 2025.4.0 and later (still 2026.11.0) return such a compute's results out of order, silently: ``dask/_expr.py``
``_HLGExprSequence._tune_down`` regroups the collections by low-level optimizer (the materialized expressions in one
group, the delayed objects in another) and the results come back in group order. Only a "Computing mixed
collections" UserWarning hints at it. See matrices/findings.yaml, guard ``mixed_compute_order``.
"""

from __future__ import annotations

import operator
import warnings
from typing import Any

from framework.in_runtime.checks import WorkloadCheckFailed

MIXED_WARNING = "Computing mixed collections"
FINDING = (
    "a dask bug since 2025.4.0 (dask/_expr.py _HLGExprSequence._tune_down regroups the collections by optimizer), "
    "see matrices/findings.yaml guard mixed_compute_order"
)


def _block(spec: tuple[int, int]) -> Any:
    """Rows ``first + 1 … first + rows`` of column ``x``: generated where the partition is computed."""
    import numpy as np
    import pandas as pd

    first, rows = spec
    return pd.DataFrame({"x": np.arange(first + 1, first + rows + 1, dtype="int64")})


def _numbers(partitions: int, rows: int) -> Any:
    """``x`` = 1 … rows in ``partitions`` near-equal partitions, as a DataFrame expression."""
    import dask.dataframe as dd

    base, extra = divmod(rows, partitions)
    specs, first = [], 0
    for partition in range(partitions):
        size = base + (partition < extra)
        specs.append((first, size))
        first += size
    return dd.from_map(_block, specs, meta=_block((0, 0)), label="numbers")


def _as_number(result: Any) -> int:
    """A result as one integer: a Series (one value a partition) by its sum, a scalar as itself."""
    return int(result.sum()) if hasattr(result, "index") else int(result)


def mixed_compute_order(partitions: int = 4, rows: int = 1_000) -> dict[str, float]:
    """Compute DataFrame expressions and delayed objects, interleaved, in one ``dask.compute`` (on the current
    client, or dask's default scheduler without one); each position must hold its own collection's result.

    The four expected answers differ (``rows`` ≥ 2), so a result at the wrong position is recognised and named.
    The "Computing mixed collections" warning is expected and recorded, not raised.
    """
    import dask

    if partitions < 1 or rows < 2:
        raise ValueError(f"need partitions >= 1 and rows >= 2 (distinct answers), got {partitions=}, {rows=}")
    numbers = _numbers(partitions, rows)
    total = rows * (rows + 1) // 2
    # (what, collection, expected answer). Delayed objects and expressions alternate, as the regrouping undoes; a
    # delayed object comes first because dask 2025.4.0-2025.9.1 fail otherwise (IndexError in repack: another bug).
    positions = [
        ("delayed neg(rows)", dask.delayed(operator.neg)(rows), -rows),
        ("x.sum(), a DataFrame scalar", numbers.x.sum(), total),
        ("delayed neg(sum)", dask.delayed(operator.neg)(total), -total),
        ("map_partitions(len), a DataFrame Series", numbers.map_partitions(len), rows),
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.filterwarnings("always", message=MIXED_WARNING, category=UserWarning)
        results = dask.compute(*(collection for _, collection, _ in positions))
    mixed_warnings = [w for w in caught if str(w.message).startswith(MIXED_WARNING)]
    for other in caught:  # recorded only to count ours: pass every other warning on as it came
        if other not in mixed_warnings:
            warnings.warn_explicit(other.message, other.category, other.filename, other.lineno)

    got = [_as_number(result) for result in results]
    expected = [answer for _, _, answer in positions]
    if sorted(got) == sorted(expected) and got != expected:  # every answer came back, some at another position
        order = [expected.index(value) for value in got]
        where = "; ".join(
            f"position {i} ({positions[i][0]}) holds the result of position {j} ({positions[j][0]})"
            for i, j in enumerate(order)
            if i != j
        )
        raise WorkloadCheckFailed(
            f"dask.compute returned mixed collections out of order: results in the order {order} instead of "
            f"{sorted(order)}: {where} — {FINDING}"
        )
    if got != expected:
        raise WorkloadCheckFailed(f"dask.compute of mixed collections returned {got}, expected {expected}")
    return {"results": float(len(results)), "mixed_collection_warnings": float(len(mixed_warnings))}
