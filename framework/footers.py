"""Which store files a reader skips, judged from their Parquet footer alone (and compaction moves to
``results/quarantine/``): empty, not Parquet, truncated, an unreadable footer, no version column, or a known column
of an incompatible type. Cached by (path, size, mtime); footers that hold the same schema, byte for byte, are judged
once (a small Thrift walk finds the schema's bytes), so checking thousands of files costs one small read of each.
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pyarrow as pa
import pyarrow.parquet as pq

from framework.in_runtime.errors import ResultsError
from framework.results import COMPACTED_PREFIX, SOURCES_KEY, read_sources

Opener = Callable[[], IO[bytes] | io.RawIOBase]  # a file, or an object of a URL store

QUARANTINE = "quarantine"  # results/quarantine/<kind>/<name>: files compaction moved aside; no reader reads them
_MAGIC = b"PAR1"


@dataclasses.dataclass(frozen=True)
class Footer:
    """What a store file's footer says about reading it as its directory's schema."""

    problem: str | None  # why it cannot be read as the store's (None: it can)
    casts: frozenset[str] = frozenset()  # columns stored in a compatible type other than the schema's: read cast
    merged: tuple[str, ...] = ()  # a compacted file: the names of the files it merged (readers skip them)


class FooterChecks:
    """Checks of store files against their directory's schema from the footer alone (bytes, schema, version
    column), cached by (path, size, mtime). Footers that hold the same Parquet schema, byte for byte, are judged
    once: checking thousands of files costs one small read of each footer."""

    def __init__(self) -> None:
        self._files: dict[tuple[str, int, int], Footer] = {}
        # id(schema) → (schema, [(schema bytes, verdict)]): hashing a Schema costs more than reading a footer
        self._schemas: dict[int, tuple[pa.Schema, list[tuple[bytes, Footer]]]] = {}

    def check(self, path: Path, schema: pa.Schema) -> Footer | None:
        """The file's verdict; None if it no longer exists (a compaction merged it meanwhile)."""
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None
        except OSError as error:
            return Footer(f"cannot be read ({error.strerror or error})")
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        if key not in self._files:
            footer = self._judge(lambda: path.open("rb"), stat.st_size, schema)
            if footer.problem is None and path.name.startswith(COMPACTED_PREFIX):
                try:
                    merged = tuple(str(source["name"]) for source in read_sources(path))
                except (ResultsError, KeyError, TypeError):
                    footer = Footer("a compacted file without a readable list of the files it merged")
                else:
                    footer = dataclasses.replace(footer, merged=merged)
            self._files[key] = footer
        return self._files[key]

    def known(self, name: str, size: int, tag: str) -> bool:
        """Whether :meth:`check_opened` judged this very object already."""
        return (name, size, hash(tag)) in self._files

    def check_opened(self, name: str, size: int, tag: str, opener: Opener, schema: pa.Schema) -> Footer:
        """The verdict of a file read through ``opener`` (an object in a URL store: immutable, so its name, size
        and version tag identify its content)."""
        key = (name, size, hash(tag))
        if key not in self._files:
            footer = self._judge(opener, size, schema)
            if footer.problem is None and name.rsplit("/", 1)[-1].startswith(COMPACTED_PREFIX):
                try:
                    with opener() as handle:
                        metadata = pq.read_schema(handle).metadata or {}
                    merged = tuple(str(source["name"]) for source in json.loads(metadata[SOURCES_KEY]))
                except (OSError, KeyError, TypeError, ValueError, pa.ArrowException):
                    footer = Footer("a compacted file without a readable list of the files it merged")
                else:
                    footer = dataclasses.replace(footer, merged=merged)
            self._files[key] = footer
        return self._files[key]

    def _judge(self, opener: Opener, size: int, schema: pa.Schema) -> Footer:
        try:
            footer = _footer_bytes(opener, size)
        except OSError as error:
            return Footer(f"cannot be read ({error.strerror or error})")
        if isinstance(footer, Footer):
            return footer
        _, known = self._schemas.setdefault(id(schema), (schema, []))
        for prefix, verdict in known:
            if footer.startswith(prefix):
                return verdict
        try:
            with opener() as handle:
                found = pq.read_schema(handle)
        except (OSError, ValueError, pa.ArrowException) as error:
            return Footer(f"unreadable Parquet footer ({_first_line(error)})")
        verdict = _against(found, schema)
        schema_bytes = _schema_prefix(footer)
        if schema_bytes is not None:
            known.append((schema_bytes, verdict))
        return verdict


def _footer_bytes(opener: Opener, size: int) -> bytes | Footer:
    """A Parquet file's footer (its Thrift FileMetaData), or why the file has none."""
    if size == 0:
        return Footer("empty (0 bytes)")
    with opener() as handle:
        head = handle.read(4)
        handle.seek(max(size - 8, 0))
        tail = handle.read(8)
        length = int.from_bytes(tail[:4], "little")
        if head != _MAGIC:
            return Footer(f"not a Parquet file (it starts with {head!r}, not {_MAGIC!r})")
        if size < 12 or tail[4:] != _MAGIC or length > size - 12:
            return Footer("truncated Parquet file (its footer is missing: cut short while written or copied?)")
        handle.seek(size - 8 - length)
        return handle.read(length)


def _against(found: pa.Schema, schema: pa.Schema) -> Footer:
    """A file's schema judged against the store's: its version column, and no known column of another kind."""
    version = "schema_version" if "schema_version" in schema.names else "record_version"
    if version not in {name.lower() for name in found.names}:
        return Footer(f"no {version} column (not a file dask-blessing wrote)")
    known = {field.name.lower(): field for field in schema}  # DuckDB matches column names whatever their case
    conflicts, casts = [], set()
    for field in found:
        expected = known.get(field.name.lower())
        if expected is None or field.type == expected.type:
            continue  # unknown columns (a newer version's) are read as they are
        if _compatible(field.type, expected.type):
            casts.add(expected.name)
        else:
            conflicts.append(f"{field.name} {field.type} (this store: {expected.type})")
    if conflicts:
        return Footer(f"foreign schema: {', '.join(conflicts)}")
    return Footer(None, frozenset(casts))


def _compatible(found: pa.DataType, expected: pa.DataType) -> bool:
    """Whether a column stored as ``found`` reads losslessly enough as ``expected`` (int32 as int64 …)."""
    types = pa.types
    if types.is_dictionary(found):
        found = found.value_type
    if types.is_null(found) or found == expected:
        return True
    if types.is_list(expected):
        listed = types.is_list(found) or types.is_large_list(found)
        return listed and _compatible(found.value_type, expected.value_type)
    if types.is_timestamp(expected):  # any unit; but a time without a zone is not an instant
        return types.is_timestamp(found) and (found.tz is None) == (expected.tz is None)
    families = {
        types.is_integer: (types.is_integer,),
        types.is_floating: (types.is_floating, types.is_integer),
        types.is_string: (types.is_string, types.is_large_string, types.is_string_view),
    }
    return any(
        family(expected) and any(accepts(found) for accepts in accepted) for family, accepted in families.items()
    )


def _schema_prefix(footer: bytes) -> bytes | None:
    """The footer's bytes up to the end of its schema (FileMetaData field 2, Thrift compact protocol): a footer that
    starts with them holds the same schema. None if the footer cannot be walked."""
    try:
        position, field = 0, 0
        while footer[position]:
            header = footer[position]
            position += 1
            if header >> 4:
                field += header >> 4
            else:  # a long-form field id: zigzag varint
                zigzag, position = _varint(footer, position)
                field = (zigzag >> 1) ^ -(zigzag & 1)
            position = _skip(footer, position, header & 0x0F)
            if field == 2:
                return footer[:position]
    except (IndexError, ValueError):
        return None
    return None


_FIXED_WIDTH = {1: 0, 2: 0, 3: 1, 7: 8}  # Thrift compact: booleans (the value is in the field header), byte, double


def _varint(data: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7


def _skip(data: bytes, position: int, kind: int) -> int:
    """The position after a Thrift compact-protocol value of type ``kind`` starting at ``position``."""
    if kind in _FIXED_WIDTH:
        return position + _FIXED_WIDTH[kind]
    if kind in (4, 5, 6):  # i16, i32, i64: varints
        return _varint(data, position)[1]
    if kind == 8:  # binary
        length, position = _varint(data, position)
        return position + length
    if kind in (9, 10):  # list, set
        header = data[position]
        count, element = header >> 4, header & 0x0F
        position += 1
        if count == 15:
            count, position = _varint(data, position)
        for _ in range(count):
            position = position + 1 if element in (1, 2) else _skip(data, position, element)
        return position
    if kind == 11:  # map
        count, position = _varint(data, position)
        if count:
            types = data[position]
            position += 1
            for _ in range(count):
                position = _skip(data, _skip(data, position, types >> 4), types & 0x0F)
        return position
    if kind != 12:
        raise ValueError(f"unknown Thrift compact type {kind}")
    while data[position]:  # a struct: fields until a stop byte
        header = data[position]
        position += 1
        if not header >> 4:  # a long-form field id follows
            position = _varint(data, position)[1]
        position = _skip(data, position, header & 0x0F)
    return position + 1


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__
