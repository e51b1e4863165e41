"""Changes joined by what the two ends' metadata requires: forward (a new version needs another's new one), backward (an
old version holds another back), added and removed packages, extras only when in use, markers of the runtime's
Python — and, over random requirement graphs, that every union of the joined changes is a set of pins both ends'
metadata accept (what a probe needs to resolve). The plan is joined from the ends' environments, and says when it
cannot be."""

from __future__ import annotations

from argparse import Namespace
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.requirements import Requirement
from packaging.version import Version

from framework.attribute.changes import Change, lock_diff
from framework.attribute.coupling import Installed, couple, extras_in_use, marker_environment, read_metadata
from framework.in_runtime.errors import EnvironmentBuildError
from framework.models import Runtime


def write_dist(folder: Path, name: str, version: str, requires: Sequence[str] = (), extras: Sequence[str] = ()) -> None:
    info = folder / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Provides-Extra: {extra}" for extra in extras]
    lines += [f"Requires-Dist: {line}" for line in requires]
    (info / "METADATA").write_text("\n".join(lines) + "\n\nA description.\n")


def side(tmp_path: Path, label: str, dists: Mapping[str, tuple[str, Sequence[str]]]) -> dict[str, Installed]:
    folder = tmp_path / label
    folder.mkdir(parents=True)
    for name, (version, requires) in dists.items():
        write_dist(folder, name, version, requires)
    return read_metadata([folder])


def joined(
    tmp_path: Path,
    old: Mapping[str, tuple[str, Sequence[str]]],
    new: Mapping[str, tuple[str, Sequence[str]]],
    roots: Mapping[str, Sequence[str]] | None = None,
    lockstep: Sequence[Sequence[str]] = (),
) -> list[Change]:
    baseline = {name: version for name, (version, _) in old.items()}
    candidate = {name: version for name, (version, _) in new.items()}
    changes = lock_diff(baseline, candidate, lockstep)
    metadata = side(tmp_path, "old", old), side(tmp_path, "new", new)
    return couple(changes, baseline, candidate, *metadata, "3.11", roots or {})


def names(changes: list[Change]) -> list[str]:
    return [change.name for change in changes]


def test_a_new_version_that_needs_the_other_new_version_joins_them_with_the_reason(tmp_path: Path) -> None:
    old = {"fsspec": ("1.0", []), "s3fs": ("1.0", ["fsspec==1.0"]), "toolz": ("1.0", [])}
    new = {"fsspec": ("2.0", []), "s3fs": ("2.0", ["fsspec==2.0"]), "toolz": ("1.1", [])}
    changes = joined(tmp_path, old, new)
    assert names(changes) == ["fsspec+s3fs", "toolz"]
    assert changes[0].why == ("s3fs 2.0 requires fsspec==2.0 (the other end has 1.0)",)
    assert changes[0].moves == (("fsspec", "1.0", "2.0"), ("s3fs", "1.0", "2.0"))


def test_an_old_version_that_holds_the_other_back_joins_them(tmp_path: Path) -> None:
    old = {"moto": ("5.1", ["pydantic<=2.12"]), "pydantic": ("2.12", [])}
    new = {"moto": ("5.2", []), "pydantic": ("2.14", [])}
    changes = joined(tmp_path, old, new)
    assert names(changes) == ["moto+pydantic"]
    assert changes[0].why == ("moto 5.1 requires pydantic<=2.12 (the other end has 2.14)",)


def test_unrelated_and_satisfied_requirements_join_nothing(tmp_path: Path) -> None:
    old = {"a": ("1.0", ["b>=1"]), "b": ("1.0", []), "c": ("1.0", ["a"])}
    new = {"a": ("2.0", ["b>=1"]), "b": ("2.0", []), "c": ("1.0", ["a"])}
    assert names(joined(tmp_path, old, new)) == ["a", "b"]


def test_an_added_and_a_removed_package_join_what_needs_them(tmp_path: Path) -> None:
    old = {
        "importlib-metadata": ("9.0", ["zipp"]), "zipp": ("3.0", []), "legacy": ("1.0", []), "user": ("1.0", ["legacy"])
    }  # fmt: skip
    new = {
        "importlib-metadata": ("10.0", ["zipp", "lazy-importer>=0.1"]), "zipp": ("3.0", []),
        "lazy-importer": ("0.1", []), "user": ("2.0", []),
    }  # fmt: skip
    changes = joined(tmp_path, old, new)
    assert names(changes) == ["importlib-metadata+lazy-importer", "legacy+user"]
    assert "the other end has absent" in changes[0].why[0]
    assert changes[1].why == ("user 1.0 requires legacy (the other end has absent)",)


def test_a_requirement_under_an_extra_counts_only_when_that_extra_is_in_use(tmp_path: Path) -> None:
    testing = 'markupsafe==1.1.1; extra == "testing"'
    old = {"jedi": ("0.19", [testing]), "markupsafe": ("3.0", []), "app": ("1.0", [])}
    new = {"jedi": ("0.20", [testing]), "markupsafe": ("3.1", []), "app": ("1.0", [])}
    assert names(joined(tmp_path, old, new)) == ["jedi", "markupsafe"]  # nobody asks for jedi[testing]
    assert names(joined(tmp_path / "roots", old, new, roots={"jedi": ["testing"]})) == ["jedi+markupsafe"]
    # asked for by another package's requirement, in turn
    old["app"] = new["app"] = ("1.0", ["jedi[testing]"])
    assert names(joined(tmp_path / "transitive", old, new)) == ["jedi+markupsafe"]


def test_markers_are_read_for_the_runtimes_python(tmp_path: Path) -> None:
    old = {"a": ("1.0", ['b<2; python_version < "3.9"']), "b": ("1.0", [])}
    new = {"a": ("2.0", ['b<2; python_version < "3.9"']), "b": ("2.0", [])}
    assert names(joined(tmp_path, old, new)) == ["a", "b"]
    assert marker_environment("3.9")["python_full_version"] == "3.9.0"
    assert marker_environment("3.12.4")["python_version"] == "3.12"


def test_joins_are_transitive_take_the_first_members_place_and_keep_a_family_whole(tmp_path: Path) -> None:
    old = {"dask": ("1", []), "distributed": ("1", ["dask==1"]), "a": ("1", []), "m": ("1", []), "z": ("1", ["m==1"])}
    new = {"dask": ("2", ["a>=2"]), "distributed": ("2", ["dask==2"]), "a": ("2", []), "m": ("2", []), "z": ("2", [])}
    changes = joined(tmp_path, old, new, lockstep=[["dask", "distributed"]])
    assert names(changes) == ["dask+distributed+a", "m+z"]
    assert changes[0].moves[:2] == (("dask", "1", "2"), ("distributed", "1", "2"))


def test_extras_in_use_reach_through_requirements_under_extras() -> None:
    metadata = {
        "root": Installed("1", (Requirement('mid[x]; extra == "all"'),), ("all",)),
        "mid": Installed("1", (Requirement('leaf[y]; extra == "x"'),), ("x",)),
        "leaf": Installed("1", (), ("y",)),
    }
    env = marker_environment("3.11")
    assert extras_in_use(metadata, {}, env)["leaf"] == set()
    assert extras_in_use(metadata, {"root": ["all"]}, env) == {"root": {"all"}, "mid": {"x"}, "leaf": {"y"}}


PACKAGES = [f"p{index}" for index in range(6)]


@st.composite
def coupled_locks(draw: st.DrawFn) -> tuple[dict[str, tuple[str, list[str]]], dict[str, tuple[str, list[str]]]]:
    """Two consistent locks over p0..p5: each package at version 1 or 2 on each side, or absent. A release's
    requirements (exact pins) are drawn once per (package, version) — the same release has the same metadata on both
    sides — and kept only where every side holding that release satisfies them (each lock is one uv resolved)."""
    versions = [{name: draw(st.sampled_from(["1", "2", None])) for name in PACKAGES} for _ in range(2)]
    releases = {(name, version) for here in versions for name, version in here.items() if version is not None}
    requires: dict[tuple[str, str], list[str]] = {}
    for name, version in sorted(releases):
        targets = draw(st.lists(st.sampled_from(PACKAGES), max_size=3, unique=True))
        pins = [(target, draw(st.sampled_from(["1", "2"]))) for target in targets if target != name]
        holders = [here for here in versions if here[name] == version]
        requires[(name, version)] = [
            f"{target}=={pinned}" for target, pinned in pins if all(here[target] == pinned for here in holders)
        ]
    old, new = (
        {name: (version, requires[(name, version)]) for name, version in here.items() if version is not None}
        for here in versions
    )
    return old, new


def consistent(pins: Mapping[str, str], metadata: Mapping[str, Mapping[str, Installed]]) -> bool:
    """Every pinned package's requirements (from the side whose version it is) satisfied by the pins."""
    for name, version in pins.items():
        installed = next(side[name] for side in metadata.values() if name in side and side[name].version == version)
        for requirement in installed.requires:
            have = pins.get(requirement.name)
            if have is None or not requirement.specifier.contains(Version(have)):
                return False
    return True


@settings(max_examples=120, deadline=None)
@given(locks=coupled_locks(), picks=st.lists(st.booleans(), min_size=6, max_size=6))
def test_every_union_of_joined_changes_is_a_set_of_pins_both_ends_accept(
    locks: tuple[dict[str, tuple[str, list[str]]], ...], picks: list[bool]
) -> None:
    import tempfile

    old, new = locks
    baseline = {name: version for name, (version, _) in old.items()}
    candidate = {name: version for name, (version, _) in new.items()}
    changes = lock_diff(baseline, candidate)
    if not changes:
        return
    with tempfile.TemporaryDirectory() as folder:
        metadata = {"old": side(Path(folder), "old", old), "new": side(Path(folder), "new", new)}
    result = couple(changes, baseline, candidate, metadata["old"], metadata["new"], "3.11")
    assert sorted(move for change in result for move in change.moves) == sorted(
        move for change in changes for move in change.moves
    )
    chosen = [change for change, pick in zip(result, picks) if pick]
    pins = dict(baseline)
    for change in chosen:
        for name, _, version in change.moves:
            if version is None:
                pins.pop(name)
            else:
                pins[name] = version
    assert consistent(pins, metadata), (result, chosen, pins)


def test_the_plan_is_joined_from_the_ends_environments_and_says_when_it_cannot_be(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from framework.attribute import session
    from framework.attribute.probes import Ends

    base = Runtime(name="toys", python="3.11", packages={"dask": "", "distributed": ""})
    old = {"dask": "1", "distributed": "1", "fsspec": "1", "s3fs": "1"}
    new = dict.fromkeys(old, "2")
    ends = Ends("old", "new", base, old, new, lock_diff(old, new, base.lockstep))
    plan = session.Plan(ends, None, None, None, None, None)

    def fake_build(runtime: Runtime, root: Path) -> SimpleNamespace:
        version = runtime.packages["dask"].lstrip("=")
        path = root / f"env{version}"
        if not path.exists():
            folder = path / "lib" / "python3.11" / "site-packages"
            for name in old:
                write_dist(folder, name, version, [f"fsspec=={version}"] if name == "s3fs" else [])
        return SimpleNamespace(path=path)

    monkeypatch.setattr(session, "build_environment", fake_build)
    changes = session.joined(plan, tmp_path, build=True).ends.changes
    assert names(changes) == ["dask+distributed", "fsspec+s3fs"]
    options = Namespace(baseline="old", candidate="new")
    described = session.describe_plan(session.joined(plan, tmp_path, build=True), options)
    assert "4 package(s) moved from old to new, as 2 change(s)" in described
    assert "together, as s3fs 2 requires fsspec==2 (the other end has 1)" in described

    def broken(runtime: Runtime, root: Path) -> None:
        raise EnvironmentBuildError("resolving its packages failed: no solution")

    monkeypatch.setattr(session, "build_environment", broken)
    assert session.joined(plan, tmp_path, build=True) is plan
    assert "did not build, the changes are not joined: resolving its packages failed" in capsys.readouterr().err
    assert session.joined(plan, tmp_path / "nothing-built", build=False) is plan  # a dry run builds nothing
    assert "is not built yet: the changes are listed as the locks have them" in capsys.readouterr().err
