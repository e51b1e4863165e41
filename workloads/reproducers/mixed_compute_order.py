"""dask.compute of DataFrame collections interleaved with delayed objects returns the results out of order, silently.

dask >= 2025.4.0: _HLGExprSequence._tune_down (dask/_expr.py) groups the collections by low-level optimizer and the
results come back in group order; only a "Computing mixed collections" UserWarning is shown.
Exit 1 if the bug is present, 0 if not, 2 on any other error.
"""

import operator
import sys
import traceback
import warnings

import dask
import dask.dataframe as dd
import pandas as pd


def main():
    print(f"dask {dask.__version__}, pandas {pd.__version__}, python {sys.version.split()[0]}")
    df = dd.from_pandas(pd.DataFrame({"x": range(1, 11)}), npartitions=2)
    # A delayed object first: with an expression first, dask 2025.4.0-2025.9.1 raise IndexError instead (dask#12081)
    collections = [dask.delayed(operator.neg)(1), df.x.sum(), dask.delayed(operator.neg)(2), df.x.max()]
    expected = [-1, 55, -2, 10]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Computing mixed collections")
        got = [int(result) for result in dask.compute(*collections)]
    print("expected:", expected)
    print("got:     ", got)
    return 0 if got == expected else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:
        traceback.print_exc()
        sys.exit(2)
