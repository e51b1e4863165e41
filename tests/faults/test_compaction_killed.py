"""Nothing lost when compaction is SIGKILLed: ``python -m framework.cli compact`` killed at random points (before
it starts, while it merges, while it swaps files, after), each time every query answers exactly as before, and a
last compaction finishes the job. Seeded: the same points every run. About 20 s.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path

from framework.results import compacted_files
from tests.unit.test_compaction import _everything, _write_runs

ROOT = Path(__file__).resolve().parents[2]


def compact(results: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "framework.cli", "compact", f"--results={results}"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_compaction_killed_at_random_points_loses_and_doubles_no_row(tmp_path: Path) -> None:
    results = tmp_path / "results"
    # Three months of runs, then more after each kill: every attempt has something to merge.
    _write_runs(results, [(month, day) for month in (1, 2, 3) for day in range(1, 16)])
    before = _everything(results)
    points = random.Random(20261206)
    first = 1000
    for attempt in range(8):
        process = compact(results)
        time.sleep(points.uniform(0.2, 2.5))  # the interpreter starts in ≈ 1 s, the merge takes about as long
        process.kill()
        process.communicate(timeout=30)
        assert _everything(results) == before, f"attempt {attempt}: rows changed by a compaction killed mid-way"
        _write_runs(results, [(attempt % 3 + 1, 20 + attempt)], first=first + attempt)
        before = _everything(results)

    finished = compact(results)
    output, _ = finished.communicate(timeout=120)
    assert finished.returncode == 0, output
    assert _everything(results) == before
    assert compacted_files(results / "cases")
    leftovers = [p.name for p in (results / "cases").iterdir() if p.name.startswith(".")]
    assert leftovers == [], leftovers
