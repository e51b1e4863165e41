"""distributed#8702: tasks queued on a dependency stay queued after that dependency's data is lost with a worker.

With queuing on (worker-saturation 1.0), ten tasks that all depend on one small task are root-ish: they queue
behind the single worker's only thread. The first of them blocks on an event, so the rest stay queued. Then
the worker closes: the dependency's only copy is gone and it must be computed again, so the queued tasks must
go back to waiting for it. Up to 2024.6.0 they stay "queued" — the scheduler's own validate_state() then fails
with ('dep missing', <queued task>, <its lost dependency>), and they never run: a hang with tasks queued and
waiting, even after a new worker joins — reported fixed in 2024.6.1. Seen on
2022.10.1 by the stability fuzzer (close_worker on a one-worker cluster with a nested graph). This script: bad on
2022.10.1 and 2024.6.0 (validate_state fails and the queued tasks never finish), good on 2024.6.1 and 2026.3.0.

No chaos harness: a LocalCluster in this process, a submit, a worker closed, the scheduler's own check, a wait. Exit 1
if the bug is present, 0 if not, 2 on any other error.
"""

import asyncio
import concurrent.futures
import sys
import time
import traceback

import dask
import distributed
from distributed import Client, Event, LocalCluster, wait

TASKS = 10


def source():
    return 1


def dependent(value, index):
    if index == 0:
        Event("release-first").wait(30)  # hold the only thread: the other nine stay queued
    return value + index


def task_states(dask_scheduler):
    return {key: task.state for key, task in dask_scheduler.tasks.items()}


def check(dask_scheduler):
    try:
        dask_scheduler.validate_state()
    except AssertionError as error:
        return f"{error!r}"
    return None


def main():
    config = {"distributed.scheduler.worker-saturation": 1.0, "distributed.scheduler.work-stealing": False}
    with (
        dask.config.set(config),
        LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        src = client.submit(source, key="source")
        wait(src, timeout=10)
        futures = [client.submit(dependent, src, i, key=f"dependent-{i}") for i in range(TASKS)]
        states = {}
        for _ in range(200):  # until the scheduler has given out the worker's slots and queued the rest
            states = client.run_on_scheduler(task_states)
            dependents = [states.get(f"dependent-{i}") for i in range(TASKS)]
            if all(state in ("processing", "queued") for state in dependents) and "queued" in dependents:
                break
            time.sleep(0.05)
        else:
            print(f"set-up: the dependents never queued (states: {states})")
            return 2
        worker = next(iter(cluster.workers.values()))
        cluster.sync(worker.close)  # the source's only copy goes with it
        problem = client.run_on_scheduler(check)
        cluster.scale(1)  # a worker again, and let everything finish
        Event("release-first", client=client).set()
        try:
            wait(futures, timeout=20)
        except (asyncio.TimeoutError, concurrent.futures.TimeoutError):  # raised, or the pending set returned
            pass
        states = client.run_on_scheduler(task_states)
        pending = [future for future in futures if future.status == "pending"]
        if problem or pending:
            stuck = ", ".join(sorted({states.get(future.key, "?") for future in pending}))
            print(
                f"distributed {distributed.__version__}: BUG PRESENT — after the worker closed,"
                + (f" the scheduler's validate_state() fails: {problem};" if problem else "")
                + (f" {len(pending)} of {TASKS} tasks never finish (their states: {stuck})" if pending else "")
            )
            return 1
        values = client.gather(futures)
        if values != [1 + i for i in range(TASKS)]:
            print(f"distributed {distributed.__version__}: wrong results after the worker closed: {values}")
            return 1
        print(f"distributed {distributed.__version__}: ok — state valid after the worker closed; all {TASKS} finished")
        return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:
        traceback.print_exc()
        sys.exit(2)
