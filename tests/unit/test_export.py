"""framework/export.py: a runtime's lock as a file to install — paths, formats, the lock of a recorded run, and the
export a blessed verdict writes beside itself. Locks are resolved for real by uv against a local package index."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from package_index import LocalIndex
from test_blessing import Lab

from framework.cli import main
from framework.cli.verdicts import cmd_bless
from framework.config import ROOT, Catalog, load_catalog
from framework.environments import BuiltEnvironment, parse_lock
from framework.export import (
    Export,
    check_format,
    default_path,
    export_blessed,
    export_run,
    export_runtime,
    install_command,
    pylock_name,
    pylock_packages,
    render,
)
from framework.in_runtime.errors import EnvironmentBuildError, SelectionError
from framework.models import Runtime
from framework.query import Results
from framework.results import ResultsStore

RUN = "20261201T000000Z-abcdef"
DAY = dt.date(2026, 12, 6)


@pytest.fixture
def toy_index(local_index: LocalIndex, monkeypatch: pytest.MonkeyPatch) -> LocalIndex:
    """toy-dask 1.0 / 2.0 (2.0 needs toy-partd) on a local index that uv resolves against, offline."""
    local_index.add("toy-partd", "1.0")
    local_index.add("toy-dask", "1.0")
    local_index.add("toy-dask", "2.0", requires=["toy-partd>=1.0"])
    monkeypatch.setenv("UV_DEFAULT_INDEX", local_index.url)
    return local_index


def toy_runtime(**packages: str) -> Runtime:
    return Runtime(name="toy", python="3.11", packages=packages or {"toy-dask": ""})


# --------------------------------------------------------------------------------------------------
# Names


def test_default_paths_follow_the_documented_and_pep_751_names(tmp_path: Path) -> None:
    assert default_path("latest", "requirements", tmp_path) == tmp_path / "exports" / "latest-requirements.txt"
    assert default_path("latest", "pylock", tmp_path) == tmp_path / "exports" / "pylock.latest.toml"
    # a run's lock never overwrites today's export of the runtime
    assert default_path("latest", "pylock", tmp_path, RUN).name == f"pylock.latest-{RUN}.toml"
    # PEP 751: no dot in the name, or uv refuses to install it
    assert pylock_name("dask-2022.10.1") == "pylock.dask-2022_10_1.toml"


def test_the_install_command_is_relative_to_where_the_user_is(tmp_path: Path) -> None:
    path = tmp_path / "exports" / "pylock.latest.toml"
    assert install_command(path, cwd=tmp_path) == "uv pip sync exports/pylock.latest.toml"
    assert install_command(path, cwd=tmp_path / "elsewhere") == f"uv pip sync {path}"


@pytest.mark.parametrize(
    ("fmt", "out", "message"),
    [
        ("conda", None, "--format=conda: unknown format — use --format=requirements or --format=pylock"),
        ("pylock", Path("prod.toml"), "uv installs no other name; use e.g. --out=pylock.production.toml"),
        ("pylock", Path("pylock.a.b.toml"), "pylock.toml or pylock.<name>.toml (no dot in <name>)"),
    ],
)
def test_a_bad_format_or_pylock_name_is_refused_with_the_fix(fmt: str, out: Path | None, message: str) -> None:
    with pytest.raises(SelectionError) as raised:
        check_format(fmt, out)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_pylock_packages_reads_each_packages_name_and_version() -> None:
    text = (
        'lock-version = "1.0"\ncreated-by = "uv"\n\n[[packages]]\nname = "Toy_Dask"\nversion = "2.0"\n'
        'wheels = [{ url = "x", hashes = { sha256 = "ab" } }]\n\n[[packages]]\nname = "toy-partd"\nversion = "1.0"\n'
        '[packages.tool]\nname = "not-a-package"\n'
    )
    assert pylock_packages(text) == {"toy-dask": "2.0", "toy-partd": "1.0"}


# --------------------------------------------------------------------------------------------------
# Exporting today's resolution (uv, local index)


def test_requirements_export_is_the_lock_with_hashes_and_a_header(toy_index: LocalIndex, tmp_path: Path) -> None:
    exported = export_runtime(toy_runtime(), tmp_path)

    assert exported.path == tmp_path / "exports" / "toy-requirements.txt"
    text = exported.path.read_text()
    first, rest = text.split("\n", 1)
    assert first.startswith("# dask-blessing: runtime toy, resolved today (")
    assert "#    nox -s export -- --runtime=toy\n" in rest  # what made it, in uv's own header
    assert parse_lock(rest) == exported.packages == {"toy-dask": "2.0", "toy-partd": "1.0"}
    for name in ("toy-dask==2.0", "toy-partd==1.0"):
        block = rest[rest.index(name) :].split("\n", 2)
        assert block[1].strip().startswith("--hash=sha256:"), rest  # installable with --require-hashes


def test_pylock_export_pins_exactly_the_locks_versions(toy_index: LocalIndex, tmp_path: Path) -> None:
    runtime = toy_runtime(**{"toy-dask": "==1.0"})
    exported = export_runtime(runtime, tmp_path, "pylock")

    assert exported.path == tmp_path / "exports" / "pylock.toy.toml"
    text = exported.path.read_text()
    assert 'lock-version = "1.0"' in text
    assert "nox -s export -- --runtime=toy --format=pylock" in text
    assert pylock_packages(text) == exported.packages == {"toy-dask": "1.0"}
    assert toy_index.url.split("/simple")[0] in text  # the file uv installs from, with its hash
    assert "sha256 = " in text


def test_a_lock_without_hashes_gets_them_for_the_same_versions(toy_index: LocalIndex) -> None:
    freeze = "toy-dask==1.0\ntoy-partd==1.0\n"  # what older runs stored: uv pip freeze

    text = render(toy_runtime(), freeze, "requirements", "nox -s export -- --run=X")

    assert parse_lock(text) == {"toy-dask": "1.0", "toy-partd": "1.0"}  # --no-deps: nothing added or moved
    assert text.count("--hash=sha256:") == 2


def test_a_version_the_index_does_not_have_is_one_line_naming_the_runtime(toy_index: LocalIndex) -> None:
    with pytest.raises(EnvironmentBuildError) as raised:
        render(toy_runtime(), "toy-dask==9.9\n", "pylock", "x")
    assert "runtimes.toy: exporting its lock as PEP 751 pylock.toml failed" in str(raised.value)
    assert "\n" not in str(raised.value)


# --------------------------------------------------------------------------------------------------
# Exporting a recorded run's lock


def record_run(results_dir: Path, write_run: Callable[[Sequence[dict[str, Any]]], Path], case_row: Any, lock: str,
               runtime: str = "toy") -> None:  # fmt: skip
    spec = toy_runtime().model_dump(mode="json", exclude={"name"})
    write_run([case_row(run_id=RUN, runtime=runtime, env_hash="e" * 16, runtime_spec=spec)])
    ResultsStore(results_dir).record_environment(
        {"env_hash": "e" * 16, "runtime": runtime, "python": "3.11", "built_at": dt.datetime(2026, 12, 1), "lock": lock}
    )


def test_a_runs_export_is_the_lock_it_recorded_not_todays(
    toy_index: LocalIndex, results_dir: Path, write_run: Any, case_row: Any, tmp_path: Path
) -> None:
    recorded = render(toy_runtime(**{"toy-dask": "==1.0"}), "toy-dask==1.0\n", "requirements", "x")
    record_run(results_dir, write_run, case_row, recorded)  # today toy-dask resolves to 2.0

    exported = export_run(results_dir, RUN, tmp_path)

    assert exported.path == tmp_path / "exports" / f"toy-{RUN}-requirements.txt"
    assert exported.packages == {"toy-dask": "1.0"}
    first, rest = exported.path.read_text().split("\n", 1)
    assert rest == recorded
    assert f"the lock recorded by run {RUN} (env_hash {'e' * 16}; stored lock, with hashes)" in first


def test_exporting_an_unknown_run_names_it_and_how_to_list_runs(results_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(SelectionError) as raised:
        export_run(results_dir, "20991231T000000Z-nope00", tmp_path)
    message = str(raised.value)
    assert message.startswith("no run '20991231T000000Z-nope00' in ")
    assert 'nox -s sql -- "SELECT DISTINCT run_id, runtime FROM runs ORDER BY 1 DESC LIMIT 10"' in message
    assert raised.value.exit_code == 2


def test_a_runtime_the_run_did_not_run_is_refused(results_dir: Path, write_run: Any, case_row: Any) -> None:
    record_run(results_dir, write_run, case_row, "toy-dask==1.0\n")
    with pytest.raises(SelectionError, match=r"--runtime=latest: run .* did not run it \(it ran toy\) — drop"):
        export_run(results_dir, RUN, results_dir, runtime_name="latest")


def test_the_command_refuses_an_unknown_runtime_and_a_missing_choice(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--runtime=lates"]) == 2
    assert "unknown runtime 'lates' — did you mean 'latest'?" in capsys.readouterr().err
    assert main(["export"]) == 2
    assert "nothing to export — give --runtime=NAME (resolved today) or --run=RUN_ID" in capsys.readouterr().err


def test_the_command_prints_the_path_and_the_install_command(
    toy_index: LocalIndex, results_dir: Path, write_run: Any, case_row: Any, tmp_path: Path, capsys: Any
) -> None:
    record_run(results_dir, write_run, case_row, "toy-dask==1.0\n")
    out = tmp_path / "pylock.prod.toml"

    code = main(["export", f"--run={RUN}", "--format=pylock", f"--out={out}", f"--results={results_dir}"])

    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert lines[0].startswith(f"toy: 1 package (dask –, distributed –), the lock recorded by run {RUN}")
    assert lines[1] == f"wrote {out} (PEP 751 pylock.toml)"
    assert lines[2] == f"install it with: uv pip sync {out}"
    assert pylock_packages(out.read_text()) == {"toy-dask": "1.0"}


# --------------------------------------------------------------------------------------------------
# A blessed verdict's export


def built(lock: str, env_hash: str = "a" * 16) -> BuiltEnvironment:
    return BuiltEnvironment(toy_runtime(), Path("/nowhere"), env_hash, "r" * 16, lock, True, 0.0)


def test_a_blessed_export_writes_both_formats_dated_beside_the_verdicts(
    toy_index: LocalIndex, results_dir: Path
) -> None:
    lock = render(toy_runtime(), "toy-dask==2.0\ntoy-partd==1.0\n", "requirements", "x")

    exports = export_blessed(built(lock), results_dir, DAY)

    paths = {export.format: export.path for export in exports}
    assert paths == {
        "requirements": results_dir / "blessed" / "toy-2026-12-06.txt",
        "pylock": results_dir / "blessed" / "pylock.toy-2026-12-06.toml",
    }
    assert parse_lock(paths["requirements"].read_text()) == {"toy-dask": "2.0", "toy-partd": "1.0"}
    assert pylock_packages(paths["pylock"].read_text()) == {"toy-dask": "2.0", "toy-partd": "1.0"}
    # blessed again that day: the same lock keeps its files; another lock never overwrites them
    assert [e.path for e in export_blessed(built(lock), results_dir, DAY)] == list(paths.values())
    other = render(toy_runtime(), "toy-dask==1.0\n", "requirements", "x")
    again = export_blessed(built(other, "b" * 16), results_dir, DAY)
    assert [e.path.name for e in again] == ["toy-2026-12-06-2.txt", "pylock.toy-2026-12-06-2.toml"]
    assert parse_lock(paths["requirements"].read_text()) == {"toy-dask": "2.0", "toy-partd": "1.0"}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


@pytest.fixture
def quick_lab(results_dir: Path, case_row: Any, catalog: Catalog, monkeypatch: pytest.MonkeyPatch) -> Lab:
    """test_blessing's fake producers, judged by the shipped `quick` criteria."""
    monkeypatch.setattr("framework.criteria.load_catalog", lambda root: catalog)
    # The fake dask 2026.9.0 is inside a finding of the real ledger; the export follows a blessing, so none here.
    monkeypatch.setattr("framework.blessing.load_findings", lambda *args, **kwargs: {})
    return Lab(ROOT, results_dir, case_row, catalog)


class FakeExporter:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, Path, dt.date]] = []
        self.fail = fail

    def __call__(self, environment: BuiltEnvironment, results_dir: Path, day: dt.date) -> list[Export]:
        self.calls.append((environment.lock, results_dir, day))
        if self.fail:
            raise EnvironmentBuildError("matrices/runtimes.yaml: runtimes.latest: exporting its lock failed: offline")
        directory = results_dir / "blessed"
        packages = parse_lock(environment.lock)
        return [
            Export("latest", "requirements", directory / f"latest-{day}.txt", packages, "blessed"),
            Export("latest", "pylock", directory / f"pylock.latest-{day}.toml", packages, "blessed"),
        ]


def verdict_rows(results_dir: Path) -> list[dict[str, Any]]:
    with Results(results_dir) as results:
        names, rows = results.sql("SELECT blessed, export_path FROM verdicts ORDER BY decided_at")
    return [dict(zip(names, row)) for row in rows]


def bless_quick(lab: Lab, exporter: FakeExporter) -> int:
    argv = ["--runtime=latest", "--baseline=stable", "--criteria=quick", f"--results={lab.results}"]
    return cmd_bless(argv, lab.runners(), exporter=exporter)


def test_a_blessed_verdict_records_its_export_and_prints_how_to_install_it(quick_lab: Lab, capsys: Any) -> None:
    exporter = FakeExporter()

    code = bless_quick(quick_lab, exporter)

    out = capsys.readouterr().out.splitlines()
    today = dt.datetime.now(dt.timezone.utc).date()
    assert code == 0
    assert out[0] == "latest is BLESSED against stable (criteria quick)"
    assert exporter.calls == [("dask==2026.9.0\n", quick_lab.results, today)]  # the blessed environment's lock
    blessed = quick_lab.results / "blessed"
    assert f"export (requirements with hashes): {blessed / f'latest-{today}.txt'}" in out
    assert f"install it with: uv pip sync {blessed / f'latest-{today}.txt'}" in out
    assert out[-1].startswith("verdict ")  # still the last line
    assert verdict_rows(quick_lab.results) == [{"blessed": True, "export_path": f"blessed/latest-{today}.txt"}]


def test_a_verdict_that_is_not_blessed_exports_nothing(quick_lab: Lab, capsys: Any) -> None:
    quick_lab.outcomes = {"array_mean_var": "error"}
    exporter = FakeExporter()

    assert bless_quick(quick_lab, exporter) == 1

    assert exporter.calls == []
    assert "install it with" not in capsys.readouterr().out
    assert verdict_rows(quick_lab.results) == [{"blessed": False, "export_path": None}]


def test_an_export_that_fails_is_said_and_the_verdict_stands(quick_lab: Lab, capsys: Any) -> None:
    assert bless_quick(quick_lab, FakeExporter(fail=True)) == 0

    out = capsys.readouterr().out
    assert "blessed, but its lock could not be exported: matrices/runtimes.yaml: runtimes.latest:" in out
    assert verdict_rows(quick_lab.results) == [{"blessed": True, "export_path": None}]


def test_verdict_files_from_before_the_export_path_column_read_it_as_null(results_dir: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from framework.records import VERDICT_SCHEMA

    old_schema = pa.schema([field for field in VERDICT_SCHEMA if field.name != "export_path"])
    row = dict.fromkeys(old_schema.names) | {"verdict_id": "old", "blessed": True, "runtime": "latest"}
    (results_dir / "verdicts").mkdir()
    pq.write_table(pa.Table.from_pylist([row], schema=old_schema), results_dir / "verdicts" / "old.parquet")

    with Results(results_dir) as results:
        _, rows = results.sql("SELECT verdict_id, blessed, export_path FROM verdicts")
    assert rows == [("old", True, None)]
    assert json.dumps(rows)  # plain values
