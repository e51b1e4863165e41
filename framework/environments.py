"""A lock → a uv virtual environment built from it, named by the lock's content; and how locks are read.

``uv venv`` + ``uv pip sync`` of the lock (hashes checked) into ``.blessing/envs/<runtime>-<lock hash>/``
(:func:`build_from_lock`). A complete build leaves a marker holding the lock; a directory without one is a broken
build and is rebuilt. An unchanged lock reuses its environment. How a runtime becomes a lock — coherent lockstep
families, ``as_of`` — is :mod:`framework.resolution`.

The framework itself is not installed: the runner imports it from the project through ``PYTHONPATH`` and needs
nothing but the standard library and the runtime's packages.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from framework.in_runtime.errors import EnvironmentBuildError
from framework.models import Runtime

if TYPE_CHECKING:
    from framework.health import Health

ENVS_DIR = ".blessing/envs"
MARKER = "blessing-lock.txt"
BUILD_INFO = "blessing-build.json"
# Bump when the way environments are built changes, so old builds are not reused.
BUILD_RECIPE = 2
# Older environments of a runtime kept beside the newest (a reproduce of last week's run reuses them).
KEEP_PER_RUNTIME = 3


@dataclasses.dataclass(frozen=True)
class BuiltEnvironment:
    runtime: Runtime
    path: Path
    env_hash: str
    runtime_hash: str
    lock: str
    reused: bool
    build_seconds: float
    note: str | None = None
    resolve_seconds: float = 0.0
    resolution: str = ""  # how the lock was found: "resolved in 1.8 s", "resolution of 3 min ago reused …"
    health: Health | None = None  # set by the pipeline once checked (framework.health)

    @property
    def usable(self) -> bool:
        """False only when a health check ran and failed (an unchecked environment is not called unusable)."""
        return self.health is None or self.health.usable

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @property
    def packages(self) -> dict[str, str]:
        return parse_lock(self.lock)


def digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def runtime_hash(runtime: Runtime) -> str:
    """Hash of everything that defines the runtime (packages, Python, env vars, Dask config) — not its name."""
    return digest(runtime.model_dump(mode="json", exclude={"name", "description"}))


def lock_lines(lock: str) -> list[str]:
    """The lock's content without comments and blank lines: what decides the environment."""
    lines = []
    for line in lock.splitlines():
        text = line.split("#", 1)[0].rstrip() if not line.lstrip().startswith("--hash") else line.strip()
        if text.strip():
            lines.append(text.strip())
    return lines


def environment_hash(lock: str, python: str) -> str:
    """The name of the environment a lock builds (with the runtime's Python ``3.X``)."""
    return digest({"recipe": BUILD_RECIPE, "python": python, "lock": lock_lines(lock)})


_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*==\s*([^\s;\\#]+)")


def parse_lock(lock: str) -> dict[str, str]:
    """``name==version`` lines (a compiled lock's ``name==version \\`` too) → {normalised name: version}."""
    packages = {}
    for line in lock.splitlines():
        match = _PIN.match(line)
        if match:
            packages[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    return packages


def lock_changes(old: Mapping[str, str], new: Mapping[str, str]) -> list[tuple[str, str | None, str | None]]:
    """(package, old version, new version) for each package changed, added (old None) or removed (new None)."""
    return [
        (name, old.get(name), new.get(name)) for name in sorted(set(old) | set(new)) if old.get(name) != new.get(name)
    ]


def describe_changes(changes: Sequence[tuple[str, str | None, str | None]], limit: int = 12) -> str:
    """``dask 2026.8.0 → 2026.11.0, pandas 3.0.2 → 3.0.3, + toolz 1.1.0, − partd 1.4.2``; family packages first."""
    if not changes:
        return "no package changed"
    order = sorted(changes, key=lambda change: (change[0] not in ("dask", "distributed"), change[0]))
    parts = []
    for name, before, after in order[:limit]:
        if before is None:
            parts.append(f"+ {name} {after}")
        elif after is None:
            parts.append(f"− {name} {before}")
        else:
            parts.append(f"{name} {before} → {after}")
    if len(order) > limit:
        parts.append(f"and {len(order) - limit} more")
    return ", ".join(parts)


# --------------------------------------------------------------------------------------------------
# Python interpreters


def _python_candidates(version: str) -> list[Path]:
    """Where a ``3.X`` interpreter may be: on PATH, then pyenv's and uv's own installations (newest patch first)."""
    candidates = []
    on_path = shutil.which(f"python{version}")
    if on_path:
        candidates.append(Path(on_path))
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    uv_root = Path(os.environ.get("UV_PYTHON_INSTALL_DIR", Path.home() / ".local/share/uv/python"))
    installed = [
        *pyenv_root.glob(f"versions/{version}.*/bin/python{version}"),
        *uv_root.glob(f"cpython-{version}.*/bin/python{version}"),
    ]
    patch = re.compile(rf"{re.escape(version)}\.(\d+)")

    def patch_level(path: Path) -> int:
        found = patch.search(str(path))
        return int(found.group(1)) if found else -1

    candidates.extend(sorted(installed, key=patch_level, reverse=True))
    return candidates


def find_python(version: str, runtime_name: str) -> Path:
    """The interpreter for ``3.X``: the first candidate that really runs and reports that version.

    (A pyenv shim for a version that is installed but not activated is on PATH yet fails to run.)
    """
    for candidate in _python_candidates(version):
        try:
            reported = subprocess.run(
                [str(candidate), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            continue
        if reported == version:
            return candidate
    raise EnvironmentBuildError(
        f"matrices/runtimes.yaml: runtimes.{runtime_name}.python: no Python {version} on this machine"
        f" (looked for python{version} on PATH, in pyenv and in uv's Pythons) — install it"
        f" (e.g. `pyenv install {version}` or `uv python install {version}`) or declare another"
    )


# --------------------------------------------------------------------------------------------------
# uv


def _uv() -> str:
    from uv import find_uv_bin

    return str(find_uv_bin())


def run_uv(args: list[str], runtime: Runtime, what: str, stdin: str | None = None) -> str:
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "VIRTUAL_ENV": ""}
    process = subprocess.run([_uv(), *args], input=stdin, capture_output=True, text=True, env=env, check=False)
    if process.returncode != 0:
        raise EnvironmentBuildError(
            f"matrices/runtimes.yaml: runtimes.{runtime.name}: {what} failed: {_uv_error(process)}"
            " — check the runtime's python, packages and as_of"
        )
    return process.stdout


def _uv_error(process: subprocess.CompletedProcess[str]) -> str:
    lines = [line.strip() for line in process.stderr.splitlines() if line.strip()]
    return " | ".join(lines[-6:]) if lines else f"exit code {process.returncode}"


def build_from_lock(
    runtime: Runtime, lock: str, root: Path, rebuild: bool = False, note: str | None = None
) -> BuiltEnvironment:
    """The environment ``lock`` describes, under ``root/.blessing/envs``: reused when complete, else built."""
    env_hash = environment_hash(lock, runtime.python)
    envs = root / ENVS_DIR
    path = envs / f"{runtime.name}-{env_hash}"
    marker = path / MARKER
    if marker.exists() and not rebuild:
        os.utime(marker)  # the newest use decides what pruning keeps
        return BuiltEnvironment(runtime, path, env_hash, runtime_hash(runtime), marker.read_text(), True, 0.0, note)

    started = time.perf_counter()
    python = find_python(runtime.python, runtime.name)
    if path.exists():
        shutil.rmtree(path)
    envs.mkdir(parents=True, exist_ok=True)
    run_uv(["venv", "--quiet", "--python", str(python), str(path)], runtime, "creating the environment")
    lock_file = path / "blessing-requirements.txt"
    lock_file.write_text(lock)
    run_uv(
        ["pip", "sync", "--quiet", "--python", str(path / "bin" / "python"), str(lock_file)],
        runtime,
        "installing its lock",
    )
    (path / BUILD_INFO).write_text(json.dumps({"runtime": runtime.name, "runtime_hash": runtime_hash(runtime)}))
    partial = path / (MARKER + ".partial")
    partial.write_text(lock)
    partial.replace(marker)  # the marker appears only once the build is complete
    _prune(envs, runtime.name, keep=path)
    return BuiltEnvironment(
        runtime, path, env_hash, runtime_hash(runtime), lock, False, time.perf_counter() - started, note
    )


def existing_environment(runtime: Runtime, root: Path) -> BuiltEnvironment | None:
    """The runtime's most recently used complete environment of today's spec, without resolving (dry runs)."""
    wanted = runtime_hash(runtime)
    found = []
    for marker in (root / ENVS_DIR).glob(f"{runtime.name}-*/{MARKER}"):
        info = marker.parent / BUILD_INFO
        try:
            if json.loads(info.read_text()).get("runtime_hash") == wanted:
                found.append((marker.stat().st_mtime, marker))
        except (OSError, ValueError):
            continue
    if not found:
        return None
    _, marker = max(found)
    lock = marker.read_text()
    return BuiltEnvironment(runtime, marker.parent, environment_hash(lock, runtime.python), wanted, lock, True, 0.0)


def _prune(envs: Path, runtime_name: str, keep: Path) -> None:
    """Keep the runtime's few most recently used environments; older ones are dead weight."""
    pattern = re.compile(re.escape(runtime_name) + r"-[0-9a-f]{16}")
    others = [old for old in envs.glob(f"{runtime_name}-*") if old != keep and pattern.fullmatch(old.name)]

    def last_used(path: Path) -> float:
        try:
            return (path / MARKER).stat().st_mtime
        except OSError:
            return 0.0

    for old in sorted(others, key=last_used, reverse=True)[KEEP_PER_RUNTIME - 1 :]:
        shutil.rmtree(old, ignore_errors=True)
