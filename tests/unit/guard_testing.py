"""What the guard test modules share: a runtime's python (built if missing) and running a script with it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from framework.config import load_catalog
from framework.resolution import build_environment

ROOT = Path(__file__).resolve().parents[2]


def runtime_python(runtime: str) -> Path:
    """The python of ``runtime``'s environment, built if none exists yet (a kept lock is reused in milliseconds).

    Built rather than skipped: a skip would leave the other side of a finding unchecked on a fresh clone."""
    return build_environment(load_catalog().runtimes[runtime], ROOT).python


def run_python(python: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` from the project root with the project importable; output captured, never raising."""
    return subprocess.run(
        [str(python), *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def guard_script(name: str, params: dict[str, Any]) -> str:
    """A script that runs guard ``name`` (``workloads/guards/NAME.py``: function NAME) on an in-process cluster in
    another environment: prints the versions, then ``passed: …`` or ``WorkloadCheckFailed: …``."""
    return f"""
import dask, distributed
from framework.in_runtime.checks import WorkloadCheckFailed
from workloads.guards.{name} import {name}

print("dask", dask.__version__, "distributed", distributed.__version__)
with distributed.Client(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None):
    try:
        extra = {name}(**{params!r})
    except WorkloadCheckFailed as error:
        print("WorkloadCheckFailed:", error)
    else:
        print("passed:", extra)
"""
