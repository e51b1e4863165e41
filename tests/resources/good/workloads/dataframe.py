"""The good project's DataFrame functions: signatures only (the catalogue is checked against them, never run)."""

from __future__ import annotations


def groupby_agg(days: int, freq: str = "1s", by: str = "name", seed: int = 42) -> dict[str, float]:
    raise RuntimeError("a signature for the catalogue check of tests/resources/good — never run")


def shuffle(rows: int, npartitions: int, method: str) -> dict[str, float]:
    raise RuntimeError("a signature for the catalogue check of tests/resources/good — never run")
