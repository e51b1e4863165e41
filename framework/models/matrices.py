"""Matrices (``matrices/matrix.yaml``): which runtimes × hardware × workloads run together."""

from __future__ import annotations

from typing import Annotated

from pydantic import (
    Field,
    field_validator,
)
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from framework.models.base import SELECTOR_PATTERN, Name, StrictModel

Selector = Annotated[str, Field(pattern=SELECTOR_PATTERN)]


class MatrixRule(StrictModel):
    """Matches combinations; an omitted field matches everything. Workloads by name or 'tag:TAG'."""

    runtime: Name | None = None
    hardware: Name | None = None
    workload: Selector | None = None


class Matrix(StrictModel):
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
