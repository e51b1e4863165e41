"""The errors a user can cause, and how they are printed: one line each, never a traceback.

Every message says where (file and field), what (the offending value) and the fix.
"""

from __future__ import annotations

import difflib
import errno
from collections.abc import Iterable


class FrameworkError(Exception):
    """Base of every error caused by input (config, command line, results on disk)."""

    exit_code = 2


class ConfigError(FrameworkError):
    """A YAML file under ``matrices/`` or ``workloads/`` does not describe a valid model."""


class SelectionError(FrameworkError):
    """The command line names a runtime, hardware profile or workload that does not exist."""


class EnvironmentBuildError(FrameworkError):
    """A runtime's environment could not be built (no such Python, unresolvable pins...)."""


class UnusableRuntimeError(EnvironmentBuildError):
    """A runtime's environment was built but fails its health check: a finding about upstream, not a mistake."""

    exit_code = 1


class ClusterError(FrameworkError):
    """The cluster a hardware profile describes could not be started or reached."""


class ResultsError(FrameworkError):
    """The results store was asked to do something that would lose or corrupt data."""


class QueryError(FrameworkError):
    """An SQL query over the results could not run."""


def closest(name: str, known: Iterable[str]) -> str | None:
    """The one known name ``name`` is most likely a typo of, if any: every "did you mean" hint asks here."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``did you mean 'local'? `` — the hint a strict model puts before the names it knows, or nothing."""
    close = closest(name, known)
    return f"did you mean {close!r}? " if close else ""


def near_miss(name: str, known: Iterable[str], what: str) -> str:
    """``unknown hardware 'lokal' — did you mean 'local'? known: local, local-4x2GiB``."""
    known = sorted(known)
    message = f"unknown {what} {name!r}"
    close = closest(name, known)
    if close:
        message += f" — did you mean {close!r}?"
    return message + f" known: {', '.join(known) if known else '(none declared)'}"


# What to do when the results directory cannot take a write, by errno (the system's reason is said before it).
_WRITE_FIXES = {
    errno.ENOSPC: "free space on that disk, or pass --results on another one",
    errno.EDQUOT: "free space within your quota, or pass --results on another disk",
    errno.EROFS: "the file system is read-only: remount it read-write, or pass --results on a writable one",
    errno.ENOTDIR: "a part of that path is a file, not a directory: move the file, or pass another --results",
    errno.EISDIR: "a directory stands where a file goes: move it, or pass another --results",
    errno.EEXIST: "a file stands where a directory goes: move it, or pass another --results",
    errno.EACCES: "fix its permissions, or pass --results somewhere you can write",
    errno.EPERM: "fix its permissions, or pass --results somewhere you can write",
}
WRITE_ERRNOS = frozenset(_WRITE_FIXES)


def cannot_write(path: str, code: int | None, why: str) -> str:
    """``results/.staging/x.jsonl: No space left on device — free space …; rows written so far stay …``."""
    fix = _WRITE_FIXES.get(code or 0, "fix the cause, or pass --results somewhere else")
    return (
        f"{path}: {why} — {fix}; rows written so far stay in the results directory's .staging/ and the next run"
        " publishes them"
    )
