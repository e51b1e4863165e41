"""`nox -s export` end to end, as a production user would use its file: export `stable` (pinned, its lock kept) in
both formats, install each into a fresh venv with `uv venv` + `uv pip sync`, and check `uv pip freeze` is the lock."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from nox_session import nox

from framework.environments import find_python, parse_lock
from framework.export import pylock_packages

pytestmark = pytest.mark.environment


def uv(*args: str) -> subprocess.CompletedProcess[str]:
    from uv import find_uv_bin

    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    env.pop("VIRTUAL_ENV", None)
    return subprocess.run(
        [str(find_uv_bin()), *args], capture_output=True, text=True, env=env, timeout=600, check=False
    )


def installed_from(file: Path, venv: Path) -> dict[str, str]:
    """Install ``file`` into a fresh venv as the printed command does; what ``uv pip freeze`` then lists."""
    created = uv("venv", "--quiet", "--python", str(find_python("3.11", "stable")), str(venv))
    assert created.returncode == 0, created.stderr
    python = str(venv / "bin" / "python")
    synced = uv("pip", "sync", "--quiet", "--python", python, str(file))
    assert synced.returncode == 0, synced.stderr
    freeze = uv("pip", "freeze", "--python", python)
    assert freeze.returncode == 0, freeze.stderr
    return parse_lock(freeze.stdout)


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, subprocess.CompletedProcess[str]]]:
    folder = tmp_path_factory.mktemp("nox-export")
    runs = {
        "requirements": nox("-s", "export", "--", "--runtime=stable", f"--out={folder / 'stable.txt'}"),
        "pylock": nox("-s", "export", "--", "--runtime=stable", "--format=pylock", f"--out={folder / 'pylock.toml'}"),
    }
    return folder, runs


def test_each_export_prints_its_file_and_the_install_command(
    exports: tuple[Path, dict[str, subprocess.CompletedProcess[str]]],
) -> None:
    folder, runs = exports
    for fmt, name in (("requirements", "stable.txt"), ("pylock", "pylock.toml")):
        process = runs[fmt]
        assert process.returncode == 0, process.stdout[-3000:]
        assert f"wrote {folder / name}" in process.stdout
        assert f"install it with: uv pip sync {folder / name}" in process.stdout
        assert "stable: 154 packages (dask 2026.3.0, distributed 2026.3.0), resolved as of 2026-04-15" in process.stdout


def test_the_requirements_export_installs_exactly_its_pins(
    exports: tuple[Path, dict[str, subprocess.CompletedProcess[str]]], tmp_path: Path
) -> None:
    folder, runs = exports
    assert runs["requirements"].returncode == 0, runs["requirements"].stdout[-3000:]
    text = (folder / "stable.txt").read_text()
    pins = parse_lock(text)
    assert pins["dask"] == pins["distributed"] == "2026.3.0"
    assert text.count("--hash=sha256:") >= len(pins)  # pip install --require-hashes accepts it

    assert installed_from(folder / "stable.txt", tmp_path / "venv") == pins


def test_the_pylock_export_installs_the_same_pins(
    exports: tuple[Path, dict[str, subprocess.CompletedProcess[str]]], tmp_path: Path
) -> None:
    folder, runs = exports
    assert runs["pylock"].returncode == 0, runs["pylock"].stdout[-3000:]
    assert runs["requirements"].returncode == 0, runs["requirements"].stdout[-3000:]
    pins = parse_lock((folder / "stable.txt").read_text())
    assert pylock_packages((folder / "pylock.toml").read_text()) == pins  # one lock, two formats

    assert installed_from(folder / "pylock.toml", tmp_path / "venv") == pins
