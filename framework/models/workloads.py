"""A workload as declared in ``workloads/*.yaml``: its function, parameters, sizes, grid and requirements."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    Field,
    NonNegativeInt,
    PositiveInt,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from framework.in_runtime.backends import BACKEND_NAMES
from framework.in_runtime.scaling import scale_problem
from framework.models.base import (
    Bytes,
    FunctionPath,
    Name,
    Seconds,
    StrictModel,
    Tag,
    check_json_value,
    quantity_problem,
)


def _known_backend(value: str) -> str:
    if value not in BACKEND_NAMES:  # said as pydantic says it of a Literal, so every message stays the same
        *first, last = [repr(name) for name in BACKEND_NAMES]
        expected = f"{', '.join(first)} or {last}" if first else last
        raise PydanticCustomError("literal_error", "Input should be {expected}", {"expected": expected})
    return value


# A backend's name, as the registry (framework/in_runtime/backends.py) knows them: a new backend is valid here at once.
BackendName = Annotated[
    str, AfterValidator(_known_backend), WithJsonSchema({"enum": list(BACKEND_NAMES), "type": "string"})
]


class HardwareRequirements(StrictModel):
    """The smallest cluster a workload makes sense on; smaller profiles skip it with a reason."""

    min_workers: PositiveInt = 1
    min_threads_per_worker: PositiveInt = 1
    min_memory_per_worker: Bytes | None = None
    backends: list[BackendName] | None = Field(
        default=None, description="Only these backends (e.g. a workload that scales a LocalCluster)."
    )


class Workload(StrictModel):
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
    warmup: NonNegativeInt = Field(
        default=1,
        le=100,
        description="Executions before the measured repeats, not counted as measured (a failing one fails the case);"
        " 0 where the first, cold run is the point.",
    )
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
        check_json_value(value, "this mapping")
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
            problem = quantity_problem(parameter, is_size=info.field_name == "sizes")
            if problem:
                raise PydanticCustomError("quantity", "{where}: {problem}", {"where": where, "problem": problem})
        return value

    @field_validator("grid")
    @classmethod
    def _grid_values(cls, value: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in value.items():
            if not values:
                raise PydanticCustomError("empty_grid", "grid.{key} is empty — give at least one value", {"key": key})
        check_json_value(value, "grid")
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
                problem = quantity_problem(item, is_size=False)
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
