"""A secede that opens a second task slot kills the worker's stream (check added by distributed#7224, gone with #7402).

With queuing on (worker-saturation 2.0, one thread: two task slots), the scheduler fills a slot from the queue each
time a task leaves processing — inside the transition. When a task errs, the slot it frees gets a "processing"
recommendation for the first queued task, and the same transition recommends its dependent "erred"; that dependent
releases its other dependencies — the very queued task among them, whose "processing" is overwritten by "released"
in the same batch. So the slot stays open while other tasks are still queued. When the worker's other task then
secedes, ``handle_long_running`` finds two open slots and recommends two queued tasks; with
``distributed.scheduler.validate`` on it asserts ``len(recommendations) <= 1``, the worker's stream handler fails and
the scheduler removes the worker (whose tasks then never finish). The stability fuzzer met this on 2022.10.2: a
worker added by scaling up was dropped at once ("never arrived"), right after a task ``spill1-0`` erred there and a
fanout task seceded. distributed#7402 ("Select queued tasks in stimuli, not transitions", released in 2022.12.1)
both removed the check and fills the slot after the batch. This script: bad on 2022.10.2, 2022.11.0 and 2022.12.0;
good on 2022.12.1, 2023.1.0 and 2026.3.0; 2022.10.1 has no such check (the open slot is there, but its queued tasks
just wait for the seceded task to finish: distributed#7223).

No chaos harness: a LocalCluster in this process, one worker with one thread, distributed Events to order the steps.
Exit 1 if the bug is present, 0 if not, 2 on any other error.
"""

import logging
import sys
import time
import traceback

import dask
import distributed
from dask import delayed
from distributed import Client, Event, LocalCluster, secede

QUEUED = 4  # b-1 ... b-4: queued behind the worker's two slots


def seceding():
    Event("b-0-started").set()
    Event("b-0-secede").wait(60)
    secede()
    Event("b-0-finish").wait(60)
    return 0


def failing(index):
    Event(f"a-{index}-started").set()
    Event("a-fail").wait(60)  # whichever a-* gets the slot holds it until told to fail
    raise ValueError(f"a-{index} fails on purpose")


def total(parts):
    return sum(parts)


def quick(index):
    return index


def task_states(dask_scheduler):
    return {key: ts.state for key, ts in dask_scheduler.tasks.items()}


def worker_view(dask_scheduler):
    """Per worker: tasks processing, tasks long-running; and the number of queued tasks."""
    workers = {
        address: (sorted(ts.key for ts in ws.processing), sorted(ts.key for ts in ws.long_running))
        for address, ws in dask_scheduler.workers.items()
    }
    return workers, len(dask_scheduler.queued)


class Errors(logging.Handler):
    def __init__(self):
        super().__init__(logging.ERROR)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def wait_until(predicate, what, explain=lambda: "", timeout=20):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"set-up: {what} did not happen within {timeout} s {explain()}")
        time.sleep(0.02)


def main():
    print(f"dask {dask.__version__}, distributed {distributed.__version__}")
    errors = Errors()
    for name in ("distributed.core", "distributed.scheduler"):
        logging.getLogger(name).addHandler(errors)
    config = {
        "distributed.scheduler.worker-saturation": 2.0,  # one thread: two task slots
        "distributed.scheduler.validate": True,
        "distributed.scheduler.work-stealing": False,
    }
    with (
        dask.config.set(config),
        LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        (worker,) = cluster.workers.values()
        address = worker.address
        states = lambda: client.run_on_scheduler(task_states)  # noqa: E731
        view = lambda: client.run_on_scheduler(worker_view)  # noqa: E731

        # 1. a-0 takes the first slot and the thread, until told to fail (a group of one task is not root-ish:
        #    it is not queued).
        a0 = client.submit(failing, 0, key="a-0")
        Event("a-0-started", client=client).wait(20)
        # 2. b-0 takes the second slot; it waits on the worker for the thread.
        b0 = client.submit(seceding, key="b-0")
        wait_until(lambda: states().get("b-0") == "processing", "b-0 processing", lambda: str(states()))

        # 3. Three more a-* and their sum, the only result wanted: a's group is now root-ish and the worker full, so
        #    a-1 ... a-3 queue; they go first in the queue (higher priority).
        parts = [a0] + [delayed(failing)(i, dask_key_name=f"a-{i}") for i in range(1, 4)]
        a_sum = client.compute(delayed(total)(parts, dask_key_name="a-sum"), priority=10)
        wait_until(
            lambda: [states().get(f"a-{i}") for i in range(1, 4)] == ["queued"] * 3,
            "a-1 ... a-3 queued",
            lambda: str(states()),
        )

        # 4. More tasks of b's group, in one graph: root-ish too, they queue behind a-1 ... a-3.
        rest = client.map(quick, range(1, QUEUED + 1), key=[f"b-{i}" for i in range(1, QUEUED + 1)])
        wait_until(
            lambda: [states().get(f"b-{i}") for i in range(1, QUEUED + 1)] == ["queued"] * QUEUED,
            "b-1 ... b-4 queued",
            lambda: str(states()),
        )

        # 5. a-0 errs: its slot is given to the first queued task, a-1 — but a-sum errs too and releases a-1 ... a-3,
        #    a-1 included. The slot stays open although b-1 ... b-4 are queued.
        Event("a-fail", client=client).set()
        wait_until(lambda: a_sum.status == "error", "a-sum erred", lambda: str(states()))
        wait_until(
            lambda: not any(states().get(f"a-{i}") in ("processing", "queued") for i in range(1, 4)),
            "a-1 ... a-3 released",
            lambda: str(states()),
        )
        Event("b-0-started", client=client).wait(20)  # b-0 has the thread now
        time.sleep(0.2)
        workers, queued = view()
        before = f"processing {workers.get(address, ([], []))[0]} with {queued} tasks queued"

        # 6. b-0 secedes: its slot opens too — two open slots at once.
        Event("b-0-secede", client=client).set()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            workers, _ = view()
            if address not in workers or all(f.status == "finished" for f in rest):
                break
            time.sleep(0.05)
        time.sleep(0.5)
        workers, queued = view()
        early = sum(f.status == "finished" for f in rest)  # finished while b-0 was still long-running
        Event("b-0-finish", client=client).set()
        assertion = [m for m in errors.messages if m.startswith("(<WorkerState") and "'processing'" in m]
        print(
            "expected: when b-0 secedes, the worker's open slots take queued tasks, the worker stays, and b-0 ... b-4"
            " all finish"
        )
        if address not in workers or assertion:
            print(
                f"distributed {distributed.__version__}: BUG PRESENT — after a-sum erred the worker had {before};"
                " when b-0 seceded the scheduler's handle_long_running failed its check `len(recommendations) <= 1`"
                + (f": AssertionError {assertion[0]}" if assertion else "")
                + ("; the scheduler removed the worker" if address not in workers else "")
                + f" (b-1 ... b-4: {[f.status for f in rest]}; the scheduler's workers now: {list(workers)})"
            )
            return 1
        values = client.gather(rest, errors="skip")
        b0_value = b0.result(timeout=20)
        if values != list(range(1, QUEUED + 1)) or b0_value != 0:
            print(f"distributed {distributed.__version__}: wrong results: b-0 = {b0_value}, b-1 ... = {values}")
            return 1
        print(
            f"distributed {distributed.__version__}: ok — after a-sum erred the worker had {before}; when b-0"
            f" seceded the worker stayed (workers: {list(workers)}); {early} of the {QUEUED} queued tasks ran while"
            f" b-0 was long-running"
            + ("" if early else " (none: queued tasks waited for b-0 to finish, distributed#7223 — not this bug)")
            + f"; b-1 ... b-4 = {values}"
        )
        return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:
        traceback.print_exc()
        sys.exit(2)
