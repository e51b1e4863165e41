"""File models: what one YAML file holds (keys are names), and which model reads which kind of file."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import (
    BeforeValidator,
    Field,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from framework.models.base import NAME_PATTERN, StrictModel
from framework.models.hardware import HardwareProfile
from framework.models.matrices import Matrix
from framework.models.runtimes import DEFAULT_LOCKSTEP, Runtime, lockstep_families
from framework.models.workloads import Workload


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


class WorkloadFile(StrictModel):
    workloads: Annotated[dict[str, Workload], BeforeValidator(_name_from_key)]
    _names = field_validator("workloads")(_check_names)


class HardwareFile(StrictModel):
    hardware: Annotated[dict[str, HardwareProfile], BeforeValidator(_name_from_key)]
    _names = field_validator("hardware")(_check_names)


class RuntimesFile(StrictModel):
    lockstep: Annotated[list[list[str]], BeforeValidator(lockstep_families)] = Field(
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


class MatricesFile(StrictModel):
    matrices: Annotated[dict[str, Matrix], BeforeValidator(_name_from_key)]
    _names = field_validator("matrices")(_check_names)


FILE_MODELS: dict[str, type[StrictModel]] = {
    "workloads": WorkloadFile,
    "hardware": HardwareFile,
    "runtimes": RuntimesFile,
    "matrices": MatricesFile,
}
