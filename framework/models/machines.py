"""The machine policy (``matrices/machines.yaml``): which fingerprint facts make a machine class, which pool.

History series are keyed by hardware profile × machine class, so a run on another kind of machine starts a series of
its own instead of reading as a change. Schema only; classifying the machines a store holds is
:mod:`framework.machines`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from framework.models.base import Name, StrictModel

FingerprintField = Literal["cpu_model", "cores", "memory_gib", "kernel", "virtualisation", "arch"]
# The kernel is left out by default: a runner image's patch release changes it every few weeks without changing
# what a workload measures, and splitting the series there would hide every change across it.
DEFAULT_CLASS_FIELDS: tuple[FingerprintField, ...] = ("cpu_model", "cores", "memory_gib", "virtualisation", "arch")


class MachinePool(StrictModel):
    """Machines whose timings are pooled into one series: by their ids, or by facts of their fingerprints."""

    description: str | None = Field(default=None, description="What the machines are, why they pool.")
    machine_ids: list[str] = Field(
        default_factory=list,
        description='machine_id values (12 hex digits, as `nox -s sql -- "SELECT DISTINCT machine_id FROM rows"`'
        " lists them).",
    )
    match: dict[FingerprintField, str | int] = Field(
        default_factory=dict,
        description="Fingerprint facts a machine must all have, e.g. {cpu_model: 'AMD EPYC*', cores: 4}; '*' in a"
        " text matches any characters.",
    )

    @field_validator("machine_ids")
    @classmethod
    def _ids(cls, value: list[str]) -> list[str]:
        for machine_id in value:
            if not isinstance(machine_id, str) or len(machine_id) != 12 or set(machine_id) - set("0123456789abcdef"):
                raise PydanticCustomError(
                    "machine_id",
                    "{value} is not a machine id — use the 12 hex digits of a row's machine_id",
                    {"value": repr(machine_id)},
                )
        return value

    @model_validator(mode="after")
    def _names_machines(self) -> MachinePool:
        if not self.machine_ids and not self.match:
            raise PydanticCustomError("pool", "names no machine — add machine_ids or match", {})
        return self


class MachinesFile(StrictModel):
    class_fields: list[FingerprintField] = Field(
        default_factory=lambda: list(DEFAULT_CLASS_FIELDS),
        min_length=1,
        description="The fingerprint facts that make a machine class (default: every fact but the kernel).",
    )
    pools: dict[Name, MachinePool] = Field(
        default_factory=dict,
        description="Pool name → the machines pooled into one class of that name (the first pool that matches).",
    )

    @field_validator("class_fields")
    @classmethod
    def _distinct(cls, value: list[FingerprintField]) -> list[FingerprintField]:
        if len(set(value)) != len(value):
            raise PydanticCustomError("fields", "lists a fact twice — list each once", {})
        return value
