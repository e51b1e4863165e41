"""framework/environments.py: what names an environment, how its lock is read, which Python it uses, and real
uv builds of a tiny runtime (build, reuse, rebuild a broken one, fail in one line)."""

from __future__ import annotations

import datetime as dt
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from framework.environments import (
    ENVS_DIR,
    MARKER,
    build_environment,
    environment_hash,
    environment_spec,
    find_python,
    parse_lock,
    runtime_hash,
)
from framework.errors import EnvironmentBuildError, FrameworkError
from framework.models import Runtime

DAY = dt.date(2026, 11, 26)
NEXT_DAY = dt.date(2026, 11, 27)


def runtime(**changes: Any) -> Runtime:
    fields: dict[str, Any] = {
        "name": "tiny",
        "description": "six, pinned",
        "python": "3.11",
        "packages": {"six": "==1.16.0"},
    }
    return Runtime(**{**fields, **changes})


# ---------------------------------------------------------------------------------------------------------------
# runtime_hash: what defines the runtime, not what it is called


@pytest.mark.parametrize(
    "changes",
    [
        {"name": "renamed"},
        {"description": "the same packages, described otherwise"},
        {"name": "other", "description": ""},
    ],
)
def test_runtime_hash_ignores_name_and_description(changes: dict[str, Any]) -> None:
    assert runtime_hash(runtime(**changes)) == runtime_hash(runtime())


@pytest.mark.parametrize(
    "changes",
    [
        {"packages": {"six": "==1.17.0"}},
        {"packages": {"six": "==1.16.0", "packaging": ""}},
        {"python": "3.12"},
        {"as_of": dt.date(2025, 1, 15)},
        {"env": {"MALLOC_TRIM_THRESHOLD_": "65536"}},
        {"dask_config": {"distributed.scheduler.worker-saturation": 1.1}},
    ],
)
def test_runtime_hash_changes_with_what_defines_the_runtime(changes: dict[str, Any]) -> None:
    assert runtime_hash(runtime(**changes)) != runtime_hash(runtime())


def test_runtime_hash_is_stable_and_short() -> None:
    first, second = runtime_hash(runtime()), runtime_hash(runtime())
    assert first == second
    assert len(first) == 16
    assert int(first, 16) >= 0  # hexadecimal


# ---------------------------------------------------------------------------------------------------------------
# environment_spec / environment_hash: what decides the environment's contents


def test_environment_spec_of_a_pinned_runtime_has_no_resolution_day() -> None:
    spec = environment_spec(runtime(), today=DAY)
    assert spec["python"] == "3.11"
    assert spec["requirements"] == ["six==1.16.0"]
    assert spec["as_of"] is None
    assert spec["resolved_on"] is None


def test_not_fully_pinned_runtime_is_resolved_again_each_day() -> None:
    latest = runtime(packages={"six": ">=1.16"})
    assert environment_spec(latest, today=DAY)["resolved_on"] == "2026-11-26"
    assert environment_hash(latest, today=DAY) != environment_hash(latest, today=NEXT_DAY)
    assert environment_hash(latest, today=DAY) == environment_hash(latest, today=DAY)
    assert environment_hash(latest) == environment_hash(latest, today=dt.date.today())


@pytest.mark.parametrize(
    "stable",
    [
        runtime(),  # every package pinned with ==
        runtime(packages={"six": ">=1.16", "packaging": ""}, as_of=dt.date(2025, 1, 15)),  # frozen in time
    ],
    ids=["pinned", "as_of"],
)
def test_pinned_or_as_of_runtime_keeps_its_environment_across_days(stable: Runtime) -> None:
    assert environment_hash(stable, today=DAY) == environment_hash(stable, today=NEXT_DAY)


def test_wildcard_pin_counts_as_not_pinned() -> None:
    wildcard = runtime(packages={"six": "==1.*"})
    assert environment_hash(wildcard, today=DAY) != environment_hash(wildcard, today=NEXT_DAY)


def test_environment_hash_ignores_env_vars_and_dask_config_but_runtime_hash_does_not() -> None:
    tuned = runtime(env={"OMP_NUM_THREADS": "1"}, dask_config={"distributed.worker.daemon": False})
    # The same packages need no second environment; the results still tell the two runtimes apart.
    assert environment_hash(tuned, today=DAY) == environment_hash(runtime(), today=DAY)
    assert runtime_hash(tuned) != runtime_hash(runtime())


def test_environment_hash_changes_with_python_packages_and_as_of() -> None:
    base = environment_hash(runtime(), today=DAY)
    assert environment_hash(runtime(python="3.12"), today=DAY) != base
    assert environment_hash(runtime(packages={"six": "==1.17.0"}), today=DAY) != base
    assert environment_hash(runtime(as_of=dt.date(2025, 1, 15)), today=DAY) != base


# ---------------------------------------------------------------------------------------------------------------
# parse_lock


def test_parse_lock_reads_name_version_lines_and_normalises_names() -> None:
    lock = "\n".join(
        [
            "Dask_Expr==1.1.0",
            "distributed==2024.12.1",
            "zope.interface==7.2",
            "  six==1.16.0  ",
            "-e file:///work/main",  # editable installs carry no version
            "local-thing @ file:///tmp/local_thing-0.1-py3-none-any.whl",
            "# a comment",
            "",
        ]
    )
    assert parse_lock(lock) == {
        "dask-expr": "1.1.0",
        "distributed": "2024.12.1",
        "zope-interface": "7.2",
        "six": "1.16.0",
    }


def test_parse_lock_of_nothing_is_empty() -> None:
    assert parse_lock("") == {}


# ---------------------------------------------------------------------------------------------------------------
# find_python


def test_find_python_finds_3_11_and_it_runs() -> None:
    python = find_python("3.11", "latest")
    reported = subprocess.run(
        [str(python), "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True, check=True
    )
    assert reported.stdout.strip() == "(3, 11)"


def test_find_python_for_a_missing_version_names_the_file_the_runtime_and_the_fix() -> None:
    with pytest.raises(EnvironmentBuildError) as raised:
        find_python("3.4", "ancient")
    message = str(raised.value)
    assert message.startswith("matrices/runtimes.yaml: runtimes.ancient.python: no Python 3.4 on this machine")
    assert "looked for python3.4 on PATH, in pyenv and in uv's Pythons" in message
    assert "`pyenv install 3.4` or `uv python install 3.4`" in message
    assert "\n" not in message
    assert isinstance(raised.value, FrameworkError)  # printed as one line by the CLI, no traceback


def _fake_python(path: Path, reports: str | None) -> Path:
    """An executable that reports ``reports`` as its version, or fails like a pyenv shim of an inactive version."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = f"echo {reports}" if reports else "echo 'pyenv: python3.99: command not found' >&2; exit 127"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def fake_pythons(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated PATH, pyenv root and uv Python directory."""
    for name in ("bin", "pyenv", "uv"):
        (tmp_path / name).mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "pyenv"))
    monkeypatch.setenv("UV_PYTHON_INSTALL_DIR", str(tmp_path / "uv"))
    return tmp_path


def test_find_python_skips_a_shim_that_does_not_run_and_takes_pyenvs_newest_patch(fake_pythons: Path) -> None:
    _fake_python(fake_pythons / "bin" / "python3.99", reports=None)  # a shim for an inactive version
    _fake_python(fake_pythons / "pyenv" / "versions" / "3.99.2" / "bin" / "python3.99", reports="3.99")
    newest = _fake_python(fake_pythons / "pyenv" / "versions" / "3.99.10" / "bin" / "python3.99", reports="3.99")

    assert find_python("3.99", "future") == newest  # 10 > 2: patch levels compare as numbers


def test_find_python_rejects_an_interpreter_that_reports_another_version(fake_pythons: Path) -> None:
    _fake_python(fake_pythons / "bin" / "python3.99", reports="3.98")
    with pytest.raises(EnvironmentBuildError, match=r"runtimes\.future\.python: no Python 3\.99"):
        find_python("3.99", "future")


def test_find_python_looks_in_uvs_python_directory(fake_pythons: Path) -> None:
    installed = _fake_python(fake_pythons / "uv" / "cpython-3.99.1-linux-x86_64-gnu" / "bin" / "python3.99", "3.99")
    assert find_python("3.99", "future") == installed


# ---------------------------------------------------------------------------------------------------------------
# build_environment: real uv builds of a one-package runtime (seconds with a warm uv cache)


def _envs(root: Path) -> list[str]:
    return sorted(path.name for path in (root / ENVS_DIR).iterdir())


@pytest.mark.environment
def test_build_environment_builds_then_reuses(tmp_path: Path) -> None:
    tiny = runtime()

    built = build_environment(tiny, tmp_path, today=DAY)

    assert not built.reused
    assert built.build_seconds > 0
    assert built.path == tmp_path / ENVS_DIR / f"tiny-{environment_hash(tiny, today=DAY)}"
    assert built.env_hash == environment_hash(tiny, today=DAY)
    assert built.runtime_hash == runtime_hash(tiny)
    assert "six==1.16.0" in built.lock.splitlines()
    assert built.packages["six"] == "1.16.0"
    assert (built.path / MARKER).read_text() == built.lock
    imported = subprocess.run(
        [str(built.python), "-c", "import six; print(six.__version__)"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONNOUSERSITE": "1"},
    )
    assert imported.stdout.strip() == "1.16.0"

    again = build_environment(tiny, tmp_path, today=DAY)

    assert again.reused
    assert again.path == built.path
    assert again.build_seconds == 0.0
    assert again.lock == built.lock
    assert _envs(tmp_path) == [built.path.name]


@pytest.mark.environment
def test_build_environment_rebuilds_a_broken_build(tmp_path: Path) -> None:
    tiny = runtime()
    first = build_environment(tiny, tmp_path, today=DAY)
    (first.path / MARKER).unlink()  # as if the build had been interrupted
    leftover = first.path / "half-written"
    leftover.write_text("from the interrupted build")

    rebuilt = build_environment(tiny, tmp_path, today=DAY)

    assert not rebuilt.reused
    assert rebuilt.path == first.path
    assert (rebuilt.path / MARKER).exists()
    assert not leftover.exists()  # rebuilt from scratch, not patched
    assert rebuilt.packages["six"] == "1.16.0"


@pytest.mark.environment
def test_build_environment_rebuild_flag_forces_a_new_build(tmp_path: Path) -> None:
    tiny = runtime()
    build_environment(tiny, tmp_path, today=DAY)

    forced = build_environment(tiny, tmp_path, rebuild=True, today=DAY)

    assert not forced.reused
    assert forced.packages["six"] == "1.16.0"


@pytest.mark.environment
def test_build_environment_as_of_installs_what_was_released_before_that_day(tmp_path: Path) -> None:
    # six 1.16.0 was released on 2021-05-05: on 2021-01-01 the newest was 1.15.0.
    old = runtime(name="old", packages={"six": ""}, as_of=dt.date(2021, 1, 1))

    built = build_environment(old, tmp_path, today=DAY)

    assert built.packages == {"six": "1.15.0"}


@pytest.mark.environment
def test_build_environment_of_a_new_day_replaces_yesterdays_unpinned_build(tmp_path: Path) -> None:
    unpinned = runtime(name="newest", packages={"six": ">=1.16"})
    other = build_environment(runtime(name="other"), tmp_path, today=DAY)
    yesterday = build_environment(unpinned, tmp_path, today=DAY)

    today = build_environment(unpinned, tmp_path, today=NEXT_DAY)

    assert not today.reused
    assert today.path != yesterday.path
    assert not yesterday.path.exists()  # pruned: dead weight
    assert other.path.exists()  # another runtime's environment is not touched
    assert _envs(tmp_path) == sorted([other.path.name, today.path.name])


@pytest.mark.environment
def test_build_environment_with_an_unresolvable_pin_fails_in_one_line_naming_the_runtime(tmp_path: Path) -> None:
    impossible = runtime(name="badsix", packages={"six": "==0.0.0"})

    with pytest.raises(EnvironmentBuildError) as raised:
        build_environment(impossible, tmp_path, today=DAY)

    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("matrices/runtimes.yaml: runtimes.badsix: installing its packages failed:")
    assert "six==0.0.0" in message  # uv's own reason, kept
    assert message.endswith("— check the runtime's python, packages and as_of")
    # No marker: the next run does not take the failed build for a complete one.
    assert not list((tmp_path / ENVS_DIR).glob(f"*/{MARKER}"))
