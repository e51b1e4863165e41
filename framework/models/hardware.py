"""Hardware profiles (``matrices/hardware.yaml``): a LocalCluster, a scheduler address, or a Coiled cluster."""

from __future__ import annotations

import re
from typing import Annotated, Literal, Union

from pydantic import (
    Field,
    PositiveInt,
    field_validator,
)
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from framework.models.base import Bytes, Name, Seconds, StrictModel


class _Hardware(StrictModel):
    name: SkipJsonSchema[Name] = "unnamed"
    description: str = ""


class LocalHardware(_Hardware):
    """A ``distributed.LocalCluster`` on this machine."""

    backend: Literal["local"]
    n_workers: PositiveInt
    threads_per_worker: PositiveInt = 1
    memory_limit_per_worker: Bytes
    processes: bool = Field(default=True, description="Worker processes (with nannies) or in-process.")


class TLSSecurity(StrictModel):
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
