"""A package's releases, as the package index lists them, and runtimes derived at one release (for bisection).

The index is read through the PEP 691 JSON API (``GET {index}/{name}/``, one request per package, nothing
cached): every file gives a version (wheel or sdist filename), an upload time and a yanked flag. The index is
the one uv or pip would use here (``UV_DEFAULT_INDEX``, ``UV_INDEX_URL``, ``PIP_INDEX_URL``, else PyPI), so a
mirror that serves the builds also serves their list.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

from framework.in_runtime.errors import FrameworkError
from framework.models import Runtime

DEFAULT_INDEX = "https://pypi.org/simple"
INDEX_VARIABLES = ("UV_DEFAULT_INDEX", "UV_INDEX_URL", "PIP_INDEX_URL")
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
TIMEOUT_S = 30.0
# Released together and pinned to each other (distributed X needs dask X): bisected as one unless --alone.
COMPANIONS = {"dask": ("distributed",), "distributed": ("dask",)}
BISECT_PREFIX = "bisect-"  # the runtimes a bisection makes, one per release it measures: bisect-<package>-<release>

Hold = Literal["lock", "spec"]
Fetch = Callable[[str, str], Mapping[str, Any]]


class ReleaseError(FrameworkError):
    """The package index cannot be read, or does not list the package or version asked for."""


@dataclasses.dataclass(frozen=True)
class Release:
    """One version of a package: when its first file was uploaded, and why it was yanked (None: it was not)."""

    version: Version
    uploaded: dt.datetime | None
    yanked: str | None = None
    requires_python: str | None = None

    def __str__(self) -> str:
        return str(self.version)

    def supports(self, python: str) -> bool:
        """Whether a ``3.X`` interpreter satisfies the release's Requires-Python (unknown or invalid: assume so)."""
        if not self.requires_python:
            return True
        try:
            return SpecifierSet(self.requires_python).contains(python, prereleases=True)
        except InvalidSpecifier:
            return True


@dataclasses.dataclass(frozen=True)
class ReleaseRange:
    """The releases to bisect, ordered from the good end to the bad end (both included).

    ``ascending`` is False when good is the newer release: the search is then for the first fixed release.
    ``dropped`` lists the releases in between that are not tried, each with the reason.
    """

    package: str
    releases: list[Release]
    ascending: bool
    dropped: list[tuple[str, str]]

    @property
    def versions(self) -> list[str]:
        return [str(release) for release in self.releases]


def index_url(environ: Mapping[str, str] | None = None) -> str:
    environ = os.environ if environ is None else environ
    for variable in INDEX_VARIABLES:
        if environ.get(variable, "").strip():
            return environ[variable].strip().rstrip("/")
    return DEFAULT_INDEX


def _shown(url: str) -> str:
    """The URL without credentials, for messages."""
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=host))


def fetch_project(index: str, package: str, timeout: float = TIMEOUT_S) -> dict[str, Any]:
    """The index's PEP 691 JSON page of ``package``; ReleaseError (one line, with the fix) on any failure."""
    url = f"{index.rstrip('/')}/{canonicalize_name(package)}/"
    request = urllib.request.Request(url, headers={"Accept": JSON_TYPE, "User-Agent": "dask-blessing"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            content_type = response.headers.get("Content-Type", "")
            body = response.read()
    except urllib.error.HTTPError as error:
        if error.code == 404:
            raise ReleaseError(
                f"--package={package}: the package index {_shown(index)} has no package {package!r}"
                " — check the name (as on PyPI, e.g. 'dask' or 'distributed')"
            ) from None
        raise ReleaseError(
            f"package index {_shown(url)} answered HTTP {error.code} {error.reason}"
            f" — check it, or point {INDEX_VARIABLES[0]} at another index"
        ) from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise ReleaseError(
            f"cannot reach the package index {_shown(url)}: {reason}"
            f" — check the network, or point {INDEX_VARIABLES[0]} at a reachable index"
        ) from None
    if "json" not in content_type:
        raise ReleaseError(
            f"package index {_shown(url)} answered {content_type or 'without a content type'}, not PEP 691 JSON"
            f" — point {INDEX_VARIABLES[0]} at an index that serves {JSON_TYPE} (e.g. {DEFAULT_INDEX})"
        )
    try:
        document: dict[str, Any] = json.loads(body)
    except ValueError as error:
        raise ReleaseError(f"package index {_shown(url)} answered invalid JSON ({error}) — try again later") from None
    return document


def _file_version(filename: str) -> Version | None:
    try:
        if filename.endswith(".whl"):
            return parse_wheel_filename(filename)[1]
        if filename.endswith((".tar.gz", ".zip")):
            return parse_sdist_filename(filename)[1]
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None
    return None  # eggs, .exe installers, .tar.bz2 of 2012: nothing an installer would pick today


def _uploaded(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def parse_releases(document: Mapping[str, Any]) -> dict[Version, Release]:
    """Every version with a wheel or sdist; yanked only when all its files are; uploaded = its earliest file."""
    files: dict[Version, list[Mapping[str, Any]]] = {}
    for entry in document.get("files", []):
        version = _file_version(str(entry.get("filename", "")))
        if version is not None:
            files.setdefault(version, []).append(entry)
    releases = {}
    for version, entries in files.items():
        times = [t for t in (_uploaded(entry.get("upload-time")) for entry in entries) if t is not None]
        yanked = [entry.get("yanked") for entry in entries]
        reason = None
        if all(yanked):
            reason = next((str(y) for y in yanked if isinstance(y, str) and y), "yanked")
        requires = next((str(e["requires-python"]) for e in entries if e.get("requires-python")), None)
        releases[version] = Release(version, min(times) if times else None, reason, requires)
    return dict(sorted(releases.items()))


def list_releases(package: str, index: str | None = None, fetch: Fetch = fetch_project) -> dict[Version, Release]:
    """All releases of ``package`` on the index, oldest first."""
    index = index or index_url()
    releases = parse_releases(fetch(index, package))
    if not releases:
        raise ReleaseError(
            f"--package={package}: the package index {_shown(index)} lists no wheel or sdist of {package!r}"
            " — check the name"
        )
    return releases


def _find(releases: Mapping[Version, Release], text: str, option: str, package: str) -> Release:
    try:
        wanted = Version(text)
    except ValueError:
        raise ReleaseError(f"{option}={text}: not a version — use a release of {package}, e.g. 2025.1.0") from None
    if wanted in releases:
        return releases[wanted]
    ordered = list(releases)
    below = [str(v) for v in ordered if v < wanted][-2:]
    above = [str(v) for v in ordered if v > wanted][:2]
    raise ReleaseError(
        f"{option}={text}: {package} has no release {text} — releases around it: {', '.join(below + above)}"
    )


def select_range(
    package: str,
    releases: Mapping[Version, Release],
    good: str,
    bad: str,
    python: str | None = None,
    companions: Mapping[str, Mapping[Version, Release]] | None = None,
) -> ReleaseRange:
    """The releases from ``good`` to ``bad`` (either order), without pre-releases (unless an end is one),
    yanked releases, releases whose Requires-Python excludes ``python``, and versions a companion lacks."""
    good_release = _find(releases, good, "--good", package)
    bad_release = _find(releases, bad, "--bad", package)
    if good_release.version == bad_release.version:
        raise ReleaseError(f"--good={good} --bad={bad}: the same release — give two different releases")
    for name, theirs in (companions or {}).items():
        for option, release in (("--good", good_release), ("--bad", bad_release)):
            if release.version not in theirs:
                raise ReleaseError(
                    f"{option}={release}: {name} has no release {release} to move with {package}"
                    f" — choose an end both have, or move {package} alone with --alone"
                )
    low, high = sorted((good_release.version, bad_release.version))
    with_pre = low.is_prerelease or high.is_prerelease
    kept, dropped = [], []
    for version, release in releases.items():
        if not low < version < high:
            continue
        missing = [name for name, theirs in (companions or {}).items() if version not in theirs]
        if version.is_prerelease and not with_pre:
            dropped.append((str(version), "pre-release"))
        elif release.yanked:
            dropped.append((str(version), f"yanked: {release.yanked}"))
        elif python and not release.supports(python):
            dropped.append((str(version), f"requires Python {release.requires_python}, the runtime has {python}"))
        elif missing:
            dropped.append((str(version), f"no {', '.join(missing)} {version}"))
        else:
            kept.append(release)
    ascending = good_release.version < bad_release.version
    ordered = [good_release, *(kept if ascending else reversed(kept)), bad_release]
    return ReleaseRange(package, ordered, ascending, dropped)


# --- runtimes at a release ---------------------------------------------------------------------------------------


def package_keys(runtime: Runtime) -> dict[str, str]:
    """Normalised package name → the key declared in the runtime (``dask`` → ``dask[dataframe,array]``)."""
    return {canonicalize_name(re.split(r"[\[\s]", key, maxsplit=1)[0]): key for key in runtime.packages}


def moved_packages(package: str, runtime: Runtime, alone: bool) -> list[str]:
    """The bisected package and, unless ``alone``, the companions the runtime declares."""
    name = canonicalize_name(package)
    declared = package_keys(runtime)
    together = [] if alone else [c for c in COMPANIONS.get(name, ()) if c in declared]
    return [name, *together]


def derived_runtime(
    base: Runtime,
    moved: Sequence[str],
    release: Release,
    hold: Hold,
    lock: Mapping[str, str] | None = None,
) -> Runtime:
    """``base`` with the ``moved`` packages pinned to ``release`` and the other declared packages held.

    ``hold="lock"``: every other declared package pinned to the version in ``lock`` (the base environment's
    ``uv pip freeze``), ``as_of`` dropped — the pins make the runtime fully pinned, and an old ``as_of``
    would hide newer releases of the moved packages. ``hold="spec"``: the declared specifiers kept, resolved
    as of the day after the release was uploaded (what a user installing it that day got).
    """
    keys = package_keys(base)
    packages = dict(base.packages)
    moved_names = {canonicalize_name(name) for name in moved}
    as_of: dt.date | None
    if hold == "lock":
        if lock is None:
            raise ValueError("hold='lock' needs the base environment's lock")
        for name, key in keys.items():
            if name not in moved_names and name in lock:
                packages[key] = f"=={lock[name]}"
        as_of = None
    else:
        if release.uploaded is None:
            raise ReleaseError(
                f"--hold=spec: the package index gives no upload time for {release.version}"
                " — use --hold=lock (other packages pinned as in the runtime's environment)"
            )
        as_of = release.uploaded.date() + dt.timedelta(days=1)
    for name in moved:
        packages[keys.get(canonicalize_name(name), name)] = f"=={release.version}"
    moved_text = " and ".join(moved)
    held = "pinned as in its environment" if hold == "lock" else f"as declared, as of {as_of}"
    return Runtime(
        name=f"{BISECT_PREFIX}{canonicalize_name(moved[0])}-{release.version}",
        description=f"{base.name} with {moved_text} =={release.version}; other packages {held} (bisection)",
        python=base.python,
        packages=packages,
        as_of=as_of,
        env=dict(base.env),
        dask_config=dict(base.dask_config),
        # A family split by --alone (dask moved, distributed held) is what the user asked to measure: not checked.
        lockstep=[family for family in base.lockstep if len({name in moved_names for name in family}) == 1],
    )
