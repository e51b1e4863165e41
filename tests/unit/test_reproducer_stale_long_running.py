"""workloads/reproducers/stale_long_running.py (distributed#8991): good on this suite's distributed (2026.8.0, which
ignores a long-running message from another worker or run), and bad when that check is patched out again — so the
script tells the two apart, not merely runs. (Measured on real releases: bad on 2022.10.2, 2024.6.0, 2024.6.1 and
2025.1.0, good on 2025.2.0 and 2026.3.0 — docs/findings.md.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "workloads" / "reproducers" / "stale_long_running.py"
TIMEOUT_S = 90

# The scheduler as before 2025.2.0: a long-running message counts for the task wherever and whichever run it is now.
WITHOUT_THE_FIX = f"""
import runpy, sys
import distributed.scheduler as scheduler

original = scheduler.Scheduler.handle_long_running

def accepts_stale(self, key, worker, run_id, compute_duration, stimulus_id):
    task = self.tasks.get(key)
    if task is not None and task.processing_on is not None:
        worker, run_id = task.processing_on.address, task.run_id
    return original(self, key, worker, run_id, compute_duration, stimulus_id)

scheduler.Scheduler.handle_long_running = accepts_stale
sys.argv = [{str(SCRIPT)!r}]
runpy.run_path({str(SCRIPT)!r}, run_name="__main__")
"""


def run(arguments: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *arguments], capture_output=True, text=True, timeout=TIMEOUT_S, check=False)


@pytest.mark.cluster(deadline=120)
def test_good_on_this_release() -> None:
    done = run([str(SCRIPT)])
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    assert "ok — the stale long-running message was ignored" in done.stdout


@pytest.mark.cluster(deadline=120)
def test_bad_with_the_fix_patched_out() -> None:
    done = run(["-c", WITHOUT_THE_FIX])
    assert done.returncode == 1, done.stdout + done.stderr[-2000:]
    assert "BUG PRESENT — worker A's stale long-running message for x was applied to worker B" in done.stdout
    assert "processing counts below zero" in done.stdout
