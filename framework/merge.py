"""``nox -s merge -- SRC... [--into=DIR|URL]``: copy the result files of several stores (shard directories, CI
artifacts, URLs) into one.

Planned first, then copied: every immutable file of each source (:data:`framework.object_store.IMMUTABLE`) is

- copied when the target lacks it;
- skipped when the target holds the very bytes, or (an environment, keyed by its hash) the same lock, or when a
  compacted file of the target (or of the source) merged it already;
- a conflict otherwise: one line naming both files, exit 1, and nothing is copied.

A second merge of the same sources copies nothing. Then each sharded run group the sources hold (``run_group``,
``shard`` = ``K/N``) is checked in the target: a missing shard or a case in two shards of one group is a loud line and
exit 1 (``--allow-partial`` accepts missing shards).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from framework.in_runtime.errors import ResultsError
from framework.object_store import (
    ConflictError,
    KeyTakenError,
    LocalLocation,
    Location,
    RemoteLocation,
    compacted_names,
    compare,
    location,
    open_store,
    place,
    redacted,
)

_SKIPPED = {"same": "already there", "same-lock": "same environment lock", "merged": "merged by a compacted file"}


@dataclasses.dataclass
class Merge:
    target: str
    copied: Counter[str] = dataclasses.field(default_factory=Counter)  # kind → files copied
    skipped: Counter[tuple[str, str]] = dataclasses.field(default_factory=Counter)  # (kind, why) → files
    shard_lines: list[str] = dataclasses.field(default_factory=list)
    shard_problems: list[str] = dataclasses.field(default_factory=list)

    def lines(self) -> list[str]:
        kinds = sorted({*self.copied, *(kind for kind, _ in self.skipped)})
        out = []
        for kind in kinds:
            skipped = [f"{count} skipped ({why})" for (k, why), count in sorted(self.skipped.items()) if k == kind]
            out.append(f"  {kind}: {', '.join([f'{self.copied[kind]} copied', *skipped])}")
        total = sum(self.copied.values())
        out.append(f"merge into {self.target}: {total} copied, {sum(self.skipped.values())} skipped")
        return out + self.shard_lines + self.shard_problems


def _kind(relative: str) -> str:
    parts = relative.split("/")
    return "/".join(parts[:2]) if parts[0] == "stability" else parts[0]


def merge(sources: Sequence[str], into: str, *, allow_partial: bool = False) -> Merge:
    """Plan the copy of every source's files into ``into``; refuse a conflict before copying anything; copy."""
    target = _target(into)
    held = target.files()
    merged_there = compacted_names(target, held)
    report = Merge(target.shown)
    planned: dict[str, tuple[Location, bytes | None]] = {}  # store path → (source, its bytes when read)
    conflicts: list[str] = []
    opened_sources = []
    for text in sources:
        source = _source(text, target)
        opened_sources.append(source)
        files = source.files()
        merged_here = compacted_names(source, files)  # a compaction of the source died before deleting these
        for relative in sorted(files):
            kind = _kind(relative)
            if relative in merged_there or relative in merged_here:
                report.skipped[(kind, _SKIPPED["merged"])] += 1
                continue
            if relative in planned:
                how = _against_planned(relative, source, planned[relative], conflicts)
                if how:
                    report.skipped[(kind, _SKIPPED[how])] += 1
                continue
            data = None
            try:
                if relative in held:
                    data = source.read(relative)
                    how = compare(data, relative, target, held[relative])
                else:
                    how = "copy"
            except ConflictError:
                conflicts.append(
                    f"{source.name(relative)} conflicts with {target.name(relative)}: same name, different content"
                    " — results are append-only; move one aside, then merge again"
                )
                continue
            if how == "copy":
                planned[relative] = (source, data)
            else:
                report.skipped[(kind, _SKIPPED[how])] += 1
    if conflicts:
        raise ResultsError("\n".join(conflicts) + f"\nnothing was copied into {target.shown}")
    for relative, (source, data) in sorted(planned.items()):
        how = place(data if data is not None else source.read(relative), relative, target, None)
        if how == "copy":
            report.copied[_kind(relative)] += 1
        else:  # another writer put the same file there meanwhile
            report.skipped[(_kind(relative), _SKIPPED[how])] += 1
    _check_shards(report, into, opened_sources, allow_partial)
    return report


def _against_planned(
    relative: str, source: Location, planned: tuple[Location, bytes | None], conflicts: list[str]
) -> str:
    """Two sources hold the same store path: the same content is one file, different content a conflict."""
    first, data = planned
    mine, theirs = source.read(relative), data if data is not None else first.read(relative)
    if mine == theirs:
        return "same"
    probe = _InMemory(relative, theirs)
    try:
        return compare(mine, relative, probe, len(theirs))
    except ConflictError:
        conflicts.append(
            f"{source.name(relative)} conflicts with {first.name(relative)}: same name, different content"
            " — results are append-only; merge only one of them"
        )
        return ""


class _InMemory(Location):
    """Files held in memory (a source file's bytes, to compare with the target's): written once, never replaced."""

    def __init__(self, relative: str, data: bytes) -> None:
        self.shown = ""
        self._files = {relative: data}

    def files(self) -> dict[str, int]:
        return {relative: len(data) for relative, data in self._files.items()}

    def read(self, relative: str) -> bytes:
        return self._files[relative]

    def write(self, relative: str, data: bytes) -> None:
        if relative in self._files:
            raise KeyTakenError(relative)
        self._files[relative] = data


def _target(into: str) -> Location:
    target = location(into)
    if isinstance(target, LocalLocation):
        try:
            target.root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ResultsError(f"--into={into}: cannot be created ({error.strerror or error}) — fix the path") from None
    return target


def _source(text: str, target: Location) -> Location:
    source = location(text)
    if isinstance(source, LocalLocation):
        if not source.root.is_dir():
            raise ResultsError(f"{text}: no such results directory — pass a store's directory (or URL) to merge")
        if isinstance(target, LocalLocation) and source.root.resolve() == target.root.resolve():
            raise ResultsError(f"{text}: is the target itself — pass --into=another directory or URL")
    elif isinstance(target, RemoteLocation) and redacted(text).rstrip("/") == target.shown.rstrip("/"):
        raise ResultsError(f"{text}: is the target itself — pass --into=another directory or URL")
    return source


# --- shards ------------------------------------------------------------------------------------------------


def _root_of(location_: Location) -> Path:
    """A local directory for :class:`framework.query.Results`: the directory, or a URL store's work directory."""
    if isinstance(location_, RemoteLocation):
        return open_store(location_.url, writes=False)
    assert isinstance(location_, LocalLocation)
    return location_.root


def _check_shards(report: Merge, into: str, sources: Sequence[Location], allow_partial: bool) -> None:
    """Each sharded run group the sources hold, in the target: which shards of N are there, and no case in two."""
    from framework.query import Results

    groups: set[str] = set()
    for source in sources:
        with Results(_root_of(source)) as results:
            _, rows = results.sql("SELECT DISTINCT run_group FROM rows WHERE shard IS NOT NULL")
        groups.update(str(row[0]) for row in rows if row[0] is not None)
    if not groups:
        return
    with Results(_root_of(location(into))) as results:
        _, shards = results.sql(
            "SELECT run_group, list(DISTINCT shard ORDER BY shard) FROM rows"
            " WHERE shard IS NOT NULL AND list_contains(?, run_group) GROUP BY run_group ORDER BY run_group",
            [sorted(groups)],
        )
        _, doubles = results.sql(
            "SELECT run_group, runtime, hardware, case_id, size, list(DISTINCT shard ORDER BY shard) FROM rows"
            " WHERE shard IS NOT NULL AND list_contains(?, run_group) GROUP BY ALL HAVING count(DISTINCT shard) > 1"
            " ORDER BY ALL",
            [sorted(groups)],
        )
    for group, present in shards:
        totals = {text.split("/", 1)[1] for text in present if "/" in text}
        if len(totals) != 1 or not all(part.isdigit() for text in present for part in text.split("/", 1)):
            report.shard_problems.append(f"run group {group}: shards {', '.join(present)} do not agree on K/N")
            continue
        total = int(totals.pop())
        have = sorted(int(text.split("/", 1)[0]) for text in present)
        missing = [k for k in range(1, total + 1) if k not in have]
        line = f"run group {group}: shards {', '.join(map(str, have))} of {total}"
        if not missing:
            report.shard_lines.append(line + " — complete")
        elif allow_partial:
            report.shard_lines.append(line + f" — missing {', '.join(map(str, missing))} (accepted: --allow-partial)")
        else:
            report.shard_problems.append(
                f"{line} — MISSING shard {', '.join(f'{k}/{total}' for k in missing)}: merge its results too, or"
                " pass --allow-partial to accept a partial run"
            )
    for group, runtime, hardware, case_id, size, present in doubles:
        report.shard_problems.append(
            f"run group {group}: case {case_id} (size {size}, {runtime} on {hardware}) is in shards"
            f" {', '.join(present)} — a case belongs to one shard; the shards were not split from one plan"
        )
