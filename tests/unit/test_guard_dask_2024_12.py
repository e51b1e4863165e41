"""The guards of two dask 2024.12.1 bugs (workloads/guards/) and their standalone reproducers (workloads/reproducers/):
each passes — exit 0 — on this suite's dask, where both bugs are fixed, and fails — WorkloadCheckFailed naming the
finding, exit 1 — on dask 2024.12.1, the ``previous`` runtime, run in that runtime's environment."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from guard_testing import guard_script, run_python, runtime_python
from workload_testing import in_process_client

from framework.in_runtime.checks import WorkloadCheckFailed
from workloads.guards.groupby_dropna_keys import groupby_dropna_keys
from workloads.guards.persisted_array_parts import persisted_array_parts

ROOT = Path(__file__).resolve().parents[2]
REPRODUCERS = ROOT / "workloads" / "reproducers"
# The tiny sizes proposed for workloads/guards.yaml.
GUARDS: dict[str, tuple[Any, dict[str, int]]] = {
    "groupby_dropna_keys": (groupby_dropna_keys, {"partitions": 4, "rows": 1000}),
    "persisted_array_parts": (persisted_array_parts, {"rows": 1000, "chunk_rows": 250}),
}
# What each reproducer prints when the bug is present, besides exiting 1.
BUG_OUTPUT = {
    "groupby_dropna_keys": "dask.compute(answer): FutureCancelledError: ('decomposablegroupbyaggregation-tree-",
    "persisted_array_parts": "got:      ['tuple', 'tuple', 'tuple']",
}
SUBPROCESS_TIMEOUT_S = 120  # cold imports of dask, pandas and distributed in a busy machine


@pytest.fixture(scope="module")
def previous_python() -> Path:
    """The python of the ``previous`` runtime (dask 2024.12.1), built once if no environment of it exists yet."""
    return runtime_python("previous")


# --------------------------------------------------------------------------------------------------
# This suite's dask: both bugs fixed


@pytest.mark.cluster(deadline=60)
def test_groupby_dropna_keys_passes_where_the_bug_is_fixed() -> None:
    function, params = GUARDS["groupby_dropna_keys"]

    with in_process_client() as client, client.as_current():
        extra = function(**params)

    assert extra == {"rows": 1000.0, "groups": 4.0}  # k0, k1, k2 and the null key


@pytest.mark.cluster(deadline=60)
def test_persisted_array_parts_passes_where_the_bug_is_fixed() -> None:
    function, params = GUARDS["persisted_array_parts"]

    with in_process_client() as client, client.as_current():
        extra = function(**params)

    assert extra == {"rows": 1000.0, "parts": 4.0}


def test_groupby_dropna_keys_runs_on_the_local_scheduler_too() -> None:
    assert groupby_dropna_keys(partitions=3, rows=10) == {"rows": 10.0, "groups": 4.0}


def test_persisted_array_parts_refuses_to_run_without_a_client() -> None:
    # Without a client persisting holds numpy arrays: the guard would pass whatever the runtime, so it must not run.
    with pytest.raises(ValueError, match=r"^persisted_array_parts needs a distributed Client"):
        persisted_array_parts(rows=10, chunk_rows=5)


def _cancelled_by_compute(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Make ``dask.compute`` fail as a scheduler that cancels ``(name-<another token>, 0)``."""
    import dask
    from distributed.client import FutureCancelledError

    def cancelled(*collections: Any, **kwargs: Any) -> Any:
        raise FutureCancelledError((f"{name}-0123456789abcdef0123456789abcdef", 0), "unknown")

    monkeypatch.setattr(dask, "compute", cancelled)


def test_groupby_dropna_keys_names_the_finding_when_its_output_key_is_cancelled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _cancelled_by_compute(monkeypatch, "decomposablegroupbyaggregation-tree")

    with pytest.raises(WorkloadCheckFailed) as failed:
        groupby_dropna_keys(partitions=2, rows=10)

    message = str(failed.value)
    assert message.startswith("dask.compute(groupby('key', dropna=False).agg(...)) lost its output key")
    assert message.endswith(
        "(FutureCancelledError): dask 2024.12.1 bug, see matrices/findings.yaml guard groupby_dropna_keys"
    )


def test_groupby_dropna_keys_lets_another_cancelled_key_through(monkeypatch: pytest.MonkeyPatch) -> None:
    from distributed.client import FutureCancelledError

    _cancelled_by_compute(monkeypatch, "from-map-keyed")

    with pytest.raises(FutureCancelledError):
        groupby_dropna_keys(partitions=2, rows=10)


def test_groupby_dropna_keys_checks_the_sums(monkeypatch: pytest.MonkeyPatch) -> None:
    import dask

    compute = dask.compute

    def one_more(*collections: Any, **kwargs: Any) -> Any:
        (frame,) = compute(*collections, **kwargs)
        return (frame.assign(value=frame["value"] + 1),)

    monkeypatch.setattr(dask, "compute", one_more)

    with pytest.raises(WorkloadCheckFailed, match=r"^groupby\('key', dropna=False\) sums of value: got \{"):
        groupby_dropna_keys(partitions=2, rows=10)


@pytest.mark.cluster(deadline=60)
@pytest.mark.parametrize("name", sorted(GUARDS))
def test_reproducer_exits_0_where_the_bug_is_fixed(name: str) -> None:
    result = run_python(Path(sys.executable), str(REPRODUCERS / f"{name}.py"))

    assert result.returncode == 0, result.stdout + result.stderr
    assert BUG_OUTPUT[name] not in result.stdout


# --------------------------------------------------------------------------------------------------
# dask 2024.12.1: both bugs present


@pytest.mark.environment
@pytest.mark.cluster(deadline=180)
@pytest.mark.parametrize("name", sorted(GUARDS))
def test_guard_fails_on_dask_2024_12_1(previous_python: Path, name: str) -> None:
    _, params = GUARDS[name]

    result = run_python(previous_python, "-c", guard_script(name, params))

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("dask 2024.12.1 distributed 2024.12.1\n"), result.stdout
    outcome = result.stdout.splitlines()[-1]
    assert outcome.startswith("WorkloadCheckFailed: "), result.stdout + result.stderr
    assert outcome.endswith(f": dask 2024.12.1 bug, see matrices/findings.yaml guard {name}")


@pytest.mark.environment
@pytest.mark.cluster(deadline=180)
@pytest.mark.parametrize("name", sorted(GUARDS))
def test_reproducer_exits_1_on_dask_2024_12_1(previous_python: Path, name: str) -> None:
    result = run_python(previous_python, str(REPRODUCERS / f"{name}.py"))

    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.startswith("dask 2024.12.1, distributed 2024.12.1, "), result.stdout
    assert BUG_OUTPUT[name] in result.stdout
