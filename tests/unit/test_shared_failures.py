"""Shared and known failures in ``bless`` (framework/shared_failures.py, framework/known_failures.py).

The issue's scenario: `bless` of latest against stable, whose fuzzer found the `rejoin()` thread leak on both — in a
store holding stability rows and failure records of both runtimes with the same signature. Then the other paths: the
baseline not checked, checked by bless's own replay, shared failures the criteria hold, a must-pass case failing the
same way on both, an expired or malformed known-failures entry. Fake producers (tests/unit/test_blessing.py's Lab).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import test_blessing
from failure_records import LEAK_SIGNATURE, leak_failure, recorded

from framework.blessing import bless, decide, report_text
from framework.cli import _failure
from framework.config import ROOT, Catalog
from framework.criteria import Criteria
from framework.evidence import BlessOptions, CaseOutcome, Evidence, Runners
from framework.failure_signatures import of_row
from framework.in_runtime.errors import ConfigError
from framework.known_failures import load_known_failures
from framework.shared_failures import FailureContext

CRITERIA = """\
criteria:
  test:
    baseline: stable
    hardware: local
    stability: {{profile: ci, tiers: [inprocess]}}
    max_age: 2d
{extra}"""
LEAK_LATEST = leak_failure(env="latest-a", python="3.11", line=141, pid=17535, via_worker_client=False)
LEAK_STABLE = leak_failure(env="stable-b", python="3.11", line=142, pid=90210, via_worker_client=True)


# test_blessing's fixtures: the catalogue read once, and every project copy reading it from there
catalog, catalog_read_once = test_blessing.catalog, test_blessing.catalog_read_once


class LeakLab(test_blessing.Lab):
    """The fuzzer finds the thread leak on latest; the baseline's failures and replays are written on request."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.replay_error: tuple[str, str] | None = LEAK_STABLE  # None: the replay passes

    def runners(self) -> Runners:
        return Runners(self.environment, self.matrix, self.stability, self.compare, self.replay)

    def _fuzz_row(
        self, runtime: str, run_id: str, error: tuple[str, str] | None, failure_id: str = "", **fields: Any
    ) -> dict[str, Any]:
        params = {"tier": "inprocess", "profile": "ci", "seed": 1, "examples": None}
        failure_id = failure_id or f"{run_id}-{runtime}-inprocess"
        fields = {"workload": "stability.fuzz", "case_id": "fuzz[inprocess]", "size": None, "hardware": "chaos",
                  "params": params, "extra_metrics": {"examples": 40}, "outcome": "passed", **fields}  # fmt: skip
        if error is not None:
            fields |= {"outcome": "failed", "error": error[0], "traceback": error[1], "failure_id": failure_id}
            record = {"failure_id": failure_id, "kind": "teardown", "error": error[0], "traceback": error[1],
                      "runtime": runtime, "created_at": self.now().isoformat(), "tier": "inprocess"}  # fmt: skip
            directory = self.results / "stability" / "failures" / failure_id
            directory.mkdir(parents=True)
            (directory / "failure.json").write_text(json.dumps(record))
        return self._rows(self.catalog.runtime(runtime), run_id, self.now(), **fields)

    def stability(self, options: Any) -> None:
        self.calls.append(("stability", options))
        self._write([self._fuzz_row("latest", f"stab-{next(self.ids)}", LEAK_LATEST)])

    def baseline_fuzzed(self, error: tuple[str, str] | None) -> None:
        self._write([self._fuzz_row("stable", f"base-{next(self.ids)}", error)])

    def replay(self, failure_id: str, **options: Any) -> None:
        self.calls.append(("replay", {"failure_id": failure_id, **options}))
        run_id = f"replay-{next(self.ids)}"
        rows = [
            self._fuzz_row("stable", run_id, self.replay_error, f"{run_id}-replay{attempt}",
                           workload="stability.replay", case_id=f"replay[{failure_id}]", repeat=attempt)
            for attempt in range(options["times"])
        ]  # fmt: skip
        self._write(rows)


def project(tmp_path: Path, extra: str = "", known: str | None = None) -> Path:
    root = tmp_path / "project"
    (root / "matrices").mkdir(parents=True)
    (root / "matrices" / "blessing.yaml").write_text(CRITERIA.format(extra=extra))
    if known is None:
        shutil.copy(ROOT / "matrices" / "known_failures.yaml", root / "matrices" / "known_failures.yaml")
    else:
        (root / "matrices" / "known_failures.yaml").write_text(known)
    (root / "docs").mkdir()
    (root / "docs" / "findings.md").write_text("# Findings\n")
    return root


@pytest.fixture
def make_lab(
    tmp_path: Path, results_dir: Path, case_row: Callable[..., dict[str, Any]], catalog: Catalog
) -> Callable[..., LeakLab]:
    return lambda extra="", known=None: LeakLab(project(tmp_path, extra, known), results_dir, case_row, catalog)


def blessed(lab: LeakLab) -> Any:
    options = BlessOptions(runtime="latest", criteria="test", results_dir=lab.results, root=lab.root)
    return bless(options, lab.runners())


def stability_lines(report: Any) -> list[tuple[bool, str]]:
    return [(check.passed, check.reason) for check in report.verdict.checks if check.criterion == "stability"]


def test_the_thread_leak_stable_also_shows_is_reported_shared_and_known_and_latest_is_blessed(make_lab) -> None:
    lab = make_lab()
    lab.baseline_fuzzed(LEAK_STABLE)  # stable's own stability run found it too (another call path, pid, line)

    report = blessed(lab)

    assert report.verdict.blessed, report_text(report)
    [(_, summary), (passed, shared)] = stability_lines(report)
    assert summary.startswith("stability profile ci passed, but for failures the baseline shares, on latest:")
    assert passed and shared.startswith("stability profile ci on latest: fuzz[inprocess] failed (teardown:")
    assert f"signature: {LEAK_SIGNATURE}; known, shared, not a regression: stable fails with the same signature" in (
        shared
    )
    assert "(1×, run base-1, failure base-1-stable-inprocess)" in shared
    assert "[known failure rejoin_thread_leak: A task waiting in rejoin()" in shared
    assert "(docs/findings.md#the-thread-leak-that-blocked-latest)]" in shared
    assert "✓ stability profile ci on latest: fuzz[inprocess] failed" in report_text(report)


def test_a_failure_the_baseline_was_not_checked_for_is_held_and_says_how_to_check(make_lab) -> None:
    lab = make_lab()

    report = blessed(lab)

    assert not report.verdict.blessed
    [(passed, reason)] = stability_lines(report)
    assert not passed
    assert reason.endswith(
        f"signature: {LEAK_SIGNATURE}; not checked on the baseline stable — replay with"
        " nox -s stability -- --replay=stab-1-latest-inprocess --runtime=stable [known failure rejoin_thread_leak:"
        " A task waiting in rejoin() when its worker closes is never woken (distributed, every release measured"
        " 2022.10.1–2026.8.0); kept by the guard rejoin_thread_leak (matrices/findings.yaml)."
        " (docs/findings.md#the-thread-leak-that-blocked-latest)]"
    )


def test_a_baseline_failing_another_way_is_not_shared(make_lab) -> None:
    lab = make_lab()
    lab.baseline_fuzzed(None)
    lab.baseline_fuzzed(("teardown: TeardownError: closing did not finish: TimeoutError: join timed out", ""))

    [(passed, reason)] = stability_lines(blessed(lab))

    assert not passed
    assert (
        "not seen on stable in its 2 stability batch(es) in the window (run(s) base-2, base-1) — replay it there:"
        in (reason)
    )


def test_bless_replays_the_failure_on_the_baseline_when_the_criteria_ask_and_judges_by_what_it_shows(make_lab) -> None:
    lab = make_lab("    baseline_replays: 2\n")

    report = blessed(lab)

    [replayed] = [call for kind, call in lab.calls if kind == "replay"]
    assert replayed["failure_id"] == "stab-1-latest-inprocess"
    assert (replayed["runtime_name"], replayed["times"], replayed["save"]) == ("stable", 2, False)
    assert report.verdict.blessed, report_text(report)
    assert "same signature (2×, run replay-2, failure replay-2-replay" in stability_lines(report)[1][1]


def test_a_replay_on_the_baseline_that_passes_leaves_the_failure_held(make_lab) -> None:
    lab = make_lab("    baseline_replays: 2\n")
    lab.replay_error = None

    [(passed, reason)] = stability_lines(blessed(lab))

    assert not passed and "not seen on stable in its 2 stability batch(es) in the window (run(s) replay-2)" in reason


def test_criteria_may_hold_shared_failures_against_the_candidate(make_lab) -> None:
    lab = make_lab("    shared_failures: fail\n")
    lab.baseline_fuzzed(LEAK_STABLE)

    [(passed, reason)] = stability_lines(blessed(lab))

    assert not passed
    assert "known, shared, not a regression" in reason
    assert reason.endswith("— still held against it: the criteria say shared_failures: fail")


def test_a_must_pass_case_failing_the_same_way_on_the_baseline_is_shared_and_another_way_is_not() -> None:
    # the real rows of the rejoin guard on latest (2026.8.0) and stable (2026.3.0)
    real = recorded()
    latest, stable = (of_row(real[f"rejoin_thread_leak@{v}"]) for v in ("2026.8.0", "2026.3.0"))
    other = of_row(real["mixed_compute_order@2025.4.0"])
    case = "rejoin_thread_leak"
    failing = CaseOutcome(case, ("run-2",), 2, 0, "failed: WorkloadCheckFailed: …", "run-2", ((latest, "run-2"),) * 2)
    criteria = Criteria.model_validate({"baseline": "stable", "must_pass": [case]})

    def verdict(base_problem: Any) -> Any:
        base = CaseOutcome(case, ("base-1",), 1, 0, "failed: …", "base-1", ((base_problem, "base-1"),))
        evidence = Evidence("latest", "stable", "local", {case: failing}, {case: base})
        return decide(criteria, evidence, "test", FailureContext(None, load_known_failures(ROOT)))

    [shared] = verdict(stable).checks
    assert shared.passed
    assert shared.reason == (
        "rejoin_thread_leak failed 2/2 repeats on latest (failed: WorkloadCheckFailed: …) — run run-2;"
        " signature: failed: WorkloadCheckFailed; threads wait in rejoin (distributed/threadpoolexecutor.py);"
        " known, shared, not a regression: it fails the same way on stable (run base-1)"
    )
    [otherwise] = verdict(other).checks
    assert not otherwise.passed
    assert otherwise.reason.endswith(f"it fails on stable too (run base-1), but not the same way ({other.text})")


def test_an_expired_known_failure_fails_bless_loudly(make_lab) -> None:
    known = (ROOT / "matrices" / "known_failures.yaml").read_text().replace("2027-03-06", "2026-01-01")
    lab = make_lab(known=known)
    lab.baseline_fuzzed(LEAK_STABLE)

    report = blessed(lab)

    assert not report.verdict.blessed
    [expired] = [check for check in report.verdict.checks if check.criterion == "known_failure"]
    assert expired.reason == (
        f"matrices/known_failures.yaml: known_failures.rejoin_thread_leak expired on 2026-01-01 ({LEAK_SIGNATURE})"
        " — look at it again: renew `expires` (and the reason) or remove the entry"
    )
    assert "EXPIRED on 2026-01-01" in stability_lines(report)[1][1]
    dry = bless(BlessOptions(runtime="latest", criteria="test", results_dir=lab.results, root=lab.root, dry_run=True))
    assert f"a ✗ of the verdict: {expired.reason}" in dry.plan


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {"expires": "soon"},
            "known_failures.leak.expires: Input should be a valid date",
        ),
        (
            {"signature": "the rejoin leak"},
            "known_failures.leak.signature: String should match pattern",
        ),
        (
            {"link": "docs/nowhere.md#x"},
            "known_failures.leak.link: 'docs/nowhere.md#x' is not a file of this"
            " repository — fix the path or give a URL",
        ),
        (
            {"reproducer": "workloads/reproducers/nope.py"},
            "known_failures.leak.reproducer: 'workloads/reproducers/nope.py' is not a file of this repository — fix"
            " the path or drop it",
        ),
        (
            {"colour": "red"},
            "known_failures.leak: unknown field 'colour' — allowed: expires, link, reason, reproducer, signature",
        ),
    ],
)
def test_a_bad_known_failures_file_is_one_line_naming_file_field_value_and_fix_and_nothing_runs(
    make_lab, entry: dict[str, str], message: str
) -> None:
    fields = {"signature": LEAK_SIGNATURE, "link": "docs/findings.md", "reason": "seen", "expires": "2027-01-01"}
    fields |= entry
    lab = make_lab(known="known_failures:\n  leak:\n" + "".join(f"    {k}: {v!r}\n" for k, v in fields.items()))

    with pytest.raises(ConfigError) as raised:
        blessed(lab)

    line, code = _failure(raised.value)
    assert code == 2 and len(line.splitlines()) == 1
    assert line.startswith(f"{lab.root / 'matrices' / 'known_failures.yaml'}: {message}")
    assert " — " in line  # the fix
    assert lab.ran() == []


def test_the_repositorys_known_failures_file_loads_and_names_the_fuzzers_thread_leak() -> None:
    entries = load_known_failures(ROOT)
    assert entries["rejoin_thread_leak"].signature == LEAK_SIGNATURE
    # every documented upstream bug the fuzzer meets has a standalone reproducer outside the harness
    assert all(entry.reproducer and (ROOT / entry.reproducer).is_file() for entry in entries.values())


def test_a_baseline_that_cannot_be_built_leaves_every_failure_not_checked_when_no_metric_needs_it(make_lab) -> None:
    lab = make_lab()
    built = lab.environment

    def environment(runtime: Any, options: Any) -> Any:
        if runtime.name == "stable":
            raise ConfigError("stable: uv could not resolve it")
        return built(runtime, options)

    lab.environment = environment  # type: ignore[method-assign]

    [(passed, reason)] = stability_lines(blessed(lab))

    assert not passed and "not checked on the baseline stable — replay with" in reason
