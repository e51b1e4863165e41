"""distributed#7223: under queuing, a task that secede()s never hands its slot to a queued task — a deadlock.

With queuing on (worker-saturation 1.0), a root-ish group of ten tasks on three one-thread workers gets three
tasks processing and seven queued. Each of the first nine secedes and waits for the tenth, which only sets an
event. A seceded task no longer holds its thread, so the scheduler must start queued tasks in the freed slots;
2022.10.0 and 2022.10.1 do not (the worker reports the secede, but the scheduler never looks at its queue), and
nothing ever runs the tenth task. Fixed in 2022.10.2 (dask/distributed#7224).

No chaos harness: a LocalCluster in this process, one submit, one wait. Exit 1 if the bug is present (nothing
finishes within 20 s), 0 if not, 2 on any other error.
"""

import asyncio
import concurrent.futures
import sys
import traceback

import dask
import distributed
from distributed import Client, Event, LocalCluster, secede, wait

TASKS = 10


def task(index):
    if index == TASKS - 1:
        Event("last-ran").set()
        return index
    secede()  # frees this worker's only thread: a queued task may start in it
    if not Event("last-ran").wait(30):
        raise RuntimeError("the last task never ran")
    return index


def main():
    config = {"distributed.scheduler.worker-saturation": 1.0, "distributed.scheduler.work-stealing": False}
    with (
        dask.config.set(config),
        LocalCluster(n_workers=3, threads_per_worker=1, processes=False, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        futures = client.map(task, range(TASKS), key=[f"root-{i}" for i in range(TASKS)])
        try:
            wait(futures, timeout=20)
        except (asyncio.TimeoutError, concurrent.futures.TimeoutError):  # raised, or the pending set returned
            pass
        pending = [future for future in futures if future.status == "pending"]
        if pending:
            states = client.run_on_scheduler(
                lambda dask_scheduler: sorted({dask_scheduler.tasks[f.key].state for f in pending})
            )
            print(
                f"distributed {distributed.__version__}: BUG PRESENT — {len(pending)} of {TASKS} tasks neither"
                f" finished nor erred in 20 s; their scheduler states: {', '.join(states)}"
            )
            Event("last-ran", client=client).set()  # let the seceded tasks end, so the cluster closes
            return 1
        print(f"distributed {distributed.__version__}: ok — all {TASKS} tasks finished")
        return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:
        traceback.print_exc()
        sys.exit(2)
