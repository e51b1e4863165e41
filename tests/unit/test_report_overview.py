"""framework/report/overview.py and changes.py: each runtime's go/no-go state and its grid of changes, without a
store or a browser (tests/integration/test_report_overview_browser.py renders them)."""

from __future__ import annotations

import datetime as dt
import json
import re
from html import unescape
from pathlib import Path
from typing import Any

import pytest

from framework.criteria import Criteria
from framework.metric_catalogue import METRICS
from framework.report.changes import change_grid
from framework.report.environment import EnvironmentRecords
from framework.report.overview import Judging, runtime_states
from framework.stats import compare_samples

DAY0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
CRITERIA = Criteria.model_validate(
    {
        "baseline": "stable",
        "must_pass": ["array_mean_var"],
        "metrics": {"workloads": ["array_mean_var"], "repeat": 7, "max_regression": {"wall": "25%"}},
    }
)
JUDGE = Judging(CRITERIA)
LOCKS = {"a" * 16: "dask==2026.1.0", "b" * 16: "dask==2026.1.0", "c" * 16: "dask==2026.2.0"}
OVERLOADED_REASON = "array_mean_var: wall time +40 % [measured overloaded: rests on 0 baseline and 1 candidate run(s)]"


def _at(day: float) -> dt.datetime:
    return DAY0 + dt.timedelta(days=day)


def _run(runtime: str, day: float, env_hash: str = "a" * 16, **counts: Any) -> dict[str, Any]:
    line = {
        "run_id": f"run-{runtime}-{day}",
        "runtime": runtime,
        "hardware": "local",
        "run_started_at": _at(day),
        "cases": 2,
        "error": 0,
        "repeats": 6,
        "overloaded": 0,
        "env_hash": env_hash,
        "runtime_hash": "r" * 16,
    }
    return line | counts  # fmt: skip


def _verdict(runtime: str, day: float, blessed: bool, checks: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    verdict = {
        "runtime": runtime,
        "decided_at": _at(day),
        "criteria": "default",
        "baseline": "stable",
        "hardware": "local",
        "blessed": blessed,
        "env_hash": "a" * 16,
        "runtime_hash": "r" * 16,
        "reasons": [c["reason"] for c in checks if not c["passed"]],
        "checks": checks,
        "criteria_spec": json.dumps(CRITERIA.model_dump(mode="json")),
        "export_path": None,
    }
    return verdict | extra  # fmt: skip


def _check(criterion: str, subject: str, passed: bool, reason: str = "") -> dict[str, Any]:
    return {"criterion": criterion, "subject": subject, "passed": passed, "reason": reason or subject, "evidence": []}


def _health(runtime: str, day: float, cause: str | None = None, env_hash: str = "a" * 16) -> dict[str, Any]:
    return {"run_id": f"run-{runtime}-{day}", "checked_at": _at(day), "runtime": runtime, "env_hash": env_hash,
            "usable": cause is None, "cause": cause, "problems": 1 if cause else 0, "seconds": 1.0, "note": None,
            "dask_version": "2026.11.0", "distributed_version": "2021.4.1", "steps": []}  # fmt: skip


def _states(runs, verdicts, checks=(), latest=(), results_dir=Path("/store/results")):
    runs = sorted(runs, key=lambda run: run["run_started_at"], reverse=True)
    records = EnvironmentRecords(sorted(checks, key=lambda c: c["checked_at"], reverse=True), [], runs)
    found = runtime_states(runs=runs, verdicts=verdicts, records=records, latest=list(latest), locks=LOCKS,
                           judge=JUDGE, results_dir=results_dir, results_option=None)  # fmt: skip
    return {state.runtime: state for state in found}


def _words(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", "", html)).split())


def test_each_state_says_its_evidence_in_words(tmp_path):
    export = tmp_path / "blessed" / "previous-2026-01-05.txt"
    export.parent.mkdir()
    export.write_text("dask==2026.1.0\n")
    blessed = [_check("must_pass", "array_mean_var", True), _check("metric", "array_mean_var wall", True),
               _check("soak", "leak_array_mean_var unmanaged", True),
               _check("health", "array_mean_var scheduler_loop_max", True)]  # fmt: skip
    failed = [_check("must_pass", "array_mean_var", True),
              _check("metric", "array_mean_var wall", False, "array_mean_var: wall time +40 % vs stable"),
              _check("soak", "leak_array_mean_var unmanaged", False, "leak_array_mean_var: unmanaged memory +3 MiB"),
              _check("health", "array_mean_var worker_gc", False, "array_mean_var: worker GC 2 s")]  # fmt: skip
    states = _states(
        [_run("previous", 1), _run("latest", 1), _run("stable", 1), _run("nightly", 1)],
        [
            _verdict("previous", 2, True, blessed, export_path="blessed/previous-2026-01-05.txt"),
            _verdict("latest", 2, False, failed),
        ],
        [_health("nightly", 1, cause="dask 2026.11.0 and distributed 2021.4.1 disagree at run time")],
        results_dir=tmp_path,
    )
    assert {name: state.state for name, state in states.items()} == {
        "latest": "NOT BLESSED", "nightly": "UNUSABLE", "previous": "BLESSED", "stable": "NOT JUDGED",
    }  # fmt: skip
    line = _words(states["previous"].line)
    assert "2026-01-03 00:00 UTC, against stable on local by criteria default: 4 of 4 checks passed" in line
    assert "1 must-pass case(s) passed every repeat; 1 metric comparison(s) within allowance (wall time ≤ 25 %)" in line
    assert "1 soak slope(s) within their limits; 1 health figure(s) within their limits" in line
    assert f"Install: uv pip sync {export}" in line
    assert "3 of 4 checks failed — wall time of array_mean_var" in _words(states["latest"].line)
    assert "memory growth of leak_array_mean_var (unmanaged)" in _words(states["latest"].line)
    assert "workers' GC pauses of array_mean_var (limit)" in _words(states["latest"].line)
    assert "array_mean_var: wall time +40 % vs stable" in _words(states["latest"].line)  # folded, with its evidence
    nightly = _words(states["nightly"].line)
    assert nightly.startswith("nightly is UNUSABLE: dask 2026.11.0 and distributed 2021.4.1 disagree at run time")
    # the baseline is judged against another runtime: bless refuses --baseline equal to --runtime
    assert "nox -s bless -- --runtime=stable --baseline=latest judges it" in _words(states["stable"].line)
    assert not any(state.overloaded or state.stale for state in states.values())


def test_a_runtime_never_judged_gets_the_command_with_its_store():
    states = _states([_run("latest", 1)], [])
    records = EnvironmentRecords([], [], [])
    option = runtime_states(runs=[_run("latest", 1)], verdicts=[], records=records, latest=[], locks={}, judge=JUDGE,
                            results_option="s3://bucket/results")  # fmt: skip
    assert "nox -s bless -- --runtime=latest judges it" in _words(states["latest"].line)
    assert "nox -s bless -- --runtime=latest --results=s3://bucket/results judges it" in _words(option[0].line)


def test_only_declared_runtimes_and_those_with_a_verdict_get_a_line():
    runs = [_run("latest", 1), _run("bisect-dask-2024.12.1", 1), _run("removed", 1)]
    verdicts = [_verdict("removed", 2, False, [_check("must_pass", "array_mean_var", False, "failed")])]
    records = EnvironmentRecords([], [], runs)
    judge = Judging(CRITERIA, declared=("latest", "stable"))
    found = runtime_states(runs=runs, verdicts=verdicts, records=records, latest=[], locks={}, judge=judge)
    assert [(state.runtime, state.state) for state in found] == [("latest", "NOT JUDGED"), ("removed", "NOT BLESSED")]


@pytest.mark.parametrize(
    ("later", "stale"),
    [
        ({"env_hash": "c" * 16}, "it resolves other packages since"),  # dask 2026.1.0 → 2026.2.0
        ({"env_hash": "b" * 16}, None),  # rebuilt with an identical lock: the verdict still holds
        ({"runtime_hash": "q" * 16}, "the runtime's declaration changed since"),
    ],
)
def test_a_verdict_older_than_a_run_in_other_packages_is_stale(later, stale):
    verdict = _verdict("latest", 2, True, [_check("must_pass", "array_mean_var", True)])
    states = _states([_run("latest", 1), _run("latest", 3, **later)], [verdict])
    state = states["latest"]
    if stale is None:
        assert state.state == "BLESSED" and not state.stale
        return
    assert state.state == "NOT JUDGED" and state.stale
    line = _words(state.line)
    assert line.startswith(f"stale verdict: BLESSED on 2026-01-03 00:00 UTC, but {stale}")
    assert line.endswith("nox -s bless -- --runtime=latest judges it again")


def test_a_health_check_after_the_verdict_in_other_packages_makes_it_stale_too():
    verdict = _verdict("latest", 2, False, [_check("must_pass", "array_mean_var", False, "failed")])
    states = _states([_run("latest", 1)], [verdict], [_health("latest", 4, env_hash="c" * 16)])
    assert states["latest"].state == "NOT JUDGED"
    assert "stale verdict: NOT BLESSED" in _words(states["latest"].line)


def test_unusable_from_a_run_where_every_case_errored_at_setup_unless_checked_usable_since():
    broken = _run("latest", 3, error=2, repeats=0)
    latest = [{"run_id": broken["run_id"], "error": "latest is UNUSABLE: the scheduler did not start\ntraceback"}]
    state = _states([_run("latest", 1), broken], [], latest=latest)["latest"]
    assert state.state == "UNUSABLE"
    assert _words(state.line) == (
        f"latest is UNUSABLE: every case of run {broken['run_id']} (2026-01-04 00:00 UTC) errored at setup:"
        " latest is UNUSABLE: the scheduler did not start"
    )
    assert _states([broken], [], [_health("latest", 4)], latest=latest)["latest"].state == "NOT JUDGED"
    # a verdict that could not run it (bless stores the health check's cause as its 'usable' check)
    verdict = _verdict("latest", 2, False, [_check("usable", "latest", False, "latest is UNUSABLE: import failed")])
    state = _states([_run("latest", 1)], [verdict])["latest"]
    assert state.state == "UNUSABLE" and _words(state.line).startswith("latest is UNUSABLE: import failed")
    # until it runs in other packages: then that verdict is stale
    later = _states([_run("latest", 1), _run("latest", 3, env_hash="c" * 16)], [verdict])["latest"]
    assert later.state == "NOT JUDGED" and later.stale


def test_results_measured_while_overloaded_are_said_on_the_line():
    verdict = _verdict("latest", 2, False, [_check("metric", "array_mean_var wall", False, OVERLOADED_REASON)])
    state = _states([_run("latest", 1, overloaded=4)], [verdict])["latest"]
    assert state.state == "NOT BLESSED"
    assert _words(state.overloaded) == (
        "! its verdict rests on 1 check(s) measured while the machine was overloaded; its newest run run-latest-1"
        " measured 4 repeat(s) while the machine was overloaded (load > cores)"
    )


def _comparison(candidate: str, metric: str, shift: float, env_hash: str = "a" * 16) -> dict[str, Any]:
    spec = METRICS[metric]
    base = [0.3 * (1 + 0.004 * i) for i in range(7)]
    cand = [value * shift for value in base]
    result = compare_samples(base, cand, spec)  # as nox -s compare judges: the catalogue's 5 % for wall
    return {"comparison_id": f"cmp-{candidate}", "created_at": _at(1), "mode": "interleaved", "baseline": "stable",
            "candidate": candidate, "candidate_env_hash": env_hash, "hardware": "local", "workload": "array_mean_var",
            "case_id": "array_mean_var", "size": "tiny", "metric": metric, "n_baseline": 7, "n_candidate": 7,
            "missing": None, "detail": json.dumps({"baseline": base, "candidate": cand}),
            **result.record_fields()}  # fmt: skip


def _cells(html: str) -> list[tuple[str, str, str]]:
    found = re.findall(r'<td class="change ([^"]+)" title="([^"]*)">([^<]*)</td>', html)
    return [(css, unescape(title), unescape(shown)) for css, title, shown in found]


def test_the_grid_colours_a_change_only_beyond_the_criteria_allowance():
    runs = [_run("latest", 1), _run("older", 1), _run("stable", 1)]
    states = list(_states(runs, []).values())
    rows = [_comparison("latest", "wall", 1.10), _comparison("older", "wall", 1.40, env_hash="z" * 16)]
    (latest, older) = _cells(change_grid(states, rows, LOCKS))
    # +10 % is significant and beyond the catalogue's 5 %, yet within the criteria's 25 %: unchanged, not coloured
    assert rows[0]["verdict"] == "regressed"
    assert latest[0] == "unchanged" and latest[2] == "≈"
    assert latest[1].startswith("array_mean_var: wall time +10 % (")
    assert "p < 0.001, n = 7 vs 7 — unchanged" in latest[1]
    assert "Allowed change ≤ 25 % (criteria default); minimum detectable effect (MDE) ± " in latest[1]
    # +40 % is beyond it: coloured, and faded as measured in an environment that is not the runtime's newest
    assert older[0] == "regressed stale" and older[2] == "+40 %"
    assert "measured in environment zzzzzzzzzzzzzzzz, not the runtime's newest" in older[1]
    assert "stable: the baseline of criteria default" in _words(change_grid(states, rows, LOCKS))


def test_an_older_comparison_record_without_its_test_settings_still_builds(tmp_path):
    """Records from before alpha and min_effect were stored: the site builds, the cell says it could not tell."""
    from conftest import _case_row

    from framework.records import write_record
    from framework.report import build_site
    from framework.results import ResultsStore, case_table, write_atomic

    at = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    rows = case_table([_case_row(run_started_at=at, started_at=at, params={})])
    write_atomic(rows, ResultsStore(tmp_path / "r").cases_dir / "20260101T000000Z-aaaaaa__latest__local.parquet")
    record = {"comparison_id": "c1", "created_at": at, "mode": "interleaved", "baseline": "stable",
              "candidate": "latest", "hardware": "local", "workload": "groupby_agg", "case_id": "groupby_agg[by=id]",
              "size": "tiny", "metric": "wall", "ratio": 5.39, "ci_low": 0.9, "ci_high": 9.0, "p_value": 0.2,
              "verdict": "unchanged", "conclusive": False, "sentence": "x"}  # fmt: skip
    write_record(tmp_path / "r", "comparisons", "c1", [record])
    summary = build_site(tmp_path / "r", tmp_path / "site")
    page = (summary.out_dir / "index.html").read_text()
    assert "cannot reach significance" in unescape(page)


def test_a_blessed_runtimes_failure_the_baseline_shares_is_said_as_shared_not_as_passed():
    shared = "stability profile ci on latest: fuzz[inprocess] failed (…); known, shared, not a regression: …"
    checks = [_check("stability", "profile ci", True), _check("stability", "profile ci fuzz[inprocess]", True, shared)]
    states = _states([_run("latest", 1)], [_verdict("latest", 2, True, checks)])

    line = _words(states["latest"].line)

    assert "stability profile ci passed" in line
    assert "stability profile ci fuzz[inprocess] failed as the baseline does (shared, not a regression)" in line
