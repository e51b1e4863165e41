"""Parameters that scale with the cluster: one declaration serves a laptop and a 10-worker cluster.

In a workload's YAML, a parameter may be a one-key mapping resolved by the runner once the cluster is up:

    target_bytes: {fraction_of_cluster_memory: 0.5}   # int bytes: 0.5 × the sum of the workers' memory limits
    npartitions: {per_worker: 4}                      # int: 4 × the number of workers
    nchunks: {per_thread: 2}                          # int: 2 × the number of worker threads

Standard library only: used by the models (to validate) and by the runner (to resolve).
"""

from __future__ import annotations

import math
from typing import Any, Optional

SCALES = ("fraction_of_cluster_memory", "per_worker", "per_thread")
# Beyond these a factor is a typo: 100 × the cluster's memory fills any disk; counts per worker or thread may be rows
# (ml.yaml: 2·10⁶ per worker), but 10¹² of anything per worker is no plan.
MAX_FACTORS = {"fraction_of_cluster_memory": 100.0, "per_worker": 1e12, "per_thread": 1e12}


def scale_of(value: Any) -> Optional[tuple[str, float]]:
    """(scale, factor) when ``value`` is a scaled parameter, else None."""
    if isinstance(value, dict) and len(value) == 1:
        [(key, factor)] = value.items()
        if key in SCALES:
            return key, factor
    return None


def scale_problem(value: Any) -> Optional[str]:
    """Why a mapping that names a scale is malformed, or None."""
    if not isinstance(value, dict) or not set(value) & set(SCALES):
        return None
    if len(value) != 1:
        return f"a scaled parameter has exactly one key (one of {', '.join(SCALES)}), got {sorted(value)}"
    [(key, factor)] = value.items()
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not factor > 0:
        return f"{key} needs a positive number, got {factor!r}"
    if not factor <= MAX_FACTORS[key]:
        return f"{key} is at most {MAX_FACTORS[key]:g}, got {factor!r}"
    return None


class ScalingError(ValueError):
    """The cluster does not say what a scaled parameter needs (e.g. workers without a memory limit)."""


def resolve_params(params: dict[str, Any], shape: dict[str, Any]) -> dict[str, Any]:
    """Replace scaled parameters with concrete numbers for a cluster of ``shape`` (see ClusterSession.shape)."""
    resolved = {}
    for name, value in params.items():
        scaled = scale_of(value)
        if scaled is None:
            resolved[name] = value
            continue
        key, factor = scaled
        if key == "fraction_of_cluster_memory":
            memory = shape.get("cluster_memory_limit_bytes")
            if not memory:
                raise ScalingError(
                    f"parameter {name}: {key} needs workers with a memory limit, and this cluster's have none"
                    " — give the workers --memory-limit, or declare the size in bytes"
                )
            resolved[name] = max(1, int(factor * memory))
        else:
            count = shape.get("cluster_workers" if key == "per_worker" else "cluster_threads")
            if not count:
                raise ScalingError(f"parameter {name}: {key} needs at least one worker, and the cluster has none")
            resolved[name] = max(1, math.ceil(factor * count))
    return resolved
