"""dask-blessing: is a Dask runtime fit for production? The front door for workload authors and the noxfile.

Imports are lazy: the runner imports ``framework.in_runtime.runner`` inside runtime environments that may lack the
controller's dependencies (pydantic, pyarrow, duckdb), so importing ``framework`` itself costs nothing.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    # workload authors
    "check": "framework.in_runtime.checks",
    "check_close": "framework.in_runtime.checks",
    "WorkloadCheckFailed": "framework.in_runtime.checks",
    # models and config
    "Workload": "framework.models",
    "Runtime": "framework.models",
    "Matrix": "framework.models",
    "LocalHardware": "framework.models",
    "AddressHardware": "framework.models",
    "CoiledHardware": "framework.models",
    "load_catalog": "framework.config",
    "Catalog": "framework.config",
    # pipeline
    "Selection": "framework.matrix",
    "build_plan": "framework.matrix",
    "Results": "framework.query",
    "FrameworkError": "framework.in_runtime.errors",
}

__all__ = [
    "AddressHardware",
    "Catalog",
    "CoiledHardware",
    "FrameworkError",
    "LocalHardware",
    "Matrix",
    "Results",
    "Runtime",
    "Selection",
    "Workload",
    "WorkloadCheckFailed",
    "build_plan",
    "check",
    "check_close",
    "load_catalog",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'framework' has no attribute {name!r}")
