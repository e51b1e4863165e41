"""A tree of tasks released and resubmitted at once ends with its result cancelled, though nobody cancelled it.

A client submits a 23-node reduction tree one task at a time (children before parents; each task secedes a moment
and opens a worker_client child), keeps only the root's future, then eight times drops it and submits the same keys
again, 5 ms apart — what a notebook re-run or a retrying service does. On distributed 2024.6.1 the scheduler's
update_graph sometimes meets a released task with no run_spec (`assert ts.run_spec` in
_transition_released_waiting), the client's stream handler dies on that AssertionError, and the root future ends
"cancelled" (2024.8.0 tripped `assert sts.priority` in _set_priorities the same way). The stability fuzzer found it
(a `flap` of a tree: 3 of 3 replays on 2024.6.1, 0 of 3 on 2026.3.0). A bisect with 3 replays per release named
2024.8.1 as fixed; this script shows 2024.8.1 still bad — the fix lies between 2024.8.1 and 2024.10.0.

No chaos harness: up to 10 rounds on fresh in-process LocalClusters (3 one-thread workers, queuing on, validation
on as in the fuzzer's program), each submitting the tree and then 8 times again. Seen: bad on 2024.6.1, 2024.8.0 and
2024.8.1 (first failing round 7, 3 and 7); good on 2024.10.0, 2025.3.1 and 2026.3.0 (0 of 10 rounds each). Exit 1
if the bug is present (a round's root future did not finish), 0 if not, 2 on any other error.
"""

import logging
import sys
import time
import traceback

import dask
import distributed
from distributed import Client, LocalCluster, rejoin, secede, wait, worker_client

NODES = 23
ROUNDS = 10
RESUBMITS = 8  # the fuzzer's program had 4; 8 makes the window show within a few rounds on a quiet machine


def node(index, *children):
    secede()
    time.sleep(0.005)
    rejoin()
    with worker_client() as client:
        value = client.submit(lambda x: x, index, key=f"child-{index}", pure=False).result()
    return value + sum(children)


def submit_tree(client):
    """Children before parents, one submit each; only the root's future is kept."""
    futures = {}
    for index in reversed(range(NODES)):
        children = [futures[child] for child in (2 * index + 1, 2 * index + 2) if child < NODES]
        futures[index] = client.submit(node, index, *children, key=f"tree-{index}", retries=2)
    return futures[0]


class Errors(logging.Handler):
    def __init__(self):
        super().__init__(logging.ERROR)
        self.lines = []

    def emit(self, record):
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            where = traceback.extract_tb(record.exc_info[2])[-1]
            self.lines.append(f"{type(error).__name__} in {where.name} ({where.line})")


def main():
    errors = Errors()
    logging.getLogger("distributed.scheduler").addHandler(errors)
    config = {
        "distributed.scheduler.worker-saturation": 1.1,
        "distributed.scheduler.work-stealing": False,
        # as the fuzzer's program had it: validation slows every transition, which widens the window
        "distributed.scheduler.validate": True,
        "distributed.worker.validate": True,
    }
    expected = sum(range(NODES))
    for round_ in range(1, ROUNDS + 1):
        with (
            dask.config.set(config),
            LocalCluster(n_workers=3, threads_per_worker=1, processes=False, dashboard_address=None) as cluster,
            Client(cluster) as client,
        ):
            root = submit_tree(client)
            for _ in range(RESUBMITS):  # drop the only reference and submit the same keys again
                del root
                root = submit_tree(client)
                time.sleep(0.005)
            try:
                wait([root], timeout=30)
            except Exception:
                pass
            status = root.status
            value = root.result() if status == "finished" else None
        if status != "finished" or value != expected:
            seen = "; ".join(dict.fromkeys(errors.lines)) or "no scheduler error logged"
            print(
                f"distributed {distributed.__version__}: BUG PRESENT — round {round_}: the root's future ended"
                f" {status!r} (value {value!r}, expected {expected}); the scheduler logged: {seen}"
            )
            return 1
    print(f"distributed {distributed.__version__}: ok — {ROUNDS} rounds, the root finished with {expected} each time")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:
        traceback.print_exc()
        sys.exit(2)
