"""Changes that cannot be applied apart: packages whose versions require each other's, read from the two ends.

A real diff is coupled: ``s3fs 2026.9.0`` requires ``fsspec==2026.9.0``, ``moto`` pins ``pydantic<=2.12.4``. Applied
apart, such changes make a probe uv cannot resolve, and a search over them spends its builds on skips (the first
real attribution here: 15 of 29 probes). So before the search, changes are joined when one side's metadata says
they must move together:

* **forward** — package X at its candidate version requires Y in a range Y's baseline version (or Y's absence) is
  not in: applying X needs Y applied;
* **backward** — X at its baseline version requires Y in a range Y's candidate version (or absence) is not in:
  applying Y needs X applied.

Joined transitively, every union of the resulting changes is a set of pins both ends' metadata agree on, which is
what a probe needs to resolve. The metadata is read from the two ends' environments (``*.dist-info/METADATA``);
a requirement under an extra counts when that extra is in use: asked for by the runtime (``dask[dataframe]``) or by
another requirement in force, transitively. A marker that cannot be evaluated counts (joining too much costs
resolution, never correctness). Each join keeps its reason, to be shown.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from email.parser import HeaderParser
from pathlib import Path
from types import MappingProxyType

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

from framework.attribute.changes import Change


def normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclasses.dataclass(frozen=True)
class Installed:
    """One distribution as its metadata states it: version, requirements (unparsed ones dropped), extras it offers."""

    version: str
    requires: tuple[Requirement, ...]
    extras: tuple[str, ...]


def read_metadata(site_packages: Iterable[Path]) -> dict[str, Installed]:
    """``{normalised name: Installed}`` for every ``*.dist-info`` in the given folders."""
    found: dict[str, Installed] = {}
    parser = HeaderParser()
    for folder in site_packages:
        for info in sorted(folder.glob("*.dist-info")):
            try:
                message = parser.parsestr((info / "METADATA").read_text(encoding="utf-8", errors="replace"))
            except OSError:
                continue
            name, version = message.get("Name"), message.get("Version")
            if not name or not version:
                continue
            requires = []
            for line in message.get_all("Requires-Dist") or []:
                try:
                    requires.append(Requirement(line))
                except InvalidRequirement:
                    continue
            extras = tuple(normal(extra) for extra in message.get_all("Provides-Extra") or [])
            found[normal(name)] = Installed(version, tuple(requires), extras)
    return found


def site_packages(environment: Path) -> list[Path]:
    """The ``site-packages`` folders of a virtual environment."""
    return sorted(environment.glob("lib/python*/site-packages"))


def marker_environment(python: str) -> dict[str, str]:
    """The marker variables of this platform with the runtime's Python (``3.11`` → python_version 3.11)."""
    environment = {key: str(value) for key, value in default_environment().items()}
    environment["python_version"] = ".".join(python.split(".")[:2])
    if python.count(".") >= 2:
        environment["python_full_version"] = python
    else:
        environment["python_full_version"] = f"{environment['python_version']}.0"
    return environment


def _applies(requirement: Requirement, extras: Iterable[str], env: dict[str, str]) -> bool:
    """Whether ``requirement`` is in force for its owner installed with ``extras`` (the empty one always)."""
    marker = requirement.marker
    if marker is None:
        return True
    try:
        return any(marker.evaluate({**env, "extra": extra}) for extra in ("", *extras))
    except Exception:  # an undefined marker variable: count it, joining too much is the safe side
        return True


def extras_in_use(
    metadata: Mapping[str, Installed], roots: Mapping[str, Iterable[str]], env: dict[str, str]
) -> dict[str, set[str]]:
    """The extras each installed package is in use with: the runtime's own (``dask[dataframe]``), and those its
    requirements ask for in turn (``dask[dataframe]`` requires ``pandas``; ``moto[server]`` requires ``flask``…)."""
    active: dict[str, set[str]] = {name: set() for name in metadata}
    for name, extras in roots.items():
        active.setdefault(normal(name), set()).update(normal(extra) for extra in extras)
    changed = True
    while changed:
        changed = False
        for name, installed in metadata.items():
            for requirement in installed.requires:
                target = normal(requirement.name)
                wanted = {normal(extra) for extra in requirement.extras}
                if not wanted or wanted <= active.setdefault(target, set()):
                    continue
                if _applies(requirement, active[name], env):
                    active[target] |= wanted
                    changed = True
    return active


def _satisfied(requirement: Requirement, version: str | None) -> bool:
    if version is None:
        return False
    try:
        return requirement.specifier.contains(Version(version), prereleases=True)
    except InvalidVersion:
        return True  # not a version packaging reads: no claim either way


def couple(
    changes: Sequence[Change],
    baseline: Mapping[str, str],
    candidate: Mapping[str, str],
    baseline_metadata: Mapping[str, Installed],
    candidate_metadata: Mapping[str, Installed],
    python: str,
    roots: Mapping[str, Iterable[str]] = MappingProxyType({}),
) -> list[Change]:
    """``changes`` with those that must move together joined into one (names joined by ``+``, reasons kept).

    ``baseline``/``candidate`` are the locks (``{package: version}``); the metadata is each side's installed
    distributions; ``roots`` the runtime's declared packages with their extras (``{"dask": ["dataframe"]}``). A
    joined change takes the place of its first member; the order is otherwise kept."""
    owner = {normal(name): change.name for change in changes for name, _, _ in change.moves}
    parent = {change.name: change.name for change in changes}
    reasons: dict[str, list[str]] = {change.name: [] for change in changes}

    def root(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    def join(a: str, b: str, why: str) -> None:
        first, second = root(a), root(b)
        if first == second:
            return
        parent[second] = first
        reasons[first] += [*reasons.pop(second), why]

    env = marker_environment(python)
    sides = (
        (candidate_metadata, candidate, baseline),  # forward: X's new version needs Y's new one
        (baseline_metadata, baseline, candidate),  # backward: X's old version holds Y back
    )
    for metadata, here, there in sides:
        extras = extras_in_use(metadata, roots, env)
        for package, change_name in owner.items():
            installed = metadata.get(package)
            if installed is None or here.get(package) is None:
                continue
            for requirement in installed.requires:
                target = normal(requirement.name)
                if target not in owner or owner[target] == change_name:
                    continue
                if not _applies(requirement, extras.get(package, ()), env):
                    continue
                if _satisfied(requirement, there.get(target)):
                    continue
                shown_there = there.get(target) or "absent"
                why = (
                    f"{package} {here[package]} requires {requirement.name}{requirement.specifier or ''}"
                    f" (the other end has {shown_there})"
                )
                join(change_name, owner[target], why)

    joined: dict[str, list[Change]] = {}
    for change in changes:
        joined.setdefault(root(change.name), []).append(change)
    result = []
    for head, members in joined.items():
        if len(members) == 1:
            result.append(members[0])
            continue
        moves = tuple(move for member in members for move in member.moves)
        result.append(Change("+".join(member.name for member in members), moves, tuple(reasons[head])))
    return result
