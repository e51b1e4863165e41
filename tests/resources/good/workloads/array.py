"""The good project's array functions: signatures only (the catalogue is checked against them, never run)."""

from __future__ import annotations


def mean_var_reduction(rows: int, cols: int, chunk_rows: int = 100, chunk_cols: int = 10) -> dict[str, float]:
    raise RuntimeError("a signature for the catalogue check of tests/resources/good — never run")


def scale_local(steps: int = 3) -> dict[str, float]:
    raise RuntimeError("a signature for the catalogue check of tests/resources/good — never run")
