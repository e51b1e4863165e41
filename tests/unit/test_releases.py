"""framework/releases.py: a package's releases from a PEP 691 index, and runtimes derived at one release.

The index is a real HTTP server on 127.0.0.1 (a thread), so the request, its Accept header and the error
paths are the ones a real index exercises.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
from packaging.version import Version

from framework.models import Runtime
from framework.releases import (
    DEFAULT_INDEX,
    JSON_TYPE,
    Release,
    ReleaseError,
    derived_runtime,
    index_url,
    list_releases,
    moved_packages,
    parse_releases,
    select_range,
)


def wheel(
    name: str, version: str, uploaded: str, yanked: bool | str = False, requires: str | None = None
) -> dict[str, Any]:
    return {
        "filename": f"{name}-{version}-py3-none-any.whl",
        "upload-time": uploaded,
        "yanked": yanked,
        "requires-python": requires,
        "url": "https://files.example/x.whl",
        "hashes": {},
    }


def sdist(name: str, version: str, uploaded: str, yanked: bool | str = False) -> dict[str, Any]:
    return {**wheel(name, version, uploaded, yanked), "filename": f"{name}-{version}.tar.gz"}


def project(name: str, files: list[dict[str, Any]]) -> dict[str, Any]:
    return {"meta": {"api-version": "1.1"}, "name": name, "files": files}


DASK = project(
    "dask",
    [
        wheel("dask", "2024.12.0", "2024-12-03T10:00:00Z"),
        sdist("dask", "2024.12.1", "2024-12-17T09:00:00Z"),
        wheel("dask", "2024.12.1", "2024-12-16T21:00:00Z"),  # the earliest file gives the upload time
        wheel("dask", "2025.1.0", "2025-01-17T12:00:00Z"),
        wheel("dask", "2025.2.0rc1", "2025-02-10T12:00:00Z"),
        wheel("dask", "2025.2.0", "2025-02-13T12:00:00Z"),
        wheel("dask", "2025.3.0", "2025-03-07T12:00:00Z", yanked="Critical performance regression"),
        sdist("dask", "2025.3.0", "2025-03-07T12:01:00Z", yanked="Critical performance regression"),
        wheel("dask", "2025.3.1", "2025-03-10T12:00:00Z", yanked="only the wheel"),
        sdist("dask", "2025.3.1", "2025-03-10T12:00:00Z"),  # one file still available: not yanked
        wheel("dask", "2025.4.0", "2025-04-01T12:00:00Z", requires=">=3.12"),
        wheel("dask", "2025.5.0", "2025-05-02T12:00:00Z"),
        {"filename": "dask-0.1.0-py2.7.egg", "upload-time": "2015-01-01T00:00:00Z", "yanked": False},
        {"filename": "not-a-valid-wheel.whl", "upload-time": "2015-01-01T00:00:00Z", "yanked": False},
    ],
)
DISTRIBUTED = project(
    "distributed",
    [
        wheel("distributed", version, "2025-01-01T00:00:00Z")
        for version in ("2024.12.0", "2024.12.1", "2025.1.0", "2025.2.0", "2025.3.0", "2025.3.1", "2025.5.0")
    ],
)


class Index(BaseHTTPRequestHandler):
    documents: ClassVar[dict[str, dict[str, Any]]] = {"/simple/dask/": DASK, "/simple/distributed/": DISTRIBUTED}
    seen: ClassVar[list[tuple[str, str | None]]] = []

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Accept")))
        if self.path == "/simple/broken/":
            self._answer(500, "text/plain", b"oops")
        elif self.path == "/simple/html-only/":
            self._answer(200, "text/html", b"<html></html>")
        elif self.path == "/simple/garbled/":
            self._answer(200, JSON_TYPE, b"{not json")
        elif self.path in self.documents:
            self._answer(200, JSON_TYPE, json.dumps(self.documents[self.path]).encode())
        else:
            self._answer(404, "text/plain", b"not found")

    def _answer(self, code: int, content_type: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def index() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Index)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/simple"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_lists_releases_over_http_asking_for_pep_691_json(index: str) -> None:
    releases = list_releases("Dask", index)  # the name is normalised in the URL
    assert ("/simple/dask/", JSON_TYPE) in Index.seen
    assert [str(v) for v in releases] == [
        "2024.12.0", "2024.12.1", "2025.1.0", "2025.2.0rc1", "2025.2.0", "2025.3.0", "2025.3.1", "2025.4.0", "2025.5.0",
    ]  # fmt: skip
    assert releases[Version("2024.12.1")].uploaded == dt.datetime(2024, 12, 16, 21, tzinfo=dt.timezone.utc)
    assert releases[Version("2025.3.0")].yanked == "Critical performance regression"
    assert releases[Version("2025.3.1")].yanked is None  # only one of its files was yanked
    assert releases[Version("2025.4.0")].requires_python == ">=3.12"


def test_an_unknown_package_says_so_and_how_to_fix_it(index: str) -> None:
    with pytest.raises(ReleaseError, match=r"--package=daks: the package index .* has no package 'daks' — check"):
        list_releases("daks", index)


@pytest.mark.parametrize(
    ("package", "message"),
    [
        ("broken", r"answered HTTP 500 .* — check it, or point UV_DEFAULT_INDEX"),
        ("html-only", r"answered text/html, not PEP 691 JSON — point UV_DEFAULT_INDEX at an index that serves"),
        ("garbled", r"answered invalid JSON"),
    ],
)
def test_an_index_that_misbehaves_gets_one_line_with_the_fix(index: str, package: str, message: str) -> None:
    with pytest.raises(ReleaseError, match=message) as caught:
        list_releases(package, index)
    assert "\n" not in str(caught.value)


def test_an_unreachable_index_is_named_without_its_credentials() -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ReleaseError) as caught:
        list_releases("dask", f"http://user:secret@127.0.0.1:{port}/simple")
    message = str(caught.value)
    assert message.startswith(f"cannot reach the package index http://127.0.0.1:{port}/simple/dask/: ")
    assert "secret" not in message
    assert "check the network, or point UV_DEFAULT_INDEX at a reachable index" in message


def test_the_index_is_the_one_uv_or_pip_would_use() -> None:
    assert index_url({}) == DEFAULT_INDEX
    assert index_url({"PIP_INDEX_URL": "https://pip.example/simple/"}) == "https://pip.example/simple"
    both = {"PIP_INDEX_URL": "https://pip.example/simple", "UV_INDEX_URL": "https://uv.example/simple"}
    assert index_url(both) == "https://uv.example/simple"
    assert index_url({**both, "UV_DEFAULT_INDEX": "https://default.example/simple"}) == "https://default.example/simple"
    assert index_url({"UV_DEFAULT_INDEX": "  "}) == DEFAULT_INDEX


def releases_of(document: dict[str, Any]) -> dict[Version, Release]:
    return parse_releases(document)


def test_range_drops_pre_releases_yanked_and_python_mismatches_with_reasons() -> None:
    span = select_range("dask", releases_of(DASK), "2024.12.1", "2025.5.0", python="3.11")
    assert span.versions == ["2024.12.1", "2025.1.0", "2025.2.0", "2025.3.1", "2025.5.0"]
    assert span.ascending
    assert dict(span.dropped) == {
        "2025.2.0rc1": "pre-release",
        "2025.3.0": "yanked: Critical performance regression",
        "2025.4.0": "requires Python >=3.12, the runtime has 3.11",
    }


def test_pre_releases_are_kept_when_an_end_is_one() -> None:
    span = select_range("dask", releases_of(DASK), "2025.1.0", "2025.2.0rc1")
    assert span.versions == ["2025.1.0", "2025.2.0rc1"]
    span = select_range("dask", releases_of(DASK), "2024.12.1", "2025.2.0rc1")
    assert "2025.2.0rc1" in span.versions


def test_good_newer_than_bad_orders_the_range_from_good_to_bad() -> None:
    span = select_range("dask", releases_of(DASK), "2025.5.0", "2024.12.1", python="3.11")
    assert span.versions == ["2025.5.0", "2025.3.1", "2025.2.0", "2025.1.0", "2024.12.1"]
    assert not span.ascending


def test_companion_releases_are_intersected() -> None:
    companions = {"distributed": releases_of(DISTRIBUTED)}
    span = select_range("dask", releases_of(DASK), "2024.12.1", "2025.5.0", python="3.13", companions=companions)
    assert "2025.4.0" not in span.versions
    assert ("2025.4.0", "no distributed 2025.4.0") in span.dropped


def test_an_end_the_companion_lacks_is_refused_with_the_fix() -> None:
    companions = {"distributed": releases_of(DISTRIBUTED)}
    with pytest.raises(ReleaseError, match=r"--bad=2025.4.0: distributed has no release 2025.4.0 .* --alone"):
        select_range("dask", releases_of(DASK), "2025.1.0", "2025.4.0", companions=companions)


@pytest.mark.parametrize(
    ("good", "bad", "message"),
    [
        ("2025.1.1", "2025.5.0", r"--good=2025.1.1: dask has no release 2025.1.1 — releases around it: "
         r"2024.12.1, 2025.1.0, 2025.2.0rc1, 2025.2.0"),
        ("2024.12.1", "2026.1.0", r"--bad=2026.1.0: dask has no release 2026.1.0 — releases around it: "
         r"2025.4.0, 2025.5.0"),
        ("latest", "2025.5.0", r"--good=latest: not a version — use a release of dask, e.g. 2025.1.0"),
        ("2025.1", "2025.1.0", r"--good=2025.1 --bad=2025.1.0: the same release — give two different releases"),
    ],
)  # fmt: skip
def test_unknown_versions_name_the_releases_around_them(good: str, bad: str, message: str) -> None:
    with pytest.raises(ReleaseError, match=message):
        select_range("dask", releases_of(DASK), good, bad)


BASE = Runtime(
    name="base",
    python="3.11",
    as_of=dt.date(2025, 1, 15),
    packages={
        "dask[dataframe,array]": "==2024.12.1",
        "distributed": "==2024.12.1",
        "pandas": "",
        "moto[server]": ">=5",
    },
    env={"MALLOC_TRIM_THRESHOLD_": "65536"},
    dask_config={"distributed.scheduler.worker-saturation": 1.1},
)
LOCK = {"dask": "2024.12.1", "distributed": "2024.12.1", "pandas": "2.2.3", "moto": "5.0.26", "cloudpickle": "3.1.0"}
RELEASE = Release(Version("2025.2.0"), dt.datetime(2025, 2, 13, 23, 30, tzinfo=dt.timezone.utc))


def test_lock_hold_pins_the_other_declared_packages_and_drops_as_of() -> None:
    runtime = derived_runtime(BASE, moved_packages("dask", BASE, alone=False), RELEASE, "lock", LOCK)
    assert runtime.name == "bisect-dask-2025.2.0"
    assert runtime.packages == {
        "dask[dataframe,array]": "==2025.2.0",  # extras kept
        "distributed": "==2025.2.0",  # moves with dask
        "pandas": "==2.2.3",
        "moto[server]": "==5.0.26",
    }
    assert runtime.as_of is None
    assert runtime.fully_pinned
    assert (runtime.python, runtime.env, runtime.dask_config) == (BASE.python, BASE.env, BASE.dask_config)


def test_spec_hold_keeps_the_specifiers_as_of_the_day_after_the_release() -> None:
    runtime = derived_runtime(BASE, moved_packages("distributed", BASE, alone=False), RELEASE, "spec")
    assert runtime.packages["pandas"] == ""
    assert runtime.packages["moto[server]"] == ">=5"
    assert runtime.packages["dask[dataframe,array]"] == runtime.packages["distributed"] == "==2025.2.0"
    assert runtime.as_of == dt.date(2025, 2, 14)
    without_time = Release(Version("2025.2.0"), None)
    with pytest.raises(ReleaseError, match=r"gives no upload time for 2025\.2\.0 — use --hold=lock"):
        derived_runtime(BASE, ["distributed"], without_time, "spec")


def test_alone_moves_only_the_bisected_package_and_others_are_added() -> None:
    assert moved_packages("Dask", BASE, alone=True) == ["dask"]
    runtime = derived_runtime(BASE, moved_packages("dask", BASE, alone=True), RELEASE, "lock", LOCK)
    assert runtime.packages["distributed"] == "==2024.12.1"  # held as in the lock
    assert moved_packages("pandas", BASE, alone=False) == ["pandas"]
    transitive = derived_runtime(BASE, ["cloudpickle"], Release(Version("3.0.0"), None), "lock", LOCK)
    assert transitive.packages["cloudpickle"] == "==3.0.0"
    assert transitive.name == "bisect-cloudpickle-3.0.0"


def test_requires_python_check() -> None:
    assert Release(Version("1"), None, requires_python=">=3.10").supports("3.11")
    assert not Release(Version("1"), None, requires_python=">=3.12").supports("3.11")
    assert Release(Version("1"), None, requires_python="garbage").supports("3.11")
