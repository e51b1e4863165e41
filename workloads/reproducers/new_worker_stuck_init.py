"""A worker that joins a scheduler whose occupancy went negative stays ``init`` for good (fixed by distributed#8991).

Once the scheduler's count of processing tasks of a group (a prefix since 2022.11) is below zero, its total occupancy
is negative and ``SchedulerState._calc_occupancy`` fails ``assert occ >= 0``. On 2022.10.x ``Scheduler.add_worker``
calls ``check_idle_saturated`` (which reads ``total_occupancy``) after it has put the new worker in
``Scheduler.workers`` with status ``init`` but before it answers the registration and starts the worker's stream:
the exception ends the handler, the worker waits for the reply forever (no timeout), never reports ``running``, and
the scheduler lists it as ``init`` while tasks wait for a worker. From 2022.11.0 (the occupancy is computed only when
needed) the same worker is accepted, then dropped as soon as its ``running`` status schedules a task. The count goes
below zero as ``stale_long_running.py`` shows: a seceded task's long-running message, held on worker A's stream,
reaches the scheduler after the task was released and resubmitted to worker B, and B's count is decremented twice.
2025.2.0 ignores such stale messages (distributed#8991; it also stops asserting on negative occupancy outside
validation, distributed#9012). The stability fuzzer met the ``init`` face on 2022.10.1: "tree0-40=waiting; workers: 3
init" (failure 20261207T013535Z-70db2d-dask-2022.10.1-inprocess; its cluster log holds ``AssertionError: -0.0072…``
for each worker's stream and then for the new worker's ``register-worker``). This script: bad on 2022.10.1 and
2022.10.2 (the new worker stays ``init``), on 2022.11.0, 2023.1.0 and 2025.1.0 (it is dropped); good on 2025.2.0 and
2026.3.0.

No chaos harness: a LocalCluster in this process, distributed Events and a held batched stream (no timing luck).
Exit 1 if the bug is present, 0 if not, 2 on any other error.
"""

import asyncio
import sys
import time
import traceback

import dask
import distributed
from distributed import Client, Event, LocalCluster, Worker, secede

NEW_WORKER_WAIT_S = 10  # a healthy worker registers in well under a second


def seceding(key_name):
    Event(f"{key_name}-started").set()
    Event(f"{key_name}-secede").wait(30)
    secede()
    Event(f"{key_name}-finish").wait(30)
    return 123


def quick():
    return 2


def worker_task_state(worker, key):
    tasks = getattr(getattr(worker, "state", None), "tasks", None) or worker.tasks
    task = tasks.get(key)
    return getattr(task, "state", None)


def scheduler_view(dask_scheduler):
    """Worker address → status, task key → state, and the total occupancy (or the exception computing it raises)."""
    try:
        occupancy = repr(dask_scheduler.total_occupancy)
    except Exception as error:
        occupancy = f"raises {error!r}"
    workers = {address: ws.status.name for address, ws in dask_scheduler.workers.items()}
    tasks = {key: ts.state for key, ts in dask_scheduler.tasks.items()}
    return workers, tasks, occupancy


def wait_until(predicate, what, explain=lambda: "", timeout=20):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"set-up: {what} did not happen within {timeout} s {explain()}")
        time.sleep(0.02)


async def _send(send, messages):
    send(*messages)


def stale_long_running(cluster, client, a, b):
    """x secedes on A with A's stream held, is released and resubmitted to B; then A's stale message arrives."""
    x = client.submit(seceding, "x", key="x", workers=[a.address])
    Event("x-started", client=client).wait(20)
    stream, sent = a.batched_stream, []
    original_send = stream.send
    stream.send = lambda *messages: sent.extend(messages)
    try:
        Event("x-secede", client=client).set()
        wait_until(lambda: worker_task_state(a, "x") == "long-running", "x seceding on worker A")
        x.release()  # released while the scheduler still thinks it is running on A
        del x
        wait_until(lambda: "x" not in client.run_on_scheduler(scheduler_view)[1], "x released")
        for name in ("x-started", "x-secede", "x-finish"):
            Event(name, client=client).clear()
        x = client.submit(seceding, "x", key="x", workers=[b.address])  # the same key again, now on B
        Event("x-started", client=client).wait(20)
    finally:
        stream.send = original_send
        if sent:
            cluster.sync(lambda: _send(original_send, sent))  # A's stale "long-running" (and the rest) arrive now
    time.sleep(0.5)
    Event("x-secede", client=client).set()  # x secedes on B: its own long-running message
    wait_until(lambda: worker_task_state(b, "x") == "long-running", "x seceding on worker B")
    time.sleep(0.5)
    Event("x-finish", client=client).set()  # let both copies of x end: nothing below depends on them
    x.release()


def main():
    # Work stealing off: it must not move x between the workers behind the script's back.
    with (
        dask.config.set({"distributed.scheduler.work-stealing": False}),
        LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        a, b = sorted(cluster.workers.values(), key=lambda worker: worker.address)
        # Another task of x's group, held: the group outlives x, as a graph's groups outlive one of their tasks.
        keep = client.submit(quick, key="x-0")
        keep.result(timeout=20)
        # y can run only on the worker that joins later (a resource only it has): it waits, as the fuzzer's did.
        y = client.submit(quick, key="y", resources={"NEW": 1})
        stale_long_running(cluster, client, a, b)
        occupancy_after_race = client.run_on_scheduler(scheduler_view)[2]

        # Both workers go, as the fuzzer's did (dropped by the scheduler, or closed). No submit from here on: with
        # the occupancy negative, 2022.10.x's update_graph fails (`if self.total_occupancy > 1e-9`): the client drops.
        for worker in (a, b):
            cluster.sync(worker.close)
        wait_until(lambda: not client.run_on_scheduler(scheduler_view)[0], "both workers leaving the scheduler")

        # A new worker joins. death_timeout: a worker whose registration is never answered gives up by itself.
        async def start_new():
            new = Worker(
                cluster.scheduler_address, nthreads=1, resources={"NEW": 1}, death_timeout=NEW_WORKER_WAIT_S + 5
            )
            try:
                await new
            except Exception as error:  # its start timed out: the registration was never answered
                return repr(error), None
            return "started", new

        start = asyncio.run_coroutine_threadsafe(start_new(), cluster.loop.asyncio_loop)
        deadline = time.monotonic() + NEW_WORKER_WAIT_S
        workers, tasks, occupancy = client.run_on_scheduler(scheduler_view)
        while time.monotonic() < deadline:
            workers, tasks, occupancy = client.run_on_scheduler(scheduler_view)
            if y.status == "finished" and "running" in workers.values():
                break
            time.sleep(0.1)
        y_state = tasks.get("y")
        y_done = y.status == "finished"
        result = y.result(timeout=5) if y_done else None  # before the new worker closes (y's data goes with it)
        start_outcome, started = start.result(timeout=60)  # on the bug: the start times out and closes the worker
        if started is not None:
            cluster.sync(started.close)

        corrupted = "AssertionError" in occupancy_after_race or "AssertionError" in occupancy
        if not y_done and corrupted:
            if "init" in workers.values():
                face = f"the new worker is still 'init' in the scheduler ({workers})"
            else:
                face = f"the new worker is not listed at all: the scheduler dropped it as it registered ({workers})"
            print(
                f"distributed {distributed.__version__}: BUG PRESENT — expected the new worker to register as"
                f" running and run y; got, {NEW_WORKER_WAIT_S} s after it joined: {face}, y {y_state!r}"
                f" (total occupancy after the stale long-running race: {occupancy_after_race}; now {occupancy});"
                f" the new worker's own start: {start_outcome}"
            )
            return 1
        if not y_done:
            print(
                f"distributed {distributed.__version__}: unexpected — y did not finish, but the occupancy is not"
                f" negative: workers {workers}, y {y_state!r}, total occupancy {occupancy}"
            )
            return 2
        print(
            f"distributed {distributed.__version__}: ok — the new worker registered as running and ran y = {result}"
            f" (total occupancy after the race: {occupancy_after_race}; workers {workers})"
        )
        return 0


if __name__ == "__main__":
    print(f"dask {dask.__version__}, distributed {distributed.__version__}, python {sys.version.split()[0]}")
    try:
        sys.exit(main())
    except Exception:
        traceback.print_exc()
        sys.exit(2)
