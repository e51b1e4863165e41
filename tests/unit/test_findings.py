"""framework/findings.py: the findings ledger — validated against the catalogue, which locks fall inside a finding,
how bless says so, and the ``findings`` table of ``nox -s sql``."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import yaml

from framework.blessing import known_issue_checks
from framework.cli import main
from framework.config import load_catalog, load_findings
from framework.criteria import Criteria
from framework.findings import Finding, affecting, findings_table, guard_outcomes
from framework.in_runtime.errors import ConfigError

GOOD = Path(__file__).resolve().parents[1] / "resources" / "good"
ROOT = Path(__file__).resolve().parents[2]

LEDGER = {
    "findings": {
        "mean_var": {
            "summary": "mean and variance come back swapped",
            "package": "dask",
            "first_bad": "2026.3.0",
            "first_fixed": "2026.9.0",
            "last_good": "2026.1.0",
            "upstream": "https://github.com/dask/dask/issues/1",
            "reproducer": "workloads/reproducers/mean_var.py",
            "evidence": ["20261206T000000Z-aaaaaa"],
        }
    }
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The good project with a guard (``mean_var`` tagged guard), its reproducer and a ledger."""
    root = tmp_path / "project"
    shutil.copytree(GOOD, root)
    arrays = root / "workloads" / "arrays.yaml"
    arrays.write_text(arrays.read_text().replace("tags: [smoke, array]", "tags: [smoke, array, guard]", 1))
    (root / "workloads" / "reproducers").mkdir()
    (root / "workloads" / "reproducers" / "mean_var.py").write_text("raise SystemExit(0)\n")
    write_ledger(root, LEDGER)
    return root


def write_ledger(root: Path, ledger: dict) -> None:
    (root / "matrices" / "findings.yaml").write_text(yaml.safe_dump(ledger, sort_keys=False))


def error(root: Path) -> str:
    with pytest.raises(ConfigError) as raised:
        load_catalog(root)
    return str(raised.value)


def test_a_valid_ledger_loads_with_the_catalogue(project: Path) -> None:
    load_catalog(project)
    [(guard, finding)] = load_findings(load_catalog(project), project).items()
    assert guard == "mean_var" and finding.first_fixed == "2026.9.0"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"first_fixed": "2026.1.0"},
            "matrices/findings.yaml: findings.mean_var: first_fixed 2026.1.0 is not after first_bad 2026.3.0",
        ),
        (
            {"first_bad": "soon"},
            "findings.mean_var.first_bad: is not a release version — write it as on the index, e.g. 2026.3.0"
            " (got 'soon')",
        ),
        (
            {"upstream": "dask#1"},
            "findings.mean_var.upstream: is not a link — give the issue's https:// URL (got 'dask#1')",
        ),
        ({"summary": "two\nlines"}, "findings.mean_var.summary: must be one line saying what goes wrong"),
        (
            {"reproducer": "workloads/reproducers/nope.py"},
            "findings.mean_var.reproducer: 'workloads/reproducers/nope.py'",
        ),
        (
            {"workarounds": ["mean_varr"]},
            "findings.mean_var.workarounds.0: unknown workload 'mean_varr' — did you mean",
        ),
    ],
)
def test_a_wrong_entry_is_one_line_naming_file_field_value_and_fix(project: Path, change: dict, expected: str) -> None:
    entry = {**LEDGER["findings"]["mean_var"], **change}
    write_ledger(project, {"findings": {"mean_var": entry}})
    line = error(project)
    assert expected in line, line
    assert "\n" not in line.strip()


def test_a_finding_keyed_by_no_guard_is_refused(project: Path) -> None:
    write_ledger(project, {"findings": {"mean_vr": LEDGER["findings"]["mean_var"]}})
    assert "findings.mean_vr: unknown workload 'mean_vr' — did you mean 'mean_var'?" in error(project)
    fix = "— a finding is keyed by its guard: declare that workload (tag guard), or remove the finding"
    assert error(project).endswith(fix)
    write_ledger(project, {"findings": {"groupby_agg": LEDGER["findings"]["mean_var"]}})
    assert "workload 'groupby_agg' is not tagged 'guard' — add the tag to its YAML entry" in error(project)


FINDING = Finding.model_validate(LEDGER["findings"]["mean_var"])


@pytest.mark.parametrize(
    ("installed", "inside"),
    [
        ("2026.1.0", False),
        ("2026.3.0", True),
        ("2026.8.1", True),
        ("2026.9.0", False),
        ("2027.1.0", False),
        ("", False),
    ],
)
def test_a_lock_falls_inside_from_first_bad_up_to_first_fixed(installed: str, inside: bool) -> None:
    found = affecting({"mean_var": FINDING}, {"dask": installed} if installed else {})
    assert bool(found) is inside
    open_ended = Finding.model_validate({**LEDGER["findings"]["mean_var"], "first_fixed": None})
    assert bool(affecting({"g": open_ended}, {"dask": "2099.1.0"}))


def guard_row(runtime: str, dask: str, outcome: str, workload: str = "mean_var") -> dict[str, str]:
    return {"case_id": workload, "workload": workload, "runtime": runtime, "outcome": outcome,
            "dask_version": dask, "distributed_version": dask}  # fmt: skip


def test_a_guard_failing_inside_its_range_is_a_known_finding_not_a_failure_of_the_run() -> None:
    rows = [
        guard_row("latest", "2026.8.0", "failed"),
        guard_row("latest", "2026.8.0", "failed"),  # a second repeat: one line, two rows not counted
        guard_row("previous", "2025.1.0", "failed"),  # outside the range: a failure like any other
        guard_row("stable", "2026.3.0", "passed", workload="groupby_agg"),  # not a guard
    ]

    outcomes = guard_outcomes({"mean_var": FINDING}, rows)

    assert outcomes.expected_rows == 2
    assert outcomes.contradicted == []
    assert outcomes.lines == [
        "known findings (1): guards failing inside their matrices/findings.yaml range — expected, not counted in the"
        " exit code:",
        "  mean_var on latest (dask 2026.8.0): known finding mean_var — mean and variance come back swapped (dask"
        " 2026.3.0 and later, fixed in 2026.9.0)",
    ]


def test_a_guard_passing_inside_a_range_that_always_fails_says_the_ledger_may_be_stale() -> None:
    outcomes = guard_outcomes({"mean_var": FINDING}, [guard_row("latest", "2026.8.0", "passed")])

    [line] = outcomes.lines
    assert line.startswith("! guard mean_var on latest (dask 2026.8.0) passed although the ledger puts dask 2026.8.0")
    assert line.endswith("--metric=outcome --workload=mean_var and set first_fixed in matrices/findings.yaml")
    assert outcomes.expected_rows == 0 and len(outcomes.contradicted) == 1
    flaky = FINDING.model_copy(update={"intermittent": True})  # a pass inside its range proves nothing
    assert guard_outcomes({"mean_var": flaky}, [guard_row("latest", "2026.8.0", "passed")]).lines == []


@dataclasses.dataclass
class _Built:
    packages: dict[str, str]


def test_bless_fails_a_runtime_inside_a_finding_unless_the_criteria_accept_it() -> None:
    criteria = Criteria.model_validate({"baseline": "stable", "must_pass": ["*"]})
    inside = _Built({"dask": "2026.8.0", "distributed": "2026.8.0"})

    [check] = known_issue_checks("latest", inside, criteria, {"mean_var": FINDING})  # type: ignore[arg-type]
    assert not check.passed and check.criterion == "known_issue" and check.subject == "mean_var"
    assert check.reason == (
        "latest has dask 2026.8.0: known issue mean_var — mean and variance come back swapped (dask 2026.3.0 and"
        " later, fixed in 2026.9.0) — https://github.com/dask/dask/issues/1 — pick a release outside that range, or"
        " accept it in matrices/blessing.yaml (accept_findings) with a reason"
    )
    accepted = criteria.model_copy(update={"accept_findings": {"mean_var": "we never compute variances"}})
    [check] = known_issue_checks("latest", inside, accepted, {"mean_var": FINDING})  # type: ignore[arg-type]
    assert check.passed and check.reason.endswith("; accepted: we never compute variances")
    outside = _Built({"dask": "2026.9.0"})
    assert known_issue_checks("latest", outside, criteria, {"mean_var": FINDING}) == []  # type: ignore[arg-type]


def test_criteria_accepting_an_unknown_finding_are_refused(project: Path) -> None:
    from framework.criteria import criteria_problems

    spec = Criteria.model_validate({"baseline": "stable", "must_pass": ["*"], "accept_findings": {"mean_vr": "x"}})
    path = project / "matrices" / "blessing.yaml"
    problems = criteria_problems({"default": spec}, load_catalog(project), path)
    [problem] = [line for line in problems if "accept_findings" in line]
    assert "criteria.default.accept_findings.mean_vr: unknown finding 'mean_vr' — did you mean 'mean_var'?" in problem


def test_the_ledger_is_a_table_of_nox_s_sql(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    table = findings_table({"mean_var": FINDING})
    assert table.to_pylist()[0]["first_bad"] == "2026.3.0" and table.num_rows == 1
    assert main(["sql", f"--results={tmp_path}", "SELECT count(*) AS n FROM findings"]) == 0
    shipped = load_findings(load_catalog(ROOT), ROOT)
    assert f"\n{len(shipped)}\n" in capsys.readouterr().out


def test_the_report_lists_per_runtime_the_findings_its_latest_run_falls_inside(tmp_path: Path) -> None:
    import datetime as dt

    from framework.report.known_issues import known_issues_page
    from framework.report.layout import Context

    ctx = Context(dt.datetime(2026, 12, 6, tzinfo=dt.timezone.utc), tmp_path, tmp_path / "report", "nox -s report", ())
    runs = [
        {"runtime": "latest", "run_id": "r3", "dask_version": "2026.8.0", "distributed_version": "2026.8.0"},
        {"runtime": "latest", "run_id": "r1", "dask_version": "2026.1.0", "distributed_version": "2026.1.0"},
        {"runtime": "stable", "run_id": "r2", "dask_version": "2026.1.0", "distributed_version": "2026.1.0"},
    ]
    html = known_issues_page(ctx, runs, {"mean_var": FINDING})

    latest, stable = html.split("<td>latest</td>")[1], html.split("<td>stable</td>")[1]
    assert latest.index('known issue</span> <a href="#mean_var">mean_var</a>') < latest.index("</tr>")
    assert stable.index("none known") < stable.index("</tr>")
    assert '<tr id="mean_var"><td><code>mean_var</code></td><td>mean and variance come back swapped</td>' in html
    assert "dask 2026.3.0 and later, fixed in 2026.9.0; last good 2026.1.0" in html
    assert '<a href="https://github.com/dask/dask/issues/1">dask#1</a>' in html


def test_the_report_folds_the_releases_a_bisection_measured_below_the_declared_runtimes(tmp_path: Path) -> None:
    import datetime as dt

    from framework.report.known_issues import known_issues_page
    from framework.report.layout import Context

    ctx = Context(dt.datetime(2026, 12, 6, tzinfo=dt.timezone.utc), tmp_path, tmp_path / "report", "nox -s report", ())
    runs = [
        {"runtime": name, "run_id": f"r{index}", "dask_version": version, "distributed_version": version}
        for index, (name, version) in enumerate(
            [
                ("bisect-dask-2026.10.0", "2026.10.0"),
                ("bisect-dask-2026.9.1", "2026.9.1"),
                ("stable", "2026.1.0"),
                ("aardvark", "2026.1.0"),
            ]
        )
    ]
    html = known_issues_page(ctx, runs, {"mean_var": FINDING})

    declared, folded = html.split("<details>")
    assert declared.index("<td>aardvark</td>") < declared.index("<td>stable</td>") and "bisect-" not in declared
    assert "Releases measured by <code>nox -s bisect</code> (2)" in folded
    assert folded.index("bisect-dask-2026.9.1") < folded.index("bisect-dask-2026.10.0")  # by release, not text


def test_guards_are_judged_by_the_ledger_not_as_must_pass_cases(project: Path) -> None:
    from framework.criteria import scope

    criteria = Criteria.model_validate({"baseline": "stable", "must_pass": ["*"], "metrics": None})
    cases = scope(load_catalog(project), criteria, "latest", "big")
    names = {case.workload.name for case in cases.must_pass}
    assert "mean_var" not in names and "groupby_agg" in names  # mean_var is tagged guard in this project
