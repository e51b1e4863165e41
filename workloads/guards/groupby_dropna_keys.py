"""Guard: ``dask.compute`` of ``groupby(<string column>, dropna=False).agg(...)`` returns the aggregate.

On dask 2024.11.1–2025.3.x with pandas 2.2 (measured range: matrices/findings.yaml) the name of such a collection is not
deterministic: its meta's empty pyarrow string index keeps a validity buffer of uninitialised bytes, and dask hashes
pyarrow buffers byte by byte, so every lowering — every ``__dask_keys__()`` — names a new output key, and the key
``dask.compute`` asks for is not in the graph it built. distributed cancels it (FutureCancelledError), dask's local
scheduler raises KeyError. ``.compute()`` takes keys and graph from one lowering, so it works (workloads/dataframes.py
uses it).

Those bytes are whatever the allocator's freed block held: zeros in a fresh process (the bug hides), old data in a
long-lived client. So the guard first churns pyarrow's memory pool with seeded random bytes (``_dirty_arrow_pool``), as
a long-lived process would have it: with that, every call failed on every bad release tried and passed on every good
one. Which block the bitmap reuses is still the allocator's choice, so the finding stays ``intermittent``.
"""

from __future__ import annotations

from typing import Any

from framework.in_runtime.checks import WorkloadCheckFailed, check

GROUPS = 4  # keys k0, k1, k2 and a null key: the null group is what dropna=False keeps
FINDING = "dask 2024.12.1 bug, see matrices/findings.yaml guard groupby_dropna_keys"


def _block(spec: tuple[int, int], groups: int) -> Any:
    """Rows ``first … first + rows - 1``: row i has ``value`` i and ``key`` k{i mod groups}, null for the last."""
    import numpy as np
    import pandas as pd

    first, rows = spec
    position: Any = np.arange(first, first + rows, dtype="int64")
    labels = np.array([f"k{group}" for group in range(groups - 1)] + [None], dtype=object)
    return pd.DataFrame({"key": labels[position % groups], "value": position})


def _keyed(partitions: int, rows: int, groups: int) -> Any:
    """The rows of ``_block`` in ``partitions`` near-equal partitions, each generated where it is computed."""
    import dask.dataframe as dd

    base, extra = divmod(rows, partitions)
    specs, first = [], 0
    for partition in range(partitions):
        size = base + (partition < extra)
        specs.append((first, size))
        first += size
    return dd.from_map(_block, specs, groups=groups, meta=_block((0, 0), groups), label="keyed")


def _expected_sums(rows: int, groups: int) -> dict[Any, int]:
    """Closed form of the sum of ``value`` per key (None for the null key): rows i ≡ g (mod groups), i < rows."""
    sums: dict[Any, int] = {}
    for group in range(groups):
        count = (rows - group + groups - 1) // groups
        key = None if group == groups - 1 else f"k{group}"
        sums[key] = group * count + groups * count * (count - 1) // 2
    return sums


def _dirty_arrow_pool(seed: int = 0, blocks: int = 4000, sizes: tuple[int, ...] = (64, 128)) -> None:
    """Allocate ``blocks`` small pyarrow buffers of each size, fill them with seeded random bytes, free them: the
    next small allocations (a 1-byte validity bitmap is padded to 64) reuse those blocks, bytes and all."""
    import numpy as np
    import pyarrow as pa

    random = np.random.default_rng(seed)
    held = []
    for size in sizes:
        for _ in range(blocks):
            buffer = pa.allocate_buffer(size)
            np.frombuffer(buffer, dtype=np.uint8)[:] = random.integers(0, 256, size, dtype=np.uint8)
            held.append(buffer)
    del held


def _lost_key(error: Exception) -> Any:
    """The key a scheduler gave up on: distributed cancels it, dask's local scheduler raises KeyError(key)."""
    return getattr(error, "key", error.args[0] if len(error.args) == 1 else None)


def _is_output_key(key: Any, output_keys: list[Any]) -> bool:
    """``key`` names one of the answer's output partitions, whatever its token: the token is what goes astray."""
    from dask.utils import key_split

    return any(
        isinstance(key, tuple) and key[1:] == output[1:] and key_split(key) == key_split(output)
        for output in output_keys
    )


def groupby_dropna_keys(partitions: int, rows: int) -> dict[str, float]:
    """Sum ``value`` by a string ``key`` with nulls, ``dropna=False``, through ``dask.compute`` (on the current client,
    or dask's default scheduler without one); checked against the closed form, the null group included.

    The lost output key is turned into a failed check naming the finding; any other error propagates.
    """
    import dask
    import pandas as pd
    from distributed.client import FutureCancelledError

    if partitions < 1 or rows < GROUPS:
        raise ValueError(f"need partitions >= 1 and rows >= {GROUPS} (every group present), got {partitions=}, {rows=}")
    _dirty_arrow_pool()
    answer = _keyed(partitions, rows, GROUPS).groupby("key", dropna=False).agg({"value": "sum"})
    output_keys = list(answer.__dask_keys__())
    try:
        (got,) = dask.compute(answer)
    except (FutureCancelledError, KeyError) as error:
        if not _is_output_key(_lost_key(error), output_keys):  # only the answer's own output key is the finding
            raise
        renamed = answer.__dask_keys__() != answer.__dask_keys__()
        why = "; the collection names a new output key on every call" if renamed else ""
        raise WorkloadCheckFailed(
            f"dask.compute(groupby('key', dropna=False).agg(...)) lost its output key {_lost_key(error)!r}"
            f" ({type(error).__name__}{why}): {FINDING}"
        ) from error

    # pandas and dask spell a null string key differently (nan, None, <NA>): compare with None for all of them
    sums = {(None if pd.isna(key) else key): int(value) for key, value in got["value"].items()}
    expected = _expected_sums(rows, GROUPS)
    check(
        sums == expected,
        f"groupby('key', dropna=False) sums of value: got {sums}, expected {expected}",
    )
    return {"rows": float(rows), "groups": float(len(sums))}
