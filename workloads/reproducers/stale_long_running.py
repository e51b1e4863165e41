"""A stale long-running message corrupts the scheduler's count of processing tasks (fixed by distributed#8991).

A task secedes on worker A, but A's message saying so ("long-running") reaches the scheduler late: here A's batched
stream is held, as a busy or slow link holds it. Meanwhile the task is released and submitted again, and runs on
worker B. When A's stale message arrives, the scheduler applies it to B, the worker the task is processing on now;
when the task secedes on B too, B's count of processing tasks of that prefix is decremented a second time and goes
below zero. Releases before 2025.2.0 have no check of which worker, or which run, a long-running message comes from
(2025.2.0 added one: distributed#8991). The corrupted count then breaks the scheduler's own ``validate_state()`` as
more tasks of the prefix come and go: ``assert task_prefix_counts.keys() == self._task_prefix_count_global.keys()``
(before 2022.11: ``task_group_counts``) — the stability fuzzer met exactly that on 2022.10.2 and 2024.6.0 (a seceding
chain released and resubmitted, ``flap``). This script: bad on 2022.10.2 and 2024.6.0, good on 2025.2.0 and later.

No chaos harness: a LocalCluster in this process, two workers, distributed Events to hold the task. Exit 1 if the bug
is present, 0 if not, 2 on any other error.
"""

import sys
import time
import traceback

import distributed
from distributed import Client, Event, LocalCluster, secede


def seceding(key_name):
    Event(f"{key_name}-started").set()
    Event(f"{key_name}-secede").wait(30)
    secede()
    Event(f"{key_name}-finish").wait(30)
    return 123


def held(key_name):
    Event(f"{key_name}-finish").wait(30)
    return 1


def quick():
    return 2


def counts(dask_scheduler):
    """Each worker's count of processing tasks per prefix (task group before 2022.11), and the scheduler's total."""
    per_worker = {}
    for address, ws in dask_scheduler.workers.items():
        per_worker[address] = dict(getattr(ws, "task_prefix_count", None) or getattr(ws, "task_groups_count", {}))
    total = getattr(dask_scheduler, "_task_prefix_count_global", None)
    if total is None:
        total = dask_scheduler.task_groups_count_global
    return per_worker, dict(total)


def check(dask_scheduler):
    try:
        dask_scheduler.validate_state()
    except AssertionError as error:
        line = traceback.extract_tb(error.__traceback__)[-1].line
        return f"AssertionError at `{line}` {error}".strip()
    return None


def worker_task_state(worker, key):
    tasks = getattr(getattr(worker, "state", None), "tasks", None) or worker.tasks
    task = tasks.get(key)
    return getattr(task, "state", None)


def states(dask_scheduler):
    tasks = {key: ts.state for key, ts in dask_scheduler.tasks.items()}
    return tasks, {address: str(ws.status) for address, ws in dask_scheduler.workers.items()}


def wait_until(predicate, what, explain=lambda: "", timeout=20):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"set-up: {what} did not happen within {timeout} s {explain()}")
        time.sleep(0.02)


def main():
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        a, b = sorted(cluster.workers.values(), key=lambda worker: worker.address)
        x = client.submit(seceding, "x", key="x", workers=[a.address])
        Event("x-started", client=client).wait(20)

        # Hold A's messages to the scheduler: x secedes and finishes there without the scheduler hearing of it.
        stream, sent = a.batched_stream, []
        original_send = stream.send
        stream.send = lambda *messages: sent.extend(messages)
        try:
            Event("x-secede", client=client).set()
            wait_until(lambda: worker_task_state(a, "x") == "long-running", "x seceding on worker A")
            x.release()  # released while the scheduler still thinks it is running on A
            del x
            wait_until(lambda: "x" not in client.run_on_scheduler(states)[0], "x released")
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
        per_worker, total = client.run_on_scheduler(counts)
        symptoms = []
        if any(value < 0 for value in total.values()):
            symptoms.append(f"processing counts below zero after the race (per worker {per_worker}, total {total})")
        if b.address not in per_worker:
            symptoms.append("the scheduler dropped worker B: its stream handler failed on the negative occupancy")
        else:
            # More tasks of prefix "x" come and go on B and A: the corrupted counts break validate_state().
            x_1 = client.submit(held, "x-1", key="x-1", workers=[b.address])
            wait_until(
                lambda: worker_task_state(b, "x-1") == "executing",
                "x-1 running on worker B",
                lambda: f"x-1 on B: {worker_task_state(b, 'x-1')}; the scheduler: {client.run_on_scheduler(states)}",
            )
            client.submit(quick, key="x-2", workers=[a.address]).result(timeout=20)
            time.sleep(0.2)
            problem = client.run_on_scheduler(check)
            if problem:
                symptoms.append(f"then validate_state() fails: {problem}")
            Event("x-1-finish", client=client).set()
            x_1.result(timeout=20)
        Event("x-finish", client=client).set()
        if symptoms:
            print(
                f"distributed {distributed.__version__}: BUG PRESENT — worker A's stale long-running message for x"
                f" was applied to worker B, where x runs now: {'; '.join(symptoms)}"
            )
            return 1
        result = x.result(timeout=20)
        print(
            f"distributed {distributed.__version__}: ok — the stale long-running message was ignored (counts"
            f" {per_worker}); validate_state() holds after more tasks of the prefix; x = {result}"
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
