"""What a user declares: workloads, hardware profiles, runtimes and matrices. Schema only — no I/O.

Every model is strict (unknown keys are errors, with the near miss) and frozen. YAML files map names to
specs (``runtimes: {latest: {...}}``); the file models copy each key into the spec's ``name``.

One module per declared thing: ``base`` (names, durations, byte sizes, the strict base model), ``workloads``,
``hardware``, ``runtimes``, ``matrices``, ``machines`` (which machines pool into one history series), and ``files``
(what one YAML file holds).
"""

from __future__ import annotations

from framework.models.base import (
    FUNCTION_PATTERN,
    MAX_BYTES,
    MAX_PARAMETER_INT,
    MAX_SECONDS,
    NAME_PATTERN,
    PYTHON_PATTERN,
    SELECTOR_PATTERN,
    TAG_PATTERN,
    Bytes,
    FunctionPath,
    Name,
    Seconds,
    StrictModel,
    Tag,
)
from framework.models.files import FILE_MODELS, HardwareFile, MatricesFile, RuntimesFile, WorkloadFile
from framework.models.hardware import AddressHardware, CoiledHardware, HardwareProfile, LocalHardware, TLSSecurity
from framework.models.machines import DEFAULT_CLASS_FIELDS, MachinePool, MachinesFile
from framework.models.matrices import Matrix, MatrixRule, Selector
from framework.models.runtimes import DEFAULT_LOCKSTEP, Runtime, package_name, release_line
from framework.models.workloads import HardwareRequirements, Workload

__all__ = [
    "DEFAULT_CLASS_FIELDS",
    "DEFAULT_LOCKSTEP",
    "FILE_MODELS",
    "FUNCTION_PATTERN",
    "MAX_BYTES",
    "MAX_PARAMETER_INT",
    "MAX_SECONDS",
    "NAME_PATTERN",
    "PYTHON_PATTERN",
    "SELECTOR_PATTERN",
    "TAG_PATTERN",
    "AddressHardware",
    "Bytes",
    "CoiledHardware",
    "FunctionPath",
    "HardwareFile",
    "HardwareProfile",
    "HardwareRequirements",
    "LocalHardware",
    "MachinePool",
    "MachinesFile",
    "MatricesFile",
    "Matrix",
    "MatrixRule",
    "Name",
    "Runtime",
    "RuntimesFile",
    "Seconds",
    "Selector",
    "StrictModel",
    "TLSSecurity",
    "Tag",
    "Workload",
    "WorkloadFile",
    "package_name",
    "release_line",
]
