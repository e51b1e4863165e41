"""`nox -s compare` end to end, as a user types it: real interleaved runs, a Dask-config A/B, then stored results.

The calibration workload at size tiny (each worker holds 256 MiB and hashes 128 MiB) keeps each round to a few
seconds; its peak memory is steady to a fraction of a percent, so a 20 % memory knob must be found.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from nox_session import nox

from framework.metric_catalogue import METRICS
from framework.query import Results

pytestmark = pytest.mark.environment


def test_interleaved_aa_then_from_results(tmp_path: Path) -> None:
    results = tmp_path / "results"
    process = nox(
        "-s", "compare", "--", "--baseline=latest", "--candidate=latest", "--workload=calibration_shift",
        "--size=tiny", "--rounds=5", f"--results={results}", "--verbose",
    )  # fmt: skip
    assert process.returncode == 0, process.stdout[-4000:]
    assert "(A/A: the noise floor), 5 round(s)" in process.stdout
    assert "calibration_shift: peak memory" in process.stdout
    # rounds alternate who goes first: A B | B A | A B | B A | A B
    order = [line.split(": ", 1)[1] for line in process.stdout.splitlines() if line.startswith("round ")]
    assert [side.split()[0] for side in order] == ["baseline", "candidate", "candidate", "baseline"] * 2 + [
        "baseline",
        "candidate",
    ]
    with Results(results) as store:
        _, rows = store.sql("SELECT metric, verdict, n_baseline, n_candidate FROM comparisons ORDER BY metric")
        _, runs = store.sql("SELECT count(DISTINCT run_id), count(*) FROM cases WHERE workload = 'calibration_shift'")
    assert [row[0] for row in rows] == sorted(METRICS)  # every metric of the catalogue
    assert all(row[2:] == (5, 5) for row in rows)
    assert runs == [(2, 10)]  # one run id per side, one measured repeat per round

    again = nox(
        "-s", "compare", "--", "--baseline=latest", "--candidate=latest", "--from-results", f"--results={results}"
    )
    assert again.returncode == 0, again.stdout[-4000:]
    assert "(from-results)" in again.stdout


def test_a_dask_config_ab_sequentially_and_bad_input(tmp_path: Path) -> None:
    results = tmp_path / "results"
    process = nox(
        "-s", "compare", "--", "--baseline=latest", "--candidate=latest", "--workload=calibration_shift",
        "--size=tiny", "--candidate-config=distributed.scheduler.worker-saturation=2.0", "--until-decided",
        "--budget=2", "--metric=peak_memory", f"--results={results}",
    )  # fmt: skip
    assert process.returncode == 0, process.stdout[-4000:]
    assert "latest+distributed.scheduler.worker-saturation=2.0 vs latest" in process.stdout
    assert "always-valid p" in process.stdout
    with Results(results) as store:
        _, [(mode, conclusive)] = store.sql("SELECT mode, conclusive FROM comparisons")
    assert (mode, conclusive) == ("sequential", False)  # 2 pairs can never decide at alpha 0.01

    bad = nox("-s", "compare", "--", "--baseline=stabel", "--candidate=latest", f"--results={results}")
    assert bad.returncode != 0
    assert "unknown runtime 'stabel' — did you mean 'stable'?" in bad.stdout
