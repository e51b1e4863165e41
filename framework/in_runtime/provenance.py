"""Where a result came from: machine, Python, installed packages, environment variable names, git commit.

Machine facts are read inside the runtime environment (by the runner); the git commit by the controller.
Standard library only.
"""

from __future__ import annotations

import os
import platform
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

from framework.in_runtime.redaction import ENV_VALUE_ALLOW_LIST, is_secret_key

# Environment variables whose *names* are recorded when set: they change how Dask behaves or performs.
RECORDED_PREFIXES = (
    "DASK_",
    "MALLOC_",
    "OMP_",
    "MKL_",
    "OPENBLAS_",
    "PYTHON",
    "UV_",
    "COILED_",
    "AWS_",
    "ARROW_",
)
# Values are recorded only for these names (exact) — tuning knobs, never credentials.
VALUE_ALLOW_LIST = ENV_VALUE_ALLOW_LIST


def environment_variables(
    declared: dict[str, str], environ: Optional[dict[str, str]] = None
) -> dict[str, Optional[str]]:
    """Names of the relevant variables set, each with its value only when allow-listed (else None)."""
    environ = dict(os.environ if environ is None else environ)
    names = {name for name in environ if name.startswith(RECORDED_PREFIXES)} | set(declared)
    return {
        name: (environ.get(name, declared.get(name)) if name in VALUE_ALLOW_LIST and not is_secret_key(name) else None)
        for name in sorted(names)
    }


def installed_packages() -> dict[str, str]:
    """Every distribution installed in this Python, name → version (the environment's lock, as seen at run time)."""
    from importlib import metadata

    packages = {}
    for distribution in metadata.distributions():
        name = distribution.metadata["Name"]
        if name:
            packages[re.sub(r"[-_.]+", "-", name).lower()] = distribution.version
    return dict(sorted(packages.items()))


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_bytes() -> Optional[int]:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def machine() -> dict[str, Any]:
    """Facts about the machine and interpreter the runner (client side) runs on."""
    return {
        "python_version": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "os": platform.platform(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "ram_bytes": _ram_bytes(),
        "hostname": socket.gethostname(),
        "executable": sys.executable,
    }


def git_commit(root: Path) -> dict[str, Any]:
    """The project's commit and whether the working tree had changes; None values outside a checkout."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": None, "git_dirty": None}
    return {"git_commit": commit, "git_dirty": bool(status.strip())}
