"""A key released and submitted again comes back on the scheduler as an empty task; a new worker then can't join.

A LocalCluster in the client's own process. The client submits ``x`` and ``z = inc(x)``, then drops both and
submits the same keys again right away (the fuzzer's ``flap``). The scheduler unpickles z's graph, and the ``Future``
for ``x`` in it binds itself to the default client (in this process that is the user's client). It takes a
reference to ``x`` there and sends ``client-desires-keys`` for it. The client has already released ``x``. By the
time that message arrives the scheduler has forgotten ``x``, so ``client_desires_keys`` makes a new, empty
``TaskState`` (state released, no ``run_spec``, no priority). The client still lists ``x`` under ``futures``
because of that reference, so submitting ``x`` again sends nothing: ``Client.submit`` sees the key is known and
just returns a ``Future``. Only the new ``z`` is sent. It depends on the empty ``x``, so ``x`` goes
released → waiting → processing, or → no-worker when there is no worker. ``x`` reaches a worker only through
``_task_to_msg``, and ``assert ts.priority, ts`` fails there. Here, as in the fuzzer, there is no worker, so ``x``
waits: queued in this script, no-worker in the fuzzer's chain. When a worker is added, the transition to processing
fails, so the scheduler drops the new worker's registration and the worker never joins. (With the scheduler's
``validate`` on, ``assert ts.run_spec`` fails earlier, in ``transition_released_waiting``. That is the failure
resubmitted_tree_cancelled.py shows, so this script turns validation off.)

The stability fuzzer hit this on 2024.6.1 (failure 20261207T012900Z-386aec-dask-2024.6.1-inprocess, "the
worker added by scaling up (0) never arrived"; the task was ``chain2-3`` of a chain that was flapped while
every worker was gone). distributed#8827 (released in 2024.8.2) fixed both halves: an unpickled ``Future`` no
longer binds or informs, and ``client_desires_keys`` no longer makes tasks for unknown keys. Measured bad on
2024.6.0, 2024.6.1 and 2024.8.1; good on 2024.8.2, 2025.1.0, 2025.2.0 and 2026.3.0. It is also good on 2022.10.2:
there the Future of ``x`` in z's graph never gave the client a reference to ``x`` again.

Two holds replace timing luck. First, the client's stream to the scheduler is held until the client has run its
releases, so the scheduler unpickles the graph after ``x`` has been released. Second, the scheduler's offload
thread is held, so its reference to ``x`` stays alive while the same keys are submitted again. No chaos harness:
plain dask + distributed. Exit 1 if the bug is present, 0 if not, 2 on any other error.
"""

import logging
import sys
import threading
import time
import traceback

import dask
import distributed
from distributed import Client, LocalCluster
from distributed.utils import _offload_executor


def inc(value):
    return value + 1


def task_record(key, dask_scheduler=None):
    ts = dask_scheduler.tasks.get(key)
    if ts is None:
        return None
    return {"state": ts.state, "priority": ts.priority, "has_run_spec": ts.run_spec is not None}


class Errors(logging.Handler):
    def __init__(self):
        super().__init__(logging.ERROR)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage().splitlines()[0] if record.getMessage() else record.name)


def wait_until(predicate, timeout):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def main():
    errors = Errors()
    for name in ("distributed.scheduler", "distributed.core"):
        logging.getLogger(name).addHandler(errors)
    print(f"dask {dask.__version__}, distributed {distributed.__version__}")
    with (
        dask.config.set({"distributed.scheduler.validate": False}),  # as in the fuzzer's failing program
        LocalCluster(n_workers=0, threads_per_worker=1, processes=False, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        x = client.submit(inc, 1, key="x")  # no worker yet: x waits in no-worker
        if not wait_until(lambda: client.run_on_scheduler(task_record, "x") is not None, 20):
            raise TimeoutError("set-up: x never reached the scheduler")

        # Hold the client's stream: z's graph (with x's Future pickled in it) and the releases of x and z reach
        # the scheduler together, after the client has dropped its last reference to x.
        stream = client.scheduler_comm
        original_send, held = stream.send, []
        stream.send = lambda *messages: held.extend(messages)
        gate = threading.Event()
        try:
            z = client.submit(inc, x, key="z")
            del x, z
            if not wait_until(lambda: "x" not in client.refcount and "z" not in client.refcount, 20):
                raise TimeoutError("set-up: the client did not release x and z")
            # Hold the scheduler's offload thread: update_graph for z stops after unpickling the graph, with the
            # unpickled Future of x still alive.
            _offload_executor.submit(gate.wait, 60)
        finally:
            stream.send = original_send
            if held:
                cluster.sync(lambda: _send(original_send, held))
        try:
            # On affected releases the unpickled Future binds to this client: x is back in client.futures.
            bound = wait_until(lambda: "x" in client.futures, 3)
            # The flap: the same keys again, at once.
            x = client.submit(inc, 1, key="x")  # affected releases: nothing is sent, the key "is known"
            z = client.submit(inc, x, key="z")
        finally:
            gate.set()
        if not wait_until(lambda: (client.run_on_scheduler(task_record, "z") or {}).get("state") == "waiting", 20):
            raise TimeoutError(f"set-up: z is not waiting on x: {client.run_on_scheduler(task_record, 'z')}")
        before = client.run_on_scheduler(task_record, "x")

        cluster.scale(1)  # the worker added by scaling up
        arrived = wait_until(lambda: len(client.scheduler_info()["workers"]) == 1, 15)
        result = z.result(timeout=20) if arrived else None
        print(
            f"expected: a worker joins, x (priority set) runs on it, z = 3; the Future of x unpickled on the"
            f" scheduler bound to this client: {bound}"
        )
        print(f"x on the scheduler before scaling up: {before}")
        print(f"the new worker arrived: {arrived}; z = {result}; scheduler errors: {errors.lines}")
        empty = before is not None and (not before["priority"] or not before["has_run_spec"])
        if empty or not arrived or result != 3:
            print(
                f"distributed {distributed.__version__}: BUG PRESENT — x was released and submitted again but came"
                f" back as an empty task (priority={before and before['priority']}, run_spec"
                f" {'set' if before and before['has_run_spec'] else 'None'}, state {before and before['state']});"
                + (
                    " adding a worker failed in _task_to_msg (`assert ts.priority, ts`) and the worker never arrived"
                    if not arrived
                    else ""
                )
            )
            return 1
        print(
            f"distributed {distributed.__version__}: ok — x kept its run_spec and priority; the new worker"
            f" joined and z = {result}"
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
