"""framework/resolution.py, environments.py and health.py against a local package index the tests build: lockstep
families resolve together (with the note), builds come from the lock and are reused while it does not change, a new
release makes a new environment and a lock diff, and an environment that cannot import is unusable."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path
from typing import Any

import pytest
from package_index import LocalIndex
from packaging.version import Version

from framework.config import ROOT, load_file
from framework.environments import ENVS_DIR, MARKER, build_from_lock, lock_changes, parse_lock
from framework.health import check_health
from framework.in_runtime.errors import ConfigError, EnvironmentBuildError
from framework.models import Runtime, RuntimesFile
from framework.releases import Release
from framework.resolution import LOCKS_DIR, build_environment, resolve, resolve_ttl_s, shared_releases

pytestmark = pytest.mark.environment  # real uv resolutions and builds (a second or two each, no network)

OLD = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
NEWER = dt.datetime(2021, 1, 1, tzinfo=dt.timezone.utc)


@pytest.fixture
def index(local_index: LocalIndex, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalIndex:
    """uv and the release lister both read this index (and only it); uv's cache is the test's own."""
    monkeypatch.setenv("UV_DEFAULT_INDEX", local_index.url)
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
    monkeypatch.setenv("DASK_BLESSING_RESOLVE_TTL", "0")  # look at the index every time (a test adds releases)
    monkeypatch.delenv("UV_INDEX_URL", raising=False)
    monkeypatch.delenv("PIP_INDEX_URL", raising=False)
    # The situation of 2026-12-06, in miniature: dask 2.0 is out, distributed 2.0 is not, and distributed 1.0 sets
    # no upper bound on dask (as distributed 2021.4.1 did not).
    local_index.add("dask", "1.0", uploaded=OLD)
    local_index.add("dask", "2.0", uploaded=NEWER)
    local_index.add("distributed", "1.0", requires=["dask"], uploaded=OLD)
    return local_index


def runtime(packages: dict[str, str] | None = None, **changes: Any) -> Runtime:
    return Runtime(name="toy", python="3.11", packages=packages or {"dask": "", "distributed": ""}, **changes)


def test_without_lockstep_uv_alone_pairs_the_newest_dask_with_an_old_distributed(index: LocalIndex, tmp_path: Path):
    # The control: what the runtime would get if the family were not declared — the bug being guarded against.
    alone = resolve(runtime(lockstep=[]), tmp_path)
    assert (alone.packages["dask"], alone.packages["distributed"]) == ("2.0", "1.0")
    assert alone.note is None


def test_a_ranged_family_takes_the_newest_release_both_have_and_says_so(index: LocalIndex, tmp_path: Path) -> None:
    resolution = resolve(runtime(), tmp_path)

    assert (resolution.packages["dask"], resolution.packages["distributed"]) == ("1.0", "1.0")
    assert resolution.note == "toy: dask 2.0 has no matching distributed on the index — using dask and distributed 1.0"
    assert "--hash=sha256:" in resolution.lock  # a lock with hashes, not a freeze


def test_when_the_partner_is_released_the_family_moves_up_without_a_note(index: LocalIndex, tmp_path: Path) -> None:
    index.add("distributed", "2.0", requires=["dask==2.0"])

    resolution = resolve(runtime(), tmp_path)

    assert (resolution.packages["dask"], resolution.packages["distributed"]) == ("2.0", "2.0")
    assert resolution.note is None


def test_a_member_pulled_in_as_a_dependency_is_checked_after_resolution(index: LocalIndex, tmp_path: Path) -> None:
    index.add("toolkit", "1.0", requires=["dask", "distributed"])

    resolution = resolve(runtime({"toolkit": ""}), tmp_path)

    assert (resolution.packages["dask"], resolution.packages["distributed"]) == ("1.0", "1.0")
    assert resolution.note == "toy: dask 2.0 and distributed 1.0 resolved apart — using dask and distributed 1.0"


def test_specifiers_that_leave_no_shared_release_fail_in_one_line(index: LocalIndex, tmp_path: Path) -> None:
    with pytest.raises(EnvironmentBuildError) as raised:
        resolve(runtime({"dask": ">=2", "distributed": ""}), tmp_path)

    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("matrices/runtimes.yaml: runtimes.toy.packages: dask and distributed are released in")
    assert "newest: dask 2.0, distributed 1.0" in message
    assert message.endswith("— widen the specifiers, or pin both to one release")


def test_an_unresolvable_pin_fails_in_one_line_naming_the_runtime(index: LocalIndex, tmp_path: Path) -> None:
    with pytest.raises(EnvironmentBuildError) as raised:
        resolve(runtime({"six": "==0.0.0"}), tmp_path)

    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("matrices/runtimes.yaml: runtimes.toy: resolving its packages failed:")
    assert message.endswith("— check the runtime's python, packages and as_of")


def test_a_mismatched_pin_is_a_config_error_naming_file_field_value_and_fix(tmp_path: Path) -> None:
    path = tmp_path / "runtimes.yaml"
    path.write_text(
        "runtimes:\n  mixed:\n    python: '3.11'\n    packages:\n"
        "      dask[dataframe]: '==2026.3.0'\n      distributed: '==2026.2.0'\n"
    )

    with pytest.raises(ConfigError) as raised:
        load_file(path, RuntimesFile)

    message = str(raised.value)
    assert str(path) in message
    assert "runtimes.mixed: packages.distributed: '==2026.2.0' does not match dask 2026.3.0" in message
    assert "pin both to one release, e.g. dask[dataframe]: '==2026.3.0' and distributed: '==2026.3.0'" in message


def test_a_runtime_adds_a_family_to_the_files(tmp_path: Path) -> None:
    path = tmp_path / "runtimes.yaml"
    path.write_text(
        "runtimes:\n  rapids:\n    python: '3.11'\n    packages: {dask: '', distributed: '', dask-cuda: ''}\n"
        "    lockstep: [[dask-cuda, cudf]]\n"
    )
    assert load_file(path, RuntimesFile).runtimes["rapids"].lockstep == [["dask", "distributed"], ["dask-cuda", "cudf"]]


# ---------------------------------------------------------------------------------------------------------------
# Builds from the lock


def test_an_unchanged_resolution_reuses_its_environment(index: LocalIndex, tmp_path: Path) -> None:
    first = build_environment(runtime(), tmp_path)
    again = build_environment(runtime(), tmp_path)

    assert not first.reused
    assert again.reused
    assert again.path == first.path == tmp_path / ENVS_DIR / f"toy-{first.env_hash}"
    assert (first.path / MARKER).read_text() == first.lock
    assert first.note == again.note is not None  # the note is said on every run, not only when building
    imported = subprocess.run(
        [str(first.python), "-c", "import dask, distributed; print(dask.__version__, distributed.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert imported.stdout.split() == ["1.0", "1.0"]


def test_a_new_release_on_the_index_makes_a_new_environment_and_a_lock_diff(index: LocalIndex, tmp_path: Path):
    before = build_environment(runtime(), tmp_path)
    index.add("distributed", "2.0", requires=["dask==2.0"])

    after = build_environment(runtime(), tmp_path)

    assert not after.reused
    assert after.path != before.path
    assert before.path.exists()  # kept: a reproduce of the earlier run reuses it
    assert lock_changes(before.packages, after.packages) == [("dask", "1.0", "2.0"), ("distributed", "1.0", "2.0")]


def test_a_broken_build_is_rebuilt_from_scratch(index: LocalIndex, tmp_path: Path) -> None:
    first = build_environment(runtime(), tmp_path)
    (first.path / MARKER).unlink()  # as if the build had been interrupted
    leftover = first.path / "half-written"
    leftover.write_text("from the interrupted build")

    rebuilt = build_environment(runtime(), tmp_path)

    assert not rebuilt.reused
    assert rebuilt.path == first.path
    assert not leftover.exists()


def test_an_as_of_runtime_resolves_as_of_its_day_and_keeps_its_lock(index: LocalIndex, tmp_path: Path) -> None:
    dated = runtime({"dask": ""}, as_of=dt.date(2020, 6, 1))

    resolution = resolve(dated, tmp_path)
    assert resolution.packages == {"dask": "1.0"}  # 2.0 was uploaded in 2021
    assert not resolution.reused

    index.__exit__(None, None, None)  # the index is gone: a kept lock needs no resolution
    kept = resolve(dated, tmp_path)
    assert kept.reused
    assert kept.lock == resolution.lock
    assert len(list((tmp_path / LOCKS_DIR).glob("toy-*.json"))) == 1


def test_as_of_holds_every_package_to_its_day_but_the_fuzzing_engine(index: LocalIndex, tmp_path: Path) -> None:
    # hypothesis is the harness's tool: the one of 2022 ran most of a batch's first examples nearly empty
    index.add("hypothesis", "1.0", uploaded=OLD)
    index.add("hypothesis", "9.0", uploaded=NEWER)
    dated = runtime({"dask": "", "hypothesis": ""}, as_of=dt.date(2020, 6, 1))

    assert resolve(dated, tmp_path).packages == {"dask": "1.0", "hypothesis": "9.0"}
    assert resolve(runtime({"dask": ""}, as_of=dt.date(2020, 6, 1)), tmp_path).packages == {"dask": "1.0"}


def test_inside_the_freshness_window_a_ranged_resolution_is_reused_until_refreshed(
    index: LocalIndex, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DASK_BLESSING_RESOLVE_TTL", "600")
    first = resolve(runtime(), tmp_path)
    index.add("distributed", "2.0", requires=["dask==2.0"])

    kept = resolve(runtime(), tmp_path)
    refreshed = resolve(runtime(), tmp_path, refresh=True)

    assert kept.reused and kept.lock == first.lock
    assert kept.how().startswith("resolution of 0 min ago reused (fresh for 10 min;")
    assert not refreshed.reused
    assert refreshed.packages["distributed"] == "2.0"
    assert refreshed.how().startswith("resolved in ")


def test_a_bad_freshness_window_is_one_line_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASK_BLESSING_RESOLVE_TTL", "ten minutes")
    with pytest.raises(EnvironmentBuildError, match=r"^DASK_BLESSING_RESOLVE_TTL='ten minutes' is not a number of"):
        resolve_ttl_s()


# ---------------------------------------------------------------------------------------------------------------
# Health


def test_an_import_that_raises_makes_the_runtime_unusable_with_a_one_line_cause(index: LocalIndex, tmp_path: Path):
    index.add("broken", "1.0", source='raise ImportError("broken on purpose")')
    environment = build_environment(runtime({"dask": "", "broken": ""}), tmp_path)

    health = check_health(environment, ROOT)

    assert not health.usable
    assert health.cause == "import broken failed: ImportError: broken on purpose"
    assert health.headline("toy") == "toy is UNUSABLE: import broken failed: ImportError: broken on purpose"
    assert [step["step"] for step in health.steps][:2] == ["import dask", "import broken"]


def test_a_family_apart_at_run_time_is_unusable(index: LocalIndex, tmp_path: Path) -> None:
    # A lock written by hand, as an older build or a hand-edited export could hold: the check runs whatever the lock.
    apart = build_environment(runtime(lockstep=[]), tmp_path)
    assert parse_lock(apart.lock)["dask"] == "2.0"
    environment = build_from_lock(runtime(), apart.lock, tmp_path)

    health = check_health(environment, ROOT)

    assert not health.usable
    assert health.cause == "dask 2.0 and distributed 1.0 disagree at run time — they are released in lockstep"


def test_a_runtime_that_imports_is_usable(index: LocalIndex, tmp_path: Path) -> None:
    index.add("toy-lib", "1.0")
    environment = build_environment(runtime({"toy-lib": ""}), tmp_path)

    health = check_health(environment, ROOT)

    assert health.usable, health.cause
    assert health.cause is None
    assert health.versions == {"toy-lib": "1.0"}


# ---------------------------------------------------------------------------------------------------------------
# shared_releases: pure, over a listed index


def _listing(*versions: str, yanked: tuple[str, ...] = (), uploaded: dt.datetime = OLD) -> dict[Version, Release]:
    return {Version(v): Release(Version(v), uploaded, "yanked" if v in yanked else None) for v in versions}


def test_shared_releases_are_newest_first_and_skip_yanked_and_pre_releases() -> None:
    listed = {
        "dask": _listing("2022.10.0", "2022.10.1", "2022.10.2", "2022.11.0rc1", yanked=("2022.10.1",)),
        "distributed": _listing("2022.10.0", "2022.10.1", "2022.10.2", "2022.11.0rc1", yanked=("2022.10.1",)),
    }
    offer = shared_releases(runtime(), ["dask", "distributed"], listed.__getitem__)
    assert [pick["dask"] for pick in offer.releases] == ["2022.10.2", "2022.10.0"]
    assert offer.newest == {"dask": "2022.10.2", "distributed": "2022.10.2"}


def test_a_yanked_release_counts_where_it_is_pinned_exactly() -> None:
    # dask and distributed 2022.10.1 were yanked; the runtime that reproduces distributed#7223 pins them.
    listed = {name: _listing("2022.10.0", "2022.10.1", yanked=("2022.10.1",)) for name in ("dask", "distributed")}
    pinned = runtime({"dask[dataframe]": "==2022.10.1", "distributed": "==2022.10.1"})
    offer = shared_releases(pinned, ["dask", "distributed"], listed.__getitem__)
    assert offer.releases == [{"dask": "2022.10.1", "distributed": "2022.10.1"}]


def test_a_fourth_release_number_still_matches_its_release_line() -> None:
    listed = {"dask": _listing("2023.3.2"), "distributed": _listing("2023.3.2", "2023.3.2.1")}
    offer = shared_releases(runtime(), ["dask", "distributed"], listed.__getitem__)
    assert offer.releases == [{"dask": "2023.3.2", "distributed": "2023.3.2.1"}]


def test_as_of_hides_releases_uploaded_on_or_after_that_day() -> None:
    listed = {"dask": {**_listing("1.0"), **_listing("2.0", uploaded=NEWER)}, "distributed": _listing("1.0", "2.0")}
    offer = shared_releases(runtime(as_of=NEWER.date()), ["dask", "distributed"], listed.__getitem__)
    assert [pick["dask"] for pick in offer.releases] == ["1.0"]
