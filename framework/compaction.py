"""Compaction: the small files of one month merged into one, so a long history reads fast.

Each run writes one small Parquet file per runtime × hardware; after a few thousand runs, opening the store costs
more than reading it (DuckDB reads every file's footer). ``nox -s compact`` — and ``nox -s matrix`` once a directory
holds ``AUTO_THRESHOLD`` loose files — merges the files of each month (by the time their rows record, not the
files' dates) into ``compacted__<month>__<stamp>.parquet``, sorted so that a query for one workload reads only its
row groups. Nothing is lost or counted twice, whenever it stops:

1. the merged rows are written complete under a hidden name, fsync'd, and their count checked;
2. under the store's exclusive lock (queries hold it shared) the file is linked under its name and the files it
   merged are deleted; its footer lists them, so if the process dies between the two, queries skip the listed
   files still there, and the next compaction deletes them;
3. a month compacted before is merged again with its new files (the new file lists the old one) until its file
   holds ``FULL_ROWS``; then the month starts another file, so a compaction's memory stays bounded.

A file no reader can read as the store's — not Parquet, empty, cut short, without its version column, or with a
known column of another type — is moved to ``results/quarantine/<kind>/`` (never deleted; readers skip it until
then). A file with columns this version does not know is left as it is and reported.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fcntl
import itertools
import json
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from framework.footers import QUARANTINE, FooterChecks
from framework.in_runtime.errors import ResultsError
from framework.object_store import opened
from framework.records import SCHEMAS as RECORD_SCHEMAS
from framework.results import (
    CASE_SCHEMA,
    COMPACTED_PREFIX,
    ENVIRONMENT_SCHEMA,
    SOURCES_KEY,
    compacted_files,
    compacted_sources,
    fsync_directory,
    store_lock,
    write_atomic,
)

AUTO_THRESHOLD = 100  # loose files in one directory before a matrix run compacts it
FULL_ROWS = 500_000  # a compacted file this long is not merged again (about 40 MB of cases, 1 GB while merged)
_STAGED_SUFFIX = ".compacting"


@dataclasses.dataclass(frozen=True)
class Layout:
    """How one directory's files are merged: their schema, the time column naming the month, the sort order."""

    schema: pa.Schema
    month_of: str
    sort_by: tuple[str, ...]


LAYOUTS: dict[str, Layout] = {
    "cases": Layout(
        CASE_SCHEMA, "run_started_at", ("workload", "case_id", "size", "run_started_at", "run_id", "started_at")
    ),
    "environments": Layout(ENVIRONMENT_SCHEMA, "built_at", ("built_at", "env_hash")),
    "comparisons": Layout(RECORD_SCHEMAS["comparisons"], "created_at", ("created_at", "comparison_id")),
    "regressions": Layout(RECORD_SCHEMAS["regressions"], "scanned_at", ("scanned_at", "scan_id")),
    "verdicts": Layout(RECORD_SCHEMAS["verdicts"], "decided_at", ("decided_at", "verdict_id")),
    "health": Layout(RECORD_SCHEMAS["health"], "checked_at", ("checked_at", "run_id", "runtime")),
    "lock_changes": Layout(RECORD_SCHEMAS["lock_changes"], "recorded_at", ("recorded_at", "run_id", "package")),
}


@dataclasses.dataclass(frozen=True)
class DirectoryCompaction:
    directory: Path
    merged: int  # files merged into new compacted files (loose ones and earlier compacted ones)
    written: tuple[str, ...]  # the compacted files written
    rows: int  # rows in them
    finished: int  # files an interrupted compaction had merged but not deleted, deleted now
    left: tuple[str, ...]  # "name: why" for files left as they are
    quarantined: tuple[str, ...] = ()  # "path → where it went: why" for files moved to results/quarantine/

    def line(self, dry_run: bool = False) -> str:
        name = f"{self.directory.parent.name}/{self.directory.name}"
        if not self.merged:
            text = f"{name}: nothing to merge"
        else:
            verb = "would merge" if dry_run else "merged"
            text = f"{name}: {verb} {self.merged:,} files into {len(self.written)} ({self.rows:,} rows)"
        if self.finished:
            text += f"; deleted {self.finished} files an interrupted compaction had already merged"
        if self.quarantined:
            files = "file" if len(self.quarantined) == 1 else "files"
            text += f"; {len(self.quarantined)} unreadable {files} {'to move' if dry_run else 'moved'} to quarantine"
        return text


@dataclasses.dataclass(frozen=True)
class Compaction:
    root: Path
    directories: tuple[DirectoryCompaction, ...]
    seconds: float
    dry_run: bool = False

    def lines(self) -> list[str]:
        lines = [
            part.line(self.dry_run)
            for part in self.directories
            if part.merged or part.finished or part.left or part.quarantined
        ]
        for part in self.directories:
            verb = "would be moved to quarantine" if self.dry_run else "moved to quarantine"
            lines += [f"  {verb}: {moved}" for moved in part.quarantined]
            lines += [f"  left as it is: {part.directory / reason}" for reason in part.left]
        total = sum(part.merged for part in self.directories)
        verb = "would be merged (dry run: nothing changed)" if self.dry_run else "merged"
        lines.append(f"compaction of {self.root}: {total:,} files {verb} in {self.seconds:.1f} s")
        return lines

    @property
    def needs_a_look(self) -> bool:
        """A file was left where it is, or moved to the quarantine."""
        return any(part.left or part.quarantined for part in self.directories)


def loose_files(directory: Path) -> list[Path]:
    """Files of a store directory that no compaction has merged yet."""
    try:
        names = [entry.name for entry in os.scandir(directory)]
    except FileNotFoundError:
        return []
    return [
        directory / name
        for name in sorted(names)
        if name.endswith(".parquet") and not name.startswith((COMPACTED_PREFIX, "."))
    ]


def needs_compaction(root: Path, threshold: int = AUTO_THRESHOLD) -> bool:
    return any(len(loose_files(root / name)) >= threshold for name in LAYOUTS)


def compact(root: Path, *, min_files: int = 2, dry_run: bool = False) -> Compaction:
    """Merge each month's files in every directory of the store that holds at least ``min_files`` loose files."""
    started = time.perf_counter()
    store = opened(root)
    if store is not None:  # it deletes what it merged: object storage cannot swap files under readers
        raise ResultsError(
            f"{store.shown}: compaction does not run on a URL store (it deletes the files it merged, which readers"
            f" of a bucket may be reading) — nox -s merge -- {store.shown} --into=DIR, nox -s compact --"
            " --results=DIR, then nox -s merge -- DIR --into=<a new prefix>"
        )
    if not root.is_dir():
        raise ResultsError(f"--results={root}: no such directory — pass the results directory of your runs")
    parts = []
    with _only_compaction(root, dry_run):
        for name, layout in LAYOUTS.items():
            parts.append(_compact_directory(root, root / name, layout, min_files, dry_run))
    return Compaction(root, tuple(parts), time.perf_counter() - started, dry_run)


@contextlib.contextmanager
def _only_compaction(root: Path, dry_run: bool) -> Iterator[None]:
    """One compaction of a store at a time (a second finds it busy and says so)."""
    if dry_run:
        yield
        return
    path = root / ".compact.lock"
    try:
        handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise ResultsError(f"{path}: cannot be created ({error.strerror or error}) — fix the permissions") from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ResultsError(
                f"{root}: another compaction of this store is running — let it finish; it merges the same files"
            ) from None
        yield
    finally:
        os.close(handle)


def _compact_directory(
    root: Path, directory: Path, layout: Layout, min_files: int, dry_run: bool
) -> DirectoryCompaction:
    quarantined = _quarantine(root, directory, layout.schema, dry_run)
    finished = 0 if dry_run else _finish_interrupted(root, directory)
    loose = [path for path in loose_files(directory) if path.name not in quarantined]
    if len(loose) < min_files:
        return DirectoryCompaction(directory, 0, (), 0, finished, (), tuple(quarantined.values()))
    # First only each file's month (one column); then a month at a time, whole: a compaction holds one month's
    # rows (and at most a FULL_ROWS file of it) in memory, not the history's.
    months: dict[str, list[Path]] = {}
    left = []
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:  # reading releases the GIL
        for path, month in zip(loose, pool.map(lambda path: _file_month(path, layout.month_of), loose)):
            if month.startswith("!"):
                left.append(f"{path.name}: {month[1:]}")
            else:
                months.setdefault(month, []).append(path)
        merged, written, rows = 0, [], 0
        for month, paths in sorted(months.items()):
            parts = []
            for path, table in zip(paths, pool.map(lambda path: _read(path, layout.schema), paths)):
                if isinstance(table, str):
                    left.append(f"{path.name}: {table}")
                else:
                    parts.append((path, table))
            written_now, rows_now = _merge_month(root, directory, layout, month, parts, left, dry_run)
            merged += len(parts) if written_now else 0
            written += written_now
            rows += rows_now
    return DirectoryCompaction(
        directory, merged, tuple(written), rows, finished, tuple(left), tuple(quarantined.values())
    )


def _quarantine(root: Path, directory: Path, schema: pa.Schema, dry_run: bool) -> dict[str, str]:
    """Move the files of ``directory`` that no reader can read as ``schema`` to ``results/quarantine/<kind>/`` (a
    taken name gets a number: nothing is replaced); name → "path → where it went: why"."""
    checks = FooterChecks()
    try:
        paths = sorted(directory / entry.name for entry in os.scandir(directory) if entry.name.endswith(".parquet"))
    except FileNotFoundError:
        return {}
    bad = {path: footer.problem for path in paths if (footer := checks.check(path, schema)) and footer.problem}
    if not bad:
        return {}
    place = root / QUARANTINE / directory.name
    if dry_run:
        return {path.name: f"{path} → {place / path.name}: {why}" for path, why in bad.items()}
    place.mkdir(parents=True, exist_ok=True)
    moved = {}
    with store_lock(root, exclusive=True):  # no query lists a file and then misses it
        for path, why in bad.items():
            for number in itertools.count():
                target = place / (path.name if not number else f"{path.stem}.{number}{path.suffix}")
                try:
                    os.link(path, target)
                    break
                except FileExistsError:
                    continue
            fsync_directory(place)  # the file is in the quarantine before it leaves the store
            path.unlink()
            moved[path.name] = f"{path} → {target}: {why}"
        fsync_directory(directory)
    return moved


def _merge_month(
    root: Path,
    directory: Path,
    layout: Layout,
    month: str,
    parts: list[tuple[Path, pa.Table]],
    left: list[str],
    dry_run: bool,
) -> tuple[list[str], int]:
    """Merge one month's loose files (and its compacted file, unless full) into a new file; (its name, rows)."""
    loose_parts = [path for path, _ in parts]
    try:
        for path in compacted_files(directory):
            # A month's compacted file is merged again with the month's new files until it is full; then it
            # stays as it is and the month gets another.
            if path.name.split("__")[1] == month and pq.read_metadata(path).num_rows < FULL_ROWS:
                parts.append((path, _conform(pq.read_table(path), layout.schema)))
    except (OSError, pa.ArrowException, ValueError) as error:
        left += [
            f"{loose.name}: not merged — {path.name}, a compacted file of {month}, is unreadable: {_reason(error)}"
            for loose in loose_parts
        ]
        return [], 0
    if len(parts) < 2:  # one loose file alone in its month: merging would only rename it
        return [], 0
    table = pa.concat_tables([table for _, table in parts])
    table = table.sort_by([(column, "ascending") for column in layout.sort_by])
    sources = [{"name": path.name, "rows": part.num_rows} for path, part in parts]
    table = table.replace_schema_metadata({SOURCES_KEY: json.dumps(sources).encode()})
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    target = directory / f"{COMPACTED_PREFIX}{month}__{stamp}.parquet"
    if not dry_run:
        _publish(root, table, target, [path for path, _ in parts])
    return [target.name], table.num_rows


def _publish(root: Path, table: pa.Table, target: Path, sources: list[Path]) -> None:
    staged = target.with_name(f".{target.name}{_STAGED_SUFFIX}")
    write_atomic(table, target, staged=staged)
    try:
        if pq.read_metadata(staged).num_rows != table.num_rows:
            raise ResultsError(f"{staged}: holds fewer rows than it merged — nothing was deleted; run again")
        with store_lock(root, exclusive=True):
            os.link(staged, target)
            fsync_directory(target.parent)  # the compacted file is durable before anything it replaces goes
            for source in sources:
                source.unlink(missing_ok=True)
            fsync_directory(target.parent)
    finally:
        staged.unlink(missing_ok=True)


def _finish_interrupted(root: Path, directory: Path) -> int:
    """Delete what an interrupted compaction merged but left (queries skip those files already), and its staging."""
    for staged in directory.glob(f".{COMPACTED_PREFIX}*{_STAGED_SUFFIX}"):
        staged.unlink(missing_ok=True)  # never linked: nothing was deleted for it
    leftovers = [directory / name for name in compacted_sources(directory) if (directory / name).exists()]
    if leftovers:
        with store_lock(root, exclusive=True):
            for path in leftovers:
                path.unlink(missing_ok=True)
            fsync_directory(directory)
    return len(leftovers)


def _read(path: Path, schema: pa.Schema) -> pa.Table | str:
    """A loose file's table in the current schema, or why it cannot be merged."""
    try:
        return _conform(pq.ParquetFile(path).read(use_threads=False), schema)  # 2× read_table's speed on small files
    except (OSError, pa.ArrowException, ValueError) as error:
        return _reason(error)


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """A file's table in the current schema: columns of older versions missing are NULL, in schema order."""
    if table.schema.equals(schema, check_metadata=False):
        return table.replace_schema_metadata(None)
    present = set(table.column_names)
    unknown = sorted(present - set(schema.names))
    if unknown:
        raise ValueError(
            f"has columns this version does not know ({', '.join(unknown)}) — written by a newer dask-blessing?"
        )
    columns = []
    for field in schema:
        if field.name in present:
            column = table.column(field.name)
            columns.append(column if column.type == field.type else column.cast(field.type))
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def _file_month(path: Path, column: str) -> str:
    """The month (UTC) of a file's first time in ``column`` ("undated" without one); "!why" if it cannot be read."""
    try:
        file = pq.ParquetFile(path)
        if column not in file.schema_arrow.names:
            return "undated"
        times = file.read(columns=[column], use_threads=False).column(column)
    except (OSError, pa.ArrowException, ValueError) as error:
        return "!" + _reason(error)
    first = pc.min(times).as_py() if len(times) else None
    return first.astimezone(dt.timezone.utc).strftime("%Y-%m") if first is not None else "undated"


def _reason(error: Exception) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text[:200]


def compact_if_due(root: Path, threshold: int = AUTO_THRESHOLD) -> list[str]:
    """What a command that wrote (or reads much) runs at its end: compact once a directory holds ``threshold``
    loose files. Never fails the command: a store it cannot compact now is said in one line."""
    if opened(root) is not None or not root.is_dir() or not needs_compaction(root, threshold):
        return []  # a URL store is not compacted (compact refuses it and says how)
    try:
        return compact(root).lines()
    except ResultsError as error:
        return [f"compaction skipped: {error}"]
    except OSError as error:
        return [f"compaction skipped: {root}: {error.strerror or error} — run nox -s compact when it is writable"]
