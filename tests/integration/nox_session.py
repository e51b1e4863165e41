"""Running a nox session from the project root exactly as a user types it (shared by the end-to-end tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Cold: environments of ~60 packages each (≈ 1 min each) and the session's own; warm: ≈ 15 s.
NOX_DEADLINE_S = 900


def nox(*args: str, timeout: float = NOX_DEADLINE_S) -> subprocess.CompletedProcess[str]:
    """``nox ARGS`` from the project root; output and errors in one text."""
    environ = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    return subprocess.run(
        [sys.executable, "-m", "nox", *args],
        cwd=ROOT,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )
