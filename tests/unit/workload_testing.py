"""What the workload test modules share: a case's declared params, its function, and a leak-checked cluster."""

from __future__ import annotations

import contextlib
import importlib
import threading
import time
from collections.abc import Iterator
from typing import Any, Callable

from framework.config import load_catalog
from framework.matrix import expand_workload

# distributed's offload executor is a process-wide pool that outlives every cluster, by design.
ALWAYS_ALLOWED_THREADS = ("Dask-Offload",)


def tiny_cases(workload: str) -> list[dict[str, Any]]:
    """The params of every case of ``workload`` at size tiny, as its YAML declares them."""
    cases, reason = expand_workload(load_catalog().workloads[workload], "tiny")
    assert reason is None, reason
    return [case.params for case in cases]


def tiny_params(workload: str, **grid: Any) -> dict[str, Any]:
    """The params of the one tiny case of ``workload`` whose grid values are ``grid``."""
    matching = [params for params in tiny_cases(workload) if all(params.get(k) == v for k, v in grid.items())]
    assert len(matching) == 1, f"{workload} {grid}: {len(matching)} tiny cases"
    return matching[0]


def workload_function(workload: str) -> Callable[..., dict[str, float]]:
    """The function the workload's YAML names, imported as the runner imports it."""
    module, _, name = load_catalog().workloads[workload].function.partition(":")
    function: Callable[..., dict[str, float]] = getattr(importlib.import_module(module), name)
    return function


@contextlib.contextmanager
def in_process_client(allowed_threads: tuple[str, ...] = (), **cluster_kwargs: Any) -> Iterator[Any]:
    """An in-process LocalCluster and its client; afterwards no thread they started may be left running.

    ``allowed_threads``: name prefixes of process-wide threads a library keeps on purpose (fsspec's loop, zarr's).
    """
    from distributed import Client, LocalCluster

    options = {
        "processes": False,
        "n_workers": 2,
        "threads_per_worker": 1,
        "memory_limit": "2GiB",
        "dashboard_address": ":0",
        **cluster_kwargs,
    }
    threads_before = {thread.ident for thread in threading.enumerate()}
    cluster = LocalCluster(**options)
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()
    allowed = ALWAYS_ALLOWED_THREADS + tuple(allowed_threads)
    deadline = time.monotonic() + 10
    while True:
        leaked = [
            thread.name
            for thread in threading.enumerate()
            if thread.ident not in threads_before and not thread.name.startswith(allowed)
        ]
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not leaked, f"threads left running after the cluster closed: {leaked}"
