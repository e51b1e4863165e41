"""A copy of the project for a fault test to attack: its own workloads and matrix, the real ``stable`` runtime.

The kept resolution and the built environment of ``stable`` are linked in, so nothing is built (and uv runs
offline); the copy's commands run as a user types them (``python -m framework.cli VERB …``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import psutil
import pyarrow.parquet as pq
import yaml

from framework.config import load_catalog
from framework.resolution import build_environment

ROOT = Path(__file__).resolve().parents[2]


def make_project(
    root: Path,
    workloads: str,
    module: str,
    matrix: str,
    stable: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> Path:
    """``root`` as a project: framework, workloads and matrices copied; ``workloads/<probe>.yaml`` and its module
    added (``module`` is the text of ``workloads/fault_probe.py``); ``matrix`` as matrices/matrix.yaml; only the
    ``stable`` runtime declared (``stable(declared)`` may change it, but not what it resolves to)."""
    if not any((ROOT / ".blessing" / "envs").glob("stable-*/blessing-lock.txt")):
        # Built once here (later tests reuse it): a skip would leave the guarantee untested on a fresh clone.
        build_environment(load_catalog().runtimes["stable"], ROOT)
    for part in ("framework", "workloads", "matrices", "docs"):
        shutil.copytree(ROOT / part, root / part, ignore=shutil.ignore_patterns("__pycache__", "schemas", "results"))
    declared = yaml.safe_load((ROOT / "matrices" / "runtimes.yaml").read_text())
    runtime = declared["runtimes"]["stable"]
    declared["runtimes"] = {"stable": stable(runtime) if stable else runtime}
    # In declared order: the order of the packages is part of the key of the kept resolution.
    (root / "matrices" / "runtimes.yaml").write_text(yaml.safe_dump(declared, sort_keys=False))
    (root / "matrices" / "matrix.yaml").write_text(matrix)
    (root / "workloads" / "fault_probe.py").write_text(module)
    (root / "workloads" / "fault_probe.yaml").write_text(workloads)
    (root / ".blessing" / "locks").mkdir(parents=True)
    for kept in (ROOT / ".blessing" / "locks").glob("stable-*.json"):
        shutil.copy(kept, root / ".blessing" / "locks" / kept.name)
    (root / ".blessing" / "envs").mkdir()
    for built in (ROOT / ".blessing" / "envs").glob("stable-*"):
        (root / ".blessing" / "envs" / built.name).symlink_to(built)  # a symlink is never pruned (rmtree refuses)
    return root


def environ(root: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(root),
        "DASK_BLESSING_PROGRESS": "plain",
        "UV_OFFLINE": "1",  # the kept resolution is reused: anything that would resolve again fails fast instead
        **extra,
    }


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "framework.cli", *args]


def start(root: Path, *args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
    """``python -m framework.cli ARGS`` in the copy, running; output and errors in one pipe."""
    return subprocess.Popen(
        command(*args),
        cwd=root,
        env=dict(env or environ(root)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def run(
    root: Path, *args: str, timeout: float = 240, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m framework.cli ARGS`` in the copy, to its end (killed past ``timeout``)."""
    process = start(root, *args, env=env)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        output = process.communicate()[0] + f"\n[killed after {timeout:.0f} s]"
    return subprocess.CompletedProcess(process.args, process.returncode, output, None)


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``predicate`` until it returns something true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"waited {timeout:.0f} s for {what}")


def staged_rows(results: Path) -> list[str]:
    """The lines of every rows file in staging now (complete lines only)."""
    lines = []
    for path in (results / ".staging").glob("*.jsonl"):
        lines += [line for line in path.read_text().splitlines(keepends=True) if line.endswith("\n")]
    return lines


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def runner_of(pid: int) -> psutil.Process:
    """The runner process a controller started (``python -m framework.in_runtime.runner``)."""
    return wait_for(
        lambda: next((p for p in descendants(pid) if "framework.in_runtime.runner" in " ".join(_cmdline(p))), None),
        60,
        "the runner to start",
    )


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return []


def left_running(processes: list[psutil.Process], timeout: float) -> list[str]:
    """Which of ``processes`` are still running after ``timeout`` seconds (killed then, so no test leaves them)."""
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    named = [f"{p.pid} {' '.join(_cmdline(p))[:120]}" for p in alive]
    for process in alive:
        try:
            process.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    return named


def rows(results: Path) -> list[dict[str, Any]]:
    return [row for path in sorted((results / "cases").glob("*.parquet")) for row in pq.read_table(path).to_pylist()]


def checksums(directory: Path) -> dict[str, str]:
    """Every file under ``directory`` (relative name → sha256): earlier results must stay byte for byte."""
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }
