"""What a user declares: workloads, hardware profiles, runtimes and matrices. Schema only — no I/O.

Every model is strict (unknown keys are errors, with the near miss) and frozen. YAML files map names to
specs (``runtimes: {latest: {...}}``); the file models copy each key into the spec's ``name``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Annotated, Any, Literal, Union

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ByteSize,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveInt,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from framework.errors import closest
from framework.scaling import scale_problem

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$"
TAG_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
# ``module.sub:function`` inside the project's ``workloads`` package.
FUNCTION_PATTERN = r"^workloads(\.[A-Za-z_]\w*)+:[A-Za-z_]\w*$"
SELECTOR_PATTERN = r"^(\*|tag:[a-z0-9][a-z0-9_-]*|[A-Za-z0-9][A-Za-z0-9_.+-]*)$"
PYTHON_PATTERN = r"^3\.\d{1,2}$"
Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=80)]
Tag = Annotated[str, Field(pattern=TAG_PATTERN, max_length=40)]
FunctionPath = Annotated[str, Field(pattern=FUNCTION_PATTERN)]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, None: 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def _parse_duration(value: object) -> object:
    # A bool is an int to Python (and to pydantic's float): `timeout: yes` must not mean one second.
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None:
        raise PydanticCustomError(
            "duration",
            "{value} is not a duration — use e.g. '90s', '5m', '1h' or a number of seconds",
            {"value": repr(value)},
        )
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


MAX_SECONDS = 86_400.0  # a day: a longer timeout is a typo (or `.inf`), not a plan
Seconds = Annotated[float, BeforeValidator(_parse_duration), Field(gt=0, le=MAX_SECONDS)]

MAX_BYTES = 2**60  # 1 EiB: far beyond any cluster; a larger size is a typo such as '99999999PiB'
_BYTE_STRING = re.compile(r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*([kmgtpe]i?b|b)\s*$", re.IGNORECASE)
_BYTE_UNITS = {"b": 1, **{f"{p}b": 1000 ** (i + 1) for i, p in enumerate("kmgtpe")}}
_BYTE_UNITS.update({f"{p}ib": 1024 ** (i + 1) for i, p in enumerate("kmgtpe")})
MAX_PARAMETER_INT = 2**63 - 1  # what a 64-bit integer holds: beyond it no workload means a number


def _not_negative_bytes(value: Any) -> Any:
    # ByteSize would call '-4GiB' unparsable; say what is wrong with it.
    negative = isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0
    match = _BYTE_STRING.match(value) if isinstance(value, str) else None
    if negative or (match is not None and float(match.group(1)) < 0):
        raise PydanticCustomError("byte_size", "{value} is a negative size — use e.g. '4GiB'", {"value": repr(value)})
    return value


def _at_most_max_bytes(value: ByteSize) -> ByteSize:
    if value > MAX_BYTES:
        raise PydanticCustomError(
            "too_many_bytes", "{value} B is more than 1 EiB — use e.g. '4GiB' or '512MB'", {"value": int(value)}
        )
    return value


Bytes = Annotated[ByteSize, BeforeValidator(_not_negative_bytes), AfterValidator(_at_most_max_bytes)]


def _byte_string_problem(value: str) -> str | None:
    match = _BYTE_STRING.match(value)
    amount = float(match.group(1)) * _BYTE_UNITS[match.group(2).lower()] if match else 0.0
    if amount < 0:
        return f"{value!r} is a negative size — use a positive one such as '64MiB'"
    if amount > MAX_BYTES:
        return f"{value!r} is more than 1 EiB — use a size such as '128MiB', or {{fraction_of_cluster_memory: 0.5}}"
    return None


def _quantity_problem(value: Any, is_size: bool) -> str | None:
    """Why a parameter's value is no sane quantity: a negative or absurd byte string, a negative size, a huge int."""
    if isinstance(value, str):
        return _byte_string_problem(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, int) and abs(value) > MAX_PARAMETER_INT:
        return f"{value} is beyond a 64-bit integer — use a smaller number"
    if is_size and value < 0:
        return f"{value} is negative, and sizes are counts and amounts — use a positive number"
    return None


def _check_json_value(value: Any, where: str) -> None:
    """Parameters travel to the runner as JSON: refuse what would not survive the trip."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise PydanticCustomError(
            "not_json",
            "{where} holds a value that is not plain data ({error}) — use strings, numbers, booleans,"
            " lists and mappings",
            {"where": where, "error": str(error)},
        ) from None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    @model_validator(mode="before")
    @classmethod
    def _no_unknown_keys(cls, data: Any) -> Any:
        # Done here rather than by extra="forbid" alone so the message names the near miss.
        if isinstance(data, dict):
            allowed = set(cls.model_fields)
            for key in data:
                if key not in allowed:
                    visible = sorted(allowed - {"name"})
                    close = closest(str(key), visible)
                    hint = f"did you mean {close!r}? " if close else ""
                    raise PydanticCustomError(
                        "unknown_field",
                        "unknown field {key} — {hint}allowed: {allowed}",
                        {"key": repr(key), "hint": hint, "allowed": ", ".join(visible)},
                    )
        return data


# --------------------------------------------------------------------------------------------------
# Workloads


class HardwareRequirements(_Model):
    """The smallest cluster a workload makes sense on; smaller profiles skip it with a reason."""

    min_workers: PositiveInt = 1
    min_threads_per_worker: PositiveInt = 1
    min_memory_per_worker: Bytes | None = None
    backends: list[Literal["local", "address", "coiled"]] | None = Field(
        default=None, description="Only these backends (e.g. a workload that scales a LocalCluster)."
    )


class Workload(_Model):
    """One workload: a function in ``workloads/`` and the cases it runs."""

    name: SkipJsonSchema[Name] = "unnamed"
    description: str = Field(min_length=1, description="One line: what it exercises and checks.")
    function: FunctionPath = Field(description="'workloads.module:function' — a plain function.")
    params: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments for every case.")
    grid: dict[str, list[Any]] = Field(
        default_factory=dict, description="Each key's values multiply the cases (a parameter grid)."
    )
    sizes: dict[Name, dict[str, Any]] = Field(
        default_factory=dict,
        description="Named data sizes (e.g. tiny / small / large): parameters merged into each case.",
    )
    tags: list[Tag] = Field(default_factory=list)
    fixture: FunctionPath | None = Field(
        default=None,
        description="'workloads.module:function', a generator run around the case (not timed) that sets up what it"
        " needs — e.g. a local S3 server — and yields extra parameters for it.",
    )
    repeats: PositiveInt = Field(default=3, le=1000)  # as --repeat
    warmup: NonNegativeInt = Field(default=0, le=100)
    timeout: Seconds = Field(default=300.0, description="Per repeat: '90s', '5m' or seconds.")
    requires: HardwareRequirements = Field(default_factory=HardwareRequirements)

    @field_validator("description")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if "\n" in value.strip():
            raise PydanticCustomError("one_line", "must be one line — move details into a YAML comment", {})
        return value.strip()

    @field_validator("params", "sizes")
    @classmethod
    def _plain_data(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        _check_json_value(value, "this mapping")
        nested = [
            (f"{size}.{name}", v)
            for size, params in value.items()
            if isinstance(params, dict)
            for name, v in params.items()
        ]
        for where, parameter in [*value.items(), *nested]:
            problem = scale_problem(parameter)
            if problem:
                raise PydanticCustomError(
                    "scaled_parameter",
                    "{where}: {problem} — write e.g. {example}",
                    {"where": where, "problem": problem, "example": "{fraction_of_cluster_memory: 0.5}"},
                )
            problem = _quantity_problem(parameter, is_size=info.field_name == "sizes")
            if problem:
                raise PydanticCustomError("quantity", "{where}: {problem}", {"where": where, "problem": problem})
        return value

    @field_validator("grid")
    @classmethod
    def _grid_values(cls, value: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in value.items():
            if not values:
                raise PydanticCustomError("empty_grid", "grid.{key} is empty — give at least one value", {"key": key})
        _check_json_value(value, "grid")
        for key, values in value.items():
            # A repeated value would be two cases with one case id, their results mixed up.
            seen: set[str] = set()
            for item in values:
                shown = json.dumps(item, sort_keys=True)
                if shown in seen:
                    raise PydanticCustomError(
                        "grid_twice",
                        "grid.{key} lists {value} twice — give each value once",
                        {"key": key, "value": shown},
                    )
                seen.add(shown)
                problem = _quantity_problem(item, is_size=False)
                if problem:
                    raise PydanticCustomError("quantity", "{key}: {problem}", {"key": key, "problem": problem})
        return value

    @model_validator(mode="after")
    def _no_parameter_twice(self) -> Workload:
        both = sorted(set(self.params) & set(self.grid))
        if both:
            raise PydanticCustomError(
                "param_twice",
                "parameter {names} is both in params and grid — keep it in one of them",
                {"names": ", ".join(both)},
            )
        return self


# --------------------------------------------------------------------------------------------------
# Hardware


class _Hardware(_Model):
    name: SkipJsonSchema[Name] = "unnamed"
    description: str = ""


class LocalHardware(_Hardware):
    """A ``distributed.LocalCluster`` on this machine."""

    backend: Literal["local"]
    n_workers: PositiveInt
    threads_per_worker: PositiveInt = 1
    memory_limit_per_worker: Bytes
    processes: bool = Field(default=True, description="Worker processes (with nannies) or in-process.")


class TLSSecurity(_Model):
    """Files for ``distributed.security.Security``; relative paths are relative to the project root."""

    ca_file: str
    cert_file: str
    key_file: str
    require_encryption: bool = True


class AddressHardware(_Hardware):
    """An existing scheduler, reached by address (``tcp://`` or ``tls://``)."""

    backend: Literal["address"]
    address: str | None = Field(
        default=None,
        description="Scheduler address; may instead be given with --address on the command line.",
    )
    n_workers: PositiveInt | None = Field(default=None, description="Wait for this many workers before running.")
    threads_per_worker: PositiveInt | None = None
    memory_limit_per_worker: Bytes | None = None
    security: TLSSecurity | None = None
    connect_timeout: Seconds = 30.0

    @field_validator("address")
    @classmethod
    def _scheme(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^(tcp|tls|ws|wss|ucx)://[^/\s]+$", value):
            raise PydanticCustomError(
                "address",
                "{value} is not a scheduler address — use e.g. 'tcp://10.0.0.5:8786'",
                {"value": repr(value)},
            )
        return value


class CoiledHardware(_Hardware):
    """A Coiled cluster; fields map one to one onto ``coiled.Cluster`` keyword arguments."""

    backend: Literal["coiled"]
    n_workers: PositiveInt
    worker_vm_types: list[str] = Field(min_length=1)
    scheduler_vm_types: list[str] = Field(min_length=1)
    region: str | None = None
    worker_disk_size: Bytes | None = None
    spot_policy: Literal["on-demand", "spot", "spot_with_fallback"] = "on-demand"
    threads_per_worker: PositiveInt | None = None
    memory_limit_per_worker: Bytes | None = None
    idle_timeout: str = "1 hour"
    workspace: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)


HardwareProfile = Annotated[Union[LocalHardware, AddressHardware, CoiledHardware], Field(discriminator="backend")]


# --------------------------------------------------------------------------------------------------
# Runtimes

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Packages released in lockstep (distributed X needs dask X): every environment holds one version of the family.
DEFAULT_LOCKSTEP: tuple[tuple[str, ...], ...] = (("dask", "distributed"),)


def package_name(key: str) -> str:
    """A ``packages`` key (``dask[dataframe]``) → its normalised distribution name (``dask``)."""
    return re.sub(r"[-_.]+", "-", Requirement(key).name).lower()


def release_line(version: str) -> tuple[int, ...]:
    """What lockstep releases share: the first three numeric parts (distributed 2023.3.2.1 goes with dask 2023.3.2)."""
    return tuple(int(part) for part in re.findall(r"\d+", version.split("+", maxsplit=1)[0])[:3])


def _lockstep_families(value: Any) -> Any:
    """Names normalised; a family listed twice (the file's and a runtime's own) counts once."""
    if not isinstance(value, list):
        return value
    families: list[Any] = []
    for family in value:
        if isinstance(family, list):
            family = [re.sub(r"[-_.]+", "-", str(name)).lower() for name in family]
            if any(isinstance(f, list) and set(f) == set(family) for f in families):
                continue
        families.append(family)
    return families


class Runtime(_Model):
    """A set of package versions, a Python, environment variables and Dask config."""

    name: SkipJsonSchema[Name] = "unnamed"
    description: str = ""
    python: str = Field(pattern=PYTHON_PATTERN, description="e.g. '3.11'; found on PATH as python3.11.")
    packages: dict[str, str] = Field(
        min_length=1,
        description="Package → version specifier: '==2024.12.1', '>=2024.12,<2025', or '' for any.",
    )
    as_of: dt.date | None = Field(
        default=None,
        description="Resolve every package as it was released before this date (uv --exclude-newer).",
    )
    env: dict[str, str] = Field(default_factory=dict, description="Environment variables for cluster processes.")
    dask_config: dict[str, Any] = Field(
        default_factory=dict,
        description="Dotted Dask config keys, e.g. distributed.scheduler.worker-saturation.",
    )
    lockstep: Annotated[list[list[str]], BeforeValidator(_lockstep_families)] = Field(
        default_factory=lambda: [list(family) for family in DEFAULT_LOCKSTEP],
        description="Families of packages released together: each gets one version in the environment"
        " (the file's `lockstep`, default [[dask, distributed]], plus the runtime's own).",
    )

    @field_validator("packages")
    @classmethod
    def _requirements(cls, value: dict[str, str]) -> dict[str, str]:
        for package, specifier in value.items():
            try:
                requirement = Requirement(package)
            except InvalidRequirement:
                raise PydanticCustomError(
                    "package",
                    "{package} is not a package name — use the name as on PyPI, e.g. 'dask'",
                    {"package": repr(package)},
                ) from None
            if requirement.specifier or requirement.marker or requirement.url:
                raise PydanticCustomError(
                    "package",
                    "{package}: put the version in the value — e.g. dask: '==2024.12.1'",
                    {"package": repr(package)},
                )
            try:
                SpecifierSet(specifier)
            except InvalidSpecifier:
                raise PydanticCustomError(
                    "specifier",
                    "{package}: {specifier} is not a valid version specifier — use e.g. '==2024.12.1' or"
                    " '>=2024.12', or '' for any version",
                    {"package": package, "specifier": repr(specifier)},
                ) from None
        return value

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not _ENV_NAME.match(key):
                raise PydanticCustomError(
                    "env_name",
                    "{key} is not an environment variable name — use letters, digits and '_'",
                    {"key": repr(key)},
                )
        return value

    @field_validator("dask_config")
    @classmethod
    def _config_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in value:
            if not re.match(r"^[A-Za-z][\w-]*(\.[A-Za-z][\w-]*)+$", key):
                raise PydanticCustomError(
                    "config_key",
                    "{key} is not a dotted Dask config key — use e.g. 'distributed.scheduler.worker-saturation'",
                    {"key": repr(key)},
                )
        _check_json_value(value, "dask_config")
        return value

    @field_validator("lockstep")
    @classmethod
    def _families(cls, value: list[list[str]]) -> list[list[str]]:
        seen: dict[str, int] = {}
        for index, family in enumerate(value):
            if len(set(family)) < 2:
                raise PydanticCustomError(
                    "lockstep",
                    "lockstep {index} lists {family} — a family names at least two packages, e.g. [dask, distributed]",
                    {"index": index, "family": family},
                )
            for name in family:
                if not re.match(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$", name):
                    raise PydanticCustomError(
                        "lockstep",
                        "lockstep {index}: {name} is not a package name — use the name as on PyPI",
                        {"index": index, "name": repr(name)},
                    )
                if seen.get(name, index) != index:
                    raise PydanticCustomError(
                        "lockstep",
                        "{name} is in two lockstep families ({a} and {b}) — merge them into one",
                        {"name": name, "a": seen[name], "b": index},
                    )
                seen[name] = index
        return value

    @model_validator(mode="after")
    def _lockstep_pins_agree(self) -> Runtime:
        """Exact pins inside one family must name one release: dask 2026.3.0 cannot run distributed 2026.2.0."""
        pins: dict[str, tuple[str, str]] = {}  # package → (its key, the pinned version)
        for key, specifier in self.packages.items():
            specifiers = list(SpecifierSet(specifier))
            exact = [s.version for s in specifiers if s.operator in ("==", "===") and "*" not in s.version]
            if exact:
                pins[package_name(key)] = (key, exact[0])
        for family in self.lockstep:
            pinned = [(name, *pins[name]) for name in family if name in pins]
            for (first, first_key, first_version), (_, key, version) in zip(pinned, pinned[1:]):
                if release_line(version) != release_line(first_version):
                    raise PydanticCustomError(
                        "lockstep_pins",
                        "packages.{key}: {version} does not match {first} {first_version} — {family} are released in"
                        " lockstep; pin both to one release, e.g. {first_key}: '=={first_version}' and {key}:"
                        " '=={first_version}'",
                        {
                            "key": key,
                            "version": repr(f"=={version}"),
                            "first": first,
                            "first_key": first_key,
                            "first_version": first_version,
                            "family": " and ".join(family),
                        },
                    )
        return self

    @property
    def lockstep_packages(self) -> set[str]:
        return {name for family in self.lockstep for name in family}

    @property
    def requirements(self) -> list[str]:
        """PEP 508 lines for the installer, e.g. ``dask==2024.12.1``."""
        return [f"{package}{specifier}" for package, specifier in sorted(self.packages.items())]

    @property
    def fully_pinned(self) -> bool:
        """True when re-resolving can never pick other versions of the declared packages."""
        if self.as_of is not None:
            return True
        return all(specifier.startswith("==") and "*" not in specifier for specifier in self.packages.values())


# --------------------------------------------------------------------------------------------------
# Matrices

Selector = Annotated[str, Field(pattern=SELECTOR_PATTERN)]


class MatrixRule(_Model):
    """Matches combinations; an omitted field matches everything. Workloads by name or 'tag:TAG'."""

    runtime: Name | None = None
    hardware: Name | None = None
    workload: Selector | None = None


class Matrix(_Model):
    """Runtimes × hardware × workloads, minus ``exclude`` rules, plus ``include`` combinations."""

    name: SkipJsonSchema[Name] = "unnamed"
    description: str = ""
    runtimes: list[Name] = Field(min_length=1)
    hardware: list[Name] = Field(min_length=1)
    workloads: list[Selector] = Field(min_length=1, description="Names, 'tag:TAG' or '*'.")
    size: Name | None = Field(default=None, description="Data size to run where a workload declares sizes.")
    exclude: list[MatrixRule] = Field(default_factory=list)
    include: list[MatrixRule] = Field(default_factory=list)

    @field_validator("include")
    @classmethod
    def _include_complete(cls, value: list[MatrixRule]) -> list[MatrixRule]:
        for index, rule in enumerate(value):
            missing = [field for field in ("runtime", "hardware", "workload") if getattr(rule, field) is None]
            if missing:
                raise PydanticCustomError(
                    "include",
                    "include {index} lacks {missing} — add it: each include names a runtime, a hardware profile"
                    " and a workload",
                    {"index": index, "missing": " and ".join(missing)},
                )
        return value


# --------------------------------------------------------------------------------------------------
# File models: what one YAML file holds. Keys are names.


def _name_from_key(value: Any) -> Any:
    if isinstance(value, dict):
        named = {}
        for key, spec in value.items():
            if isinstance(spec, dict):
                if "name" in spec and spec["name"] != key:
                    raise PydanticCustomError(
                        "name",
                        "{key} has name {name} — drop 'name', the key is the name",
                        {"key": repr(key), "name": repr(spec["name"])},
                    )
                spec = {**spec, "name": key}
            named[key] = spec
        return named
    return value


def _check_names(value: dict[str, Any]) -> dict[str, Any]:
    for key in value:
        if not re.match(NAME_PATTERN, str(key)):
            raise PydanticCustomError(
                "name",
                "{key} is not a valid name — use letters, digits, '_', '.', '+' and '-'",
                {"key": repr(key)},
            )
    return value


class WorkloadFile(_Model):
    workloads: Annotated[dict[str, Workload], BeforeValidator(_name_from_key)]
    _names = field_validator("workloads")(_check_names)


class HardwareFile(_Model):
    hardware: Annotated[dict[str, HardwareProfile], BeforeValidator(_name_from_key)]
    _names = field_validator("hardware")(_check_names)


class RuntimesFile(_Model):
    lockstep: Annotated[list[list[str]], BeforeValidator(_lockstep_families)] = Field(
        default_factory=lambda: [list(family) for family in DEFAULT_LOCKSTEP],
        description="Families of packages released together, for every runtime (each may add its own).",
    )
    runtimes: Annotated[dict[str, Runtime], BeforeValidator(_name_from_key)]
    _names = field_validator("runtimes")(_check_names)

    @model_validator(mode="before")
    @classmethod
    def _file_families_first(cls, data: Any) -> Any:
        """Each runtime's ``lockstep`` = the file's families, then its own (a runtime cannot drop dask's)."""
        if not isinstance(data, dict) or not isinstance(data.get("runtimes"), dict):
            return data
        shared = data.get("lockstep", [list(family) for family in DEFAULT_LOCKSTEP])
        if not isinstance(shared, list):
            return data
        runtimes = {}
        for key, spec in data["runtimes"].items():
            if isinstance(spec, dict):
                own = spec.get("lockstep", [])
                spec = {**spec, "lockstep": [*shared, *(own if isinstance(own, list) else [own])]}
            runtimes[key] = spec
        return {**data, "runtimes": runtimes}


class MatricesFile(_Model):
    matrices: Annotated[dict[str, Matrix], BeforeValidator(_name_from_key)]
    _names = field_validator("matrices")(_check_names)


FILE_MODELS: dict[str, type[_Model]] = {
    "workloads": WorkloadFile,
    "hardware": HardwareFile,
    "runtimes": RuntimesFile,
    "matrices": MatricesFile,
}
