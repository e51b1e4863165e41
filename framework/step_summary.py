"""GitHub's job summary: what a verb printed, appended to ``$GITHUB_STEP_SUMMARY`` when it runs in a workflow.

Each verb that judges or runs (matrix, compare, bless, regressions) adds one section: a heading, its headline
line, and what it printed in a fenced block, so the columns of its tables stay aligned. Outside a workflow (the
variable unset) nothing is written. Redacted like everything the project writes.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from framework.in_runtime.redaction import redact_text

VARIABLE = "GITHUB_STEP_SUMMARY"


def fenced(text: str) -> str:
    """``text`` in a Markdown code fence longer than any run of backticks inside it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text.rstrip()}\n{fence}"


def section(title: str, body: str, headline: str | None = None) -> str:
    """A summary section: ``## title``, the headline in bold, then ``body`` as printed (a fenced block)."""
    parts = [f"## {title}"]
    if headline:
        parts.append(f"**{headline}**")
    parts.append(fenced(body))
    return "\n\n".join(parts) + "\n"


def add_markdown(markdown: str) -> Path | None:
    """Append ``markdown`` to the job summary when running in a workflow; return the file written, else None.

    A summary that cannot be written is said on stderr, never an error: the verb's own result stands."""
    target = os.environ.get(VARIABLE)
    if not target:
        return None
    path = Path(target)
    try:
        with path.open("a", encoding="utf-8") as handle:
            handle.write(redact_text(markdown).rstrip("\n") + "\n\n")
    except OSError as error:
        sys.stderr.write(f"{VARIABLE}={target}: the job summary could not be written ({error.strerror or error})\n")
        return None
    return path


def add(title: str, body: str, headline: str | None = None) -> Path | None:
    """Append one section (see :func:`section`) to the job summary, when running in a workflow."""
    return add_markdown(section(title, body, headline))
