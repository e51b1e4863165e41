"""`nox -s bisect` end to end, as a user types it: releases listed from PyPI, an environment per release tried.

Two real findings, short ranges so each takes a few minutes:

* peak memory: dask 2025.2.0 holds ~20 MiB (+5 %) more at peak than 2025.1.0 in `groupby_agg[by=name]` at size
  tiny, with every other package pinned as in the `stable` runtime's environment (measured: 342 → 361 MiB);
* stability: the committed regression case of distributed#7223 hangs on 2022.10.1 and not on 2022.10.2 (the
  release of its fix, PR 7224), with each release's ecosystem as of its day (`--hold=spec`).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from nox_session import nox

from framework.query import Results

pytestmark = pytest.mark.environment

REGRESSION_7223 = "20261126T144205Z-780984-dask-2022.10.1-shrunk"  # workloads/regressions/


def test_bisect_names_the_release_that_raised_peak_memory_and_stores_the_ab(tmp_path: Path) -> None:
    results = tmp_path / "results"
    process = nox(
        "-s", "bisect", "--", "--package=dask", "--good=2025.1.0", "--bad=2025.2.0", "--runtime=stable",
        "--workload=groupby_agg[by=name]", "--metric=peak_memory", "--repeat=5", f"--results={results}",
    )  # fmt: skip
    assert process.returncode == 0, process.stdout[-4000:]
    assert "first bad release: dask 2025.2.0 (last good 2025.1.0)" in process.stdout
    assert "evidence: 2025.1.0 → 2025.2.0: peak memory +" in process.stdout
    with Results(results) as store:
        _, comparisons = store.sql(
            "SELECT mode, baseline, candidate, metric, verdict, n_baseline, n_candidate,"
            " json_extract_string(candidate_versions, '$.distributed') FROM comparisons"
        )
        _, runs = store.sql(
            "SELECT runtime, dask_version, count(*) FROM cases WHERE case_id = 'groupby_agg[by=name]'"
            " GROUP BY ALL ORDER BY runtime"
        )
    assert comparisons == [
        ("bisect", "bisect-dask-2025.1.0", "bisect-dask-2025.2.0", "peak_memory", "regressed", 5, 5, "2025.2.0")
    ]
    # the ends measured interleaved, one repeat per round, each in its release's environment, in the store
    assert runs == [("bisect-dask-2025.1.0", "2025.1.0", 5), ("bisect-dask-2025.2.0", "2025.2.0", 5)]


def test_bisect_finds_the_release_that_fixed_a_recorded_hang(tmp_path: Path) -> None:
    results = tmp_path / "results"
    process = nox(
        "-s", "bisect", "--", "--package=distributed", "--good=2022.11.0", "--bad=2022.10.1",
        f"--failure={REGRESSION_7223}", "--hold=spec", "--times=8", f"--results={results}",
    )  # fmt: skip
    assert process.returncode == 0, process.stdout[-4000:]
    assert "first fixed release: distributed 2022.10.2 (last bad 2022.10.1)" in process.stdout
    assert "2022.10.2: reproduced 0/8; 2022.10.1: reproduced 1/" in process.stdout  # stops at the first hit
    # what 8 clean replays of the fixed release rule out, said rather than implied
    assert "caution: 2022.10.2 passed 8 replay(s): that rules out only a failure reproducing in more than 31%" in (
        process.stdout
    )
    with Results(results) as store:
        _, replays = store.sql(
            "SELECT runtime, distributed_version, count(*) FILTER (WHERE outcome = 'passed') FROM rows"
            " WHERE workload = 'stability.replay' GROUP BY ALL ORDER BY runtime"
        )
    assert [(runtime, version) for runtime, version, _ in replays] == [
        ("bisect-distributed-2022.10.1", "2022.10.1"),
        ("bisect-distributed-2022.10.2", "2022.10.2"),
        ("bisect-distributed-2022.11.0", "2022.11.0"),
    ]


def test_a_release_that_does_not_exist_is_one_line_naming_its_neighbours(tmp_path: Path) -> None:
    process = nox(
        "-s", "bisect", "--", "--package=dask", "--good=2025.13.0", "--bad=2025.2.0", "--workload=array_mean_var",
        "--metric=peak_memory", f"--results={tmp_path}",
    )  # fmt: skip
    assert process.returncode != 0
    assert "--good=2025.13.0: dask has no release 2025.13.0 — releases around it: " in process.stdout
    assert "Traceback" not in process.stdout
