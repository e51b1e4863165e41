"""Runtimes (``matrices/runtimes.yaml``): a Python, package pins, Dask config and environment variables."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from pydantic import (
    BeforeValidator,
    Field,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from framework.models.base import PYTHON_PATTERN, Name, StrictModel, check_json_value

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Packages released in lockstep (distributed X needs dask X): every environment holds one version of the family.
DEFAULT_LOCKSTEP: tuple[tuple[str, ...], ...] = (("dask", "distributed"),)


def package_name(key: str) -> str:
    """A ``packages`` key (``dask[dataframe]``) → its normalised distribution name (``dask``)."""
    return re.sub(r"[-_.]+", "-", Requirement(key).name).lower()


def release_line(version: str) -> tuple[int, ...]:
    """What lockstep releases share: the first three numeric parts (distributed 2023.3.2.1 goes with dask 2023.3.2)."""
    return tuple(int(part) for part in re.findall(r"\d+", version.split("+", maxsplit=1)[0])[:3])


def lockstep_families(value: Any) -> Any:
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


class Runtime(StrictModel):
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
        description="Resolve every package as it was released before this date (uv --exclude-newer), except the"
        " harness's fuzzing engine (hypothesis), which takes its newest release for the runtime's Python.",
    )
    env: dict[str, str] = Field(default_factory=dict, description="Environment variables for cluster processes.")
    dask_config: dict[str, Any] = Field(
        default_factory=dict,
        description="Dotted Dask config keys, e.g. distributed.scheduler.worker-saturation.",
    )
    # Not for runtimes.yaml: packages an attribution probe pins to exact versions without declaring them — installed
    # as pinned, but not imported by the health check (a lock holds packages that import only with optional others).
    pins: SkipJsonSchema[dict[str, str]] = Field(default_factory=dict)
    lockstep: Annotated[list[list[str]], BeforeValidator(lockstep_families)] = Field(
        default_factory=lambda: [list(family) for family in DEFAULT_LOCKSTEP],
        description="Families of packages released together: each gets one version in the environment"
        " (the file's `lockstep`, default [[dask, distributed]], plus the runtime's own).",
    )

    @model_serializer(mode="wrap")
    def _without_empty_pins(self, handler: Any) -> Any:
        """A runtime without ``pins`` dumps as before they existed: its hash, its stored spec, are unchanged."""
        data = handler(self)
        if isinstance(data, dict) and not self.pins:
            data.pop("pins", None)
        return data

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
        check_json_value(value, "dask_config")
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
        declared = [f"{package}{specifier}" for package, specifier in sorted(self.packages.items())]
        return declared + [f"{package}{specifier}" for package, specifier in sorted(self.pins.items())]

    @property
    def fully_pinned(self) -> bool:
        """True when re-resolving can never pick other versions of the declared packages."""
        if self.as_of is not None:
            return True
        return all(specifier.startswith("==") and "*" not in specifier for specifier in self.packages.values())
