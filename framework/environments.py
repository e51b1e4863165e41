"""Runtime → a uv virtual environment holding exactly the runtime's packages, built once per exact spec.

The environment's directory is named by a hash of what decides its contents (Python, requirements, the
``as_of`` date, and — for runtimes not fully pinned — the day it was resolved, so ``latest`` follows new
releases daily). A complete build leaves a marker file holding the lock (``uv pip freeze``); a directory
without one is a broken build and is rebuilt. The framework itself is not installed: the runner imports it
from the project through ``PYTHONPATH`` and needs nothing but the standard library and the runtime's packages.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from framework.errors import EnvironmentBuildError
from framework.models import Runtime

ENVS_DIR = ".blessing/envs"
MARKER = "blessing-lock.txt"
# Bump when the way environments are built changes, so old builds are not reused.
BUILD_RECIPE = 1


@dataclasses.dataclass(frozen=True)
class BuiltEnvironment:
    runtime: Runtime
    path: Path
    env_hash: str
    runtime_hash: str
    lock: str
    reused: bool
    build_seconds: float

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @property
    def packages(self) -> dict[str, str]:
        return parse_lock(self.lock)


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def runtime_hash(runtime: Runtime) -> str:
    """Hash of everything that defines the runtime (packages, Python, env vars, Dask config) — not its name."""
    return _digest(runtime.model_dump(mode="json", exclude={"name", "description"}))


def environment_spec(runtime: Runtime, today: dt.date | None = None) -> dict[str, Any]:
    """What decides the environment's contents; its hash names the directory."""
    return {
        "recipe": BUILD_RECIPE,
        "python": runtime.python,
        "requirements": runtime.requirements,
        "as_of": runtime.as_of.isoformat() if runtime.as_of else None,
        "resolved_on": None if runtime.fully_pinned else (today or dt.date.today()).isoformat(),
    }


def environment_hash(runtime: Runtime, today: dt.date | None = None) -> str:
    return _digest(environment_spec(runtime, today))


def parse_lock(lock: str) -> dict[str, str]:
    """``name==version`` lines → {normalised name: version}."""
    packages = {}
    for line in lock.splitlines():
        name, sep, version = line.strip().partition("==")
        if sep:
            packages[re.sub(r"[-_.]+", "-", name).lower()] = version.strip()
    return packages


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


def _uv() -> str:
    from uv import find_uv_bin

    return str(find_uv_bin())


def _run_uv(args: list[str], runtime: Runtime, what: str) -> str:
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "VIRTUAL_ENV": ""}
    process = subprocess.run([_uv(), *args], capture_output=True, text=True, env=env, check=False)
    if process.returncode != 0:
        lines = [line.strip() for line in process.stderr.splitlines() if line.strip()]
        detail = " | ".join(lines[-6:]) if lines else f"exit code {process.returncode}"
        raise EnvironmentBuildError(
            f"matrices/runtimes.yaml: runtimes.{runtime.name}: {what} failed: {detail}"
            " — check the runtime's python, packages and as_of"
        )
    return process.stdout


def build_environment(
    runtime: Runtime, root: Path, rebuild: bool = False, today: dt.date | None = None
) -> BuiltEnvironment:
    """Build the runtime's environment under ``root/.blessing/envs``, or reuse a complete one."""
    env_hash = environment_hash(runtime, today)
    envs = root / ENVS_DIR
    path = envs / f"{runtime.name}-{env_hash}"
    marker = path / MARKER
    if marker.exists() and not rebuild:
        return BuiltEnvironment(runtime, path, env_hash, runtime_hash(runtime), marker.read_text(), True, 0.0)

    started = time.perf_counter()
    python = find_python(runtime.python, runtime.name)
    if path.exists():
        shutil.rmtree(path)
    envs.mkdir(parents=True, exist_ok=True)
    _run_uv(["venv", "--quiet", "--python", str(python), str(path)], runtime, "creating the environment")
    install = ["pip", "install", "--quiet", "--python", str(path / "bin" / "python")]
    if runtime.as_of is not None:
        # Midnight UTC of the as_of date: everything released before that day, as a user would have had it.
        install += ["--exclude-newer", f"{runtime.as_of.isoformat()}T00:00:00Z"]
    _run_uv([*install, *runtime.requirements], runtime, "installing its packages")
    lock = _run_uv(["pip", "freeze", "--python", str(path / "bin" / "python")], runtime, "listing its packages")
    partial = path / (MARKER + ".partial")
    partial.write_text(lock)
    partial.replace(marker)  # the marker appears only once the build is complete
    _prune(envs, runtime.name, keep=path)
    return BuiltEnvironment(runtime, path, env_hash, runtime_hash(runtime), lock, False, time.perf_counter() - started)


def _prune(envs: Path, runtime_name: str, keep: Path) -> None:
    """Older environments of the same runtime (yesterday's `latest`) are dead weight: remove them."""
    for old in envs.glob(f"{runtime_name}-*"):
        if old != keep and re.fullmatch(re.escape(runtime_name) + r"-[0-9a-f]{16}", old.name):
            shutil.rmtree(old, ignore_errors=True)
