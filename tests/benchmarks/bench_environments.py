"""What deciding and building a runtime's environment costs. A benchmark that prints figures; it asserts nothing.

Interleaved, REPEATS rounds, medians (uv's cache is warm after the first round; the machine is shared and noisy):

    decide, kept lock      resolve() of `stable` (as_of: its lock is kept) — deciding that nothing changed
    decide, fresh window   resolve() of `latest` inside DASK_BLESSING_RESOLVE_TTL (its resolution reused)
    decide, re-resolve     resolve() of `latest` with DASK_BLESSING_RESOLVE_TTL=0 (uv pip compile + index lookup)
    reuse                  build_environment() of an unchanged lock: decide + find the complete environment
    rebuild                build_from_lock(rebuild=True) of `stable` (uv venv + uv pip sync from uv's cache)
    health                 check_health() of `stable` (imports, lockstep, one-worker cluster), and right after a
                           rebuild (when the first imports also write every module's .pyc)

    nox -s bench -- environments
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from framework.config import ROOT, load_catalog
from framework.environments import build_from_lock
from framework.health import check_health
from framework.resolution import TTL_VARIABLE, build_environment, resolve

REPEATS = 5


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> None:
    catalog = load_catalog()
    stable, latest = catalog.runtimes["stable"], catalog.runtimes["latest"]
    figures: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-environments-") as folder:
        root = Path(folder)
        stable_lock = resolve(stable, root).lock  # the first resolution and build of each: not counted
        build_environment(stable, root)
        build_environment(latest, root)
        for round_ in range(REPEATS):
            os.environ[TTL_VARIABLE] = "600"
            figures.setdefault("decide, kept lock (stable)", []).append(timed(lambda: resolve(stable, root)))
            figures.setdefault("decide, fresh window (latest)", []).append(timed(lambda: resolve(latest, root)))
            os.environ[TTL_VARIABLE] = "0"
            figures.setdefault("decide, re-resolve (latest)", []).append(timed(lambda: resolve(latest, root)))
            os.environ[TTL_VARIABLE] = "600"
            figures.setdefault("decide + reuse (stable)", []).append(timed(lambda: build_environment(stable, root)))
            figures.setdefault("decide + reuse (latest, fresh window)", []).append(
                timed(lambda: build_environment(latest, root))
            )
            built = build_environment(stable, root)
            figures.setdefault("health check (stable)", []).append(timed(lambda env=built: check_health(env, ROOT)))
            figures.setdefault("rebuild from the lock (stable)", []).append(
                timed(lambda: build_from_lock(stable, stable_lock, root, rebuild=True))
            )
            # The first imports after a build also write every module's .pyc (uv pip sync does not compile).
            figures.setdefault("health check after a rebuild (stable)", []).append(
                timed(lambda env=built: check_health(env, ROOT))
            )
            print(f"round {round_ + 1}/{REPEATS} done", flush=True)
    os.environ.pop(TTL_VARIABLE, None)
    width = max(len(name) for name in figures)
    print(f"\n{'step':<{width}}  median    min    max  (s, {REPEATS} rounds, interleaved)")
    for name, values in figures.items():
        print(f"{name:<{width}}  {statistics.median(values):6.2f} {min(values):6.2f} {max(values):6.2f}")


if __name__ == "__main__":
    main()
