"""The calibration workload: a known amount of memory and a known amount of work, each with a knob that adds x %.

It exists to prove the statistics (``tests/benchmarks/bench_calibration.py``): a comparison of
``extra_memory_percent=0`` against ``extra_memory_percent=5`` is a 5 % shift of the memory the case holds, whose
effect on the measured peak is known, so detection rates and false alarms can be counted on this machine.
"""

from __future__ import annotations

MiB = 2**20


def _hold_and_work(nbytes: int, work_bytes: int, hold_s: float, value: float) -> dict[str, float]:
    """On one worker: fill ``nbytes`` of memory, hash ``work_bytes`` of data while holding it, then sum it."""
    import hashlib
    import time

    import numpy as np

    held = np.full(nbytes // 8, value)  # np.full writes every page: the memory is resident, not just reserved
    block = np.arange(MiB // 8, dtype="float64").tobytes()
    digest = hashlib.sha256()
    hashing = time.perf_counter()
    for _ in range(work_bytes // MiB):
        digest.update(block)  # releases the GIL; a fixed cost per MiB, whatever else the worker does
    remainder = work_bytes % MiB
    if remainder:
        digest.update(block[:remainder])
    hashing = time.perf_counter() - hashing
    time.sleep(hold_s)  # long enough for the 10 ms memory probe to see the plateau
    return {"sum": float(held.sum()), "elements": float(held.size), "hashed": float(work_bytes), "hash_s": hashing}


def known_shift(
    mib_per_worker: float,
    work_mib_per_worker: float,
    extra_memory_percent: float = 0.0,
    extra_work_percent: float = 0.0,
    hold_ms: float = 300.0,
    arm: str = "a",
) -> dict[str, float]:
    """Every worker holds ``mib_per_worker`` MiB (+ x %) and hashes ``work_mib_per_worker`` MiB (+ y %).

    ``arm`` only names a case: two arms with equal parameters are an A/A pair measured side by side.
    Checks that every worker held and hashed exactly what was asked.
    """
    from distributed import get_client

    from framework.in_runtime.checks import check, check_close

    check(extra_memory_percent >= 0 and extra_work_percent >= 0, "extra percentages must be ≥ 0")
    client = get_client()
    workers = sorted(client.nthreads())  # asked of the scheduler now (see workloads/system.py _workers)
    nbytes = int(mib_per_worker * MiB * (1 + extra_memory_percent / 100)) // 8 * 8
    work = int(work_mib_per_worker * MiB * (1 + extra_work_percent / 100))
    futures = [
        client.submit(_hold_and_work, nbytes, work, hold_ms / 1000, float(index + 1), workers=[address], pure=False)
        for index, address in enumerate(workers)
    ]
    results = client.gather(futures)
    for index, result in enumerate(results):
        check(result["hashed"] == work, f"worker {index} hashed {result['hashed']:.0f} bytes, not {work}")
        check_close(result["sum"], (index + 1) * (nbytes // 8), f"worker {index}'s held sum", rtol=1e-12)
    return {
        "held_bytes_per_worker": float(nbytes),
        "hashed_bytes_per_worker": float(work),
        "workers": float(len(workers)),
        # the slowest worker's hashing: the share of the wall time the work knob scales
        "hash_seconds": max(result["hash_s"] for result in results),
        "arm_b": float(arm == "b"),
    }
