"""Results at a URL (``--results=s3://bucket/prefix``, any fsspec URL): a remote store and its local work directory.

Every verb keeps working on a local directory, the store's **work directory** (``.blessing/stores/<slug>/``, or under
``DASK_BLESSING_STORES_DIR``), which holds no credential: the URL is recorded there with any ``user:password``
removed. What a verb writes there is uploaded to the same key under the URL:

- each file :func:`framework.results.write_atomic` publishes (cases, environments, records), as soon as it is
  written (an object store's PUT appears whole or not at all: no rename, no partial object);
- every other immutable file (run and stability logs, stability failures, dumps, blessed locks) at the end of the
  verb, and at the start of the next one for the leftovers of a killed writer (:meth:`RemoteStore.upload_pending`).

Before a PUT, an existing key is compared: the same bytes → skipped; an environment with the same lock → skipped
(keyed by its hash, only ``built_at`` differs); anything else → refused in one line naming both. ``.staging/`` stays
local: a killed writer's rows are salvaged and published by the next run on the same machine, as for a directory.

Reads: :class:`framework.query.Results` reads the Parquet files in place through DuckDB with the store's filesystem
registered (no DuckDB extension is fetched). Small files some verbs read by path (stability failures, blessed locks,
health records; dumps for the report) are pulled into the work directory at the start.

Credentials come from the usual places only (``AWS_*`` variables, profiles; ``AWS_ENDPOINT_URL`` for the endpoint)
and are never written anywhere.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from framework.locations import (
    IMMUTABLE,
    ConflictError,
    KeyTakenError,
    LocalLocation,
    Location,
    RemoteLocation,
    StoreError,
    compacted_names,
    compare,
    describe,
    immutable,
    is_url,
    local_path,
    location,
    open_filesystem,
    place,
    redacted,
)
from framework.results import WRITTEN_HOOKS

__all__ = [  # the URL store, and what its users need of framework.locations
    "IMMUTABLE",
    "ConflictError",
    "KeyTakenError",
    "LocalLocation",
    "Location",
    "RemoteLocation",
    "RemoteStore",
    "StoreError",
    "close_all",
    "close_store",
    "compacted_names",
    "compare",
    "describe",
    "immutable",
    "is_url",
    "local_path",
    "location",
    "open_filesystem",
    "open_store",
    "opened",
    "place",
    "redacted",
]

STORES_VARIABLE = "DASK_BLESSING_STORES_DIR"  # where URL stores keep their work directories (default .blessing/stores)
MARKER = "store.json"  # in a work directory: the URL it mirrors (without credentials)
_WRITERS = ".writers"  # every verb on a URL store holds it shared; the one that gets it alone uploads everything
PULLED = ("health", "blessed", "stability/failures")
_PARQUET_KINDS = ("cases", "environments", "comparisons", "regressions", "verdicts", "health", "lock_changes")


# --- a URL store and its work directory -----------------------------------------------------------------------


class RemoteStore:
    """A URL store opened by this process: its remote files and the work directory every verb writes to."""

    def __init__(self, remote: RemoteLocation, work_dir: Path) -> None:
        self.remote = remote
        self.work_dir = work_dir
        self.uploaded: dict[str, str] = {}  # store path → how it was placed, this process
        self.writes = True  # the verb writes (uploads at its end); False for one that only reads
        self._held: int | None = None  # the work directory's .writers, held shared while the verb runs

    def hold(self) -> bool:
        """Hold ``.writers`` shared for the verb's life; whether no other verb of this machine held it."""
        self._held = os.open(self.work_dir / _WRITERS, os.O_RDWR | os.O_CREAT, 0o644)
        alone = self.alone()
        fcntl.flock(self._held, fcntl.LOCK_SH)
        return alone

    def alone(self) -> bool:
        """Whether no other verb uses the work directory now (then files written otherwise are complete)."""
        if self._held is None:
            return False
        try:
            fcntl.flock(self._held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def release(self) -> None:
        if self._held is not None:
            os.close(self._held)
            self._held = None

    @property
    def shown(self) -> str:
        return self.remote.shown

    def upload(self, path: Path) -> str | None:
        """Upload one file of the work directory to its key (see :func:`compare`); None if it is not uploaded."""
        relative = path.relative_to(self.work_dir).as_posix()
        if not immutable(relative):
            return None
        data = path.read_bytes()
        try:
            held = self.remote.fs.size(self.remote.key(relative))
        except FileNotFoundError:
            held = None
        except Exception as error:
            raise StoreError(describe(self.shown, error)) from None
        try:
            how = _placed(lambda: place(data, relative, self.remote, held), path)
        except StoreError:
            raise
        except ConflictError:
            raise
        except Exception as error:
            raise StoreError(
                f"{describe(self.shown, error)} (kept in {path}: the next run on this machine uploads it)"
            ) from None
        self.uploaded[relative] = how
        return how

    def upload_pending(self, everything: bool) -> list[str]:
        """Upload the work directory's files the store does not hold (a killed writer's, or this verb's files not
        written by write_atomic). Only Parquet files unless ``everything``: a log or dump may still be written by
        another verb of this machine (whichever ends last uploads them)."""
        held = self.remote.files()
        done = []
        for relative, size in sorted(LocalLocation(self.work_dir).files().items()):
            if relative in self.uploaded or (not everything and not relative.endswith(".parquet")):
                continue
            if held.get(relative) == size:
                data = (self.work_dir / relative).read_bytes()
                digest = self.remote.digest(relative)
                same = digest == hashlib.md5(data, usedforsecurity=False).hexdigest() if digest else None
                if same or (same is None and self.remote.read(relative) == data):
                    self.uploaded[relative] = "same"
                    continue
            if self.upload(self.work_dir / relative) == "copy":
                done.append(relative)
        return done

    def pull(self, kinds: Iterable[str]) -> int:
        """Copy the store's files under ``kinds`` into the work directory (those it lacks, fetched concurrently);
        how many."""
        local = LocalLocation(self.work_dir)
        wanted = [
            relative
            for relative in self.remote.listing()
            if immutable(relative)
            and any(relative.startswith(kind + "/") for kind in kinds)
            and not (self.work_dir / relative).exists()
        ]
        if not wanted:
            return 0
        try:
            found = self.remote.fs.cat([self.remote.key(relative) for relative in wanted], on_error="raise")
        except Exception as error:
            raise StoreError(describe(self.shown, error)) from None
        for relative in wanted:
            with contextlib.suppress(ConflictError):  # another verb of this machine pulled it meanwhile
                local.write(relative, found[self.remote.key(relative)])
            self.uploaded[relative] = "same"
        return len(wanted)


def _placed(decide: Callable[[], str], path: Path) -> str:
    try:
        return decide()
    except ConflictError as error:
        raise ConflictError(f"{error} (the file to copy: {path})") from None


# The URL stores this process opened: work directory → store. Results reads such a directory through the URL.
_OPEN: dict[Path, RemoteStore] = {}


def opened(root: Path) -> RemoteStore | None:
    """The URL store whose work directory ``root`` is, if this process opened it."""
    return _OPEN.get(root.resolve()) if _OPEN else None


def stores_dir() -> Path:
    from framework.config import ROOT

    return Path(os.environ.get(STORES_VARIABLE) or ROOT / ".blessing" / "stores")


def work_dir_of(url: str) -> Path:
    shown = redacted(url)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", shown.split("://", 1)[-1]).strip("-.")[:60] or "store"
    digest = hashlib.sha256(shown.encode()).hexdigest()[:10]
    return stores_dir() / f"{url.split('://', 1)[0]}-{slug}-{digest}"


def open_store(url: str, *, writes: bool = True) -> Path:
    """Open a URL store for a verb: check it, make its work directory, upload a killed writer's leftovers, pull what
    verbs read by path, and upload every file write_atomic publishes from now on. Returns the work directory."""
    remote = location(url)
    assert isinstance(remote, RemoteLocation)
    work_dir = work_dir_of(url).resolve()
    if work_dir in _OPEN:
        return work_dir
    try:
        work_dir.mkdir(parents=True, exist_ok=True)
        marker = work_dir / MARKER
        if not marker.exists():
            marker.write_text(json.dumps({"url": remote.shown}) + "\n", encoding="utf-8")
    except OSError as error:
        raise StoreError(
            f"{work_dir}: the work directory of {remote.shown} cannot be made ({error.strerror or error}) — set"
            f" {STORES_VARIABLE} to a writable directory"
        ) from None
    remote.cache = work_dir / ".cache"  # small files read before are read from here (see RemoteLocation.cache)
    store = RemoteStore(remote, work_dir)
    store.writes = writes
    _OPEN[work_dir] = store
    if not WRITTEN_HOOKS.count(_upload_written):
        WRITTEN_HOOKS.append(_upload_written)
    store.pull(PULLED)
    if writes:  # a verb that only reads holds nothing: it never delays another's uploads
        store.upload_pending(everything=store.hold())
    return work_dir


def close_store(work_dir: Path) -> list[str]:
    """At a verb's end: upload what it wrote otherwise than by write_atomic (logs, dumps, failures)."""
    store = _OPEN.pop(work_dir, None)
    if store is None:
        return []
    try:
        return store.upload_pending(everything=store.alone()) if store.writes else []
    finally:
        store.release()


def close_all() -> list[str]:
    done = []
    for work_dir in list(_OPEN):
        done += close_store(work_dir)
    return done


def _upload_written(path: Path) -> None:
    """write_atomic's hook. A conflict stops the verb; a store out of reach does not: the file stays in the work
    directory, said in one line, and the verb's end (or the next verb) uploads it — or fails saying so."""
    for work_dir, store in _OPEN.items():
        if path.is_relative_to(work_dir):
            try:
                store.upload(path)
            except ConflictError:
                raise
            except StoreError as error:
                sys.stderr.write(f"not uploaded yet: {error}\n")


def remote_parquet(reader: RemoteLocation) -> dict[str, dict[str, tuple[int, str]]]:
    """The Parquet files of each kind a view reads: kind → {name: (size, version tag)} (one listing)."""
    found: dict[str, dict[str, tuple[int, str]]] = {kind: {} for kind in _PARQUET_KINDS}
    for relative, info in reader.listing().items():
        kind, _, name = relative.partition("/")
        if kind in found and "/" not in name and name.endswith(".parquet") and not name.startswith("."):
            found[kind][name] = info
    return found
