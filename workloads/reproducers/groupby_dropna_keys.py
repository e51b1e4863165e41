"""dask.compute of groupby(<string column>, dropna=False).agg(...) asks for an output key its graph does not have.

FutureCancelledError under distributed (KeyError on the local scheduler) on dask 2024.11.1 - 2025.3.1 with pandas
2.2, while ``.compute()`` of the same collection works. The collection's name is not deterministic (it hashes the
uninitialised bits of a pyarrow validity bitmap in its meta): the ``.compute()`` before leaves the memory it needs.
Exit 1 if the bug is present, 0 if not, 2 on any other error.
"""

import sys
import traceback

import dask
import dask.dataframe as dd
import distributed
import pandas as pd


def sums(frame: pd.DataFrame) -> dict[object, int]:
    """value per key, nulls as None: pandas and dask spell a null string key differently (nan, <NA>)."""
    return {(None if pd.isna(key) else key): int(value) for key, value in frame["value"].items()}


def main() -> int:
    print(f"dask {dask.__version__}, distributed {distributed.__version__}, pandas {pd.__version__}")
    frame = pd.DataFrame({"key": ["a", "b", None] * 4, "value": range(12)})
    expected = sums(frame.groupby("key", dropna=False).agg({"value": "sum"}))
    with distributed.Client(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None):
        answer = dd.from_pandas(frame, npartitions=2).groupby("key", dropna=False).agg({"value": "sum"})
        print("expected:            ", expected)
        print("answer.compute():    ", sums(answer.compute()))
        try:
            (got,) = dask.compute(answer)
        except distributed.client.FutureCancelledError as error:
            print(f"dask.compute(answer): {type(error).__name__}: {error}")
            return 1
    print("dask.compute(answer):", sums(got))
    return 0 if sums(got) == expected else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:
        traceback.print_exc()
        sys.exit(2)
