"""framework.config: YAML files → models. Every refusal names the file, the field, the value and the fix.

Inputs are real files under tests/resources/: ``good/`` is a small valid project, ``bad/*.yaml`` holds one
mistake per file, and ``bad/catalog/<case>/`` holds files laid over a copy of ``good/`` for cross-file mistakes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pydantic import BaseModel

from framework.config import ROOT, Catalog, load_catalog, load_file, read_yaml
from framework.in_runtime.errors import ConfigError, FrameworkError
from framework.models import (
    AddressHardware,
    CoiledHardware,
    HardwareFile,
    LocalHardware,
    MatricesFile,
    RuntimesFile,
    WorkloadFile,
)

RESOURCES = Path(__file__).resolve().parents[1] / "resources"
GOOD = RESOURCES / "good"
BAD = RESOURCES / "bad"
GIB = 2**30


def config_error(path: Path, model: type[BaseModel]) -> str:
    with pytest.raises(ConfigError) as raised:
        load_file(path, model)
    return str(raised.value)


def catalog_error(root: Path) -> str:
    with pytest.raises(ConfigError) as raised:
        load_catalog(root)
    return str(raised.value)


def assert_names(line: str, *parts: str) -> None:
    """Each of ``parts`` (file, field, value, fix...) appears in ``line``, in that order."""
    position = 0
    for part in parts:
        found = line.find(part, position)
        assert found >= 0, f"{part!r} not found in order in {line!r}"
        position = found + len(part)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A writable copy of the good project."""
    root = tmp_path / "project"
    shutil.copytree(GOOD, root)
    return root


def overlay(root: Path, case: str) -> Path:
    """Lay ``bad/catalog/<case>/`` over a project copy."""
    shutil.copytree(BAD / "catalog" / case, root, dirs_exist_ok=True)
    return root


# --------------------------------------------------------------------------------------------------
# Errors of one file


def test_error_is_a_framework_error_with_its_exit_code() -> None:
    with pytest.raises(FrameworkError) as raised:
        load_file(BAD / "top_level_list.yaml", RuntimesFile)
    assert isinstance(raised.value, ConfigError)
    assert raised.value.exit_code == 2


def test_file_inside_the_project_is_shown_relative_to_it() -> None:
    message = config_error(BAD / "top_level_list.yaml", RuntimesFile)
    assert message.startswith("tests/resources/bad/top_level_list.yaml: ")
    assert str(ROOT) not in message


def test_yaml_syntax_error_names_file_and_line() -> None:
    message = config_error(BAD / "syntax.yaml", RuntimesFile)
    assert message == (
        "tests/resources/bad/syntax.yaml: line 4: invalid YAML: mapping values are not allowed here"
        " — fix the syntax there"
    )


def test_yaml_unclosed_bracket_names_where_it_opened() -> None:
    message = config_error(BAD / "syntax_unclosed.yaml", RuntimesFile)
    assert_names(
        message,
        "tests/resources/bad/syntax_unclosed.yaml",
        "line 5: invalid YAML",
        "expected ',' or ']'",
        "flow sequence started on line 4",
        "— fix the syntax there",
    )


def test_yaml_duplicate_key_names_both_lines() -> None:
    message = config_error(BAD / "duplicate_key.yaml", RuntimesFile)
    assert_names(
        message,
        "tests/resources/bad/duplicate_key.yaml",
        "line 5",
        "duplicate key 'latest' (first on line 2)",
        "— fix",
    )


def test_yaml_duplicate_key_nested(tmp_path: Path) -> None:
    path = tmp_path / "runtimes.yaml"
    path.write_text('runtimes:\n  latest:\n    python: "3.11"\n    packages: {dask: "", dask: "==1"}\n')
    message = config_error(path, RuntimesFile)
    assert_names(message, str(path), "line 4", "duplicate key 'dask' (first on line 4)")


def test_top_level_must_be_a_mapping() -> None:
    message = config_error(BAD / "top_level_list.yaml", RuntimesFile)
    assert message == "tests/resources/bad/top_level_list.yaml: (top level): expected a mapping, got list — see README"


def test_scalar_top_level(tmp_path: Path) -> None:
    path = tmp_path / "hardware.yaml"
    path.write_text("just words\n")
    assert_names(config_error(path, HardwareFile), str(path), "(top level)", "expected a mapping, got str")


def test_empty_file_reports_the_missing_section(tmp_path: Path) -> None:
    path = tmp_path / "hardware.yaml"
    path.write_text("# nothing declared yet\n")
    assert config_error(path, HardwareFile) == f"{path}: hardware: Field required — add it"


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    message = config_error(path, RuntimesFile)
    assert_names(message, str(path), "cannot read", "— check the path")
    with pytest.raises(ConfigError, match="cannot read"):
        read_yaml(path)


def test_bad_version_specifier_names_file_field_value_and_fix() -> None:
    message = config_error(BAD / "runtimes_bad_specifier.yaml", RuntimesFile)
    assert_names(
        message,
        "tests/resources/bad/runtimes_bad_specifier.yaml",
        ": runtimes.latest.packages: ",
        "dask: '2024.13.1' is not a valid version specifier",
        "— use e.g. '==2024.12.1'",
    )
    assert "\n" not in message


def test_unknown_field_names_the_near_miss() -> None:
    message = config_error(BAD / "workloads_unknown_field.yaml", WorkloadFile)
    assert_names(
        message,
        "tests/resources/bad/workloads_unknown_field.yaml",
        ": workloads.groupby_agg: ",
        "unknown field 'repeat'",
        "did you mean 'repeats'?",
        "allowed: ",
    )


def test_wrong_type_names_field_value_and_fix() -> None:
    message = config_error(BAD / "hardware_wrong_type.yaml", HardwareFile)
    # A profile named 'local' with backend local: the name stays in the field path, the union branch does not.
    assert_names(
        message,
        "tests/resources/bad/hardware_wrong_type.yaml",
        ": hardware.local.n_workers: ",
        "valid integer",
        "(got 'two')",
        "— use a whole number",
    )


def test_missing_required_field() -> None:
    message = config_error(BAD / "workloads_missing_field.yaml", WorkloadFile)
    assert message == (
        "tests/resources/bad/workloads_missing_field.yaml: workloads.groupby_agg.function: Field required — add it"
    )


def test_bad_byte_size() -> None:
    message = config_error(BAD / "hardware_bad_byte_size.yaml", HardwareFile)
    assert_names(
        message,
        "tests/resources/bad/hardware_bad_byte_size.yaml",
        ": hardware.small.memory_limit_per_worker: ",
        "(got '4 gigs')",
        "— use a unit such as B, KiB, MiB, GiB",
    )


def test_unparseable_byte_size(tmp_path: Path) -> None:
    path = tmp_path / "hardware.yaml"
    path.write_text("hardware:\n  small: {backend: local, n_workers: 1, memory_limit_per_worker: lots}\n")
    message = config_error(path, HardwareFile)
    assert_names(message, str(path), "hardware.small.memory_limit_per_worker", "(got 'lots')", "— use e.g. '4GiB'")


def test_bad_duration() -> None:
    message = config_error(BAD / "workloads_bad_duration.yaml", WorkloadFile)
    assert_names(
        message,
        "tests/resources/bad/workloads_bad_duration.yaml",
        ": workloads.groupby_agg.timeout: ",
        "'5 minutes' is not a duration",
        "— use e.g. '90s', '5m', '1h'",
    )


def test_bad_function_path_says_what_form_to_use() -> None:
    message = config_error(BAD / "workloads_bad_function.yaml", WorkloadFile)
    assert_names(
        message,
        "tests/resources/bad/workloads_bad_function.yaml",
        ": workloads.groupby_agg.function: ",
        "(got 'dataframe.groupby_agg')",
        "— use 'workloads.module:function', e.g. 'workloads.dataframes:groupby_agg'",
    )


def test_missing_or_unknown_backend() -> None:
    lines = config_error(BAD / "hardware_no_backend.yaml", HardwareFile).splitlines()
    assert len(lines) == 2
    assert_names(lines[0], "hardware_no_backend.yaml", ": hardware.lokal: ", "— add 'backend: local'")
    assert_names(lines[1], "hardware_no_backend.yaml", ": hardware.typo: ", "'lokal'", "— set backend to local")


def test_name_different_from_key() -> None:
    message = config_error(BAD / "hardware_name_mismatch.yaml", HardwareFile)
    assert_names(message, "hardware_name_mismatch.yaml", ": hardware: ", "'small' has name 'big'", "— drop 'name'")


def test_incomplete_include() -> None:
    message = config_error(BAD / "matrices_bad_include.yaml", MatricesFile)
    assert_names(
        message,
        "tests/resources/bad/matrices_bad_include.yaml",
        ": matrices.default.include: ",
        "include 1 lacks hardware and workload",
        "— add it",
    )


def test_many_problems_make_many_lines() -> None:
    lines = config_error(BAD / "runtimes_many_problems.yaml", RuntimesFile).splitlines()
    assert len(lines) == 3
    assert all(line.startswith("tests/resources/bad/runtimes_many_problems.yaml: ") for line in lines)
    assert_names(lines[0], ": runtimes.latest.python: ", "(got 3.11)", "— quote it as a string")
    assert_names(lines[1], ": runtimes.latest.as_of: ", "(got 'soon')", "— use a date like 2025-01-15")
    assert_names(lines[2], ": runtimes.stable.packages: ", "(got {})", "— give at least one entry")


def test_spec_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "workloads.yaml"
    path.write_text("workloads:\n  groupby_agg: [1, 2]\n  shuffle:\n    description: x\n    requires: big\n")
    lines = config_error(path, WorkloadFile).splitlines()
    assert_names(lines[0], str(path), ": workloads.groupby_agg: ", "(got [1, 2])", "— write a mapping")
    assert_names(lines[-1], str(path), ": workloads.shuffle.requires: ", "(got 'big')", "— write a mapping")


@pytest.mark.parametrize(
    ("spec", "field", "value"),
    [
        # Profiles and fields that share a name with a backend keep it in the field path.
        ("address: {backend: address, address: 'http://x'}", "hardware.address.address", "'http://x'"),
        ("address: {backend: address, n_workers: 0}", "hardware.address.n_workers", "0"),
        ("coiled: {backend: local, n_workers: x, memory_limit_per_worker: 1GiB}", "hardware.coiled.n_workers", "'x'"),
        (
            "local: {backend: coiled, n_workers: 1, worker_vm_types: [], scheduler_vm_types: [a]}",
            "hardware.local.worker_vm_types",
            "[]",
        ),
    ],
)
def test_field_path_keeps_names_equal_to_a_backend(tmp_path: Path, spec: str, field: str, value: str) -> None:
    path = tmp_path / "hardware.yaml"
    path.write_text(f"hardware:\n  {spec}\n")
    message = config_error(path, HardwareFile)
    assert_names(message, str(path), f": {field}: ", f"(got {value})")


def test_long_values_are_shortened(tmp_path: Path) -> None:
    path = tmp_path / "runtimes.yaml"
    path.write_text(f'runtimes:\n  latest:\n    python: "3.11"\n    packages: {{dask: "{"9" * 100}"}}\n')
    message = config_error(path, RuntimesFile)
    got = message.split("(got ", 1)[1]
    assert got.endswith("...)")
    assert len(got) <= 61


# --------------------------------------------------------------------------------------------------
# Good files


def test_good_files_load() -> None:
    runtimes = load_file(GOOD / "matrices" / "runtimes.yaml", RuntimesFile).runtimes
    assert list(runtimes) == ["latest", "pinned", "dated"]
    assert runtimes["pinned"].fully_pinned and not runtimes["latest"].fully_pinned
    assert runtimes["dated"].dask_config == {"distributed.scheduler.worker-saturation": 1.1}

    hardware = load_file(GOOD / "matrices" / "hardware.yaml", HardwareFile).hardware
    assert [type(profile) for profile in hardware.values()] == [
        LocalHardware,
        LocalHardware,
        AddressHardware,
        CoiledHardware,
    ]
    assert hardware["big"].memory_limit_per_worker == 8 * GIB
    assert hardware["remote"].connect_timeout == 60.0

    workloads = load_file(GOOD / "workloads" / "frames.yaml", WorkloadFile).workloads
    assert workloads["groupby_agg"].timeout == 90.0
    assert workloads["groupby_agg"].sizes["tiny"] == {"days": 1, "freq": "10s"}


def test_load_catalog(project: Path) -> None:
    catalog = load_catalog(project)
    assert isinstance(catalog, Catalog)
    assert list(catalog.runtimes) == ["latest", "pinned", "dated"]
    assert list(catalog.hardware) == ["small", "big", "remote", "cloud"]
    # Workload files are read in sorted order: arrays.yaml before frames.yaml.
    assert list(catalog.workloads) == ["mean_var", "scale_local", "groupby_agg", "shuffle"]
    assert list(catalog.matrices) == ["default", "everything", "ruled", "sized"]
    assert catalog.workload_files["mean_var"] == project / "workloads" / "arrays.yaml"
    assert catalog.workload_files["shuffle"] == project / "workloads" / "frames.yaml"
    assert catalog.tags == {"smoke", "dataframe", "array"}


def test_catalog_lookups_suggest_the_near_miss(project: Path) -> None:
    catalog = load_catalog(project)
    assert catalog.runtime("pinned").name == "pinned"
    assert catalog.hardware_profile("big").name == "big"
    with pytest.raises(ConfigError) as raised:
        catalog.runtime("lates")
    assert str(raised.value) == "unknown runtime 'lates' — did you mean 'latest'? known: dated, latest, pinned"
    with pytest.raises(ConfigError, match=r"unknown hardware profile 'bigg' — did you mean 'big'\? known: big, "):
        catalog.hardware_profile("bigg")


def test_catalog_without_matrix_file(project: Path) -> None:
    (project / "matrices" / "matrix.yaml").unlink()
    catalog = load_catalog(project)
    assert catalog.matrices == {}
    assert len(catalog.workloads) == 4


def test_catalog_without_runtimes_file(project: Path) -> None:
    (project / "matrices" / "runtimes.yaml").unlink()
    assert_names(catalog_error(project), "runtimes.yaml", "cannot read", "— check the path")


def test_catalog_reports_a_bad_workload_file(project: Path) -> None:
    shutil.copy(BAD / "workloads_unknown_field.yaml", project / "workloads" / "broken.yaml")
    message = catalog_error(project)
    assert_names(message, "broken.yaml", ": workloads.groupby_agg: ", "did you mean 'repeats'?")


def test_catalog_unknown_references_name_the_near_miss(project: Path) -> None:
    root = overlay(project, "unknown_references")
    lines = catalog_error(root).splitlines()
    matrix_file = str(root / "matrices" / "matrix.yaml")
    assert all(line.startswith(f"{matrix_file}: matrices.default.") for line in lines)
    expected = [
        ("runtimes.1", "unknown runtime 'lates' — did you mean 'latest'?", "known: dated, latest, pinned"),
        ("hardware.0", "unknown hardware profile 'smal' — did you mean 'small'?", "known: big, cloud, remote, small"),
        ("workloads.0", "unknown tag 'smok' — did you mean 'smoke'?", "known: array, dataframe, smoke"),
        ("workloads.1", "unknown workload 'groupby_ag' — did you mean 'groupby_agg'?", "known: groupby_agg, mean_var"),
        ("exclude.0.runtime", "unknown runtime 'pined' — did you mean 'pinned'?", "known: dated"),
        ("include.0.hardware", "unknown hardware profile 'bigg' — did you mean 'big'?", "known: big"),
    ]
    assert len(lines) == len(expected)
    for line, (field, problem, known) in zip(lines, expected):
        assert_names(line, f"matrices.default.{field}: ", problem, known)


def test_catalog_reference_without_near_miss_lists_known_names(project: Path) -> None:
    (project / "matrices" / "matrix.yaml").write_text(
        "matrices:\n  default:\n    runtimes: [latest]\n    hardware: [zzzzzz]\n    workloads: ['*']\n"
    )
    message = catalog_error(project)
    assert message.endswith(
        "matrices.default.hardware.0: unknown hardware profile 'zzzzzz' — known: big, cloud, remote, small"
    )
    assert "did you mean" not in message


def test_catalog_rule_workload_reference(project: Path) -> None:
    (project / "matrices" / "matrix.yaml").write_text(
        "matrices:\n  default:\n    runtimes: [latest]\n    hardware: [big]\n    workloads: ['*']\n"
        "    exclude:\n      - workload: 'tag:arrays'\n"
    )
    assert_names(catalog_error(project), "matrices.default.exclude.0.workload: ", "unknown tag 'arrays'", "'array'?")


def test_workload_declared_in_two_files(project: Path) -> None:
    root = overlay(project, "duplicate_workload")
    message = catalog_error(root)
    assert message == (
        f"{root / 'workloads' / 'zz_again.yaml'}: workloads.mean_var: already declared in"
        f" {root / 'workloads' / 'arrays.yaml'} — rename one of them"
    )


def test_shipped_configuration_loads() -> None:
    catalog = load_catalog()
    assert catalog.runtimes and catalog.hardware and catalog.workloads and catalog.matrices
    assert "default" in catalog.matrices
    for path in catalog.workload_files.values():
        assert path.parent == ROOT / "workloads"
    for runtime in catalog.runtimes.values():
        assert runtime.requirements, runtime.name
