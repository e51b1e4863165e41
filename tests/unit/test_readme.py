"""The README stays true: its schema table, its set-up commands, and its "add a workload" example."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from framework.config import load_catalog
from framework.in_runtime.runner import load_function
from framework.matrix import Selection, build_plan
from framework.results import CASE_COLUMNS

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_every_result_column_is_documented() -> None:
    schema = README.split("## Results schema", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`([a-z][a-z0-9_]*)`", schema))
    undocumented = sorted(set(CASE_COLUMNS) - documented)
    assert not undocumented, f"README's results schema lacks: {undocumented}"


def test_setup_commands_and_ci_agree() -> None:
    assert 'pip install "nox[uv]" && nox -s matrix -- --runtime=latest' in README
    assert 'pip install "nox[uv]" && nox -s tests' in README
    ci = (ROOT / ".ci" / "run").read_text()
    assert "nox -s tests" in ci


def _example_yaml() -> str:
    section = README.split("**Without writing Python**", 1)[1]
    match = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert match, "the 'add a workload' example is missing from the README"
    return match.group(1)


@pytest.fixture
def project_with_example(tmp_path: Path) -> Path:
    """A copy of the project's config with the README's example added as one more workloads file."""
    shutil.copytree(ROOT / "matrices", tmp_path / "matrices")
    (tmp_path / "workloads").mkdir()
    for path in (ROOT / "workloads").glob("*.yaml"):
        shutil.copy(path, tmp_path / "workloads" / path.name)
    shutil.copytree(ROOT / "workloads" / "reproducers", tmp_path / "workloads" / "reproducers")  # the ledger's
    (tmp_path / "workloads" / "readme_example.yaml").write_text(_example_yaml())
    return tmp_path


def test_readme_example_is_a_valid_workload(project_with_example: Path) -> None:
    catalog = load_catalog(project_with_example)
    plan = build_plan(catalog, Selection(runtimes=["latest"], workloads=["groupby_agg_split"], size="tiny"))
    [planned] = plan.cases
    assert planned.case.case_id == "groupby_agg_split"
    assert planned.case.params == {"split_out": 4, "by": "id", "days": 2, "freq": "10s"}
    assert planned.case.workload.repeats == 5


@pytest.mark.cluster
def test_readme_example_runs_and_checks_its_answer(project_with_example: Path) -> None:
    distributed = pytest.importorskip("distributed")
    catalog = load_catalog(project_with_example)
    plan = build_plan(catalog, Selection(runtimes=["latest"], workloads=["groupby_agg_split"], size="tiny"))
    case = plan.cases[0].case
    with (
        distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0") as cluster,
        distributed.Client(cluster),
    ):
        extra = load_function(case.workload.function)(**case.params)
    assert extra["rows"] == 2 * 24 * 360  # two days at one row every 10 s
    assert extra["groups"] > 0


def _anchor(title: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (hyphens and underscores kept), spaces → '-'."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def _anchors(text: str) -> set[str]:
    return {_anchor(heading) for heading in re.findall(r"^#{1,6} (.+)$", text, re.M)}


MANUAL = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("page", MANUAL, ids=lambda path: path.name)
def test_links_stay_inside_the_repository_and_resolve(page: Path) -> None:
    """Every relative link names a file of the repository (and a heading of it); nothing points outside."""
    text = page.read_text()
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"https?://", target):
            continue
        path, _, fragment = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if ROOT not in file.parents and file != ROOT:
            broken.append(f"{target}: outside the repository")
        elif not file.exists():
            broken.append(f"{target}: no such file")
        elif fragment and file.suffix == ".md" and fragment not in _anchors(file.read_text()):
            broken.append(f"{target}: no such heading in {file.name}")
    assert not broken, broken
    for outside in ("../shared", "/work/", "/root/"):
        assert outside not in text, f"{page.name} points outside the repository: {outside}"


def test_contents_lists_every_section() -> None:
    contents = README.split("## Contents", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"\]\(#([^)]+)\)", contents))
    sections = {_anchor(heading) for heading in re.findall(r"^##{1,2} (.+)$", README, re.M)} - {"contents"}
    assert sections <= listed, f"missing from Contents: {sorted(sections - listed)}"
