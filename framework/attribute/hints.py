"""The command that attributes a change to the packages that moved, as regressions, compare and bless print it when
the two sides of a change ran on different locks. Standard library only: the verbs that print it import it cheaply."""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping


def attribute_command(baseline: str, candidate: str, case_id: str, metric: str) -> str:
    """``nox -s attribute -- --baseline=RUN --candidate=RUN --workload='CASE[…]' --metric=wall``."""
    return (
        f"nox -s attribute -- --baseline={shlex.quote(baseline)} --candidate={shlex.quote(candidate)}"
        f" --workload={shlex.quote(case_id)} --metric={metric}"
    )


def hint(baseline: str, candidate: str, case_id: str, metric: str) -> str:
    return f"which package? the locks differ: {attribute_command(baseline, candidate, case_id, metric)}"


def locks_differ(env_hashes: Mapping[str, Iterable[object]]) -> bool:
    """Whether the sides' environments (their lock hashes) differ; False when a side's is not known."""
    sides = [{str(value) for value in values if value} for values in env_hashes.values()]
    return len(sides) == 2 and all(sides) and sides[0] != sides[1]


def versions_differ(before: Mapping[str, str], after: Mapping[str, str]) -> bool:
    """Whether two runs' recorded package versions differ (any package, not only the one a finding names)."""
    return bool(before) and bool(after) and dict(before) != dict(after)
