"""Keys released and submitted again at once: the new futures are cancelled, lost or refused, by the old ones' release.

A client submits a small DAG one task at a time (each task's dependencies are the futures it just got back), keeps
only the sinks, then drops them and submits the same keys again, a few ms apart — what a notebook re-run or a
retrying service does. The new futures must simply finish. On old releases what the scheduler does about the old
keys' release reaches the new futures: on 2022.10.2 the next ``client.submit`` that depends on one raises
``CancelledError: <key>`` from ``__dask_distributed_pack__`` (the program cancelled nothing — the stability fuzzer met
it: a ``flap`` of a DAG, failure 20261207T010029Z-2d6d7c-dask-2022.10.2-inprocess), or a sink ends ``lost`` or
``error``; on 2024.6.1 sinks end ``cancelled`` (the family of ``resubmitted_tree_cancelled.py``, fixed by 2024.10.0).
Timing decides: a thread keeping the interpreter busy (the fuzzer's loaded machine, in miniature) widens the window.
Seen: bad on 2022.10.2 (2 of 3 runs: a sink lost in round 2, in round 10) and 2024.6.1 (round 3: four sinks
cancelled); good on 2025.1.0 and 2026.3.0 (2 runs each, 30 of 30 rounds).

No chaos harness: up to 30 rounds on fresh in-process LocalClusters (3 one-thread workers), each submitting the DAG
and then 8 times again. Exit 1 if the bug is present (a submit raised CancelledError, or a sink did not finish with
its value), 0 if not, 2 on any other error.
"""

import concurrent.futures
import random
import sys
import threading
import time
import traceback

import distributed
from distributed import Client, LocalCluster, wait

NODES = 12
ROUNDS = 30
RESUBMITS = 8


def add(index, *values):
    time.sleep(0.002)
    return index + sum(values)


def graph(seed):
    """Each node's dependencies (up to 3 earlier nodes), as the fuzzer's ``dag`` draws them."""
    rng = random.Random(seed)
    return [rng.sample(range(index), k=min(index, rng.randint(0, 3))) for index in range(NODES)]


def expected(deps):
    values = []
    for index, parents in enumerate(deps):
        values.append(index + sum(values[parent] for parent in parents))
    return values


def submit(client, deps):
    futures = {}
    for index, parents in enumerate(deps):
        futures[index] = client.submit(add, index, *(futures[parent] for parent in parents), key=f"dag-{index}")
    sinks = set(range(NODES)) - {parent for parents in deps for parent in parents}
    return {index: futures[index] for index in sorted(sinks)}


def outcome(future):
    if future.status == "finished":
        return future.result()
    if future.status == "error":
        return repr(future.exception())[:200]
    return None


def busy(stop):
    """A thread that keeps the interpreter busy: the fuzzer's loaded machine, in miniature (widens the window)."""
    while not stop.is_set():
        sum(range(10_000))


def main():
    stop = threading.Event()
    threading.Thread(target=busy, args=(stop,), daemon=True).start()
    deps = graph(5)
    values = expected(deps)
    for round_ in range(1, ROUNDS + 1):
        with (
            LocalCluster(n_workers=3, threads_per_worker=1, processes=False, dashboard_address=None) as cluster,
            Client(cluster) as client,
        ):
            sinks = submit(client, deps)
            try:
                for _ in range(RESUBMITS):
                    sinks.clear()  # drop the only references, then the same keys again
                    sinks = submit(client, deps)
                    time.sleep(0.005)
            except concurrent.futures.CancelledError as error:
                print(
                    f"distributed {distributed.__version__}: BUG PRESENT — round {round_}: submitting the same keys"
                    f" again raised CancelledError({error}): a dependency's new future was cancelled, though the"
                    " program cancelled nothing"
                )
                return 1
            try:
                wait(list(sinks.values()), timeout=30)
            except Exception:
                pass
            got = {index: (future.status, outcome(future)) for index, future in sinks.items()}
        wrong = {index: got[index] for index in got if got[index] != ("finished", values[index])}  # fmt: skip
        if wrong:
            print(
                f"distributed {distributed.__version__}: BUG PRESENT — round {round_}: sinks did not finish with"
                f" their values: {wrong}"
            )
            return 1
    print(f"distributed {distributed.__version__}: ok — {ROUNDS} rounds, every submit accepted and every sink right")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:
        traceback.print_exc()
        sys.exit(2)
