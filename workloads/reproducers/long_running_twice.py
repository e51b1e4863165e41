"""A stale long-running message counts a task's new run on the same worker as seceded twice (fixed by distributed#8991).

The sibling of stale_long_running.py, on one worker. A task secedes on worker A, but A's message saying so
("long-running") reaches the scheduler late: here A's batched stream is held, as a busy or slow link holds it.
Meanwhile the task is released, its old run finishes, and it is submitted again — to A. When A's stale message
arrives, the scheduler applies it to the new run (the worker and key match; releases before 2025.2.0 do not check
which run a long-running message is from), and when the new run secedes, its own message adds the task to A's
long-running set a second time. With validation on, ``WorkerState.add_to_long_running`` fails
``assert ts not in self.long_running``, the stream handler fails and the scheduler drops worker A — the stability
fuzzer met exactly that on 2022.10.2 (calibration run 7: three workers dropped over it, then a hang with nothing
seceded or missing). Without validation the count of processing tasks goes below zero instead.

No chaos harness: a LocalCluster in this process (validation on), one worker, distributed Events to hold the task.
Exit 1 if the bug is present, 0 if not, 2 on any other error.
"""

import logging
import sys
import time
import traceback

import dask
import distributed
from distributed import Client, Event, LocalCluster, secede


def seceding(key_name):
    Event(f"{key_name}-started").set()
    Event(f"{key_name}-secede").wait(30)
    secede()
    Event(f"{key_name}-finish").wait(30)
    return 123


def worker_task_state(worker, key):
    state = getattr(worker, "state", None)  # the worker state machine (2022.8+); before, the worker itself
    tasks = worker.tasks if state is None else state.tasks
    task = tasks.get(key)
    return getattr(task, "state", None)


def scheduler_view(dask_scheduler):
    ts = dask_scheduler.tasks.get("x")
    long_running = {address: [t.key for t in ws.long_running] for address, ws in dask_scheduler.workers.items()}
    return (ts.state if ts else None), long_running


class Failed(logging.Handler):
    """The innermost frame and source line of each exception distributed logs (the scheduler's stream handler's)."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.where = []

    def emit(self, record):
        if record.exc_info and record.exc_info[1] is not None:
            frame = traceback.extract_tb(record.exc_info[2])[-1]
            self.where.append(f"{type(record.exc_info[1]).__name__} at `{frame.line}` in {frame.name}")


def wait_until(predicate, what, timeout=20):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"set-up: {what} did not happen within {timeout} s")
        time.sleep(0.02)


def main():
    failed = Failed()
    logging.getLogger("distributed").addHandler(failed)
    with (
        dask.config.set({"distributed.scheduler.validate": True}),
        LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        (a,) = cluster.workers.values()
        address = a.address
        x = client.submit(seceding, "x", key="x")
        Event("x-started", client=client).wait(20)

        # Hold A's messages to the scheduler: x secedes there without the scheduler hearing of it.
        stream, sent = a.batched_stream, []
        original_send = stream.send
        stream.send = lambda *messages: sent.extend(messages)
        try:
            Event("x-secede", client=client).set()
            wait_until(lambda: worker_task_state(a, "x") == "long-running", "x seceding on the worker")
            x.release()  # released while the scheduler still thinks it is running
            del x
            wait_until(lambda: client.run_on_scheduler(scheduler_view)[0] is None, "x released on the scheduler")
            Event("x-finish", client=client).set()  # the old run ends; the worker forgets x
            wait_until(lambda: worker_task_state(a, "x") is None, "the old run of x finishing")
            for name in ("x-started", "x-secede", "x-finish"):
                Event(name, client=client).clear()
            x = client.submit(seceding, "x", key="x")  # the same key again, on the same (only) worker
            Event("x-started", client=client).wait(20)
        finally:
            stream.send = original_send
            if sent:
                cluster.sync(lambda: _send(original_send, sent))  # the old run's "long-running" arrives now
        time.sleep(0.5)
        state, long_running = client.run_on_scheduler(scheduler_view)
        Event("x-secede", client=client).set()  # the new run secedes: its own long-running message
        wait_until(lambda: worker_task_state(a, "x") == "long-running", "the new run of x seceding")
        time.sleep(0.5)
        workers_after = list(client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.workers)))
        Event("x-finish", client=client).set()
        if address not in workers_after or failed.where:
            print(
                f"distributed {distributed.__version__}: BUG PRESENT — the old run's stale long-running message was"
                f" applied to the new run of x (the scheduler's x: {state}, long-running per worker {long_running});"
                f" when the new run seceded the scheduler failed {'; '.join(dict.fromkeys(failed.where)) or '—'}"
                f" and {'dropped' if address not in workers_after else 'kept'} the worker"
            )
            return 1
        result = x.result(timeout=20)
        print(
            f"distributed {distributed.__version__}: ok — the stale long-running message did not count the new run"
            f" (long-running per worker before it seceded: {long_running}); the worker stayed; x = {result}"
        )
        return 0


async def _send(send, messages):
    send(*messages)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:
        traceback.print_exc()
        sys.exit(2)
