"""workloads/calibration.py: the knobs add exactly the asked share of memory and work, and the checks catch a
worker that held or hashed something else."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from workload_testing import in_process_client, tiny_params, workload_function

from framework.in_runtime.checks import WorkloadCheckFailed
from workloads import calibration

MiB = 2**20

pytestmark = pytest.mark.cluster(deadline=30)  # every test runs on the module's in-process cluster; each under 4 s


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    with in_process_client() as dask_client:
        yield dask_client


def test_tiny_case_as_declared_passes(client: Any) -> None:
    params = tiny_params("calibration_shift")
    figures = workload_function("calibration_shift")(**params)
    assert figures["held_bytes_per_worker"] == params["mib_per_worker"] * MiB
    assert figures["workers"] == 2


def test_the_knobs_add_the_asked_share(client: Any) -> None:
    figures = calibration.known_shift(8, 4, extra_memory_percent=10, extra_work_percent=25, hold_ms=0)
    assert figures["held_bytes_per_worker"] == pytest.approx(8.8 * MiB, abs=8)
    assert figures["hashed_bytes_per_worker"] == 5 * MiB


def test_a_worker_that_hashes_less_fails_the_check(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    honest = calibration._hold_and_work

    def lazy(nbytes: int, work_bytes: int, hold_s: float, value: float) -> dict[str, float]:
        return honest(nbytes, work_bytes // 2, hold_s, value)

    monkeypatch.setattr(calibration, "_hold_and_work", lazy)
    with pytest.raises(WorkloadCheckFailed, match="hashed"):
        calibration.known_shift(4, 2, hold_ms=0)


def test_negative_knobs_are_refused(client: Any) -> None:
    with pytest.raises(WorkloadCheckFailed, match="≥ 0"):
        calibration.known_shift(4, 2, extra_memory_percent=-5)
