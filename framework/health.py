"""Is a built environment usable at all? Checked after every build and before any case runs.

The probe (``python -m framework.health SPEC.json``, inside the runtime's environment; standard library and the
runtime's own packages only, any Python ≥ 3.9):

1. imports every package the runtime declares (lockstep families first, and each declared extra that is a
   subpackage, e.g. ``dask.dataframe`` for ``dask[dataframe]``);
2. confirms the lockstep families agree at run time (``dask 2026.11.0`` with ``distributed 2021.4.1`` does not);
3. starts a one-worker LocalCluster with the runtime's env vars and Dask config, runs one trivial task, stops it.

It prints one line per step and a last ``HEALTH {json}`` line. A runtime that fails is *unusable*: the controller
(:func:`check_health`) turns the first failure into a one-line cause, e.g.
``import distributed failed: ImportError: cannot import name 'collections_to_dsk' from 'dask.base'``.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from framework.environments import BuiltEnvironment

# The whole probe: imports (pyarrow, xgboost … take seconds on a cold cache), then a cluster's start and stop.
HEALTH_TIMEOUT_S = 180.0
CLUSTER_TIMEOUT_S = 60.0
RESULT_PREFIX = "HEALTH "


# --------------------------------------------------------------------------------------------------
# The probe: runs inside the runtime's environment


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ").rstrip()


def import_names(distribution: str) -> list[str]:
    """The top-level modules a distribution installs (``scikit-learn`` → ``sklearn``, ``xgboost-cpu`` → ``xgboost``)."""
    from importlib import metadata

    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        return []
    top_level = (dist.read_text("top_level.txt") or "").split()
    if not top_level:
        found = set()
        for file in dist.files or []:
            parts = Path(str(file)).parts
            if not parts or parts[0].endswith((".dist-info", ".data")) or parts[0] in ("..", "__pycache__", "bin"):
                continue
            if len(parts) > 1 and parts[1] == "__init__.py":
                found.add(parts[0])
            elif len(parts) == 1 and parts[0].endswith(".py"):
                found.add(parts[0][:-3])
        top_level = sorted(found)
    own = distribution.replace("-", "_")
    if own in top_level:
        return [own]
    public = [name for name in top_level if not name.startswith("_")]
    return public or top_level


def _version_line(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version.split("+", maxsplit=1)[0])[:3])


def probe(spec: dict[str, Any]) -> dict[str, Any]:
    """Run the three checks; return {"usable", "cause", "steps", "versions"} (the first failure is the cause)."""
    from importlib import metadata

    steps: list[dict[str, Any]] = []
    causes: list[str] = []
    versions: dict[str, str] = {}

    def step(name: str, ok: bool, started: float, detail: Optional[str] = None) -> None:
        entry = {"step": name, "ok": ok, "seconds": round(time.perf_counter() - started, 3), "detail": detail}
        steps.append(entry)
        print(json.dumps(entry), flush=True)  # noqa: T201 - the controller reads these lines
        if not ok and detail:
            causes.append(detail)

    family_members = [name for family in spec["lockstep"] for name in family]
    packages: list[tuple[str, list[str]]] = spec["packages"]  # (distribution, extras), as declared
    ordered = sorted(packages, key=lambda item: family_members.index(item[0]) if item[0] in family_members else 99)
    for distribution, extras in ordered:
        started = time.perf_counter()
        try:
            versions[distribution] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            step(f"import {distribution}", False, started, f"{distribution} is not installed in the environment")
            continue
        modules = import_names(distribution)
        if not modules:
            step(f"import {distribution}", False, started, f"{distribution} installs no importable module")
            continue
        for module in modules:
            # The module, then each declared extra that is a subpackage of it (dask[dataframe] → dask.dataframe).
            subpackages = [f"{module}.{extra}" for extra in extras]
            for name in [module, *subpackages]:
                if name != module and not _importable(name):
                    continue  # an extra that only adds dependencies (moto[server])
                started = time.perf_counter()
                try:
                    importlib.import_module(name)
                except BaseException as error:
                    step(f"import {name}", False, started, f"import {name} failed: {_one_line(error)}")
                    break
                step(f"import {name}", True, started)

    started = time.perf_counter()
    disagree = []
    for family in spec["lockstep"]:
        present = [(name, versions[name]) for name in family if name in versions]
        if len({_version_line(version) for _, version in present}) > 1:
            disagree.append(" and ".join(f"{name} {version}" for name, version in present))
    detail = f"{'; '.join(disagree)} disagree at run time — they are released in lockstep" if disagree else None
    step("lockstep versions", not disagree, started, detail)

    if not causes and "distributed" in versions:
        started = time.perf_counter()
        try:
            _trivial_cluster(spec.get("dask_config", {}))
            step("one-worker LocalCluster, one task", True, started)
        except BaseException as error:
            step(
                "one-worker LocalCluster, one task",
                False,
                started,
                f"a one-worker LocalCluster failed: {_one_line(error)}",
            )
    return {"usable": not causes, "cause": causes[0] if causes else None, "steps": steps, "versions": versions,
            "problems": len(causes)}  # fmt: skip


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except BaseException:
        return False


def _increment(value: int) -> int:
    return value + 1


def _trivial_cluster(dask_config: dict[str, Any]) -> None:
    import logging

    import dask
    from distributed import Client, LocalCluster

    dask.config.set(dask_config)
    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=logging.ERROR
    ) as cluster, Client(cluster) as client:  # fmt: skip
        result = client.submit(_increment, 1).result(timeout=CLUSTER_TIMEOUT_S)
        if result != 2:
            raise AssertionError(f"the task returned {result!r}, not 2")


def main(argv: Optional[list[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m framework.health SPEC.json", file=sys.stderr)  # noqa: T201
        return 2
    spec = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    outcome = probe(spec)
    print(RESULT_PREFIX + json.dumps(outcome), flush=True)  # noqa: T201
    return 0 if outcome["usable"] else 1


# --------------------------------------------------------------------------------------------------
# The controller's side


@dataclasses.dataclass(frozen=True)
class Health:
    """The probe's verdict on one environment: usable, or the one-line cause of the first failure."""

    usable: bool
    cause: Optional[str]
    seconds: float
    steps: tuple[dict[str, Any], ...] = ()
    versions: dict[str, str] = dataclasses.field(default_factory=dict)
    problems: int = 0

    def headline(self, runtime: str) -> str:
        """``latest is UNUSABLE: import distributed failed: ImportError: …`` (or that it is usable)."""
        if self.usable:
            return f"{runtime} is usable (health check passed in {self.seconds:.1f} s)"
        more = f" (and {self.problems - 1} more problem{'s' if self.problems > 2 else ''})" if self.problems > 1 else ""
        return f"{runtime} is UNUSABLE: {self.cause}{more}"


def probe_spec(environment: BuiltEnvironment) -> dict[str, Any]:
    """What the probe checks: the declared packages with their extras, the families, the Dask config."""
    from packaging.requirements import Requirement

    runtime = environment.runtime
    packages = []
    for key in runtime.packages:
        requirement = Requirement(key)
        packages.append([_normalise(requirement.name), sorted(requirement.extras)])
    return {"packages": packages, "lockstep": runtime.lockstep, "dask_config": dict(runtime.dask_config)}


def check_health(environment: BuiltEnvironment, root: Path, timeout_s: float = HEALTH_TIMEOUT_S) -> Health:
    """Run the probe in the environment, under a deadline; any way it fails becomes a one-line cause."""
    import tempfile

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="blessing-health-") as folder:
        spec_path = Path(folder) / "spec.json"
        spec_path.write_text(json.dumps(probe_spec(environment)))
        env = {**os.environ, **environment.runtime.env, "PYTHONPATH": str(root)}
        env.pop("VIRTUAL_ENV", None)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        try:
            process = subprocess.run(
                [str(environment.python), "-m", "framework.health", str(spec_path)],
                cwd=folder, env=env, capture_output=True, text=True, timeout=timeout_s, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired as expired:
            out = expired.stdout.decode() if isinstance(expired.stdout, bytes) else (expired.stdout or "")
            steps = _steps(out)
            doing = f" after {steps[-1]['step']}" if steps else ""
            return Health(False, f"health check did not finish within {timeout_s:.0f} s{doing}",
                          time.perf_counter() - started, tuple(steps), problems=1)  # fmt: skip
        except OSError as error:
            return Health(False, f"the environment's Python cannot start: {error}", time.perf_counter() - started,
                          problems=1)  # fmt: skip
    seconds = time.perf_counter() - started
    for line in reversed(process.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            outcome = json.loads(line[len(RESULT_PREFIX) :])
            return Health(outcome["usable"], outcome["cause"], seconds, tuple(outcome["steps"]), outcome["versions"],
                          outcome.get("problems", 0))  # fmt: skip
    tail = [line.strip() for line in process.stderr.splitlines() if line.strip()]
    last = tail[-1] if tail else f"exit code {process.returncode}"
    return Health(False, f"health check crashed: {last}", seconds, tuple(_steps(process.stdout)), problems=1)


def _steps(output: str) -> list[dict[str, Any]]:
    steps = []
    for line in output.splitlines():
        if line.startswith("{"):
            try:
                steps.append(json.loads(line))
            except ValueError:
                continue
    return steps


if __name__ == "__main__":
    sys.exit(main())
