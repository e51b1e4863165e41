"""Checked deployments: a cluster this process did not start runs the client's versions of the card packages.

On an ``address`` or Coiled cluster the scheduler and workers have an environment of their own. On connect (and
again after each restart) the runner asks them for their versions with ``Client.get_versions`` and compares them
with the client's — the runtime's lock. A difference in a checked package is a ``setup`` error for every case of
the run, naming the package, both versions and where; what the cluster reported is recorded on every row
(``worker_packages``).

Checked: the runtime card's packages, plus ``dask``, ``distributed`` and ``cloudpickle`` (workloads travel to a
remote cluster pickled by value) and Python's major.minor (CPython's bytecode, which by-value functions carry,
changes between minor releases, not micro ones). Not checked: distributed's other dependencies (msgpack, tornado,
toolz, lz4) — distributed's own warning on connect still reports a difference there. Runs inside runtime
environments: standard library only.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Iterator
from typing import Any, Optional

from framework.in_runtime.errors import ClusterError

ALWAYS_CHECKED = ("cloudpickle", "dask", "distributed")
PYTHON = "python"
NOT_INSTALLED = "not installed"
SHOWN_ADDRESSES = 3  # a mismatch on 40 workers names the first few and counts the rest
# From this release Client.get_versions reads installed metadata; before, it imports each named package.
METADATA_VERSIONS_SINCE = (2025, 4)
Versions = dict[str, Optional[str]]


class DeploymentMismatchError(ClusterError):
    """The scheduler or a worker runs other versions of checked packages than the client; ``record`` says which."""

    def __init__(self, message: str, record: dict[str, Any]) -> None:
        super().__init__(message)
        self.record = record


@contextlib.contextmanager
def own_version_check(held: list[warnings.WarningMessage]) -> Iterator[None]:
    """Around connecting: distributed's own comparison (a multi-line table, as a warning) is held in ``held``.

    ``check`` then says what matters here as one line, as an error; when it finds nothing, ``release`` gives
    distributed's warning back (a difference in a package not checked here, msgpack or lz4, stays visible)."""
    try:
        from distributed.versions import VersionMismatchWarning
    except ImportError:  # a distributed without it warns nothing to hold
        yield
        return
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as recorded:
            warnings.simplefilter("always", VersionMismatchWarning)
            try:
                yield
            finally:
                caught = list(recorded)
    finally:
        held.extend(w for w in caught if issubclass(w.category, VersionMismatchWarning))
        release([w for w in caught if not issubclass(w.category, VersionMismatchWarning)])  # not ours to hold


def release(held: list[warnings.WarningMessage]) -> None:
    """Distributed's version warnings held while connecting, warned now (the check found no difference of its own)."""
    while held:
        warning = held.pop(0)
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)


def normalise(name: str) -> str:
    """A distribution name as PyPI compares them: ``Scikit_Learn`` → ``scikit-learn``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def checked_packages(runtime: dict[str, Any]) -> list[str]:
    """The runtime card's packages (extras dropped) and the ones every deployment shares, sorted."""
    keys = runtime.get("spec", {}).get("packages") or []
    names = set(ALWAYS_CHECKED)
    for key in keys:  # a mapping (package → specifier), as the runtime model dumps it
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", str(key))
        if match:
            names.add(normalise(match.group(1)))
    return sorted(names)


def _uses_metadata(distributed_version: str) -> bool:
    numbers = re.findall(r"\d+", distributed_version)[:2]
    return tuple(int(number) for number in numbers) >= METADATA_VERSIONS_SINCE


def installed_versions(packages: list[str]) -> dict[str, Any]:
    """This process's versions of ``packages`` as installed (their metadata), in ``get_versions``' shape.

    Run on each process of a cluster whose distributed predates 2025.4 (its get_versions would import them)."""
    import sys
    from importlib import metadata

    found: dict[str, Optional[str]] = {PYTHON: ".".join(map(str, sys.version_info))}
    for package in packages:
        try:
            found[package] = metadata.version(package)
        except Exception:  # not installed (PackageNotFoundError), or metadata without a version
            found[package] = None
    return {"packages": found, "read_from": "metadata"}


def _python(version: Any) -> Optional[str]:
    """get_versions' ``3.11.7.final.0`` → ``3.11.7``."""
    return ".".join(str(version).split(".")[:3]) if version else None


def _versions(answer: Any, packages: list[str]) -> dict[str, Optional[str]]:
    """One process's answer → checked package → version (None: not installed), plus ``python``."""
    reported = (answer or {}).get("packages") or {}
    versions: dict[str, Optional[str]] = {PYTHON: _python(reported.get(PYTHON))}
    # A process whose own distributed predates 2025.4 answered get_versions by importing each name: a None there
    # may be a distribution whose module is named otherwise (scikit-learn is sklearn), not a missing package.
    by_import = (answer or {}).get("read_from") != "metadata" and not _uses_metadata(
        str(reported.get("distributed") or "9999")
    )
    for package in packages:
        value = reported.get(package)
        if value is None and by_import and package not in ALWAYS_CHECKED:
            value = f"unknown (its distributed {reported.get('distributed')} reads versions by importing)"
        versions[package] = str(value) if value is not None else None
    return versions


def _same(package: str, client: Optional[str], other: Optional[str]) -> bool:
    if package == PYTHON and client and other:
        return client.split(".")[:2] == other.split(".")[:2]
    return client == other


def compare(
    client: dict[str, Optional[str]],
    scheduler: dict[str, Optional[str]],
    workers: dict[str, dict[str, Optional[str]]],
) -> list[tuple[str, Optional[str], Optional[str], list[str]]]:
    """Every difference from the client: (package, client's version, other version, where: ``scheduler`` or worker
    addresses), by package then version. A package the client has and another process lacks is a difference."""
    differences: dict[tuple[str, Optional[str]], list[str]] = {}
    processes = [("scheduler", scheduler), *sorted(workers.items())]
    for package in sorted(client):
        for where, versions in processes:
            other = versions.get(package)
            if not _same(package, client[package], other):
                differences.setdefault((package, other), []).append(where)
    return [
        (package, client[package], other, where)
        for (package, other), where in sorted(differences.items(), key=lambda item: (item[0][0], str(item[0][1])))
    ]


def record(
    client: dict[str, Optional[str]],
    scheduler: dict[str, Optional[str]],
    workers: dict[str, dict[str, Optional[str]]],
) -> dict[str, Any]:
    """What the cluster runs, compact enough for every row: the scheduler's versions, and per package how many
    workers run each version (``{"workers": 2, "scheduler": {"dask": "2026.3.0"}, "packages": {"dask":
    {"2026.3.0": 2}}}``; ``not installed`` for a worker without it). ``unchecked`` lists the packages the client
    itself could not read (installed without a version): equal on every side, yet not compared."""
    counts: dict[str, dict[str, int]] = {}
    for versions in workers.values():
        for package, version in versions.items():
            by_version = counts.setdefault(package, {})
            key = version if version is not None else NOT_INSTALLED
            by_version[key] = by_version.get(key, 0) + 1
    found: dict[str, Any] = {
        "workers": len(workers),
        "scheduler": {
            package: (version if version is not None else NOT_INSTALLED) for package, version in scheduler.items()
        },
        "packages": {package: dict(sorted(by_version.items())) for package, by_version in sorted(counts.items())},
    }
    unchecked = sorted(package for package, version in client.items() if version is None)
    if unchecked:
        found["unchecked"] = unchecked
    return found


def _where(places: list[str], n_workers: int) -> str:
    """``the scheduler``, ``worker tcp://…`` or ``3 of 40 workers (tcp://…, tcp://…, tcp://… and 1 more)``."""
    workers = [place for place in places if place != "scheduler"]
    said = ["the scheduler"] if "scheduler" in places else []
    if len(workers) == 1:
        said.append(f"worker {workers[0]}")
    elif workers:
        shown = ", ".join(workers[:SHOWN_ADDRESSES])
        if len(workers) > SHOWN_ADDRESSES:
            shown += f" and {len(workers) - SHOWN_ADDRESSES} more"
        said.append(f"{len(workers)} of {n_workers} workers ({shown})")
    return " and ".join(said)


def mismatch_message(
    hardware: str,
    runtime: str,
    differences: list[tuple[str, Optional[str], Optional[str], list[str]]],
    n_workers: int,
) -> str:
    """One line: each differing package with the client's version and the cluster's, where, then the fix."""
    parts = [
        f"{package} {client or NOT_INSTALLED} here, {other or NOT_INSTALLED} on {_where(where, n_workers)}"
        for package, client, other, where in differences
    ]
    return (
        f"hardware {hardware}: the cluster does not run runtime {runtime}'s packages: {'; '.join(parts)} — install"
        f" the runtime's lock on the scheduler and every worker (nox -s export -- --runtime={runtime}, or the blessed"
        " lock) and restart them"
    )


def _ask(hardware: str, how: str, question: Any) -> Any:
    try:
        return question()
    except Exception as error:
        raise ClusterError(
            f"hardware {hardware}: could not read the cluster's package versions ({how}): {type(error).__name__}:"
            f" {error} — the versions of the scheduler and workers are unchecked, so no case runs"
        ) from error


def _split(answer: dict[str, Any], packages: list[str]) -> tuple[Versions, Versions, dict[str, Versions]]:
    workers = answer.get("workers") or {}
    return (
        _versions(answer.get("client"), packages),
        _versions(answer.get("scheduler"), packages),
        {str(address): _versions(versions, packages) for address, versions in workers.items()},
    )


def check(
    client: Any, packages: list[str], hardware: str, runtime: str, distributed_version: Optional[str] = None
) -> dict[str, Any]:
    """Ask the cluster for its versions; return the record, or raise DeploymentMismatchError (ClusterError when the
    cluster cannot say).

    From distributed 2025.4 ``Client.get_versions`` reads installed metadata: one call asks for everything. Before,
    it imports each named package (seconds each, in the scheduler and every worker, for no use): it is asked only
    for what every process has imported already (Python, dask, distributed, cloudpickle); when those agree —
    so this process's functions unpickle there — each process reads the rest from its metadata
    (``installed_versions``, run there)."""
    if distributed_version is None:
        import distributed

        distributed_version = distributed.__version__
    if _uses_metadata(distributed_version):
        answer = _ask(hardware, "Client.get_versions", lambda: client.get_versions(check=False, packages=packages))
    else:
        basics = [package for package in ALWAYS_CHECKED if package in packages]
        answer = _ask(hardware, "Client.get_versions", lambda: client.get_versions(check=False))
        if not compare(*_split(answer, basics)):
            from framework.in_runtime.metrics import ship_by_value

            ship_by_value(__name__)  # the cluster lacks this project: installed_versions travels as code
            answer = _ask(
                hardware,
                "importlib.metadata on each process",
                lambda: {
                    "client": installed_versions(packages),
                    "scheduler": client.run_on_scheduler(installed_versions, packages),
                    "workers": client.run(installed_versions, packages),
                },
            )
        else:
            packages = basics  # a difference already: it is what the error names
    ours, scheduler, workers = _split(answer, packages)
    found = record(ours, scheduler, workers)
    differences = compare(ours, scheduler, workers)
    if differences:
        raise DeploymentMismatchError(mismatch_message(hardware, runtime, differences, len(workers)), found)
    return found
