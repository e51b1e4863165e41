"""tests/unit/package_index.py: wheels uv installs, served by an index that uv and framework.releases read.

The uv tests run the real uv (the project's dependency) against the index on 127.0.0.1, with a cache in
``tmp_path`` and no configuration, Python download or other index: no network, the same answer every time.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from package_index import JSON_TYPE, LocalIndex, build_wheel, wants_json
from packaging.version import Version
from uv import find_uv_bin

from framework.releases import list_releases

UV_S = 60  # each uv call takes well under a second here; this only stops a hang
UTC = dt.timezone.utc
UV_ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
PIP_ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"

Uv = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture
def uv(tmp_path: Path) -> Uv:
    """``uv(*args)``: the project's uv with a cache in tmp_path and nothing from this machine's settings."""
    environ = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("UV_", "PIP_")) and key not in {"VIRTUAL_ENV", "CONDA_PREFIX"}
    }
    environ.update(UV_CACHE_DIR=str(tmp_path / "uv-cache"), UV_PYTHON_DOWNLOADS="never", UV_NO_PROGRESS="1")

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [find_uv_bin(), *args],
            cwd=tmp_path,
            env=environ,
            capture_output=True,
            text=True,
            timeout=UV_S,
            check=False,
        )
        if check:
            assert result.returncode == 0, f"uv {' '.join(args)}:\n{result.stderr}"
        return result

    return run


def compile_lock(uv: Uv, index: LocalIndex, requirements: str, *options: str) -> str:
    """``uv pip compile`` of ``requirements`` (lines) against the index only: the lock's text."""
    source = index.root.parent / "requirements.in"
    source.write_text(requirements)
    return uv(
        "pip",
        "compile",
        "--no-config",
        "--no-header",
        "--default-index",
        index.url,
        "--python",
        sys.executable,
        *options,
        str(source),
    ).stdout


def pins(lock: str) -> dict[str, str]:
    """Name → version of every ``name==version`` line of a lock."""
    found = {}
    for line in lock.splitlines():
        name, equals, version = line.partition("==")
        if equals and not line.startswith((" ", "#")):
            found[name] = version.split()[0]
    return found


def venv_python(uv: Uv, path: Path) -> Path:
    uv("venv", "--no-config", "--python", sys.executable, str(path))
    return path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def fetch(url: str, accept: str | None = JSON_TYPE, etag: str | None = None) -> tuple[int, dict[str, str], bytes]:
    """GET ``url``: status, headers and body (an HTTP error is an answer here, not an exception)."""
    headers = {"Accept": accept} if accept is not None else {}
    if etag is not None:
        headers["If-None-Match"] = etag
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), error.read()


def project_json(index: LocalIndex, name: str) -> dict[str, Any]:
    status, headers, body = fetch(f"{index.url}/{name}/")
    assert status == 200
    assert headers["Content-Type"] == JSON_TYPE
    document: dict[str, Any] = json.loads(body)
    return document


# --- wheels --------------------------------------------------------------------------------------------------


def test_a_wheel_has_the_spec_names_a_correct_record_and_the_same_bytes_every_time(tmp_path: Path) -> None:
    arguments: dict[str, Any] = {"requires": ["toy-dask==1.0"], "requires_python": ">=3.9"}
    wheel = build_wheel(tmp_path / "a", "Toy.Distributed", "01.0", **arguments)
    again = build_wheel(tmp_path / "b", "Toy.Distributed", "01.0", **arguments)

    assert wheel.name == "toy_distributed-1.0-py3-none-any.whl"
    assert wheel.read_bytes() == again.read_bytes()
    with zipfile.ZipFile(wheel) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    dist_info = "toy_distributed-1.0.dist-info"
    assert files["Toy_Distributed/__init__.py"] == b'__version__ = "1.0"\n'
    metadata = files[f"{dist_info}/METADATA"].decode().splitlines()
    assert metadata == [
        "Metadata-Version: 2.1",
        "Name: Toy.Distributed",
        "Version: 1.0",
        "Requires-Python: >=3.9",
        "Requires-Dist: toy-dask==1.0",
    ]
    assert "Root-Is-Purelib: true" in files[f"{dist_info}/WHEEL"].decode()
    assert "Tag: py3-none-any" in files[f"{dist_info}/WHEEL"].decode()
    assert files[f"{dist_info}/top_level.txt"] == b"Toy_Distributed\n"
    record = [line.split(",") for line in files[f"{dist_info}/RECORD"].decode().splitlines()]
    assert record[-1] == [f"{dist_info}/RECORD", "", ""]
    assert {path for path, _, _ in record} == set(files)
    for path, digest, size in record[:-1]:
        expected = hashlib.sha256(files[path]).digest()
        assert digest == "sha256=" + base64.urlsafe_b64encode(expected).rstrip(b"=").decode()
        assert int(size) == len(files[path])


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"name": "toy dask"}, "not a project name"),
        ({"requires": "toy-dask==1.0"}, "use ['toy-dask==1.0']"),
        ({"module": "toy-dask"}, "pass module='toy_dask'"),
    ],
)
def test_a_wheel_of_bad_arguments_is_refused_with_the_fix(
    tmp_path: Path, arguments: dict[str, Any], message: str
) -> None:
    with pytest.raises((ValueError, TypeError), match=message.replace("[", r"\[").replace("]", r"\]")):
        build_wheel(tmp_path, **{"name": "toy-dask", "version": "1.0", **arguments})


# --- the index, as HTTP ---------------------------------------------------------------------------------------


def test_the_json_api_lists_files_with_hashes_upload_times_and_requires_python(local_index: LocalIndex) -> None:
    old = local_index.add("toy-dask", "1.0", uploaded=dt.datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC))
    local_index.add("toy-dask", "2.0", requires_python=">=3.10", uploaded=dt.datetime(2030, 1, 1, tzinfo=UTC))
    local_index.add("toy-distributed", "1.0")

    status, _, body = fetch(f"{local_index.url}/")
    assert status == 200
    assert json.loads(body)["projects"] == [{"name": "toy-dask"}, {"name": "toy-distributed"}]
    document = project_json(local_index, "toy-dask")
    assert document["meta"] == {"api-version": "1.1"}
    assert document["name"] == "toy-dask"
    assert document["versions"] == ["1.0", "2.0"]
    first, second = document["files"]
    assert first["filename"] == old.name
    assert first["url"] == f"{local_index.origin}/files/{old.name}"
    assert first["hashes"] == {"sha256": hashlib.sha256(old.read_bytes()).hexdigest()}
    assert first["upload-time"] == "2020-01-02T03:04:05Z"
    assert first["yanked"] is False
    assert "requires-python" not in first
    assert second["requires-python"] == ">=3.10"
    assert second["upload-time"] == "2030-01-01T00:00:00Z"
    status, _, wheel = fetch(first["url"], accept=None)
    assert (status, wheel) == (200, old.read_bytes())


def test_without_a_json_accept_header_the_index_answers_pep_503_html(local_index: LocalIndex) -> None:
    wheel = local_index.add("toy-dask", "1.0", requires_python=">=3.9,<4")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()

    status, headers, body = fetch(f"{local_index.url}/toy-dask/", accept=None)

    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert f'/files/{wheel.name}#sha256={digest}"' in body.decode()
    assert 'data-requires-python="&gt;=3.9,&lt;4"' in body.decode()


@pytest.mark.parametrize(
    ("accept", "json_wanted"),
    [
        (UV_ACCEPT, True),
        (PIP_ACCEPT, True),
        ("", False),
        ("text/html", False),
        ("*/*", False),
        (f"{JSON_TYPE};q=0", False),
    ],
)
def test_content_negotiation_follows_the_accept_header(accept: str, json_wanted: bool) -> None:
    assert wants_json(accept) is json_wanted


def test_a_project_url_of_another_spelling_redirects_and_an_unknown_project_is_404(local_index: LocalIndex) -> None:
    local_index.add("toy-dask", "1.0")

    status, _, body = fetch(f"{local_index.url}/Toy_Dask")  # urllib follows the redirect, keeping Accept

    assert status == 200
    assert json.loads(body)["name"] == "toy-dask"
    assert fetch(f"{local_index.url}/toy-distributed/")[0] == 404
    assert fetch(f"{local_index.origin}/files/../../etc/passwd", accept=None)[0] == 404


def test_an_unchanged_page_revalidates_as_304_and_a_new_release_changes_it(local_index: LocalIndex) -> None:
    local_index.add("toy-dask", "1.0")
    _, headers, _ = fetch(f"{local_index.url}/toy-dask/")
    assert headers["Cache-Control"] == "no-cache"

    assert fetch(f"{local_index.url}/toy-dask/", etag=headers["ETag"])[0] == 304
    local_index.add("toy-dask", "2.0")
    status, _, body = fetch(f"{local_index.url}/toy-dask/", etag=headers["ETag"])
    assert status == 200
    assert json.loads(body)["versions"] == ["1.0", "2.0"]


def test_an_upload_is_refused_without_a_time_zone_or_over_an_existing_file(local_index: LocalIndex) -> None:
    local_index.add("toy-dask", "1.0")
    with pytest.raises(FileExistsError, match="add another version"):
        local_index.add("toy-dask", "1.0", source="")
    with pytest.raises(ValueError, match="give a time zone"):
        local_index.add("toy-dask", "2.0", uploaded=dt.datetime(2020, 1, 1))  # naive, on purpose


def test_the_index_stops_serving_and_its_thread_ends_when_the_block_ends(tmp_path: Path) -> None:
    with LocalIndex(tmp_path / "index") as index:
        url = f"{index.url}/"
        assert fetch(url)[0] == 200
        thread = index._thread
    assert thread is not None
    assert not thread.is_alive()
    with pytest.raises(urllib.error.URLError):
        fetch(url)
    with pytest.raises(RuntimeError, match="is not serving"):
        _ = index.url


# --- the index, as the tools read it ---------------------------------------------------------------------------


def test_uv_locks_the_hashes_the_index_lists_and_installs_what_it_locked(
    local_index: LocalIndex, uv: Uv, tmp_path: Path
) -> None:
    local_index.add("toy-dask", "1.0")
    local_index.add("toy-dask", "2.0")
    local_index.add("toy-distributed", "1.0", requires=["toy-dask==1.0"])

    lock = compile_lock(uv, local_index, "toy-dask\ntoy-distributed\n", "--generate-hashes")

    assert pins(lock) == {"toy-dask": "1.0", "toy-distributed": "1.0"}
    for name in ("toy-dask", "toy-distributed"):
        listed = next(
            f for f in project_json(local_index, name)["files"] if f["filename"].endswith("-1.0-py3-none-any.whl")
        )
        assert f"--hash=sha256:{listed['hashes']['sha256']}" in lock
    (tmp_path / "requirements.txt").write_text(lock)
    python = venv_python(uv, tmp_path / "venv")
    uv("pip", "sync", "--no-config", "--default-index", local_index.url, "--python", str(python), "requirements.txt")
    imported = subprocess.run(
        [python, "-c", "import toy_dask, toy_distributed; print(toy_dask.__version__)"],
        capture_output=True,
        text=True,
        timeout=UV_S,
        check=True,
    )
    assert imported.stdout.strip() == "1.0"


def test_a_release_that_fails_to_import_installs_and_then_fails_to_import(
    local_index: LocalIndex, uv: Uv, tmp_path: Path
) -> None:
    local_index.add("toy-dask", "1.0", source='raise ImportError("broken on purpose")\n')
    python = venv_python(uv, tmp_path / "venv")

    uv("pip", "install", "--no-config", "--default-index", local_index.url, "--python", str(python), "toy-dask")

    imported = subprocess.run(
        [python, "-c", "import toy_dask"], capture_output=True, text=True, timeout=UV_S, check=False
    )
    assert imported.returncode == 1
    assert "ImportError: broken on purpose" in imported.stderr


def test_a_release_added_after_a_compile_is_seen_by_the_next_one_with_the_same_cache(
    local_index: LocalIndex, uv: Uv
) -> None:
    local_index.add("toy-dask", "1.0")
    assert pins(compile_lock(uv, local_index, "toy-dask\n")) == {"toy-dask": "1.0"}

    local_index.add("toy-dask", "2.0")

    assert pins(compile_lock(uv, local_index, "toy-dask\n")) == {"toy-dask": "2.0"}


def test_upload_times_decide_what_uv_exclude_newer_sees(local_index: LocalIndex, uv: Uv) -> None:
    local_index.add("toy-dask", "1.0", uploaded=dt.datetime(2020, 1, 1, tzinfo=UTC))
    local_index.add("toy-dask", "2.0", uploaded=dt.datetime(2030, 1, 1, tzinfo=UTC))

    as_of_2026 = compile_lock(uv, local_index, "toy-dask\n", "--exclude-newer", "2026-01-01T00:00:00Z")
    today = compile_lock(uv, local_index, "toy-dask\n")

    assert pins(as_of_2026) == {"toy-dask": "1.0"}
    assert pins(today) == {"toy-dask": "2.0"}


def test_framework_releases_reads_the_versions_and_upload_times(local_index: LocalIndex) -> None:
    local_index.add("toy-dask", "1.0", uploaded=dt.datetime(2020, 1, 1, 12, tzinfo=UTC))
    local_index.add("toy-dask", "2.0", requires_python=">=3.10", uploaded=dt.datetime(2030, 6, 1, tzinfo=UTC))

    releases = list_releases("Toy_Dask", index=local_index.url)

    assert list(releases) == [Version("1.0"), Version("2.0")]
    assert releases[Version("1.0")].uploaded == dt.datetime(2020, 1, 1, 12, tzinfo=UTC)
    assert releases[Version("2.0")].uploaded == dt.datetime(2030, 6, 1, tzinfo=UTC)
    assert releases[Version("2.0")].requires_python == ">=3.10"
    assert releases[Version("1.0")].yanked is None
