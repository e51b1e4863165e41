"""How a workload checks its own answer. A failed check makes the case ``failed`` (not ``error``).

Light on purpose: imported inside runtime environments, on any Python the runtime declares.
"""

from __future__ import annotations

import math
from typing import Any


class WorkloadCheckFailed(AssertionError):  # noqa: N818 - reads as what happened: the check failed
    """The workload ran but its answer is wrong."""


def check(condition: bool, message: str) -> None:
    """Fail the case with ``message`` unless ``condition`` holds (works under ``python -O`` too)."""
    if not condition:
        raise WorkloadCheckFailed(message)


def check_close(actual: Any, expected: Any, what: str, rtol: float = 1e-9, atol: float = 0.0) -> None:
    """Compare two numbers or two equally shaped numpy arrays / pandas objects within a tolerance."""
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - every runtime has numpy; scalars still work without it
        if not math.isclose(float(actual), float(expected), rel_tol=rtol, abs_tol=atol):
            raise WorkloadCheckFailed(f"{what}: got {actual!r}, expected {expected!r}") from None
        return
    actual_array = np.asarray(actual, dtype="float64")
    expected_array = np.asarray(expected, dtype="float64")
    if actual_array.shape != expected_array.shape:
        raise WorkloadCheckFailed(f"{what}: shape {actual_array.shape}, expected {expected_array.shape}")
    close = np.isclose(actual_array, expected_array, rtol=rtol, atol=atol, equal_nan=True)
    if not close.all():
        index = tuple(int(i) for i in np.argwhere(~close)[0])
        raise WorkloadCheckFailed(
            f"{what}: {int((~close).sum())} of {close.size} values differ; first at {index}:"
            # .item(): numpy 2 would show np.float64(1.5) instead of 1.5
            f" got {actual_array[index].item()!r}, expected {expected_array[index].item()!r}"
        )


def check_results(got: list[Any], expected: list[Any], what: str) -> None:
    """Fail unless ``got`` equals ``expected`` element by element; the message names the first difference."""
    check(len(got) == len(expected), f"{what}: {len(got)} results, expected {len(expected)}")
    wrong = [i for i, (a, b) in enumerate(zip(got, expected)) if a != b]
    if wrong:
        first = wrong[0]
        check(
            False,
            f"{what}: {len(wrong)} of {len(expected)} wrong; first at {first}: got {got[first]!r}, "
            f"expected {expected[first]!r}",
        )
