"""The reproducers added for the stability calibration's classes (2026-12-07) run here and find their bug absent on
this suite's distributed (2026.8.0), each saying so — a script that errors (exit 2) or finds the bug back fails.
Where each is bad and good on real releases: docs/findings.md and matrices/known_failures.yaml. (Patching
distributed#8991's check out of 2026.8.0 does not bring two of them back to bad: later releases also stopped
asserting on a negative occupancy outside validation, which is what they show failing.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPRODUCERS = Path(__file__).resolve().parents[2] / "workloads" / "reproducers"
TIMEOUT_S = 120


def run(arguments: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *arguments], capture_output=True, text=True, timeout=TIMEOUT_S, check=False)


@pytest.mark.cluster(deadline=150)
@pytest.mark.parametrize(
    "script",
    [
        "long_running_two_slots",
        "task_without_priority",
        "memory_without_holder",
        "new_worker_stuck_init",
        "long_running_twice",
    ],
)
def test_good_on_this_release(script: str) -> None:
    done = run([str(REPRODUCERS / f"{script}.py")])
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    assert ": ok — " in done.stdout, done.stdout


@pytest.mark.cluster(deadline=150)
def test_a_restart_survives_a_nanny_that_runs_late_killing_its_worker_on_this_release() -> None:
    """restart_nanny_kill_deadline.py: bad on 2024.6.1 and 2026.3.0 (raised after 5.6 s), fixed in 2026.8.0 — this
    suite's distributed. A control restart without the stall must pass first (exit 2 otherwise)."""
    done = run([str(REPRODUCERS / "restart_nanny_kill_deadline.py")])
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    assert "control: Client.restart(timeout=120) without a stall finished in" in done.stdout, done.stdout
    assert ": ok — 3 restarts with a nanny stalled 2 s finished within their 120 s" in done.stdout, done.stdout
