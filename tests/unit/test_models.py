"""framework.models: what each model accepts, what it refuses, and what its refusals say."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from framework.models import (
    FILE_MODELS,
    AddressHardware,
    CoiledHardware,
    HardwareFile,
    HardwareProfile,
    HardwareRequirements,
    LocalHardware,
    MatricesFile,
    Matrix,
    MatrixRule,
    Runtime,
    RuntimesFile,
    Workload,
    WorkloadFile,
)

HARDWARE = TypeAdapter(HardwareProfile)
GIB = 2**30

WORKLOAD = {"description": "Group by a key.", "function": "workloads.dataframes:groupby_agg"}
LOCAL = {"backend": "local", "n_workers": 2, "memory_limit_per_worker": "4GiB"}
COILED = {"backend": "coiled", "n_workers": 10, "worker_vm_types": ["m6i.large"], "scheduler_vm_types": ["m6i.large"]}
RUNTIME = {"python": "3.11", "packages": {"dask": "==2024.12.1"}}
MATRIX = {"runtimes": ["latest"], "hardware": ["local"], "workloads": ["tag:smoke"]}


def problems(model: type[BaseModel] | TypeAdapter[Any], data: dict[str, Any]) -> list[dict[str, Any]]:
    """The validation errors ``data`` causes; fails the test if it validates."""
    with pytest.raises(ValidationError) as raised:
        if isinstance(model, TypeAdapter):
            model.validate_python(data)
        else:
            model.model_validate(data)
    return raised.value.errors(include_url=False)


def only_problem(model: type[BaseModel] | TypeAdapter[Any], data: dict[str, Any]) -> dict[str, Any]:
    [problem] = problems(model, data)
    return problem


# --------------------------------------------------------------------------------------------------
# Workload


def test_workload_defaults() -> None:
    workload = Workload.model_validate(WORKLOAD)
    assert workload.name == "unnamed"
    # One warm-up unless declared: a cold first execution (imports, a new cluster's first tasks) is not measured.
    assert (workload.repeats, workload.warmup, workload.timeout) == (3, 1, 300.0)
    assert workload.params == {} and workload.grid == {} and workload.sizes == {} and workload.tags == []
    assert workload.requires == HardwareRequirements()
    assert workload.requires.min_workers == 1 and workload.requires.backends is None


def test_workload_is_frozen() -> None:
    workload = Workload.model_validate(WORKLOAD)
    with pytest.raises(ValidationError, match="frozen"):
        workload.repeats = 5  # type: ignore[misc]
    assert workload.repeats == 3


@pytest.mark.parametrize("field", ["description", "function"])
def test_workload_required_fields(field: str) -> None:
    data = {key: value for key, value in WORKLOAD.items() if key != field}
    problem = only_problem(Workload, data)
    assert (problem["type"], problem["loc"]) == ("missing", (field,))


def test_workload_description_not_empty() -> None:
    problem = only_problem(Workload, {**WORKLOAD, "description": ""})
    assert (problem["type"], problem["loc"]) == ("string_too_short", ("description",))


def test_workload_description_is_one_line() -> None:
    problem = only_problem(Workload, {**WORKLOAD, "description": "first line\nsecond line"})
    assert problem["loc"] == ("description",)
    assert "must be one line" in problem["msg"] and "YAML comment" in problem["msg"]


def test_workload_description_is_stripped() -> None:
    # YAML's folded '>' style leaves a trailing newline; that is still one line.
    assert Workload.model_validate({**WORKLOAD, "description": "  one line\n"}).description == "one line"


@pytest.mark.parametrize("function", ["workloads.dataframes:groupby_agg", "workloads.a.b:c_1", "workloads._x:_y"])
def test_workload_function_accepted(function: str) -> None:
    assert Workload.model_validate({**WORKLOAD, "function": function}).function == function


@pytest.mark.parametrize(
    "function",
    [
        "dataframe:groupby_agg",  # outside the workloads package
        "workloads:groupby_agg",  # no module
        "workloads.dataframes",  # no function
        "workloads.dataframes.groupby_agg",  # dot instead of colon
        "os.path:join",
        "workloads.dataframes:groupby agg",
    ],
)
def test_workload_function_refused(function: str) -> None:
    problem = only_problem(Workload, {**WORKLOAD, "function": function})
    assert (problem["type"], problem["loc"], problem["input"]) == ("string_pattern_mismatch", ("function",), function)


@pytest.mark.parametrize(("field", "value"), [("repeats", 0), ("repeats", -1), ("warmup", -1)])
def test_workload_counts_refused(field: str, value: int) -> None:
    problem = only_problem(Workload, {**WORKLOAD, field: value})
    assert problem["loc"] == (field,)
    assert problem["type"] in ("greater_than", "greater_than_equal")


def test_workload_counts_accepted() -> None:
    workload = Workload.model_validate({**WORKLOAD, "repeats": 1, "warmup": 0})
    assert (workload.repeats, workload.warmup) == (1, 0), "warmup: 0 stays possible (the first run is the point)"


@pytest.mark.parametrize(("key", "suggestion"), [("repeat", "repeats"), ("warmups", "warmup"), ("tag", "tags")])
def test_workload_unknown_key_names_the_near_miss(key: str, suggestion: str) -> None:
    problem = only_problem(Workload, {**WORKLOAD, key: 1})
    assert problem["type"] == "unknown_field"
    assert f"unknown field {key!r}" in problem["msg"]
    assert f"did you mean {suggestion!r}?" in problem["msg"]
    assert "allowed: description, fixture, function, grid, params, repeats" in problem["msg"]


def test_unknown_key_without_near_miss_lists_allowed_fields() -> None:
    problem = only_problem(Workload, {**WORKLOAD, "zzzzzz": 1})
    assert "unknown field 'zzzzzz'" in problem["msg"]
    assert "did you mean" not in problem["msg"]
    # 'name' comes from the YAML key, so it is not offered as a field to write.
    allowed = problem["msg"].split("allowed: ", 1)[1].split(", ")
    assert "name" not in allowed
    assert allowed == sorted(allowed)


def test_nested_unknown_key_is_located() -> None:
    problem = only_problem(Workload, {**WORKLOAD, "requires": {"min_worker": 2}})
    assert problem["loc"] == ("requires",)
    assert "unknown field 'min_worker'" in problem["msg"]
    assert "did you mean 'min_workers'?" in problem["msg"]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), {1, 2}, object()])
def test_workload_params_must_be_plain_data(value: object) -> None:
    problem = only_problem(Workload, {**WORKLOAD, "params": {"x": value}})
    assert (problem["type"], problem["loc"]) == ("not_json", ("params",))
    assert "not plain data" in problem["msg"] and "use strings, numbers" in problem["msg"]


def test_workload_sizes_must_be_plain_data() -> None:
    problem = only_problem(Workload, {**WORKLOAD, "sizes": {"tiny": {"x": float("nan")}}})
    assert (problem["type"], problem["loc"]) == ("not_json", ("sizes",))


def test_workload_grid_must_be_plain_data() -> None:
    problem = only_problem(Workload, {**WORKLOAD, "grid": {"x": [1, float("nan")]}})
    assert (problem["type"], problem["loc"]) == ("not_json", ("grid",))
    assert "grid holds a value" in problem["msg"]


def test_workload_grid_values_must_not_be_empty() -> None:
    problem = only_problem(Workload, {**WORKLOAD, "grid": {"by": ["id"], "npartitions": []}})
    assert problem["type"] == "empty_grid"
    assert "grid.npartitions is empty" in problem["msg"] and "at least one value" in problem["msg"]


@pytest.mark.parametrize(
    ("values", "shown"),
    [([4, 8, 4], "4"), (["id", "id"], '"id"'), ([{"a": 1, "b": 2}, {"b": 2, "a": 1}], '{"a": 1, "b": 2}')],
)
def test_workload_grid_values_must_be_distinct(values: list[object], shown: str) -> None:
    problem = only_problem(Workload, {**WORKLOAD, "grid": {"n": values}})
    assert problem["type"] == "grid_twice"
    assert problem["msg"] == f"grid.n lists {shown} twice — give each value once"


def test_workload_grid_values_of_different_types_are_distinct() -> None:
    assert Workload.model_validate({**WORKLOAD, "grid": {"n": [1, "1", 1.0, True]}}).grid == {"n": [1, "1", 1.0, True]}


def test_workload_grid_values_must_be_lists() -> None:
    problem = only_problem(Workload, {**WORKLOAD, "grid": {"by": "id"}})
    assert (problem["type"], problem["loc"]) == ("list_type", ("grid", "by"))


def test_workload_parameter_in_params_and_grid() -> None:
    problem = only_problem(Workload, {**WORKLOAD, "params": {"by": "id", "n": 1}, "grid": {"by": ["id", "name"]}})
    assert problem["type"] == "param_twice"
    assert "parameter by is both in params and grid" in problem["msg"]
    assert "keep it in one of them" in problem["msg"]


def test_workload_size_names_follow_the_name_pattern() -> None:
    problem = only_problem(Workload, {**WORKLOAD, "sizes": {"very small": {"rows": 1}}})
    assert problem["type"] == "string_pattern_mismatch"
    assert problem["loc"] == ("sizes", "very small", "[key]")


@pytest.mark.parametrize("tag", ["Smoke", "-smoke", "smoke tag", "tag:smoke", "x" * 41])
def test_workload_tags_refused(tag: str) -> None:
    problem = only_problem(Workload, {**WORKLOAD, "tags": ["ok", tag]})
    assert problem["loc"] == ("tags", 1)


def test_workload_tags_accepted() -> None:
    assert Workload.model_validate({**WORKLOAD, "tags": ["smoke", "data-frame_2"]}).tags == ["smoke", "data-frame_2"]


def test_hardware_requirements() -> None:
    requires = HardwareRequirements.model_validate(
        {"min_workers": 4, "min_threads_per_worker": 2, "min_memory_per_worker": "4GiB", "backends": ["local"]}
    )
    assert requires.min_memory_per_worker == 4 * GIB
    assert requires.backends == ["local"]


def test_hardware_requirements_backend_must_be_known() -> None:
    problem = only_problem(HardwareRequirements, {"backends": ["local", "lokal"]})
    assert (problem["type"], problem["loc"]) == ("literal_error", ("backends", 1))


@pytest.mark.parametrize("field", ["min_workers", "min_threads_per_worker"])
def test_hardware_requirements_positive(field: str) -> None:
    problem = only_problem(HardwareRequirements, {field: 0})
    assert (problem["type"], problem["loc"]) == ("greater_than", (field,))


# --------------------------------------------------------------------------------------------------
# Durations


@pytest.mark.parametrize(
    ("given", "seconds"),
    [
        ("90s", 90.0),
        ("5m", 300.0),
        ("5min", 300.0),
        ("1h", 3600.0),
        ("1.5h", 5400.0),
        ("250ms", 0.25),
        (" 10 s ", 10.0),
        ("30", 30.0),
        (45, 45.0),
        (2.5, 2.5),
    ],
)
def test_duration_accepted(given: object, seconds: float) -> None:
    assert Workload.model_validate({**WORKLOAD, "timeout": given}).timeout == seconds
    connect = AddressHardware.model_validate({"backend": "address", "connect_timeout": given}).connect_timeout
    assert connect == seconds


@pytest.mark.parametrize("given", ["5 minutes", "1d", "-5s", "s", "", "5m30s", True, False, None, [5]])
def test_duration_refused(given: object) -> None:
    problem = only_problem(Workload, {**WORKLOAD, "timeout": given})
    assert (problem["type"], problem["loc"]) == ("duration", ("timeout",))
    assert f"{given!r} is not a duration" in problem["msg"]
    assert "use e.g. '90s', '5m', '1h' or a number of seconds" in problem["msg"]


@pytest.mark.parametrize("given", [0, "0s", "0ms", -3])
def test_duration_must_be_positive(given: object) -> None:
    problem = only_problem(Workload, {**WORKLOAD, "timeout": given})
    assert (problem["type"], problem["loc"]) == ("greater_than", ("timeout",))


# --------------------------------------------------------------------------------------------------
# Hardware


def test_local_hardware() -> None:
    profile = HARDWARE.validate_python(LOCAL)
    assert isinstance(profile, LocalHardware)
    assert profile.memory_limit_per_worker == 4 * GIB
    assert (profile.threads_per_worker, profile.processes, profile.description) == (1, True, "")


def test_address_hardware() -> None:
    profile = HARDWARE.validate_python({"backend": "address"})
    assert isinstance(profile, AddressHardware)
    assert profile.address is None and profile.n_workers is None and profile.memory_limit_per_worker is None
    assert profile.connect_timeout == 30.0


def test_coiled_hardware() -> None:
    profile = HARDWARE.validate_python({**COILED, "worker_disk_size": "64GiB", "spot_policy": "spot"})
    assert isinstance(profile, CoiledHardware)
    assert profile.worker_disk_size == 64 * GIB
    assert (profile.spot_policy, profile.idle_timeout, profile.tags) == ("spot", "1 hour", {})


def test_hardware_backend_unknown() -> None:
    problem = only_problem(HARDWARE, {**LOCAL, "backend": "lokal"})
    assert problem["type"] == "union_tag_invalid"
    assert "'lokal'" in problem["msg"] and "'local', 'address', 'coiled'" in problem["msg"]


def test_hardware_backend_missing() -> None:
    data = {key: value for key, value in LOCAL.items() if key != "backend"}
    problem = only_problem(HARDWARE, data)
    assert problem["type"] == "union_tag_not_found"
    assert "backend" in problem["msg"]


def test_local_hardware_required_fields() -> None:
    found = {(problem["type"], problem["loc"]) for problem in problems(HARDWARE, {"backend": "local"})}
    assert found == {("missing", ("local", "n_workers")), ("missing", ("local", "memory_limit_per_worker"))}


def test_coiled_hardware_required_fields() -> None:
    found = {problem["loc"] for problem in problems(HARDWARE, {"backend": "coiled"})}
    assert found == {("coiled", "n_workers"), ("coiled", "worker_vm_types"), ("coiled", "scheduler_vm_types")}


def test_coiled_hardware_vm_types_not_empty() -> None:
    problem = only_problem(HARDWARE, {**COILED, "worker_vm_types": []})
    assert (problem["type"], problem["loc"]) == ("too_short", ("coiled", "worker_vm_types"))


def test_coiled_hardware_spot_policy() -> None:
    problem = only_problem(HARDWARE, {**COILED, "spot_policy": "cheap"})
    assert (problem["type"], problem["loc"]) == ("literal_error", ("coiled", "spot_policy"))


@pytest.mark.parametrize(("field", "value"), [("n_workers", 0), ("threads_per_worker", 0), ("n_workers", -2)])
def test_local_hardware_positive(field: str, value: int) -> None:
    problem = only_problem(HARDWARE, {**LOCAL, field: value})
    assert (problem["type"], problem["loc"]) == ("greater_than", ("local", field))


@pytest.mark.parametrize(("size", "kind"), [("lots", "byte_size"), ("4 gigs", "byte_size_unit"), (-5, "byte_size")])
def test_hardware_bad_byte_size(size: object, kind: str) -> None:
    problem = only_problem(HARDWARE, {**LOCAL, "memory_limit_per_worker": size})
    assert (problem["type"], problem["loc"]) == (kind, ("local", "memory_limit_per_worker"))


@pytest.mark.parametrize(("size", "expected"), [("512MB", 512 * 10**6), ("2GiB", 2 * GIB), (1024, 1024)])
def test_hardware_byte_sizes(size: object, expected: int) -> None:
    assert HARDWARE.validate_python({**LOCAL, "memory_limit_per_worker": size}).memory_limit_per_worker == expected


def test_hardware_unknown_key_names_the_near_miss() -> None:
    problem = only_problem(HARDWARE, {**LOCAL, "n_worker": 2})
    assert problem["loc"] == ("local",)
    assert "unknown field 'n_worker'" in problem["msg"] and "did you mean 'n_workers'?" in problem["msg"]


def test_hardware_field_of_another_backend_is_unknown() -> None:
    problem = only_problem(HARDWARE, {**LOCAL, "address": "tcp://10.0.0.5:8786"})
    assert "unknown field 'address'" in problem["msg"]


@pytest.mark.parametrize("address", ["tcp://10.0.0.5:8786", "tls://scheduler.example.org:8786", "ucx://host:1"])
def test_address_accepted(address: str) -> None:
    assert HARDWARE.validate_python({"backend": "address", "address": address}).address == address


@pytest.mark.parametrize("address", ["10.0.0.5:8786", "http://host:8786", "tcp://host:8786/path", "tcp://"])
def test_address_refused(address: str) -> None:
    problem = only_problem(HARDWARE, {"backend": "address", "address": address})
    assert (problem["type"], problem["loc"]) == ("address", ("address", "address"))
    assert f"{address!r} is not a scheduler address" in problem["msg"]
    assert "use e.g. 'tcp://10.0.0.5:8786'" in problem["msg"]


def test_address_security_fields() -> None:
    security = {"ca_file": "ca.pem", "cert_file": "cert.pem"}
    problem = only_problem(HARDWARE, {"backend": "address", "security": security})
    assert (problem["type"], problem["loc"]) == ("missing", ("address", "security", "key_file"))
    profile = HARDWARE.validate_python({"backend": "address", "security": {**security, "key_file": "key.pem"}})
    assert isinstance(profile, AddressHardware) and profile.security is not None
    assert profile.security.require_encryption is True


# --------------------------------------------------------------------------------------------------
# Runtime


def test_runtime_requirements_are_sorted_pep508_lines() -> None:
    runtime = Runtime.model_validate(
        {"python": "3.11", "packages": {"pandas": "", "dask[dataframe]": "==2024.12.1", "distributed": ">=2024.12"}}
    )
    assert runtime.requirements == ["dask[dataframe]==2024.12.1", "distributed>=2024.12", "pandas"]


@pytest.mark.parametrize(
    ("packages", "as_of", "pinned"),
    [
        ({"dask": "==2024.12.1", "distributed": "==2024.12.1"}, None, True),
        ({"dask": "==2024.12.1", "distributed": ""}, None, False),
        ({"dask": ">=2024.12"}, None, False),
        ({"dask": "==2024.*"}, None, False),
        ({"dask": "~=2024.12.0"}, None, False),
        ({"dask": ""}, "2025-01-15", True),
        ({"dask": ">=2024.12"}, "2025-01-15", True),
    ],
)
def test_runtime_fully_pinned(packages: dict[str, str], as_of: str | None, pinned: bool) -> None:
    runtime = Runtime.model_validate({"python": "3.11", "packages": packages, "as_of": as_of})
    assert runtime.fully_pinned is pinned


@pytest.mark.parametrize("specifier", ["", "==2024.12.1", ">=2024.12,<2025", "~=2024.12.0", "!=2024.1.0", "==2024.*"])
def test_runtime_specifier_accepted(specifier: str) -> None:
    assert Runtime.model_validate({**RUNTIME, "packages": {"dask": specifier}}).packages == {"dask": specifier}


@pytest.mark.parametrize("specifier", ["2024.13.1", "=2024.12.1", ">= banana", "latest", ">>1", ">2024 <2025"])
def test_runtime_specifier_refused(specifier: str) -> None:
    problem = only_problem(Runtime, {**RUNTIME, "packages": {"distributed": "", "dask": specifier}})
    assert (problem["type"], problem["loc"]) == ("specifier", ("packages",))
    assert f"dask: {specifier!r} is not a valid version specifier" in problem["msg"]
    assert "use e.g. '==2024.12.1' or '>=2024.12'" in problem["msg"]


def test_runtime_version_without_operator_suggests_a_pin() -> None:
    problem = only_problem(Runtime, {**RUNTIME, "packages": {"dask": "2024.13.1"}})
    assert problem["msg"] == (
        "dask: '2024.13.1' is not a valid version specifier — use e.g. '==2024.12.1' or '>=2024.12',"
        " or '' for any version"
    )


@pytest.mark.parametrize("package", ["da sk", "", "-dask", "dask[", "dask==="])
def test_runtime_package_name_refused(package: str) -> None:
    problem = only_problem(Runtime, {**RUNTIME, "packages": {package: ""}})
    assert (problem["type"], problem["loc"]) == ("package", ("packages",))
    assert f"{package!r} is not a package name" in problem["msg"]
    assert "use the name as on PyPI" in problem["msg"]


@pytest.mark.parametrize(
    "package", ["dask>=2024.12", "dask==2024.12.1", 'dask; python_version < "3.12"', "d @ https://x"]
)
def test_runtime_version_in_the_key_refused(package: str) -> None:
    problem = only_problem(Runtime, {**RUNTIME, "packages": {package: ""}})
    assert problem["type"] == "package"
    assert f"{package!r}: put the version in the value" in problem["msg"]
    assert "dask: '==2024.12.1'" in problem["msg"]


def test_runtime_packages_not_empty() -> None:
    problem = only_problem(Runtime, {**RUNTIME, "packages": {}})
    assert (problem["type"], problem["loc"]) == ("too_short", ("packages",))


@pytest.mark.parametrize("python", ["3", "3.11.2", "2.7", "python3.11", "3.x"])
def test_runtime_python_refused(python: str) -> None:
    problem = only_problem(Runtime, {**RUNTIME, "python": python})
    assert (problem["type"], problem["loc"]) == ("string_pattern_mismatch", ("python",))


def test_runtime_python_must_be_a_string() -> None:
    # YAML reads 3.10 as the float 3.1: refusing it beats building the wrong Python.
    problem = only_problem(Runtime, {**RUNTIME, "python": 3.10})
    assert (problem["type"], problem["loc"]) == ("string_type", ("python",))


def test_runtime_as_of() -> None:
    assert Runtime.model_validate({**RUNTIME, "as_of": "2025-01-15"}).as_of == dt.date(2025, 1, 15)
    problem = only_problem(Runtime, {**RUNTIME, "as_of": "soon"})
    assert problem["loc"] == ("as_of",)


@pytest.mark.parametrize("name", ["1BAD", "MY-VAR", "A B", "", "X=1"])
def test_runtime_env_name_refused(name: str) -> None:
    problem = only_problem(Runtime, {**RUNTIME, "env": {"OK": "1", name: "x"}})
    assert (problem["type"], problem["loc"]) == ("env_name", ("env",))
    assert f"{name!r} is not an environment variable name" in problem["msg"]
    assert "use letters, digits and '_'" in problem["msg"]


def test_runtime_env_accepted() -> None:
    env = {"MALLOC_TRIM_THRESHOLD_": "65536", "_private": "", "lower9": "x"}
    assert Runtime.model_validate({**RUNTIME, "env": env}).env == env


def test_runtime_env_values_are_strings() -> None:
    problem = only_problem(Runtime, {**RUNTIME, "env": {"OMP_NUM_THREADS": 1}})
    assert (problem["type"], problem["loc"]) == ("string_type", ("env", "OMP_NUM_THREADS"))


@pytest.mark.parametrize("key", ["nodots", ".distributed", "distributed.", "distributed..x", "1x.y", "a b.c"])
def test_runtime_dask_config_key_refused(key: str) -> None:
    problem = only_problem(Runtime, {**RUNTIME, "dask_config": {key: 1}})
    assert (problem["type"], problem["loc"]) == ("config_key", ("dask_config",))
    assert f"{key!r} is not a dotted Dask config key" in problem["msg"]
    assert "use e.g. 'distributed.scheduler.worker-saturation'" in problem["msg"]


def test_runtime_dask_config_accepted() -> None:
    config = {"distributed.scheduler.worker-saturation": 1.1, "array.chunk-size": "128MiB", "a.b_c": [1, {"x": None}]}
    assert Runtime.model_validate({**RUNTIME, "dask_config": config}).dask_config == config


def test_runtime_dask_config_values_are_plain_data() -> None:
    problem = only_problem(Runtime, {**RUNTIME, "dask_config": {"distributed.x": float("nan")}})
    assert (problem["type"], problem["loc"]) == ("not_json", ("dask_config",))
    assert "dask_config holds a value that is not plain data" in problem["msg"]


def test_runtime_unknown_key_names_the_near_miss() -> None:
    problem = only_problem(Runtime, {**RUNTIME, "pakages": {}})
    assert "unknown field 'pakages'" in problem["msg"] and "did you mean 'packages'?" in problem["msg"]


# --------------------------------------------------------------------------------------------------
# Matrix and MatrixRule


def test_matrix_defaults() -> None:
    matrix = Matrix.model_validate(MATRIX)
    assert (matrix.size, matrix.exclude, matrix.include, matrix.description) == (None, [], [], "")


@pytest.mark.parametrize("field", ["runtimes", "hardware", "workloads"])
def test_matrix_lists_not_empty(field: str) -> None:
    problem = only_problem(Matrix, {**MATRIX, field: []})
    assert (problem["type"], problem["loc"]) == ("too_short", (field,))


@pytest.mark.parametrize("field", ["runtimes", "hardware", "workloads"])
def test_matrix_lists_required(field: str) -> None:
    data = {key: value for key, value in MATRIX.items() if key != field}
    problem = only_problem(Matrix, data)
    assert (problem["type"], problem["loc"]) == ("missing", (field,))


@pytest.mark.parametrize("selector", ["*", "tag:smoke", "tag:data-frame_1", "groupby_agg", "v1.2+local"])
def test_matrix_workload_selector_accepted(selector: str) -> None:
    assert Matrix.model_validate({**MATRIX, "workloads": [selector]}).workloads == [selector]


@pytest.mark.parametrize("selector", ["**", "tag:", "tag:Smoke", "tags:smoke", "group by", "-x"])
def test_matrix_workload_selector_refused(selector: str) -> None:
    problem = only_problem(Matrix, {**MATRIX, "workloads": ["*", selector]})
    assert (problem["type"], problem["loc"]) == ("string_pattern_mismatch", ("workloads", 1))


def test_matrix_exclude_may_be_partial() -> None:
    matrix = Matrix.model_validate({**MATRIX, "exclude": [{"runtime": "latest"}, {"workload": "tag:slow"}, {}]})
    assert matrix.exclude == [MatrixRule(runtime="latest"), MatrixRule(workload="tag:slow"), MatrixRule()]


def test_matrix_include_complete() -> None:
    include = {"runtime": "stable", "hardware": "local", "workload": "tag:smoke"}
    assert Matrix.model_validate({**MATRIX, "include": [include]}).include == [MatrixRule(**include)]


@pytest.mark.parametrize(
    ("include", "missing"),
    [
        ({"hardware": "local", "workload": "w"}, "runtime"),
        ({"runtime": "latest", "workload": "w"}, "hardware"),
        ({"runtime": "latest", "hardware": "local"}, "workload"),
        ({"runtime": "latest"}, "hardware and workload"),
    ],
)
def test_matrix_include_must_name_runtime_hardware_and_workload(include: dict[str, str], missing: str) -> None:
    complete = {"runtime": "latest", "hardware": "local", "workload": "w"}
    problem = only_problem(Matrix, {**MATRIX, "include": [complete, include]})
    assert (problem["type"], problem["loc"]) == ("include", ("include",))
    assert f"include 1 lacks {missing} — add it" in problem["msg"]
    assert "each include names a runtime, a hardware profile and a workload" in problem["msg"]


def test_matrix_rule_unknown_key_names_the_near_miss() -> None:
    problem = only_problem(MatrixRule, {"runtimes": "latest"})
    assert "unknown field 'runtimes'" in problem["msg"] and "did you mean 'runtime'?" in problem["msg"]


def test_matrix_rule_fields_follow_their_patterns() -> None:
    found = {problem["loc"] for problem in problems(MatrixRule, {"runtime": "tag:x", "workload": "tag:"})}
    assert found == {("runtime",), ("workload",)}


# --------------------------------------------------------------------------------------------------
# File models: YAML keys are names


def test_file_models_cover_every_kind() -> None:
    expected = {"workloads": WorkloadFile, "hardware": HardwareFile, "runtimes": RuntimesFile, "matrices": MatricesFile}
    assert expected == FILE_MODELS


def test_file_key_becomes_the_name() -> None:
    workloads = WorkloadFile.model_validate({"workloads": {"groupby_agg": WORKLOAD}}).workloads
    assert workloads["groupby_agg"].name == "groupby_agg"
    hardware = HardwareFile.model_validate({"hardware": {"local": LOCAL, "cloud": COILED}}).hardware
    assert (hardware["local"].name, hardware["cloud"].name) == ("local", "cloud")
    assert RuntimesFile.model_validate({"runtimes": {"latest": RUNTIME}}).runtimes["latest"].name == "latest"
    assert MatricesFile.model_validate({"matrices": {"default": MATRIX}}).matrices["default"].name == "default"


def test_file_name_equal_to_key_is_allowed() -> None:
    runtimes = RuntimesFile.model_validate({"runtimes": {"latest": {**RUNTIME, "name": "latest"}}}).runtimes
    assert runtimes["latest"].name == "latest"


def test_file_name_different_from_key_is_refused() -> None:
    problem = only_problem(RuntimesFile, {"runtimes": {"latest": {**RUNTIME, "name": "newest"}}})
    assert (problem["type"], problem["loc"]) == ("name", ("runtimes",))
    assert "'latest' has name 'newest' — drop 'name', the key is the name" in problem["msg"]


def test_file_key_must_be_a_valid_name() -> None:
    problem = only_problem(HardwareFile, {"hardware": {"my laptop": LOCAL}})
    assert problem["type"] == "string_pattern_mismatch"
    assert problem["loc"][:2] == ("hardware", "my laptop")
    assert problem["input"] == "my laptop"


def test_file_unknown_top_level_key_names_the_near_miss() -> None:
    problem = only_problem(WorkloadFile, {"workload": {}})
    assert problem["loc"] == ()
    assert "unknown field 'workload'" in problem["msg"] and "did you mean 'workloads'?" in problem["msg"]
