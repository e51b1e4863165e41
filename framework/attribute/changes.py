"""The changes between two locks that an attribution searches over, and a lock with some of them applied.

One change is one package moving (old → new, added, or removed), except that packages released in lockstep (the
runtime's ``lockstep`` families: dask and distributed by default) move as one change — an environment never holds
distributed of one release and dask of another.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence

from framework.environments import describe_changes, lock_changes

Move = tuple[str, "str | None", "str | None"]  # (package, old version, new version); None: absent on that side


@dataclasses.dataclass(frozen=True)
class Change:
    """One unit of the diff: ``name`` (a package, or packages that move together joined by ``+``) and its moves;
    ``why``: for packages joined by their metadata (:mod:`framework.attribute.coupling`), the requirements that join
    them."""

    name: str
    moves: tuple[Move, ...]
    why: tuple[str, ...] = ()

    def line(self) -> str:
        """``pandas 2.2.3 → 3.0.2``; ``dask 2026.3.0 → 2026.8.0, distributed 2026.3.0 → 2026.8.0``."""
        return describe_changes(self.moves)


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_diff(
    baseline: Mapping[str, str], candidate: Mapping[str, str], lockstep: Sequence[Sequence[str]] = ()
) -> list[Change]:
    """The changes from ``baseline`` to ``candidate`` (``{package: version}``), lockstep families as one change.

    Families first, in the order given, then single packages by name.
    """
    moves = {name: (name, old, new) for name, old, new in lock_changes(baseline, candidate)}
    changes: list[Change] = []
    for family in lockstep:
        members = [_normal(package) for package in family]
        moved = [moves.pop(member) for member in members if member in moves]
        if moved:
            changes.append(Change("+".join(name for name, _, _ in moved), tuple(moved)))
    changes += [Change(name, (move,)) for name, move in sorted(moves.items())]
    return changes


def applied(baseline: Mapping[str, str], changes: Iterable[Change]) -> dict[str, str]:
    """``baseline`` with ``changes`` applied: each moved package at its new version, a removed one gone."""
    result = dict(baseline)
    for change in changes:
        for name, _, new in change.moves:
            if new is None:
                result.pop(name, None)
            else:
                result[name] = new
    return result


def pins(packages: Mapping[str, str]) -> list[str]:
    """``name==version`` requirements, sorted: what an environment with exactly these packages is resolved from."""
    return [f"{name}=={version}" for name, version in sorted(packages.items())]
