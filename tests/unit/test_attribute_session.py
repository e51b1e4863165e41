"""``nox -s attribute``'s command line: its one-line errors (exit 2), the plan it prints before building anything (the
changes, families as one, the bound), and the answer's words — the named set, an interaction, what could not install,
the next step (the bisect command for one package)."""

from __future__ import annotations

from pathlib import Path

import pytest

from framework import cli
from framework.attribute.search import Attribution, Probe
from framework.attribute.session import next_step, report
from framework.bisect.search import Judgement
from framework.cli.verdicts import attribute_parser

CASE = ("--workload=array_mean_var", "--metric=wall")
OLD = "dask==2026.3.0\ndistributed==2026.3.0\npandas==2.2.3\nnumpy==2.3.5\ntoolz==1.0.0\n"
NEW = "dask==2026.8.0\ndistributed==2026.8.0\npandas==3.0.2\nnumpy==2.3.5\ntoolz==1.1.0\ntzdata==2025.2\n"


@pytest.fixture
def locks(tmp_path: Path) -> tuple[Path, Path]:
    old, new = tmp_path / "old.txt", tmp_path / "new.txt"
    old.write_text(OLD)
    new.write_text(NEW)
    return old, new


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(["attribute", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_dry_run_prints_the_changes_families_as_one_and_the_bound(
    locks: tuple[Path, Path], results_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = locks
    code, out, err = run(
        capsys, "--baseline=stable", f"--candidate={new}", "--workload=groupby_agg[by=name]", "--metric=wall",
        f"--results={results_dir}", "--dry-run",
    )  # fmt: skip
    if code == 2 and "no environment of runtime 'stable' is built yet" in err:
        code, out, err = run(
            capsys, f"--baseline={old}", "--candidate=stable", "--workload=groupby_agg[by=name]", "--metric=wall",
            f"--results={results_dir}", "--dry-run",
        )  # fmt: skip
        assert code == 2 and "no environment of runtime 'stable' is built yet" in err, err
        return
    assert code == 0, err
    assert "dask+distributed: dask" in err and "+ tzdata 2025.2" in err
    assert out.startswith("dry run: about") and "nothing was built or run" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--baseline=OLD", "--candidate=NEW"], "nothing to judge the environments by — give --workload=CASE"),
        (["--baseline=OLD", "--candidate=NEW", "--failure=x", "--metric=wall"], "attribute either a failure or a"),
        (
            ["--baseline=OLD", "--candidate=OLD", *CASE],
            "there is no change to attribute",
        ),
        (
            ["--baseline=OLD", "--candidate=NEW", *CASE],
            "both lock files: name a runtime",
        ),
        (
            ["--baseline=nope", "--candidate=NEW", *CASE],
            "nope: not a runtime of",
        ),
        (
            ["--baseline=gone.txt", "--candidate=NEW", *CASE],
            "gone.txt: no such lock file",
        ),
        (
            ["--baseline=stable", "--candidate=NEW", *CASE, "--budget=1"],
            "--budget=1",
        ),
    ],
)
def test_mistakes_get_one_line_and_exit_2_before_anything_is_built(
    argv: list[str], message: str, locks: tuple[Path, Path], results_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = locks
    argv = [part.replace("OLD", str(old)).replace("NEW", str(new)) for part in argv]
    code, out, err = run(capsys, *argv, f"--results={results_dir}", "--dry-run")
    assert code == 2 and out == "", err
    assert len(err.strip().splitlines()) == 1 and message in err, err


def probe(label: str, applied: set[str], verdict: str) -> Probe:
    return Probe(label, Judgement(verdict, f"{label} judged", verdict), 1.0, frozenset(applied))  # type: ignore[arg-type]


def test_the_answer_names_the_set_an_interaction_what_does_not_install_and_the_next_step(
    locks: tuple[Path, Path], results_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from framework.attribute import session

    old, new = locks
    args = attribute_parser().parse_args(
        [f"--baseline={old}", f"--candidate={new}", "--workload=groupby_agg[by=name]", "--metric=wall",
         f"--results={results_dir}"]
    )  # fmt: skip
    plan = session.Plan(
        session.Ends(str(old), str(new), _runtime(), session.parse_lock(OLD), session.parse_lock(NEW),
                     session.lock_diff(session.parse_lock(OLD), session.parse_lock(NEW), [["dask", "distributed"]])),
        None, None, None, None, "stable",
    )  # fmt: skip
    one = Attribution(["dask+distributed", "pandas", "toolz", "tzdata"], [probe("pandas", {"pandas"}, "bad")], "found",
                      ["pandas"])  # fmt: skip
    assert next_step(one, plan, args) == (
        "nox -s bisect -- --package=pandas --good=2.2.3 --bad=3.0.2 --runtime=stable"
        " --workload=groupby_agg[by=name] --metric=wall"
    )
    text = report(one, plan, session.Probes(plan.ends), "", 2.5, [], args)
    assert "attributed to: pandas 2.2.3 → 3.0.2" in text and "next: nox -s bisect" in text
    both = Attribution(one.changes, [], "found", ["pandas", "tzdata"], True, alone={"pandas": "good", "tzdata": "good"})
    text = report(both, plan, session.Probes(plan.ends), "", 2.5, [], args)
    assert "only together (an interaction)" in text and "each alone: pandas good, tzdata good" in text
    # an improvement (pandas 3.0.2 → 3.1.1 made groupby_agg[by=name] 44 % faster, 2026-12-07): bisect judges a change
    # for the worse, so the new release is its good end — the other order is refused ("swap --good and --bad")
    assert next_step(one, plan, args, improved=True) == (
        "nox -s bisect -- --package=pandas --good=3.0.2 --bad=2.2.3 --runtime=stable"
        " --workload=groupby_agg[by=name] --metric=wall"
    )
    assert "next: nox -s bisect -- --package=pandas --good=3.0.2 --bad=2.2.3" in report(
        one, plan, session.Probes(plan.ends), "", 2.5, [], args, None, None, True
    )
    warm = attribute_parser().parse_args([*args_list(old, new, results_dir), "--warmup=3"])
    assert next_step(one, plan, warm).endswith("--metric=wall --warmup=3")  # type: ignore[union-attr]
    assert next_step(both, plan, args) is None  # two packages: no single bisect
    installs = Attribution(
        one.changes, [], "found", ["pandas", "tzdata"], False, alone={"pandas": "skip", "tzdata": "good"}
    )
    assert "pandas does not install without the rest" in report(
        installs, plan, session.Probes(plan.ends), "", 1, [], args
    )
    stuck = Attribution(one.changes, [], "undecided", narrowest=["pandas", "toolz"], problem="pandas+toolz: no call")
    assert (
        "undecided: pandas+toolz: no call — the cause is within: pandas 2.2.3 → 3.0.2, toolz 1.0.0 → 1.1.0"
        in report(stuck, plan, session.Probes(plan.ends), "", 1, [], args)
    )


def args_list(old: Path, new: Path, results_dir: Path) -> list[str]:
    return [f"--baseline={old}", f"--candidate={new}", "--workload=groupby_agg[by=name]", "--metric=wall",
            f"--results={results_dir}"]  # fmt: skip


def _runtime():  # type: ignore[no-untyped-def]
    from framework.models import Runtime

    return Runtime(name="stable", python="3.11", packages={"dask": ""})


def test_an_undecided_search_writes_the_narrowest_sets_lock_and_the_command_that_searches_it_with_twice_the_rounds(
    locks: tuple[Path, Path], results_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """What was done by hand on 2026-12-07 (77 changes left undecided within packaging+pandas+paramiko; the same
    three searched alone with 15 rounds named pandas): the tool now offers it."""
    from framework.attribute import session

    monkeypatch.setattr(session, "ROOT", tmp_path)
    _, new = locks
    args = attribute_parser().parse_args(
        ["--baseline=20261207T111144Z-2bf993", f"--candidate={new}", "--workload=groupby_agg[by=name]",
         "--metric=wall", "--repeat=9", "--warmup=3", f"--results={results_dir}"]
    )  # fmt: skip
    baseline, candidate = session.parse_lock(OLD), session.parse_lock(NEW)
    changes = session.lock_diff(baseline, candidate, [["dask", "distributed"]])
    plan = session.Plan(
        session.Ends("20261207T111144Z-2bf993", str(new), _runtime(), baseline, candidate, changes),
        None, None, None, None, "stable",
    )  # fmt: skip
    names = [change.name for change in changes]
    stuck = Attribution(names, [], "undecided", narrowest=["pandas", "toolz"], problem="pandas: no call")

    command = session.narrowing(stuck, plan, args)

    written = sorted((tmp_path / ".blessing" / "attribute").glob("narrowest-*.txt"))
    assert len(written) == 1 and not list(written[0].parent.glob("*.partial"))
    assert session.parse_lock(written[0].read_text()) == {**baseline, "pandas": "3.0.2", "toolz": "1.1.0"}
    assert written[0].read_text().startswith("# 20261207T111144Z-2bf993's lock with pandas 2.2.3 → 3.0.2, toolz")
    assert command == (
        f"nox -s attribute -- --baseline=20261207T111144Z-2bf993 --candidate={written[0].relative_to(tmp_path)}"
        " --workload=groupby_agg[by=name] --metric=wall --repeat=18 --warmup=3"
    )
    assert f"narrow: {command}" in report(stuck, plan, session.Probes(plan.ends), "", 1, [], args, None, command)
    # nothing narrower to offer: an answer, or a set as wide as the diff
    assert session.narrowing(Attribution(names, [], "found", ["pandas"]), plan, args) is None
    assert session.narrowing(Attribution(names, [], "budget", narrowest=names, problem="x"), plan, args) is None
