"""A local package index for tests: wheels built on the fly, served over HTTP on 127.0.0.1, no network.

Tests use it to see how uv resolves and builds environments when upstream releases move: add a release
mid-test, upload one "in 2030", ship one that fails to import. The index serves the PEP 691 JSON and PEP 503
HTML simple APIs with PEP 700 upload times and PEP 658/714 core metadata, as PyPI does.

The folder is the whole state, read again on every request: each ``*.whl`` in it is a file of the index, and
its modification time is its upload time.

    def test_something(local_index: LocalIndex) -> None:
        local_index.add("toy-dask", "1.0")
        subprocess.run([uv, "pip", "compile", "--default-index", local_index.url, ...])
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import datetime as dt
import email.parser
import hashlib
import html
import io
import json
import os
import re
import tempfile
import threading
import urllib.parse
import zipfile
from collections.abc import Iterator, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional

import pytest
from packaging.requirements import Requirement
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import Version

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPE = "application/vnd.pypi.simple.v1+html"
API_VERSION = "1.1"  # PEP 700: upload-time, size and versions
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can hold: the same wheel always has the same sha256
PROJECT_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)  # PEP 508
# uv 0.13.9 reuses a cached page while fresh (PyPI's max-age=600 hid a release added mid-test): no-cache makes it
# revalidate every request, and the ETag (a digest of the body) turns an unchanged page or file into a 304.
CACHE_CONTROL = "no-cache"


def _digest(data: bytes) -> str:
    """RECORD's hash: urlsafe base64 of the sha256, without padding."""
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")


def _escaped(name: str) -> str:
    """The name as a wheel's filename and .dist-info directory spell it (``Toy.Dask`` → ``toy_dask``)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def build_wheel(
    directory: Path,
    name: str,
    version: str,
    *,
    requires: Sequence[str] = (),
    module: Optional[str] = None,
    source: Optional[str] = None,
    requires_python: Optional[str] = None,
) -> Path:
    """Write ``{name}-{version}-py3-none-any.whl`` (a pure-Python wheel uv and pip install) into ``directory``.

    Args:
        requires: Requires-Dist lines, e.g. ``["toy-dask==1.0"]``.
        module: the package it installs; default: the name with ``-`` and ``.`` → ``_``.
        source: ``{module}/__init__.py``; default: ``__version__ = "<version>"``.
        requires_python: Requires-Python, e.g. ``">=3.10"``.

    Returns:
        The wheel's path. Its bytes depend only on the arguments.
    """
    if not PROJECT_NAME.match(name):
        raise ValueError(f"name={name!r}: not a project name — use letters, digits and . _ - (e.g. 'toy-dask')")
    if isinstance(requires, str):
        raise TypeError(f"requires={requires!r}: a sequence of requirements — use [{requires!r}]")
    for requirement in requires:
        Requirement(requirement)  # InvalidRequirement names the bad one
    normalised = str(Version(version))  # InvalidVersion names the bad one
    module = module or re.sub(r"[-.]+", "_", name)
    if not module.isidentifier():
        raise ValueError(f"module={module!r}: not an importable name — pass module='{_escaped(name)}'")
    if source is None:
        source = f'__version__ = "{normalised}"\n'

    dist_info = f"{_escaped(name)}-{normalised}.dist-info"
    metadata = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {normalised}"]
    if requires_python:
        metadata.append(f"Requires-Python: {requires_python}")
    metadata += [f"Requires-Dist: {requirement}" for requirement in requires]
    files = {
        f"{module}/__init__.py": source.encode(),
        f"{dist_info}/METADATA": "\n".join([*metadata, ""]).encode(),
        f"{dist_info}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: dask-blessing tests (package_index.py)\n"
            b"Root-Is-Purelib: true\nTag: py3-none-any\n"
        ),
        f"{dist_info}/top_level.txt": f"{module}\n".encode(),
    }
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for path, data in files.items():
        writer.writerow([path, f"sha256={_digest(data)}", len(data)])
    writer.writerow([f"{dist_info}/RECORD", "", ""])
    files[f"{dist_info}/RECORD"] = record.getvalue().encode()

    directory.mkdir(parents=True, exist_ok=True)
    wheel = directory / f"{_escaped(name)}-{normalised}-py3-none-any.whl"
    partial = directory / f".{wheel.name}.partial"  # an index reading the folder never sees half a wheel
    with zipfile.ZipFile(partial, "w") as archive:
        for path, data in files.items():
            info = zipfile.ZipInfo(path, date_time=ZIP_TIMESTAMP)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    partial.replace(wheel)
    return wheel


@dataclasses.dataclass(frozen=True)
class IndexFile:
    """One wheel of the index, as its pages list it."""

    filename: str
    project: str  # normalised
    version: Version
    sha256: str  # hex
    size: int
    uploaded: dt.datetime
    requires_python: Optional[str]
    metadata: bytes  # the wheel's METADATA, served beside it (PEP 658)

    @property
    def upload_time(self) -> str:
        """PEP 700's format: ISO 8601 in UTC with a ``Z``."""
        return self.uploaded.astimezone(dt.timezone.utc).replace(tzinfo=None).isoformat() + "Z"

    @property
    def metadata_sha256(self) -> str:
        return hashlib.sha256(self.metadata).hexdigest()


def read_file(path: Path) -> IndexFile:
    """What the index says of one wheel in its folder."""
    project, version, _, _ = parse_wheel_filename(path.name)
    data = path.read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        dist_info = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = archive.read(dist_info)
    headers = email.parser.BytesHeaderParser().parsebytes(metadata)
    return IndexFile(
        filename=path.name,
        project=project,
        version=version,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        uploaded=EPOCH + dt.timedelta(microseconds=path.stat().st_mtime_ns // 1000),
        requires_python=headers.get("Requires-Python"),
        metadata=metadata,
    )


class LocalIndex:
    """A folder of wheels served as a simple index on ``127.0.0.1`` (a free port) while in a ``with`` block.

    ``url`` is what uv takes as ``--default-index`` (``UV_DEFAULT_INDEX``) and pip as ``--index-url``.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._server: Optional[_IndexServer] = None
        self._thread: Optional[threading.Thread] = None

    def __enter__(self) -> LocalIndex:
        if self._server is not None:
            raise RuntimeError(f"the index of {self.root} is already serving at {self.url}")
        self._server = _IndexServer(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"local-index-{self._server.server_port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        self._server = self._thread = None

    @property
    def origin(self) -> str:
        if self._server is None:
            raise RuntimeError(f"the index of {self.root} is not serving — use it as `with LocalIndex(root) as index:`")
        return f"http://127.0.0.1:{self._server.server_port}"

    @property
    def url(self) -> str:
        """The simple index: ``http://127.0.0.1:PORT/simple``."""
        return f"{self.origin}/simple"

    def add(
        self,
        name: str,
        version: str,
        *,
        requires: Sequence[str] = (),
        module: Optional[str] = None,
        source: Optional[str] = None,
        requires_python: Optional[str] = None,
        uploaded: Optional[dt.datetime] = None,
    ) -> Path:
        """Upload a new release (see ``build_wheel``), uploaded at ``uploaded`` (aware; default: now).

        It is listed from the next request on. A file cannot be replaced, as on PyPI: add another version.
        """
        uploaded = uploaded or dt.datetime.now(dt.timezone.utc)
        if uploaded.tzinfo is None:
            raise ValueError(f"uploaded={uploaded!r}: give a time zone, e.g. datetime(2020, 1, 1, tzinfo=timezone.utc)")
        with tempfile.TemporaryDirectory(dir=self.root, prefix=".upload-") as staging:
            built = build_wheel(
                Path(staging),
                name,
                version,
                requires=requires,
                module=module,
                source=source,
                requires_python=requires_python,
            )
            wheel = self.root / built.name
            if wheel.exists():
                raise FileExistsError(f"{wheel.name} is already on the index — add another version")
            nanoseconds = (uploaded - EPOCH) // dt.timedelta(microseconds=1) * 1000
            os.utime(built, ns=(nanoseconds, nanoseconds))  # before it appears: never listed with a wrong time
            built.replace(wheel)
        return wheel

    def files(self, project: Optional[str] = None) -> list[IndexFile]:
        """The wheels on the index now (of one project, by any spelling of its name), sorted by filename."""
        wanted = canonicalize_name(project) if project is not None else None
        found = []
        for path in sorted(self.root.glob("*.whl")):
            try:
                name = parse_wheel_filename(path.name)[0]
            except InvalidWheelFilename as error:
                raise ValueError(f"{path}: {error} — only wheels built by build_wheel belong here") from None
            if wanted is None or name == wanted:
                found.append(read_file(path))
        return found

    # --- pages -----------------------------------------------------------------------------------------------

    def _file_url(self, filename: str) -> str:
        return f"{self.origin}/files/{urllib.parse.quote(filename)}"

    def project_list(self, as_json: bool) -> bytes:
        projects = sorted({file.project for file in self.files()})
        if as_json:
            document = {"meta": {"api-version": API_VERSION}, "projects": [{"name": name} for name in projects]}
            return json.dumps(document, indent=1).encode()
        links = "".join(f'<a href="{self.url}/{name}/">{html.escape(name)}</a><br>\n' for name in projects)
        return _html_page("Simple index", links)

    def project_page(self, project: str, as_json: bool) -> Optional[bytes]:
        """The project's page, None when the index has no file of it."""
        files = self.files(project)
        if not files:
            return None
        if as_json:
            document = {
                "meta": {"api-version": API_VERSION},
                "name": project,
                "versions": [str(v) for v in sorted({file.version for file in files})],
                "files": [self._json_entry(file) for file in files],
            }
            return json.dumps(document, indent=1).encode()
        links = "".join(self._html_anchor(file) for file in files)
        return _html_page(f"Links for {project}", links)

    def _json_entry(self, file: IndexFile) -> dict[str, object]:
        entry: dict[str, object] = {
            "filename": file.filename,
            "url": self._file_url(file.filename),
            "hashes": {"sha256": file.sha256},
            "size": file.size,
            "upload-time": file.upload_time,
            "yanked": False,
            "core-metadata": {"sha256": file.metadata_sha256},
            "data-dist-info-metadata": {"sha256": file.metadata_sha256},  # PEP 714's old name, for older pips
        }
        if file.requires_python:
            entry["requires-python"] = file.requires_python
        return entry

    def _html_anchor(self, file: IndexFile) -> str:
        attributes = {
            "href": f"{self._file_url(file.filename)}#sha256={file.sha256}",
            "data-core-metadata": f"sha256={file.metadata_sha256}",
            "data-dist-info-metadata": f"sha256={file.metadata_sha256}",
        }
        if file.requires_python:
            attributes["data-requires-python"] = file.requires_python
        shown = " ".join(f'{key}="{html.escape(value, quote=True)}"' for key, value in attributes.items())
        return f"<a {shown}>{html.escape(file.filename)}</a><br>\n"

    def download(self, filename: str) -> Optional[bytes]:
        """A wheel, or its METADATA for ``<wheel>.metadata``; None for anything else."""
        wheel_name = filename.removesuffix(".metadata")
        if wheel_name not in {path.name for path in self.root.glob("*.whl")}:  # never a path outside the folder
            return None
        if filename.endswith(".metadata"):
            return read_file(self.root / wheel_name).metadata
        return (self.root / wheel_name).read_bytes()


def _html_page(title: str, body: str) -> bytes:
    return (
        '<!DOCTYPE html>\n<html>\n<head><meta name="pypi:repository-version" content="1.1">'
        f"<title>{html.escape(title)}</title></head>\n<body>\n<h1>{html.escape(title)}</h1>\n{body}</body>\n</html>\n"
    ).encode()


def wants_json(accept: str) -> bool:
    """PEP 691 content negotiation: JSON when the Accept header ranks it above HTML (no header: HTML)."""
    ranks = {"json": -1.0, "html": 0.0}  # without an Accept header, or one naming neither: HTML
    for item in accept.split(","):
        media_type, *parameters = (part.strip() for part in item.split(";"))
        quality = 1.0
        for parameter in parameters:
            key, _, value = parameter.partition("=")
            if key.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if media_type in {JSON_TYPE, "application/vnd.pypi.simple.latest+json"}:
            ranks["json"] = max(ranks["json"], quality)
        elif media_type in {HTML_TYPE, "application/vnd.pypi.simple.latest+html", "text/html"}:
            ranks["html"] = max(ranks["html"], quality)
    return ranks["json"] > 0 and ranks["json"] >= ranks["html"]


class _IndexServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, index: LocalIndex) -> None:
        self.index = index
        super().__init__(("127.0.0.1", 0), _IndexHandler)


class _IndexHandler(BaseHTTPRequestHandler):
    server: _IndexServer

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: a test's output shows its own failures, not every request uv made."""

    def do_GET(self) -> None:
        self._answer(with_body=True)

    def do_HEAD(self) -> None:
        self._answer(with_body=False)

    def _answer(self, with_body: bool) -> None:
        index = self.server.index
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        parts = path.strip("/").split("/")
        if parts[0] == "files" and len(parts) == 2:
            body = index.download(parts[1])
            if body is None:
                self._send(HTTPStatus.NOT_FOUND, b"no such file\n", "text/plain", with_body)
            else:
                self._send_fresh(body, "application/octet-stream", with_body)
            return
        if parts[0] != "simple" or len(parts) > 2:
            self._send(HTTPStatus.NOT_FOUND, b"not an index page: try /simple/\n", "text/plain", with_body)
            return
        as_json = wants_json(self.headers.get("Accept", ""))
        content_type = JSON_TYPE if as_json else "text/html; charset=utf-8"
        if len(parts) == 1:
            self._send_fresh(index.project_list(as_json), content_type, with_body)
            return
        project = canonicalize_name(parts[1])
        if parts[1] != project or not path.endswith("/"):  # PEP 503: redirect to the normalised URL
            self.send_response(HTTPStatus.MOVED_PERMANENTLY)
            self.send_header("Location", f"/simple/{project}/")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        page = index.project_page(project, as_json)
        if page is None:
            self._send(HTTPStatus.NOT_FOUND, f"no project {project!r}\n".encode(), "text/plain", with_body)
        else:
            self._send_fresh(page, content_type, with_body)

    def _send_fresh(self, body: bytes, content_type: str, with_body: bool) -> None:
        """A page or file a client must revalidate before reusing: 304 when its cached copy is still current."""
        etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
        extra = {"ETag": etag, "Cache-Control": CACHE_CONTROL, "Vary": "Accept"}
        if etag in (value.strip() for value in self.headers.get("If-None-Match", "").split(",")):
            self._send(HTTPStatus.NOT_MODIFIED, b"", content_type, with_body=False, extra=extra)
        else:
            self._send(HTTPStatus.OK, body, content_type, with_body, extra=extra)

    def _send(
        self,
        status: HTTPStatus,
        body: bytes,
        content_type: str,
        with_body: bool,
        extra: Optional[dict[str, str]] = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if status != HTTPStatus.NOT_MODIFIED:
            self.send_header("Content-Length", str(len(body)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if with_body:
            self.wfile.write(body)


@pytest.fixture
def local_index(tmp_path: Path) -> Iterator[LocalIndex]:
    """An empty index serving ``tmp_path/index``; add releases with ``local_index.add(name, version)``."""
    with LocalIndex(tmp_path / "index") as index:
        yield index
