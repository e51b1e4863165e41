"""Guard: ``dask.delayed`` over the ``to_delayed()`` parts of a persisted dask array receives the chunks.

On dask 2024.12.0 – 2025.3.0 (see matrices/findings.yaml) with a distributed client, the graph of a persisted
array holds Futures, and a delayed task over its parts is handed each part's key — a tuple such as
``('arange-…', 0)`` — instead of the chunk (dask/distributed#8998); fixed in 2025.4.0. xgboost.dask persists its
inputs, so it fails on array input there ("'tuple' object has no attribute 'divisions'"), which is why
workloads/ml.py trains on DataFrames.
"""

from __future__ import annotations

from typing import Any

from framework.in_runtime.checks import WorkloadCheckFailed

FINDING = "dask 2024.12.1 bug, see matrices/findings.yaml guard persisted_array_parts"


def _describe(part: Any) -> tuple[str, int, int, str]:
    """What a task was handed: (type name, length, sum, repr) — length and sum are -1 for anything but an ndarray."""
    import numpy as np

    if isinstance(part, np.ndarray):
        return type(part).__name__, int(part.size), int(part.sum()), ""
    return type(part).__name__, -1, -1, repr(part)[:120]


def persisted_array_parts(rows: int, chunk_rows: int) -> dict[str, float]:
    """Persist ``arange(rows)`` in chunks of ``chunk_rows`` on the current client, then hand each of its
    ``to_delayed()`` parts to a delayed task; every task must receive its chunk (length and sum in closed form).

    Needs a distributed client: without one, persisting holds numpy arrays and the bug cannot show.
    """
    import dask
    import dask.array as da
    from distributed import get_client

    if rows < 1 or chunk_rows < 1:
        raise ValueError(f"need rows >= 1 and chunk_rows >= 1, got {rows=}, {chunk_rows=}")
    try:
        get_client()
    except ValueError:
        raise ValueError(
            "persisted_array_parts needs a distributed Client (the bug lives in persisted Futures): run it on a"
            " cluster, or inside `with Client(...):`"
        ) from None
    persisted = da.arange(rows, chunks=chunk_rows, dtype="int64").persist()
    parts = persisted.to_delayed().ravel().tolist()
    described = dask.compute(*(dask.delayed(_describe)(part) for part in parts))

    for index, (kind, size, total, text) in enumerate(described):
        first = index * chunk_rows
        length = min(chunk_rows, rows - first)
        expected_total = length * first + length * (length - 1) // 2  # first + (first + 1) + … + (first + length - 1)
        if kind != "ndarray":
            raise WorkloadCheckFailed(
                f"part {index} of {len(parts)} of a persisted array reached its delayed task as {kind} {text},"
                f" not as its chunk (an ndarray of {length} values): {FINDING}"
            )
        if (size, total) != (length, expected_total):
            raise WorkloadCheckFailed(
                f"part {index} of {len(parts)} of a persisted array: {size} values summing to {total},"
                f" expected {length} values summing to {expected_total}"
            )
    return {"rows": float(rows), "parts": float(len(parts))}
