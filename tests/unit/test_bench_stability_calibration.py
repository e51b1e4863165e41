"""The stability calibration's judgement (tests/benchmarks/bench_stability_calibration.py): a failure class is
distributed's only with a standalone reproducer on record, an unlisted class is a harness false alarm, and a
documented pair's goal is met only when the buggy release shows its class every time and the fixed one never does."""

from __future__ import annotations

import datetime as dt

from benchmark_modules import load_benchmark

from framework.known_failures import KnownFailure

bench = load_benchmark("bench_stability_calibration")
HANG = 'liveness: LivenessError; stuck processing, queued; "N future(s) neither finished, erred nor were cancelled N s"'
LEAK = "teardown: TeardownError; threads wait in rejoin (distributed/threadpoolexecutor.py)"
ODD = "error: TimeoutError; raised at restart_workers (distributed/scheduler.py)"
PAIR = bench.Pair("distributed#1", "old", "new", ("hang",), ("inprocess", "process"))


def known(**reproducers: str | None) -> dict[str, KnownFailure]:
    signatures = {"hang": HANG, "leak": LEAK}
    return {
        name: KnownFailure(
            signature=signatures[name],
            link="https://github.com/dask/distributed/issues/1",
            reason="seen",
            expires=dt.date(2030, 1, 1),
            reproducer=reproducer,
        )
        for name, reproducer in reproducers.items()
    }


def batch(runtime: str, seed: int, signature: str | None, *more: str, tier: str = "process") -> object:
    """A batch as the store gives it: its first failure's class, and (keep-going) every failing example's."""
    outcome = "passed" if signature is None else "failed"
    signatures = (signature, *more) if signature else ()
    return bench.Batch(runtime, "1.0", tier, seed, outcome, 8, 60.0, 1.0, signature, None, signatures)


def cells(*batches: object) -> dict[tuple[str, str], list[object]]:
    found: dict[tuple[str, str], list[object]] = {}
    for one in batches:
        found.setdefault((one.runtime, one.tier), []).append(one)  # type: ignore[attr-defined]
    return found


def test_a_class_is_distributeds_only_with_a_reproducer_and_unlisted_is_a_false_alarm() -> None:
    entries = known(hang="workloads/reproducers/queued_secede_deadlock.py", leak=None)

    assert bench.resolution(HANG, entries).startswith("distributed's (hang): standalone reproducer")
    assert bench.resolution(LEAK, entries).startswith("known (leak), no standalone reproducer yet")
    assert bench.resolution(ODD, entries).startswith("UNEXPLAINED")
    # Listed without a reproducer is not shown to be distributed's: it counts among the unexplained.
    assert bench.unexplained_in(batch("new", 1, LEAK), entries)
    assert not bench.unexplained_in(batch("new", 1, HANG), entries)


def test_the_goal_is_met_when_the_buggy_release_always_shows_its_class_and_the_fixed_one_never() -> None:
    entries = known(hang="r.py", leak="r.py")
    found = cells(batch("old", 1, HANG), batch("old", 2, HANG), batch("new", 1, None), batch("new", 2, LEAK))

    line = bench.pair_line(PAIR, found, entries)

    assert "buggy old met it in 2/2 seeds" in line
    assert "passed 1/2, 1 failed with another known distributed class" in line
    assert line.endswith("GOAL MET")


def test_the_goal_is_missed_by_a_seed_the_buggy_release_passes_or_a_false_alarm_on_the_fixed_one() -> None:
    entries = known(hang="r.py")

    missed = bench.pair_line(PAIR, cells(batch("old", 1, HANG), batch("old", 2, None), batch("new", 1, None)), entries)
    alarm = bench.pair_line(PAIR, cells(batch("old", 1, HANG), batch("new", 1, ODD)), entries)
    shown = bench.pair_line(PAIR, cells(batch("old", 1, HANG), batch("new", 1, HANG)), entries)

    assert missed.endswith("GOAL NOT MET") and "1/2 seeds" in missed
    assert alarm.endswith("GOAL NOT MET") and "1 with an UNEXPLAINED class" in alarm
    assert shown.endswith("GOAL NOT MET") and "showed it in 1/1 batches" in shown


def test_a_pair_without_its_known_entry_or_without_batches_says_so() -> None:
    assert "has no entry 'hang'" in bench.pair_line(PAIR, cells(batch("old", 1, HANG)), {})
    assert "not measured" in bench.pair_line(PAIR, cells(batch("old", 1, HANG)), known(hang="r.py"))


def test_a_keep_going_batch_counts_every_class_it_met_not_only_the_first() -> None:
    entries = known(hang="r.py", leak="r.py")
    # the buggy release's batch met the leak first, then its own hang; the fixed one the leak, then an odd class
    found = cells(batch("old", 1, LEAK, HANG), batch("new", 1, LEAK, ODD))

    line = bench.pair_line(PAIR, found, entries)

    assert "buggy old met it in 1/1 seeds" in line
    assert "1 with an UNEXPLAINED class" in line and line.endswith("GOAL NOT MET")
    assert bench.unexplained_in(found[("new", "process")][0], entries)
    assert bench._count(found[("old", "process")], HANG) == "1/1"


def test_a_seed_meets_the_pairs_class_when_any_of_its_tiers_batches_does() -> None:
    entries = known(hang="r.py")
    found = cells(
        batch("old", 1, None, tier="inprocess"),
        batch("old", 1, HANG),  # seed 1: the process batch met it
        batch("old", 2, HANG, tier="inprocess"),
        batch("old", 2, None),  # seed 2: the in-process one did
        batch("new", 1, None, tier="inprocess"),
        batch("new", 1, None),
    )

    line = bench.pair_line(PAIR, found, entries)

    assert "(inprocess, process): buggy old met it in 2/2 seeds" in line
    assert "showed it in 0/2 batches, passed 2/2" in line and line.endswith("GOAL MET")
