"""framework.signatures and the catalogue's parameter check: params, grid and sizes against the function's signature.

Each test writes a workload module and its YAML into a copy of tests/resources/good/ and loads the catalogue; the
function is read from source, never imported.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from framework.config import ROOT, load_catalog
from framework.in_runtime.errors import ConfigError
from framework.signatures import Signature, SignatureError, read_signature

GOOD = Path(__file__).resolve().parents[1] / "resources" / "good"

MODULE = """
from typing import Iterator

from workloads.probe_helpers import reexported


def case(rows: int, shuffle: str = "tasks", *, partitions: int, seed: int = 0) -> dict:
    return {}


def needs_bucket(rows: int, bucket: str, endpoint_url: str) -> dict:
    return {}


def anything(rows: int, **options: object) -> dict:
    return {}


def positional(rows, /, seed=0):
    return {}


def bucket_fixture() -> Iterator[dict]:
    yield {"bucket": "b", "endpoint_url": "http://127.0.0.1:1"}


def computed_fixture() -> Iterator[dict]:
    provided = {"bucket": "b"}
    yield provided


def fixture_with_arguments(port: int) -> Iterator[dict]:
    yield {}


@staticmethod
def decorated(x):
    return {}
"""
HELPERS = """
def reexported(days: int, freq: str = "1s") -> dict:
    return {}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    shutil.copytree(GOOD, root)
    (root / "workloads" / "probe.py").write_text(MODULE)
    (root / "workloads" / "probe_helpers.py").write_text(HELPERS)
    return root


def load_with(project: Path, spec: str) -> None:
    (project / "workloads" / "probe.yaml").write_text("workloads:\n" + textwrap.indent(textwrap.dedent(spec), "  "))
    load_catalog(project)


def refusal(project: Path, spec: str) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        load_with(project, spec)
    return str(raised.value).splitlines()


def test_unknown_keyword_names_the_near_miss_and_the_parameters(project: Path) -> None:
    [line] = refusal(
        project,
        """
        w:
          description: x
          function: workloads.probe:case
          params: {rows: 1, partitions: 2, shufle: p2p}
        """,
    )
    assert line == (
        f"{project}/workloads/probe.yaml: workloads.w.params.shufle: unknown parameter 'shufle' of workloads.probe:case"
        " — did you mean 'shuffle'? parameters: rows, shuffle, partitions, seed"
    )


def test_unknown_keywords_in_grid_and_each_size(project: Path) -> None:
    lines = refusal(
        project,
        """
        w:
          description: x
          function: workloads.probe:case
          params: {partitions: 2}
          grid: {sed: [1, 2]}
          sizes:
            tiny: {rows: 1}
            small: {rows: 2, colour: red}
        """,
    )
    assert [line.split(": ")[1] for line in lines] == ["workloads.w.grid.sed", "workloads.w.sizes.small.colour"]
    assert "did you mean 'seed'?" in lines[0]
    assert "unknown parameter 'colour' of workloads.probe:case — remove it or add it to the function;" in lines[1]


def test_missing_keyword_everywhere_and_in_one_size(project: Path) -> None:
    lines = refusal(
        project,
        """
        w:
          description: x
          function: workloads.probe:case
          sizes:
            tiny: {rows: 1}
            small: {seed: 3}
        """,
    )
    assert lines == [
        f"{project}/workloads/probe.yaml: workloads.w.params: missing parameter 'partitions' of workloads.probe:case"
        " (it has no default) — add partitions to params, grid or every size",
        f"{project}/workloads/probe.yaml: workloads.w.sizes.small: missing parameter 'rows' of workloads.probe:case"
        " (it has no default; tiny gives it) — add rows to sizes.small or to params",
    ]


def test_grid_and_params_give_keywords(project: Path) -> None:
    load_with(
        project,
        """
        w:
          description: x
          function: workloads.probe:case
          params: {rows: 1}
          grid: {partitions: [1, 2]}
        """,
    )


def test_keywords_the_fixture_yields_are_not_missing(project: Path) -> None:
    load_with(
        project,
        """
        w:
          description: x
          function: workloads.probe:needs_bucket
          fixture: workloads.probe:bucket_fixture
          sizes: {tiny: {rows: 1}}
        """,
    )


def test_keywords_the_fixture_yields_must_be_taken(project: Path) -> None:
    [line] = refusal(
        project,
        """
        w:
          description: x
          function: workloads.probe:case
          fixture: workloads.probe:bucket_fixture
          params: {rows: 1, partitions: 1}
        """,
    )
    assert line.endswith(
        "workloads.w.fixture: workloads.probe:bucket_fixture yields 'bucket', 'endpoint_url', which"
        " workloads.probe:case does not take — add them to the function's parameters"
    )


def test_a_fixture_whose_yield_cannot_be_read_makes_nothing_missing(project: Path) -> None:
    load_with(
        project,
        """
        w:
          description: x
          function: workloads.probe:needs_bucket
          fixture: workloads.probe:computed_fixture
          params: {rows: 1}
        """,
    )


def test_a_fixture_is_called_without_arguments(project: Path) -> None:
    [line] = refusal(
        project,
        """
        w:
          description: x
          function: workloads.probe:anything
          fixture: workloads.probe:fixture_with_arguments
          params: {rows: 1}
        """,
    )
    assert line.endswith(
        "workloads.w.fixture: workloads.probe:fixture_with_arguments needs port — a fixture is called without"
        " arguments; give them defaults"
    )


def test_kwargs_accepts_any_keyword(project: Path) -> None:
    load_with(
        project,
        """
        w:
          description: x
          function: workloads.probe:anything
          params: {rows: 1, whatever: 2}
          grid: {colour: [red, blue]}
          sizes: {tiny: {more: 1}}
        """,
    )


def test_positional_only_parameters_cannot_be_given(project: Path) -> None:
    [line] = refusal(
        project,
        """
        w:
          description: x
          function: workloads.probe:positional
          params: {seed: 1}
        """,
    )
    assert line.endswith(
        "workloads.w.function: workloads.probe:positional takes 'rows' positional-only, and cases are called with"
        " keywords — drop the '/' from its signature"
    )


def test_a_reexported_function_is_followed_to_its_definition(project: Path) -> None:
    unknown, missing = refusal(
        project,
        """
        w:
          description: x
          function: workloads.probe:reexported
          params: {day: 1}
        """,
    )
    assert "unknown parameter 'day' of workloads.probe:reexported — did you mean 'days'?" in unknown
    assert "missing parameter 'days' of workloads.probe:reexported (it has no default)" in missing


def test_a_decorated_function_is_not_checked(project: Path) -> None:
    load_with(project, "w: {description: x, function: 'workloads.probe:decorated', params: {anything: 1}}\n")


@pytest.mark.parametrize(
    ("function", "expected"),
    [
        (
            "workloads.probe:cas",
            "workloads.w.function: workloads/probe.py defines no function 'cas' — did you mean 'workloads.probe:case'?",
        ),
        (
            "workloads.nope:case",
            "workloads.w.function: no module workloads/nope.py — create it, or fix the module part",
        ),
    ],
)
def test_a_function_that_does_not_exist(project: Path, function: str, expected: str) -> None:
    [line] = refusal(project, f"w: {{description: x, function: '{function}'}}\n")
    assert expected in line


def test_the_fixture_must_exist(project: Path) -> None:
    [line] = refusal(
        project,
        "w: {description: x, function: 'workloads.probe:anything', fixture: 'workloads.probe:nope',"
        " params: {rows: 1}}\n",
    )
    assert "workloads.w.fixture: workloads/probe.py defines no function 'nope'" in line


def test_a_module_that_is_not_python(project: Path) -> None:
    (project / "workloads" / "broken.py").write_text("def case(:\n")
    [line] = refusal(project, "w: {description: x, function: 'workloads.broken:case'}\n")
    assert "workloads.w.function: " in line
    assert "line 1: invalid Python: " in line
    assert line.endswith("— fix the syntax there")


def test_an_edited_module_is_read_again(project: Path) -> None:
    spec = "w: {description: x, function: 'workloads.probe:case', params: {rows: 1, partitions: 1, extra: 1}}\n"
    assert refusal(project, spec)
    module = project / "workloads" / "probe.py"
    module.write_text(MODULE.replace("seed: int = 0)", "seed: int = 0, extra: int = 0)"))
    load_with(project, spec)


def test_copies_of_the_yaml_files_use_the_projects_functions(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "matrices", tmp_path / "matrices")
    (tmp_path / "workloads").mkdir()
    for path in (ROOT / "workloads").glob("*.yaml"):
        shutil.copy(path, tmp_path / "workloads" / path.name)
    shutil.copytree(ROOT / "workloads" / "reproducers", tmp_path / "workloads" / "reproducers")  # the ledger's
    assert len(load_catalog(tmp_path).workloads) == len(load_catalog().workloads)


def test_read_signature() -> None:
    signature = read_signature("workloads.dataframes:groupby_agg", [ROOT / "workloads"])
    assert signature == Signature(
        parameters=("days", "freq", "partition_freq", "by", "split_out", "seed"),
        required=frozenset({"days"}),
        positional_only=frozenset(),
        any_keyword=False,
        yields=None,
    )
    fixture = read_signature("workloads.s3:s3_server", [ROOT / "workloads"])
    assert fixture is not None
    assert fixture.yields == {"endpoint_url", "bucket", "key", "secret"}
    with pytest.raises(SignatureError, match=r"no module workloads/nope\.py"):
        read_signature("workloads.nope:x", [ROOT / "workloads"])


def test_a_keyword_in_the_wrong_case_names_the_right_one(project: Path) -> None:
    unknown, missing = refusal(
        project, "w: {description: x, function: 'workloads.probe:case', params: {ROWS: 1, partitions: 1}}\n"
    )
    assert "unknown parameter 'ROWS' of workloads.probe:case — did you mean 'rows'?" in unknown
    assert "missing parameter 'rows'" in missing
