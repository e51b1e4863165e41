"""The guard of dask's mixed-compute order bug (workloads/guards/mixed_compute_order.py) and its standalone reproducer
(workloads/reproducers/mixed_compute_order.py): on this suite's dask (2026.8.0, inside the bug's range 2025.4.0 …)
the guard fails naming the finding and the reproducer exits 1; on dask 2024.12.1, the ``previous`` runtime run in
that runtime's environment, both pass."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from guard_testing import guard_script, run_python, runtime_python
from workload_testing import in_process_client

from framework.in_runtime.checks import WorkloadCheckFailed
from workloads.guards.mixed_compute_order import mixed_compute_order

ROOT = Path(__file__).resolve().parents[2]
REPRODUCER = ROOT / "workloads" / "reproducers" / "mixed_compute_order.py"
TINY = {"partitions": 4, "rows": 1000}  # the tiny size proposed for workloads/guards.yaml
SUBPROCESS_TIMEOUT_S = 120  # cold imports of dask, pandas and distributed in a busy machine
# What the guard says when the bug regroups [delayed, expression, delayed, expression] as [delayed, delayed, …].
OUT_OF_ORDER = (
    "dask.compute returned mixed collections out of order: results in the order [0, 2, 1, 3] instead of "
    "[0, 1, 2, 3]: position 1 (x.sum(), a DataFrame scalar) holds the result of position 2 (delayed neg(sum)); "
    "position 2 (delayed neg(sum)) holds the result of position 1 (x.sum(), a DataFrame scalar) — "
)
FINDING = "see matrices/findings.yaml guard mixed_compute_order"


@pytest.fixture(scope="module")
def previous_python() -> Path:
    """The python of the ``previous`` runtime (dask 2024.12.1), built once if no environment of it exists yet."""
    return runtime_python("previous")


# --------------------------------------------------------------------------------------------------
# This suite's dask: the bug is present


@pytest.mark.cluster(deadline=60)
def test_guard_fails_on_a_local_cluster_naming_the_finding() -> None:
    with in_process_client() as client, client.as_current(), pytest.raises(WorkloadCheckFailed) as failed:
        mixed_compute_order(**TINY)

    # The "Computing mixed collections" warning stayed inside the guard: it would be an error here (-W error).
    message = str(failed.value)
    assert message.startswith(OUT_OF_ORDER), message
    assert message.endswith(FINDING), message


def test_guard_fails_on_the_local_scheduler_too() -> None:
    with pytest.raises(WorkloadCheckFailed) as failed:
        mixed_compute_order(partitions=2, rows=10)

    assert str(failed.value).startswith(OUT_OF_ORDER)


def test_guard_passes_when_each_collection_is_computed_on_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    # The workaround (one compute per collection) gives every result its place: the guard's check accepts it.
    import dask

    compute = dask.compute

    def one_by_one(*collections: Any, **kwargs: Any) -> tuple[Any, ...]:
        return tuple(compute(collection, **kwargs)[0] for collection in collections)

    monkeypatch.setattr(dask, "compute", one_by_one)

    assert mixed_compute_order(partitions=3, rows=10) == {"results": 4.0, "mixed_collection_warnings": 0.0}


def test_guard_names_a_wrong_answer_that_is_not_a_reordering(monkeypatch: pytest.MonkeyPatch) -> None:
    import dask

    def off_by_one(*collections: Any, **kwargs: Any) -> tuple[Any, ...]:
        return (-10, 56, -55, 10)  # rows=10: expected -10, 55, -55, 10

    monkeypatch.setattr(dask, "compute", off_by_one)

    with pytest.raises(WorkloadCheckFailed) as failed:
        mixed_compute_order(partitions=2, rows=10)

    assert (
        str(failed.value)
        == "dask.compute of mixed collections returned [-10, 56, -55, 10], expected [-10, 55, -55, 10]"
    )


def test_guard_refuses_sizes_whose_answers_are_not_distinct() -> None:
    with pytest.raises(
        ValueError, match=r"^need partitions >= 1 and rows >= 2 \(distinct answers\), got partitions=2, rows=1$"
    ):
        mixed_compute_order(partitions=2, rows=1)


def test_reproducer_exits_1_and_shows_the_order() -> None:
    result = run_python(Path(sys.executable), str(REPRODUCER))

    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("dask 20"), result.stdout
    assert lines[1:] == ["expected: [-1, 55, -2, 10]", "got:      [-1, -2, 55, 10]"]


# --------------------------------------------------------------------------------------------------
# dask 2024.12.1: before the bug


@pytest.mark.environment
@pytest.mark.cluster(deadline=180)
def test_guard_passes_on_dask_2024_12_1(previous_python: Path) -> None:
    result = run_python(previous_python, "-c", guard_script("mixed_compute_order", TINY), timeout=SUBPROCESS_TIMEOUT_S)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        "dask 2024.12.1 distributed 2024.12.1",
        "passed: {'results': 4.0, 'mixed_collection_warnings': 0.0}",
    ], result.stdout + result.stderr


@pytest.mark.environment
def test_reproducer_exits_0_on_dask_2024_12_1(previous_python: Path) -> None:
    result = run_python(previous_python, str(REPRODUCER))

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[1:] == ["expected: [-1, 55, -2, 10]", "got:      [-1, 55, -2, 10]"]
