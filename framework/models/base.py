"""What every declared model shares: name and tag patterns, durations, byte sizes, the strict base model."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ByteSize,
    ConfigDict,
    Field,
    model_validator,
)
from pydantic_core import PydanticCustomError

from framework.in_runtime.errors import did_you_mean

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


def quantity_problem(value: Any, is_size: bool) -> str | None:
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


def check_json_value(value: Any, where: str) -> None:
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


class StrictModel(BaseModel):
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
                    hint = did_you_mean(str(key), visible)
                    raise PydanticCustomError(
                        "unknown_field",
                        "unknown field {key} — {hint}allowed: {allowed}",
                        {"key": repr(key), "hint": hint, "allowed": ", ".join(visible)},
                    )
        return data
