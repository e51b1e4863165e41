"""Tiny workloads for the runner's integration tests, one per outcome the runner must record.

The runner imports workloads by dotted path (``fixtures_workloads:passes``), so this directory is put on
``sys.path`` (and on ``PYTHONPATH`` for worker processes) by the ``fixture_workloads`` fixture.
"""

from __future__ import annotations

import os
import time


def passes(n: int = 200_000, chunk: int = 20_000) -> dict[str, float]:
    """A small array sum checked against its closed form."""
    import dask.array as da

    from framework.in_runtime.checks import check

    total = da.arange(n, chunks=chunk, dtype="float64").sum().compute()
    check(total == n * (n - 1) / 2, f"sum of 0..{n - 1}: got {total}")
    return {"elements": float(n)}


def raises(message: str = "deliberate failure from fixtures_workloads.raises") -> None:
    raise ValueError(message)


def fails_check() -> None:
    """Runs a computation, then finds its answer wrong."""
    import dask.array as da

    from framework.in_runtime.checks import check

    total = da.ones(10, chunks=5).sum().compute()
    check(total == 11, f"expected 11 ones, counted {total:g}")


def sleeps(seconds: float) -> None:
    """Holds a worker thread in a task longer than the case timeout."""
    import dask

    dask.delayed(time.sleep)(seconds).compute()


def _worker_settings(key: str, env_name: str) -> tuple[float, str]:
    import dask

    return dask.config.get(key, None), os.environ.get(env_name)


def reports_settings(key: str, env_name: str) -> dict[str, float]:
    """What every worker sees of a Dask config key and an environment variable (numbers, as extra metrics)."""
    from distributed import get_client

    from framework.in_runtime.checks import check

    seen = get_client().run(_worker_settings, key, env_name)
    check(len(seen) > 0, "no worker answered")
    config_values = [float(config) for config, _ in seen.values()]
    env_values = [float(env) for _, env in seen.values()]
    return {
        "workers": float(len(seen)),
        "config_min": min(config_values),
        "config_max": max(config_values),
        "env_min": min(env_values),
        "env_max": max(env_values),
    }


def spills(n: int, chunk: int) -> dict[str, float]:
    """Persist ``n`` float64s (more than the workers may keep in memory), then reduce them."""
    import dask.array as da
    from distributed import wait

    from framework.in_runtime.checks import check

    data = da.arange(n, chunks=chunk, dtype="float64").persist()
    wait(data)
    total = data.sum().compute()
    check(total == n * (n - 1) / 2, f"sum of 0..{n - 1}: got {total}")
    return {"bytes": float(n * 8)}


def _hold(mib: int, seconds: float) -> int:
    import numpy as np

    block = np.ones(mib * 2**20 // 8)  # touched pages: resident, not just reserved
    time.sleep(seconds)
    return int(block.size)


def holds_memory(mib: int, seconds: float, tasks: int) -> dict[str, float]:
    """``tasks`` tasks each hold ``mib`` MiB for ``seconds`` — shorter than a heartbeat if asked."""
    from distributed import get_client

    client = get_client()
    futures = [client.submit(_hold, mib, seconds, pure=False) for _ in range(tasks)]
    return {"held": float(sum(client.gather(futures)))}


FIXTURE_EVENTS: list[str] = []


def gives_a_token():
    """A fixture: set up once around all executions of a case, yields parameters, torn down after."""
    FIXTURE_EVENTS.append("setup")
    try:
        yield {"token": "from-the-fixture"}
    finally:
        FIXTURE_EVENTS.append("teardown")


def broken_fixture():
    raise RuntimeError("the server would not start")
    yield {}  # pragma: no cover - makes this a generator


def echoes(token: str, target_bytes: int, partitions: int) -> dict[str, float]:
    """Returns what it was given, so the test can see the fixture's and the resolved parameters."""
    from framework.in_runtime.checks import check

    check(token == "from-the-fixture", f"token {token!r}")
    return {"target_bytes": float(target_bytes), "partitions": float(partitions), "events": float(len(FIXTURE_EVENTS))}


def blocks_event_loop(where: str, seconds: float) -> dict[str, float]:
    """Hold the scheduler's (``where="scheduler"``) or every worker's event loop for ``seconds``: a function run
    with ``run_on_scheduler`` / ``run`` runs on the server's loop, so nothing else runs there meanwhile."""
    from distributed import get_client

    client = get_client()
    if where == "scheduler":
        client.run_on_scheduler(time.sleep, seconds)
    else:
        client.run(time.sleep, seconds)
    return {"blocked_s": seconds}
