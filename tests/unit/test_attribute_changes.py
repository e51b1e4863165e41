"""The changes an attribution searches over: lockstep families move as one change, added and removed packages are
changes too, and a lock with some changes applied holds exactly the baseline plus those moves."""

from __future__ import annotations

from framework.attribute.changes import Change, applied, lock_diff, pins

BASELINE = {"dask": "2026.3.0", "distributed": "2026.3.0", "pandas": "2.2.3", "numpy": "2.3.5", "partd": "1.4.2"}
CANDIDATE = {"dask": "2026.8.0", "distributed": "2026.8.0", "pandas": "3.0.2", "numpy": "2.3.5", "toolz": "1.1.0"}


def test_families_move_as_one_change_and_every_other_package_alone() -> None:
    changes = lock_diff(BASELINE, CANDIDATE, [["dask", "distributed"]])

    assert [change.name for change in changes] == ["dask+distributed", "pandas", "partd", "toolz"]
    assert changes[0].moves == (("dask", "2026.3.0", "2026.8.0"), ("distributed", "2026.3.0", "2026.8.0"))
    assert changes[2].line() == "− partd 1.4.2" and changes[3].line() == "+ toolz 1.1.0"
    assert changes[1].line() == "pandas 2.2.3 → 3.0.2"


def test_a_family_whose_members_did_not_all_move_is_named_by_those_that_did() -> None:
    candidate = {**BASELINE, "distributed": "2026.3.1"}
    changes = lock_diff(BASELINE, candidate, [["dask", "distributed"], ["Dask_Cuda", "dask-cudf"]])
    assert changes == [Change("distributed", (("distributed", "2026.3.0", "2026.3.1"),))]
    assert lock_diff(BASELINE, BASELINE, [["dask", "distributed"]]) == []


def test_applying_changes_gives_the_baseline_plus_exactly_their_moves() -> None:
    changes = {change.name: change for change in lock_diff(BASELINE, CANDIDATE, [["dask", "distributed"]])}

    assert applied(BASELINE, []) == BASELINE
    assert applied(BASELINE, changes.values()) == CANDIDATE
    partial = applied(BASELINE, [changes["pandas"], changes["partd"]])
    assert partial == {"dask": "2026.3.0", "distributed": "2026.3.0", "pandas": "3.0.2", "numpy": "2.3.5"}
    assert pins(partial) == ["dask==2026.3.0", "distributed==2026.3.0", "numpy==2.3.5", "pandas==3.0.2"]
