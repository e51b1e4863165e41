"""Known failures (``matrices/known_failures.yaml``): failure signatures a person has looked at, until a date.

Each entry names a signature exactly as ``nox -s stability`` and ``nox -s bless`` print it
(:mod:`framework.failure_signatures`), a link to what explains it, a one-line reason and an expiry date. A known
failure is *shown* as known wherever its signature is printed; it is not excused by being listed (only evidence that
the baseline shares it does that, see :mod:`framework.shared_failures`). An entry past its date is reported as
expired everywhere it is read and fails ``bless`` until it is renewed or removed: a list nobody revisits would
otherwise keep a fixed bug's excuse forever.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Mapping
from pathlib import Path

from pydantic import Field, field_validator

from framework.config import ROOT, _show, load_file
from framework.in_runtime.errors import ConfigError
from framework.models import Name, StrictModel

KNOWN_FAILURES_FILE = Path("matrices") / "known_failures.yaml"
# kind: Type ← Cause; then optional parts — the shape FailureSignature.text prints
SIGNATURE_PATTERN = r"^[a-z_]+: (?:[A-Za-z_]\w*(?: ← [A-Za-z_]\w*)*|no error type)(?:; .+)?$"
_SIGNATURE = re.compile(SIGNATURE_PATTERN)


class KnownFailure(StrictModel):
    """One failure signature that is known: why, where it is explained, and until when that holds."""

    signature: str = Field(
        pattern=SIGNATURE_PATTERN,
        description="The signature as `nox -s stability` or `nox -s bless` prints it, e.g. 'teardown: TeardownError;"
        " threads wait in rejoin (distributed/threadpoolexecutor.py)'.",
    )
    link: str = Field(
        description="What explains it: an https:// URL (the upstream issue) or a file of this repository"
        " (docs/findings.md#anchor)."
    )
    reason: str = Field(min_length=1, description="One line: why it is known and what is being done about it.")
    expires: dt.date = Field(description="Look at it again by this date (YYYY-MM-DD); past it, bless fails on it.")
    reproducer: str | None = Field(
        default=None,
        description="A standalone script of this repository that shows the bug outside the harness (exit 1 while"
        " present), e.g. workloads/reproducers/rejoin_thread_leak.py: what makes the failure upstream's, not the"
        " fuzzer's own false alarm.",
    )

    @field_validator("link")
    @classmethod
    def _link(cls, value: str) -> str:
        if not value.startswith("https://") and (value.startswith(("/", "http:")) or " " in value):
            raise ValueError("is neither an https:// URL nor a path in this repository — e.g. docs/findings.md#anchor")
        return value

    @field_validator("reason")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if not value.strip() or "\n" in value.strip():
            raise ValueError("must be one line — say why it is known in a sentence")
        return value.strip()

    def expired(self, today: dt.date) -> bool:
        return self.expires < today


class KnownFailuresFile(StrictModel):
    known_failures: dict[Name, KnownFailure] = Field(
        default_factory=dict, description="A short name → the known failure signature."
    )


@dataclasses.dataclass(frozen=True)
class Known:
    """A signature that matched an entry: its name and the entry."""

    name: str
    entry: KnownFailure

    def label(self, today: dt.date) -> str:
        if self.entry.expired(today):
            return f"known failure {self.name} EXPIRED on {self.entry.expires} ({self.entry.link})"
        return f"known failure {self.name}: {self.entry.reason} ({self.entry.link})"


def load_known_failures(root: Path = ROOT) -> dict[str, KnownFailure]:
    """The list (empty when there is no file); a bad file is a ConfigError naming file, field, value and fix."""
    path = root / KNOWN_FAILURES_FILE
    if not path.exists():
        return {}
    entries = load_file(path, KnownFailuresFile).known_failures
    problems: list[str] = []
    seen: dict[str, str] = {}
    for name, entry in entries.items():
        where = f"{_show(path)}: known_failures.{name}"
        if entry.signature in seen:
            problems.append(f"{where}.signature: the same signature as {seen[entry.signature]} — keep one of them")
        seen.setdefault(entry.signature, name)
        if not entry.link.startswith("https://"):
            relative = entry.link.split("#", 1)[0]  # beside the config, or in this project's own tree (docs/)
            if not (root / relative).is_file() and not (ROOT / relative).is_file():
                problems.append(
                    f"{where}.link: {entry.link!r} is not a file of this repository — fix the path or give a URL"
                )
        if entry.reproducer is not None and not any((base / entry.reproducer).is_file() for base in (root, ROOT)):
            problems.append(
                f"{where}.reproducer: {entry.reproducer!r} is not a file of this repository — fix the path or drop it"
            )
    if problems:
        raise ConfigError("\n".join(problems))
    return entries


def match(entries: Mapping[str, KnownFailure], signature_text: str) -> Known | None:
    for name, entry in entries.items():
        if entry.signature == signature_text:
            return Known(name, entry)
    return None


def expired(entries: Mapping[str, KnownFailure], today: dt.date) -> list[Known]:
    return [Known(name, entry) for name, entry in entries.items() if entry.expired(today)]


def expired_line(known: Known) -> str:
    return (
        f"{KNOWN_FAILURES_FILE}: known_failures.{known.name} expired on {known.entry.expires}"
        f" ({known.entry.signature}) — look at it again: renew `expires` (and the reason) or remove the entry"
    )


def well_formed(text: str) -> bool:
    return bool(_SIGNATURE.match(text))
