"""dask.delayed over the to_delayed() parts of a persisted dask array gets the parts' keys instead of their chunks.

Seen with a distributed Client on dask 2024.12.0 - 2025.3.0 (fine on 2024.11.2 and 2025.4.0); xgboost.dask persists
its inputs, so it fails on array input there. Same as dask/distributed#8998.
Exit 1 if the bug is present, 0 if not, 2 on any other error.
"""

import sys
import traceback

import dask
import dask.array as da
import distributed
import numpy as np


def describe(parts: list[object]) -> list[str]:
    return [type(part).__name__ for part in parts]


def main() -> int:
    print(f"dask {dask.__version__}, distributed {distributed.__version__}, numpy {np.__version__}")
    with distributed.Client(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None):
        persisted = da.arange(12, chunks=4).persist()
        parts = persisted.to_delayed().ravel().tolist()
        got = dask.delayed(describe)(parts).compute()
    print("expected:", ["ndarray"] * len(parts))
    print("got:     ", got)
    return 0 if got == ["ndarray"] * len(parts) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:
        traceback.print_exc()
        sys.exit(2)
