"""framework/failure_counts.py: after a stability run, its failures counted by signature over the whole store."""

from __future__ import annotations

import datetime as dt

from failure_records import LEAK_SIGNATURE, leak_failure

from framework.config import ROOT
from framework.failure_counts import run_signature_lines, signature_lines, stored_failures
from framework.known_failures import load_known_failures

LEAKS = [
    leak_failure(env=env, python="3.11", line=141, pid=pid, via_worker_client=False)
    for env, pid in (("a", 1), ("b", 2))
]


def fuzz_row(case_row, run_id: str, runtime: str, started: str, error: tuple[str, str] | None, failure_id: str):
    fields = {"outcome": "passed"}
    if error is not None:
        fields = {"outcome": "failed", "error": error[0], "traceback": error[1], "failure_id": failure_id}
    return case_row(
        run_id=run_id, runtime=runtime, workload="stability.fuzz", case_id="fuzz[inprocess]", size=None,
        hardware="chaos", started_at=dt.datetime.fromisoformat(started), **fields,
    )  # fmt: skip


def test_a_runs_failures_are_counted_over_the_store_with_the_known_entry_and_a_replay_command(
    case_row, write_run, results_dir
) -> None:
    write_run([fuzz_row(case_row, "old", "stable", "2026-12-05T09:00:00+00:00", LEAKS[0], "F-old")])
    write_run([fuzz_row(case_row, "other", "latest", "2026-12-05T10:00:00+00:00", ("teardown: boom", ""), "F-x")])
    write_run([fuzz_row(case_row, "new", "latest", "2026-12-06T10:00:00+00:00", LEAKS[1], "F-new")])
    write_run([fuzz_row(case_row, "quiet", "latest", "2026-12-06T11:00:00+00:00", None, "")])
    known = load_known_failures(ROOT)

    lines = run_signature_lines(results_dir, "new", known)

    assert lines == [
        "failures by signature (counted over every stability failure in the store):",
        f"  2× since 2026-12-05 09:00 on latest, stable — {LEAK_SIGNATURE} [known failure rejoin_thread_leak:"
        f" {known['rejoin_thread_leak'].reason} (docs/findings.md#the-thread-leak-that-blocked-latest)]"
        " — e.g. F-new: nox -s stability -- --replay=F-new",
    ]
    assert run_signature_lines(results_dir, "quiet", known) == []
    expired = signature_lines(stored_failures(results_dir), "new", known, dt.date(2027, 3, 7))
    assert "EXPIRED on 2027-03-06" in expired[1]
    assert expired[2].startswith("    ! matrices/known_failures.yaml: known_failures.rejoin_thread_leak expired")
