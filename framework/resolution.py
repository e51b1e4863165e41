"""A runtime → a lock: ``uv pip compile --generate-hashes`` for its Python, with lockstep families kept coherent.

Packages released in lockstep (``lockstep`` in runtimes.yaml; default dask and distributed) always come out at one
release. Before resolving, each family the runtime declares is looked up on the package index (one PEP 691 request
per package): the newest release every member has — within the runtime's specifiers, ``as_of`` and Python — is
pinned, so uv never trades a newer dask for a distributed from 2021. When the newest release of one member has no
partner yet, a one-line note says so::

    latest: dask 2026.11.0 has no matching distributed on the index — using dask and distributed 2026.8.0

After resolution the lock is checked again whatever the declaration (a member pulled in only as a dependency, an
index that cannot be listed); a family still apart is steered the same way or is an error. A runtime with an
``as_of`` date resolves the same way every time: its lock is kept in ``.blessing/locks/`` and reused.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from framework.environments import (
    BUILD_RECIPE,
    BuiltEnvironment,
    build_from_lock,
    digest,
    find_python,
    parse_lock,
    run_uv,
)
from framework.in_runtime.errors import EnvironmentBuildError, FrameworkError
from framework.models import Runtime, package_name, release_line

LOCKS_DIR = ".blessing/locks"
# A ranged runtime's resolution is reused this long: what uv and pip consider a fresh index page on PyPI
# (max-age=600). Re-resolving costs ~2 s against an index without cache headers (every page is fetched again).
DEFAULT_RESOLVE_TTL_S = 600.0
TTL_VARIABLE = "DASK_BLESSING_RESOLVE_TTL"
# Shared releases of a lockstep family tried, newest first, before giving up.
COHERENT_TRIES = 4

ListReleases = Callable[[str], Mapping[Version, Any]]


@dataclasses.dataclass(frozen=True)
class Resolution:
    """A runtime resolved: the lock text (pins with hashes), and what was noted on the way."""

    runtime: Runtime
    lock: str
    note: str | None  # e.g. "latest: dask 2026.11.0 has no matching distributed on the index — using …"
    reused: bool  # a kept lock, not resolved again (an as_of runtime's, or one inside the freshness window)
    seconds: float
    age_s: float | None = None  # how old the kept lock is

    def how(self) -> str:
        """``resolved in 1.8 s``, or how old the reused resolution is."""
        if not self.reused:
            return f"resolved in {self.seconds:.1f} s"
        if self.runtime.as_of is not None:
            return f"resolution as of {self.runtime.as_of} reused"
        minutes = (self.age_s or 0.0) / 60
        return (
            f"resolution of {minutes:.0f} min ago reused (fresh for {resolve_ttl_s() / 60:.0f} min;"
            f" {TTL_VARIABLE}=0 or --rebuild resolves now)"
        )

    @property
    def packages(self) -> dict[str, str]:
        return parse_lock(self.lock)


# The harness's own tools in a runtime, resolved to their newest release for the runtime's Python even under
# ``as_of``: they are how the runtime is tested, not what is tested. hypothesis 6.56 (October 2022, what as_of
# 2022-10-30 gave) generates the first examples of a batch nearly empty — on dask-2022.10.1, 19 of a ci batch's
# first 26 examples ran at most 2 steps, where today's runs 11 — so the fuzzer hardly ran on old releases.
AS_OF_EXEMPT = ("hypothesis",)


def as_of_args(runtime: Runtime, now: dt.datetime | None = None) -> list[str]:
    """uv's arguments for ``as_of``: everything as it was that day, but the harness's tools (``AS_OF_EXEMPT``)."""
    if runtime.as_of is None:
        return []
    # Midnight UTC of the as_of date: everything released before that day, as a user would have had it.
    args = ["--exclude-newer", f"{runtime.as_of.isoformat()}T00:00:00Z"]
    declared = {name.split("[")[0].lower() for name in runtime.packages}
    stamp = (now or dt.datetime.now(dt.timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for package in AS_OF_EXEMPT:
        if package in declared:
            args += ["--exclude-newer-package", f"{package}={stamp}"]
    return args


def compile_lock(runtime: Runtime, python: Path, pins: Sequence[str] = ()) -> str:
    """``uv pip compile`` of the runtime (plus ``pins``, each ``name==version``): the lock text, with hashes."""
    args = [
        "pip", "compile", "-", "--quiet", "--generate-hashes", "--python", str(python),
        "--custom-compile-command", f"nox -s export -- --runtime={runtime.name}",
    ]  # fmt: skip
    args += as_of_args(runtime)
    # In declared order, lockstep pins first: uv's resolver visits packages in that order, and the sorted order
    # (coiled first) was seen backtracking for 16 s where the declared one takes 4 s.
    declared = [f"{package}{specifier}" for package, specifier in runtime.packages.items()]
    pinned = [f"{package}{specifier}" for package, specifier in sorted(runtime.pins.items())]
    stdin = "\n".join([*pins, *declared, *pinned]) + "\n"
    return run_uv(args, runtime, "resolving its packages", stdin=stdin)


# --------------------------------------------------------------------------------------------------
# Lockstep families


def incoherent_families(runtime: Runtime, packages: Mapping[str, str]) -> list[list[tuple[str, str]]]:
    """Families whose locked members are not at one release: [[(package, version), …], …]."""
    broken = []
    for family in runtime.lockstep:
        members = [(name, packages[name]) for name in family if name in packages]
        if len({release_line(version) for _, version in members}) > 1:
            broken.append(members)
    return broken


@dataclasses.dataclass(frozen=True)
class Shared:
    """What the index offers a family: the newest allowed release of each member, and the releases all share."""

    newest: dict[str, str]  # member → its newest allowed release
    releases: list[dict[str, str]]  # newest first: {member: version}, one entry per shared release line


def shared_releases(runtime: Runtime, members: Sequence[str], list_releases: ListReleases) -> Shared:
    """Releases every member has on the index (within the runtime's specifiers, ``as_of`` and Python; not yanked,
    not pre-releases), newest first."""
    specifiers = {package_name(key): SpecifierSet(specifier) for key, specifier in runtime.packages.items()}
    per_member: list[dict[tuple[int, ...], Version]] = []
    for name in members:
        usable: dict[tuple[int, ...], Version] = {}
        pinned = {Version(s.version) for s in specifiers.get(name, SpecifierSet()) if s.operator == "=="
                  and "*" not in s.version}  # fmt: skip
        for version, release in list_releases(name).items():
            # A yanked release only where it is pinned exactly (PEP 592; dask 2022.10.1 was yanked, and is pinned).
            if getattr(release, "yanked", None) and version not in pinned:
                continue
            if (version.is_prerelease and version not in pinned) or not release.supports(runtime.python):
                continue
            uploaded = getattr(release, "uploaded", None)
            if runtime.as_of is not None and uploaded is not None and uploaded.date() >= runtime.as_of:
                continue
            if name in specifiers and not specifiers[name].contains(version, prereleases=False):
                continue
            line = release_line(str(version))
            if line not in usable or version > usable[line]:
                usable[line] = version
        per_member.append(usable)
    newest = {name: str(max(found.values())) for name, found in zip(members, per_member) if found}
    common = set(per_member[0]).intersection(*per_member[1:]) if per_member else set()
    releases = [
        {name: str(found[line]) for name, found in zip(members, per_member)} for line in sorted(common, reverse=True)
    ]
    return Shared(newest, releases)


def steering_note(runtime: Runtime, shared: Shared, chosen: Mapping[str, str]) -> str | None:
    """Why the family is not at the newest release of each member, in one line; None when it is."""
    if all(chosen.get(name) == version for name, version in shared.newest.items()):
        return None
    names = " and ".join(chosen)
    leader = max(shared.newest, key=lambda name: Version(shared.newest[name]))
    version = shared.newest[leader]
    using = f"using {names} {chosen[leader]}"
    partners = [name for name in chosen if name != leader]
    top = shared.releases[0] if shared.releases else {}
    if release_line(top.get(leader, "0")) != release_line(version):
        return f"{runtime.name}: {leader} {version} has no matching {' or '.join(partners)} on the index — {using}"
    return f"{runtime.name}: {names} {top[leader]} do not resolve with the rest of the runtime — {using}"


def _lister(list_releases: ListReleases | None) -> ListReleases:
    if list_releases is not None:
        return list_releases
    from framework.releases import list_releases as from_index

    return from_index


def coherent_lock(runtime: Runtime, python: Path, list_releases: ListReleases | None = None) -> tuple[str, str | None]:
    """Resolve the runtime with every lockstep family at one release: (lock, the note when it had to be steered)."""
    lister = _lister(list_releases)
    declared = {package_name(key) for key in runtime.packages}
    offers: list[tuple[list[str], Shared]] = []
    for family in runtime.lockstep:
        members = [name for name in family if name in declared]
        if len(members) < 2:
            continue  # checked after resolution
        try:
            offer = shared_releases(runtime, members, lister)
        except FrameworkError:
            continue  # an index that cannot be listed: resolve, then check
        if not offer.releases:
            found = ", ".join(f"{name} {version}" for name, version in offer.newest.items()) or "nothing"
            raise EnvironmentBuildError(
                f"matrices/runtimes.yaml: runtimes.{runtime.name}.packages: {' and '.join(members)} are released in"
                f" lockstep, but the index offers no release they share within the runtime's specifiers (newest:"
                f" {found}) — widen the specifiers, or pin both to one release"
            )
        offers.append((members, offer))

    lock, chosen, problem = None, [], ""
    for attempt in range(COHERENT_TRIES):
        chosen = [offer.releases[min(attempt, len(offer.releases) - 1)] for _, offer in offers]
        try:
            lock = compile_lock(runtime, python, [f"{n}=={v}" for pick in chosen for n, v in pick.items()])
            break
        except EnvironmentBuildError as error:
            problem = str(error)
            if not offers:
                raise
    if lock is None:
        raise EnvironmentBuildError(
            f"{problem} (tried the {COHERENT_TRIES} newest releases the lockstep families share)"
        )
    notes = [note for (_, offer), pick in zip(offers, chosen) if (note := steering_note(runtime, offer, pick))]
    lock, later = _steer_after(runtime, python, lock, lister, pins=[f"{n}=={v}" for p in chosen for n, v in p.items()])
    return lock, "; ".join([*notes, *later]) or None


def _steer_after(
    runtime: Runtime, python: Path, lock: str, lister: ListReleases, pins: list[str]
) -> tuple[str, list[str]]:
    """The check after resolution: a family still apart (a member that came in as a dependency) is pinned to the
    newest release its members share; an error when none resolves."""
    notes = []
    for members in incoherent_families(runtime, parse_lock(lock)):
        names = [name for name, _ in members]
        offer = shared_releases(runtime, names, lister)
        for pick in offer.releases[:COHERENT_TRIES]:
            try:
                lock = compile_lock(runtime, python, [*pins, *(f"{n}=={v}" for n, v in pick.items())])
            except EnvironmentBuildError:
                continue
            pins += [f"{n}=={v}" for n, v in pick.items()]
            apart = " and ".join(f"{name} {version}" for name, version in members)
            notes.append(f"{runtime.name}: {apart} resolved apart — using {' and '.join(names)} {pick[names[0]]}")
            break
    still = incoherent_families(runtime, parse_lock(lock))
    if still:
        found = "; ".join(", ".join(f"{n} {v}" for n, v in members) for members in still)
        raise EnvironmentBuildError(
            f"matrices/runtimes.yaml: runtimes.{runtime.name}.packages: lockstep packages resolve apart ({found}) and"
            " no release they share resolves — pin them to one release, e.g. dask: '==2026.8.0' and distributed:"
            " '==2026.8.0'"
        )
    return lock, notes


# --------------------------------------------------------------------------------------------------
# Resolve, then build


def resolve_ttl_s(environ: Mapping[str, str] | None = None) -> float:
    """How long a ranged runtime's resolution is reused (``DASK_BLESSING_RESOLVE_TTL`` seconds; 0: never)."""
    environ = os.environ if environ is None else environ
    text = environ.get(TTL_VARIABLE, "").strip()
    if not text:
        return DEFAULT_RESOLVE_TTL_S
    try:
        value = float(text)
    except ValueError:
        raise EnvironmentBuildError(
            f"{TTL_VARIABLE}={text!r} is not a number of seconds — use e.g. {TTL_VARIABLE}=0 (always resolve) or 600"
        ) from None
    if value < 0:
        raise EnvironmentBuildError(f"{TTL_VARIABLE}={text!r} is negative — use 0 (always resolve) or more")
    return value


def _resolution_key(runtime: Runtime, python: Path) -> str:
    """What decides a resolution besides the index's contents: the name of a kept lock."""
    from framework.releases import index_url

    return digest(
        {
            "recipe": BUILD_RECIPE,
            "python": str(python),
            "requirements": [f"{package}{specifier}" for package, specifier in runtime.packages.items()],
            **({"pins": sorted(runtime.pins.items())} if runtime.pins else {}),
            "as_of": runtime.as_of.isoformat() if runtime.as_of else None,
            "as_of_exempt": AS_OF_EXEMPT if runtime.as_of else None,
            "lockstep": runtime.lockstep,
            "index": index_url(),
        }
    )


def resolve(
    runtime: Runtime, root: Path, refresh: bool = False, list_releases: ListReleases | None = None
) -> Resolution:
    """The runtime's lock: resolved now, or the one kept from before when it cannot have changed (``as_of``) or
    is younger than the freshness window (``DASK_BLESSING_RESOLVE_TTL``, default 10 minutes); ``refresh``
    always resolves."""
    started = time.perf_counter()
    python = find_python(runtime.python, runtime.name)
    kept = root / LOCKS_DIR / f"{runtime.name}-{_resolution_key(runtime, python)}.json"
    if kept.exists() and not refresh:
        try:
            saved = json.loads(kept.read_text())
            age = time.time() - float(saved["resolved_at"])
        except (OSError, ValueError, KeyError, TypeError):
            saved, age = None, float("inf")  # unreadable: resolve again
        if saved is not None and (runtime.as_of is not None or 0 <= age < resolve_ttl_s()):
            seconds = time.perf_counter() - started
            return Resolution(runtime, saved["lock"], saved["note"], True, seconds, age)
    lock, note = coherent_lock(runtime, python, list_releases)
    kept.parent.mkdir(parents=True, exist_ok=True)
    partial = kept.with_suffix(f".{os.getpid()}.partial")
    partial.write_text(json.dumps({"lock": lock, "note": note, "resolved_at": time.time()}))
    partial.replace(kept)
    return Resolution(runtime, lock, note, False, time.perf_counter() - started)


def build_environment(
    runtime: Runtime, root: Path, rebuild: bool = False, list_releases: ListReleases | None = None
) -> BuiltEnvironment:
    """Resolve the runtime to a lock, then build (or reuse) the environment of that lock."""
    resolution = resolve(runtime, root, refresh=rebuild, list_releases=list_releases)
    environment = build_from_lock(runtime, resolution.lock, root, rebuild=rebuild, note=resolution.note)
    return dataclasses.replace(environment, resolve_seconds=resolution.seconds, resolution=resolution.how())
