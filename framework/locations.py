"""Where a results store's files are — a directory or a URL (any fsspec protocol) — and how one file is placed in
another store: copied, skipped (the same bytes, the same environment) or refused (another file of that name).

:class:`LocalLocation` and :class:`RemoteLocation` list a store's immutable files, read them and write them once
(whole or not at all, never replacing: ``os.link`` on disk, a conditional PUT on S3). A URL is checked before use
(:func:`location`): protocol, credentials, bucket, endpoint — one line each (:func:`describe`), never a credential.
A remote location readied for DuckDB (:meth:`RemoteLocation.reader`) answers sizes, times and globs from its last
listing and keeps small files it fetched whole. Used by :mod:`framework.object_store` (URL stores) and
:mod:`framework.merge`.
"""

from __future__ import annotations

import abc
import contextlib
import fnmatch
import hashlib
import io
import json
import os
import re
import urllib.parse
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from framework.in_runtime.errors import FrameworkError, ResultsError
from framework.results import COMPACTED_PREFIX, SOURCES_KEY

# The store's immutable files, by their first path parts: what is uploaded, merged and pulled. Anything else
# (report/, quarantine/, regressions.md, .staging/, .lock) stays where it was written.
IMMUTABLE = (
    "cases",
    "environments",
    "comparisons",
    "regressions",
    "verdicts",
    "health",
    "lock_changes",
    "blessed",
    "stability/failures",
    "stability/logs",
    "logs",
    "dumps",
)
# Small files some verbs read by path: pulled into the work directory when a verb opens a URL store.
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class StoreError(FrameworkError):
    """A results URL cannot be used: unknown protocol, access denied, no such bucket, unreachable."""


class ConflictError(ResultsError):
    """A file would replace a different one of the same name (results are append-only)."""


class KeyTakenError(Exception):
    """A write found its key taken meanwhile (another writer won the race): compare again, never replace."""


def is_url(text: str) -> bool:
    """Whether ``text`` names a URL store (``file://`` is a local directory, as its path)."""
    return bool(_URL.match(text)) and not text.lower().startswith("file://")


def local_path(text: str) -> Path:
    """A directory given as a path or a ``file://`` URL, made absolute: the runner works in the project's root, so a
    relative ``--results`` must name the directory under the user's working directory, not under the project."""
    if text.lower().startswith("file://"):
        return Path(urllib.parse.unquote(urllib.parse.urlsplit(text).path)).absolute()
    return Path(text).absolute()


def redacted(url: str) -> str:
    """The URL without ``user:password@`` (and without a query string, which may carry a token)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "") if (parts.username or parts.password) else parts.netloc
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def immutable(relative: str) -> bool:
    """Whether a store path (``cases/x.parquet``) is one of the files that are written once and copied."""
    parts = relative.split("/")
    if any(part.startswith(".") or part.endswith(".partial") for part in parts):
        return False
    return any(relative.startswith(kind + "/") for kind in IMMUTABLE)


# --- where a store's files are: a directory, or a URL --------------------------------------------------------


class Location(abc.ABC):
    """A store's files, wherever they are: list, read, and write once (whole or not at all, never replacing)."""

    shown: str

    @abc.abstractmethod
    def files(self) -> dict[str, int]:
        """Every immutable file: store path → size."""

    def digest(self, relative: str) -> str | None:
        """The MD5 of a file's bytes, if known without reading it."""
        return None

    @abc.abstractmethod
    def read(self, relative: str) -> bytes:
        """A file's bytes."""

    @abc.abstractmethod
    def write(self, relative: str, data: bytes) -> None:
        """Write a file once: whole or not at all, never replacing one (KeyTakenError if it is there)."""

    def name(self, relative: str) -> str:
        return f"{self.shown.rstrip('/')}/{relative}"


class LocalLocation(Location):
    def __init__(self, root: Path) -> None:
        self.root = root
        self.shown = str(root)

    def files(self) -> dict[str, int]:
        found = {}
        for directory, subdirectories, names in os.walk(self.root):
            subdirectories[:] = [name for name in subdirectories if not name.startswith(".")]
            for name in names:
                path = Path(directory) / name
                relative = path.relative_to(self.root).as_posix()
                if immutable(relative):
                    with contextlib.suppress(FileNotFoundError):
                        found[relative] = path.stat().st_size
        return found

    def read(self, relative: str) -> bytes:
        return (self.root / relative).read_bytes()

    def write(self, relative: str, data: bytes) -> None:
        target = self.root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
        try:
            with partial.open("wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.link(partial, target)  # fails if the target appeared meanwhile: never replaces
        except FileExistsError:
            raise KeyTakenError(relative) from None
        finally:
            partial.unlink(missing_ok=True)


class RemoteLocation(Location):
    """Files under a URL, through fsspec."""

    def __init__(self, url: str, fs: Any, root: str) -> None:
        self.url = url
        self.shown = redacted(url)
        self.fs = fs
        self.root = root.rstrip("/")
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        self.protocol = protocol
        self.known: dict[str, dict[str, Any]] | None = None  # a reader's: what its last listing said of each key
        self.blobs: dict[str, bytes] = {}  # a reader's: small files read whole by a footer check (key → bytes)
        self.tails: dict[str, bytes] = {}  # prefetched ends of larger files, until their footer check
        self._tags: dict[str, str] = {}  # the version tags (S3: ETags) of the last files()
        self._conditional = True  # the server honours If-None-Match (until it says it does not)
        self._blob_bytes = 0
        # A reader's copies of the small files it read whole, kept between processes (the work directory's .cache/):
        # objects are immutable and uniquely named, so a copy named by key, size and version tag is never stale.
        self.cache: Path | None = None

    def reader(self) -> RemoteLocation:
        """This location, readied for DuckDB: its filesystem answers what a file is (size, time) and globs from
        the last listing — the objects are immutable, and only existing ones are listed — not by a request for each
        file DuckDB opens. Every Results of the store in this process shares what it learnt (and the session)."""
        if self.known is not None:
            return self
        fs, reader = self.fs, self
        known: dict[str, dict[str, Any]] = {}
        reader.known = known
        info = fs.info

        def cached_info(path: str, **kwargs: Any) -> dict[str, Any]:
            found = known.get(fs._strip_protocol(path))
            return dict(found) if found is not None else dict(info(path, **kwargs))

        fs.info = cached_info
        modified = fs.modified

        def cached_modified(path: str) -> Any:  # DuckDB asks it at each open: a HEAD request each time, else
            found = known.get(fs._strip_protocol(path))
            return found["LastModified"] if found and "LastModified" in found else modified(path)

        fs.modified = cached_modified
        size = fs.size

        def cached_size(path: str) -> Any:
            found = known.get(fs._strip_protocol(path))
            return found["size"] if found and "size" in found else size(path)

        fs.size = cached_size
        glob = fs.glob

        def cached_glob(path: str, **kwargs: Any) -> Any:  # the files the reader listed and checked, no others
            directory, _, pattern = fs._strip_protocol(path).rpartition("/")
            if kwargs or not directory.startswith(reader.root) or any(char in directory for char in "*?[]{}"):
                return glob(path, **kwargs)
            return sorted(
                key
                for key, info in known.items()
                if info.get("type") != "directory"
                and key.rpartition("/")[0] == directory
                and fnmatch.fnmatchcase(key.rpartition("/")[2], pattern)
            )

        fs.glob = cached_glob
        opener = fs.open

        def cached_open(path: str, mode: str = "rb", **kwargs: Any) -> Any:
            blob = reader.blobs.get(fs._strip_protocol(path)) if mode == "rb" else None
            return _Blob(blob) if blob is not None else opener(path, mode, **kwargs)

        fs.open = cached_open
        # Files are read whole in one request when small; in 8 MiB blocks when large (not s3fs's 50 MiB default).
        fs.default_block_size = 8 << 20
        return reader

    def key(self, relative: str) -> str:
        return f"{self.root}/{relative}"

    def uri(self, relative: str = "") -> str:
        """How DuckDB names a file of the store (routed to the registered filesystem by its protocol)."""
        return f"{self.protocol}://{self.root}/{relative}"

    def files(self) -> dict[str, int]:
        listing = self.listing()
        self._tags = {relative: tag for relative, (_, tag) in listing.items()}
        return {relative: size for relative, (size, _) in listing.items() if immutable(relative)}

    def digest(self, relative: str) -> str | None:
        tag = self._tags.get(relative, "").strip('"')
        return tag if re.fullmatch(r"[0-9a-f]{32}", tag) else None  # a multipart upload's ETag is not an MD5

    def listing(self, under: str = "") -> dict[str, tuple[int, str]]:
        """Every object under the store (or under one of its directories): store path → (size, version tag)."""
        base = self.key(under).rstrip("/")
        try:
            found = self.fs.find(base, detail=True)
        except FileNotFoundError:
            return {}
        except Exception as error:
            raise StoreError(describe(self.shown, error)) from None
        prefix = self.root + "/"
        listing = {}
        if self.known is not None:
            self.known.update(found)
        for key, info in found.items():
            if info.get("type") == "directory" or not key.startswith(prefix):
                continue
            tag = str(info.get("ETag") or info.get("mtime") or info.get("LastModified") or "")
            listing[key[len(prefix) :]] = (int(info.get("size") or 0), tag)
        return listing

    def read(self, relative: str) -> bytes:
        data: bytes = self.fs.cat_file(self.key(relative))
        return data

    def read_range(self, relative: str, start: int, end: int) -> bytes:
        data: bytes = self.fs.cat_file(self.key(relative), start=start, end=end)
        return data

    def prefetch(self, sizes: dict[str, int]) -> None:
        """Fetch the end of each file (the whole of a small one) in concurrent ranged GETs: what its footer check and
        then DuckDB read. Small files are kept whole (up to a budget), the ends of others until checked."""
        if not sizes:
            return
        relatives = [relative for relative in sizes if not self._from_cache(relative, sizes[relative])]
        if not relatives:
            return
        starts = [
            0 if sizes[r] <= _WHOLE and self._blob_bytes < _BLOB_BUDGET else max(0, sizes[r] - _TAIL) for r in relatives
        ]
        try:
            found = self.fs.cat_ranges([self.key(r) for r in relatives], starts, [sizes[r] for r in relatives])
        except Exception as error:
            raise StoreError(describe(self.shown, error)) from None
        for relative, start, data in zip(relatives, starts, found):
            if isinstance(data, BaseException):
                raise StoreError(describe(self.shown, data))
            if start == 0 and self.known is not None:
                self.blobs[self.key(relative)] = data
                self._blob_bytes += len(data)
                self._to_cache(relative, data)
            else:
                self.tails[self.key(relative)] = data

    def _cached(self, relative: str, size: int) -> Path | None:
        """Where a small file's copy is (or goes) in the cache; None when there is no cache, the file is too big to
        be read whole, or its version tag is unknown (a copy could not be told from a later object of that name)."""
        if self.cache is None or self.known is None or size > _WHOLE:
            return None
        tag = re.sub(r"[^A-Za-z0-9_-]", "", str((self.known.get(self.key(relative)) or {}).get("ETag") or ""))
        return self.cache / f"{relative}@{size}@{tag}" if tag else None

    def _from_cache(self, relative: str, size: int) -> bool:
        """Keep a small file whole from the cache, if it holds it (within the reader's budget); whether it did."""
        path = self._cached(relative, size)
        if path is None or self._blob_bytes + size > _BLOB_BUDGET:
            return False
        try:
            data = path.read_bytes()
        except OSError:
            return False
        if len(data) != size:
            return False
        self.blobs[self.key(relative)] = data
        self._blob_bytes += size
        return True

    def _to_cache(self, relative: str, data: bytes) -> None:
        """Keep a copy of a small file read whole; a cache that cannot be written is only slower, never an error."""
        path = self._cached(relative, len(data))
        if path is None:
            return
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial.write_bytes(data)
            partial.replace(path)  # a copy of the same immutable bytes: replacing one is harmless
        except OSError:
            partial.unlink(missing_ok=True)

    def fetched(self, relative: str) -> bool:
        """Whether the footer of a file is at hand (prefetched, or the file kept whole)."""
        key = self.key(relative)
        return key in self.blobs or key in self.tails

    def open_tail(self, relative: str, size: int) -> io.RawIOBase:
        """A file object of an object that fetched its last 64 KiB in one request (a Parquet footer is there)."""
        return _Tail(self, relative, size)

    def write(self, relative: str, data: bytes) -> None:
        """One PUT: the object appears whole or not at all. On S3, only if the key is still free (a conditional
        write, ``If-None-Match: *``): a writer that lost the race hears so (KeyTakenError) and never replaces."""
        if self.protocol in ("s3", "s3a") and self._conditional:
            from fsspec.asyn import sync

            bucket, key, _ = self.fs.split_path(self.key(relative))
            try:
                sync(self.fs.loop, self.fs._call_s3, "put_object", Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
                return
            except FileExistsError:  # 412 Precondition Failed: another writer put it first
                raise KeyTakenError(relative) from None
            except Exception as error:
                if _error_code(error) not in ("NotImplemented", "501", "InvalidArgument"):
                    raise
                self._conditional = False  # a server without conditional writes: a plain PUT, checked before
        self.fs.pipe_file(self.key(relative), data)


_BLOB_BUDGET = 256 << 20  # the most a reader keeps of small files it read whole
_WHOLE = 1 << 20  # a file this small is read whole by its footer check (DuckDB then opens it without a request)
_TAIL = 1 << 16  # of a larger one, the end: its footer


class _Blob(io.BytesIO):
    """A small object already read whole, opened as fsspec would open it (DuckDB asks its size, reads, seeks)."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.size = len(data)


class _Tail(io.RawIOBase):
    """Reads of an object's end served from one ranged GET; anything before it read on demand."""

    def __init__(self, remote: RemoteLocation, relative: str, size: int) -> None:
        self.remote, self.relative, self.size = remote, relative, size
        key = remote.key(relative)
        fetched = remote.blobs.get(key) or remote.tails.pop(key, None)
        if fetched is None:  # not prefetched: one request now
            remote.prefetch({relative: size})
            fetched = remote.blobs.get(key) or remote.tails.pop(key, b"")
        self.tail = fetched
        self.start = size - len(fetched)
        self.position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.position, 2: self.size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def readinto(self, buffer: Any) -> int:
        end = min(self.size, self.position + len(buffer))
        if end <= self.position:
            return 0
        if self.position >= self.start:
            data = self.tail[self.position - self.start : end - self.start]
        else:
            data = self.remote.read_range(self.relative, self.position, end)
        buffer[: len(data)] = data
        self.position += len(data)
        return len(data)


def location(text: str, must_exist: bool = True) -> Location:
    """A directory or a URL → its :class:`Location` (a URL is checked: reachable, allowed, the bucket there)."""
    if not is_url(text):
        return LocalLocation(local_path(text))
    if text in _CHECKED:
        return _CHECKED[text]
    fs, root = open_filesystem(text)
    remote = RemoteLocation(text, fs, root)
    if must_exist:
        probe(remote)
        _CHECKED[text] = remote
    return remote


_CHECKED: dict[str, RemoteLocation] = {}  # URLs this process checked: one filesystem (and session) each


def open_filesystem(url: str) -> tuple[Any, str]:
    """fsspec's filesystem for a URL, with no listing cache (other writers add files) and short retries."""
    import fsspec

    shown = redacted(url)
    protocol = url.split("://", 1)[0].lower()
    options: dict[str, Any] = {"skip_instance_cache": True, "use_listings_cache": False}
    if protocol in ("s3", "s3a"):
        # botocore honours AWS_ENDPOINT_URL itself; s3fs retries (5 times, with back-off), not botocore too.
        options["config_kwargs"] = {"retries": {"max_attempts": 1}, "connect_timeout": 5, "read_timeout": 60}
    try:
        fs, root = fsspec.core.url_to_fs(url, **options)
    except (ValueError, ImportError) as error:
        raise StoreError(
            f"{shown}: cannot open this URL ({_first_line(error)}) — use a local directory or an fsspec URL, e.g."
            " s3://bucket/prefix (install the protocol's fsspec package, e.g. s3fs, gcsfs, adlfs)"
        ) from None
    except Exception as error:
        raise StoreError(describe(shown, error)) from None
    return fs, str(root).rstrip("/")


def probe(remote: RemoteLocation) -> None:
    """Check a URL store before anything runs: credentials, bucket, endpoint. One line each, with the fix."""
    retries = getattr(remote.fs, "retries", None)
    if retries is not None:  # s3fs retries a refused connection 5 times with back-off: a wrong endpoint says so at once
        remote.fs.retries = 1
    try:
        _probe(remote)
    finally:
        if retries is not None:
            remote.fs.retries = retries


def _probe(remote: RemoteLocation) -> None:
    try:
        remote.fs.ls(remote.root, detail=False)
    except FileNotFoundError:
        # An empty prefix is a new store; a missing bucket is a mistake.
        bucket = remote.root.split("/", 1)[0]
        if remote.protocol in ("s3", "s3a", "gs", "gcs", "az", "abfs") and bucket != remote.root:
            try:
                remote.fs.info(bucket)
            except FileNotFoundError:
                raise StoreError(f"{remote.shown}: bucket {bucket} does not exist — create it or fix the URL") from None
            except Exception as error:
                raise StoreError(describe(remote.shown, error)) from None
    except Exception as error:
        raise StoreError(describe(remote.shown, error)) from None


def describe(shown: str, error: BaseException) -> str:
    """A store's error → one line: what went wrong at the URL, and the fix. Never the credentials."""
    code = _error_code(error)
    text = _first_line(error)
    if code == "NoSuchBucket" or "bucket does not exist" in text.lower():
        bucket = urllib.parse.urlsplit(shown).netloc
        return f"{shown}: bucket {bucket} does not exist — create it or fix the URL"
    if isinstance(error, PermissionError) or code in _DENIED:
        return (
            f"{shown}: access denied ({code or text}) — check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_PROFILE"
            " (and that they may list and write this prefix)"
        )
    if "Could not connect" in text or "EndpointConnectionError" in type(error).__name__ or "onnect" in text:
        return f"{shown}: unreachable ({text}) — check AWS_ENDPOINT_URL and the network"
    return f"{shown}: {type(error).__name__}: {text} — check the URL and the credentials in AWS_* or the profile"


_DENIED = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "403",
    "Forbidden",
}


def _error_code(error: BaseException) -> str | None:
    for candidate in (error, error.__cause__, error.__context__):
        response = getattr(candidate, "response", None)
        if isinstance(response, dict):
            code = response.get("Error", {}).get("Code")
            if code:
                return str(code)
    match = re.search(r"\((\w+)\) when calling", str(error.__cause__ or error))
    return match.group(1) if match else None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__


# --- placing a file in a store: copy, skip, or refuse ----------------------------------------------------------


def compare(data: bytes, relative: str, target: Location, held: int | None) -> str:
    """What placing ``data`` at ``relative`` in ``target`` means, given the size it holds there (None: nothing):
    ``copy``, ``same`` (the very bytes), ``same-lock`` (an environment with the same lock) — or ConflictError."""
    if held is None:
        return "copy"
    if held == len(data) and target.digest(relative) == hashlib.md5(data, usedforsecurity=False).hexdigest():
        return "same"  # an S3 ETag of a single PUT is the MD5 of its bytes: no download
    there = target.read(relative)
    if there == data:
        return "same"
    if relative.startswith("environments/") and _lock(data) is not None and _lock(data) == _lock(there):
        return "same-lock"
    raise ConflictError(
        f"{target.name(relative)}: already holds different content than the file to copy there — results are"
        " append-only; move one of them aside (they cannot both be this file)"
    )


def place(data: bytes, relative: str, target: Location, held: int | None) -> str:
    """Put ``data`` at ``relative`` in ``target`` unless it holds it already (:func:`compare`); what was done. A
    writer that loses a race for the key compares again with what won."""
    how = compare(data, relative, target, held)
    if how != "copy":
        return how
    try:
        target.write(relative, data)
    except KeyTakenError:
        return compare(data, relative, target, -1)
    return how


def _lock(data: bytes) -> tuple[str, str] | None:
    """An environment file's (env_hash, lock): the same in two files means the same environment."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(io.BytesIO(data), columns=["env_hash", "lock"]).to_pylist()
    except (OSError, ValueError, pa.ArrowException):
        return None
    return (str(rows[0]["env_hash"]), str(rows[0]["lock"])) if len(rows) == 1 else None


def compacted_names(location: Location, files: Iterable[str]) -> dict[str, str]:
    """Store path of each file a compacted file in ``files`` merged → that compacted file's store path."""
    import pyarrow.parquet as pq

    merged = {}
    for relative in files:
        directory, _, name = relative.rpartition("/")
        if not name.startswith(COMPACTED_PREFIX) or not name.endswith(".parquet"):
            continue
        metadata = pq.read_schema(io.BytesIO(location.read(relative))).metadata or {}
        for source in json.loads(metadata.get(SOURCES_KEY, b"[]")):
            merged[f"{directory}/{source['name']}"] = relative
    return merged
