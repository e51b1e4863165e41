"""An attribution over real environments: five toy packages moved between two locks on a local package index the test
builds; each probe is the baseline's lock with some changes applied, resolved and built by uv as every runtime is, and
the oracle reads which versions the built environment really holds.

One culprit is found within the bound of probes; two packages that cause the effect only together are named as an
interaction; a change that cannot be installed without another (toy-b 2.0 needs toy-c 2.0) makes the probes that
apply it alone unresolvable — skipped, said, and the search still names both; joined first by what the two ends'
metadata requires, the two move as one change and nothing is skipped.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from package_index import LocalIndex

from framework.attribute.changes import lock_diff
from framework.attribute.coupling import couple, read_metadata, site_packages
from framework.attribute.probes import Ends, subset_runtime
from framework.attribute.search import Attribution, attribute, probes_bound
from framework.bisect.search import Judgement
from framework.in_runtime.errors import EnvironmentBuildError
from framework.models import Runtime
from framework.resolution import build_environment

pytestmark = pytest.mark.environment

PACKAGES = ("toy-a", "toy-b", "toy-c", "toy-d", "toy-e")
OLD = dict.fromkeys(PACKAGES, "1.0")
NEW = dict.fromkeys(PACKAGES, "2.0")


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalIndex]:
    with LocalIndex(tmp_path_factory.mktemp("index")) as served:
        for name in PACKAGES:
            served.add(name, "1.0")
            served.add(name, "2.0", requires=["toy-c>=2.0"] if name == "toy-b" else ())
        yield served


@pytest.fixture
def built(
    index: LocalIndex, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[[frozenset[str]], dict[str, str]]:
    """Build the probe of a set of changes; the versions its environment's Python sees."""
    monkeypatch.setenv("UV_DEFAULT_INDEX", index.url)
    for variable in ("UV_INDEX_URL", "PIP_INDEX_URL", "UV_EXTRA_INDEX_URL"):
        monkeypatch.delenv(variable, raising=False)
    # toy-e is in the locks but not declared: a probe pins it without declaring it (as most of a real lock).
    base = Runtime(name="toys", python="3.11", packages=dict.fromkeys(PACKAGES[:-1], ""))
    ends = Ends("old", "new", base, OLD, NEW, lock_diff(OLD, NEW, base.lockstep))

    def build(names: frozenset[str]) -> dict[str, str]:
        environment = build_environment(subset_runtime(ends, names), tmp_path)
        script = (
            "import importlib.metadata as m, json; print(json.dumps({d.name: d.version for d in m.distributions()}))"
        )
        seen = subprocess.run([str(environment.python), "-c", script], capture_output=True, text=True, check=True)
        return {name: version for name, version in json.loads(seen.stdout).items() if name.startswith("toy")}

    return build


def search(built: Callable[[frozenset[str]], dict[str, str]], bad: Callable[[dict[str, str]], bool]) -> Attribution:
    def judge(names: frozenset[str]) -> Judgement:
        try:
            versions = built(names)
        except EnvironmentBuildError as error:
            return Judgement("skip", f"environment not built: {error}", "not built")
        shown = " ".join(f"{name[4:]}{version[0]}" for name, version in sorted(versions.items()))
        return Judgement("bad" if bad(versions) else "good", shown, shown)

    return attribute(list(PACKAGES), judge)


def test_one_culprit_among_five_within_the_bound(built: Callable[[frozenset[str]], dict[str, str]]) -> None:
    found = search(built, lambda versions: versions["toy-d"] == "2.0")
    assert found.status == "found" and found.culprits == ["toy-d"] and not found.interaction
    assert len(found.probes) <= probes_bound(len(PACKAGES)) == 8
    # Each probe's environment holds exactly the baseline with its changes applied.
    for probe in found.probes:
        if probe.verdict != "skip":
            assert probe.judgement.shown == " ".join(
                f"{name[4:]}{'2' if name in probe.applied else '1'}" for name in PACKAGES
            )


def test_two_packages_that_cause_it_only_together_are_an_interaction(
    built: Callable[[frozenset[str]], dict[str, str]],
) -> None:
    found = search(built, lambda versions: versions["toy-a"] == "2.0" and versions["toy-e"] == "2.0")
    assert found.status == "found" and found.culprits == ["toy-a", "toy-e"] and found.interaction
    assert found.alone == {"toy-a": "good", "toy-e": "good"}


def test_a_change_that_does_not_install_alone_is_skipped_and_named_with_what_it_needs(
    built: Callable[[frozenset[str]], dict[str, str]],
) -> None:
    found = search(built, lambda versions: versions["toy-b"] == "2.0")
    assert found.status == "found" and found.culprits == ["toy-b", "toy-c"] and not found.interaction
    assert found.alone == {"toy-b": "skip", "toy-c": "good"}
    skipped = found.skipped
    assert skipped and all("toy-b" in probe.applied and "toy-c" not in probe.applied for probe in skipped)
    assert "toy-c" in skipped[0].judgement.evidence  # uv says what could not be satisfied


def test_joined_by_the_ends_metadata_the_change_that_needs_another_moves_with_it_and_nothing_is_skipped(
    index: LocalIndex, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UV_DEFAULT_INDEX", index.url)
    for variable in ("UV_INDEX_URL", "PIP_INDEX_URL", "UV_EXTRA_INDEX_URL"):
        monkeypatch.delenv(variable, raising=False)
    base = Runtime(name="toys", python="3.11", packages=dict.fromkeys(PACKAGES[:-1], ""))
    ends = Ends("old", "new", base, OLD, NEW, lock_diff(OLD, NEW, base.lockstep))
    every = frozenset(PACKAGES)
    sides = [build_environment(subset_runtime(ends, names), tmp_path) for names in (frozenset(), every)]
    metadata = [read_metadata(site_packages(environment.path)) for environment in sides]
    changes = couple(ends.changes, OLD, NEW, *metadata, "3.11")
    assert [change.name for change in changes] == ["toy-a", "toy-b+toy-c", "toy-d", "toy-e"]
    assert changes[1].why == ("toy-b 2.0 requires toy-c>=2.0 (the other end has 1.0)",)
    joined_ends = Ends("old", "new", base, OLD, NEW, changes)
    by_name = {change.name: change for change in changes}

    def judge(names: frozenset[str]) -> Judgement:
        environment = build_environment(subset_runtime(joined_ends, names), tmp_path)  # raises if unresolvable
        held = environment.packages
        return Judgement("bad" if held["toy-b"] == "2.0" else "good", held["toy-b"], held["toy-b"])

    found = attribute(list(by_name), judge)
    assert found.status == "found" and found.culprits == ["toy-b+toy-c"] and not found.skipped
    assert len(found.probes) <= probes_bound(len(changes))
