"""A worker dropped over a negative occupancy leaves its data in memory with no holder (fixed by distributed#8991).

The stale long-running message of ``stale_long_running.py`` makes a worker's count of processing tasks go below
zero, and with it the worker's and the scheduler's occupancy: the next ``check_idle_saturated`` fails
``assert occ >= 0``. Here that first happens in the handler of the stale message itself, so the stream of the worker
that sent it (A) dies and the scheduler removes A. ``remove_worker`` first takes A off every key's ``who_has``, then
runs the transitions of A's keys in one batch; the batch releases a key whose dependent is processing on the worker
with the negative count (B), that transition fails the same assertion, and the batch stops. A's other keys are never
transitioned: they stay ``memory`` with an empty ``who_has`` — the scheduler's own ``validate_state()`` then fails
``assert bool(ts.who_has) == (ts.state == "memory")``, what the stability fuzzer met on 2022.10.2
(``AssertionError((<TaskState 'tree0-2' memory>, set(), 'memory'))`` after a flap of a seceding tree). Releases
before 2025.2.0 have no check of which worker, or which run, a long-running message comes from (2025.2.0 added one,
distributed#8991, and no longer asserts ``occ >= 0`` unless validating, distributed#9012); nothing in
``remove_worker`` survives a transition that raises (negative occupancy corrupting the scheduler: distributed#7923).
This script: bad on 2022.10.2, 2023.1.0 and 2025.1.0, good on 2025.2.0 and 2026.3.0.

No chaos harness: a LocalCluster in this process, two workers, distributed Events to hold the tasks; worker A's
batched stream to the scheduler is held (the late message), and so is A's ``get_data`` (B cannot fetch A's data, as
when links between workers are broken). Exit 1 if the bug is present, 0 if not, 2 on any other error.
"""

import asyncio
import sys
import threading
import time
import traceback

import distributed
from distributed import Client, Event, LocalCluster, secede


def seceding(key_name):
    Event(f"{key_name}-started").set()
    time.sleep(1.0)  # the compute duration reported on seceding: the task prefix's duration estimate, > 0.5 s
    Event(f"{key_name}-secede").wait(30)
    secede()
    Event(f"{key_name}-finish").wait(30)
    return 123


def make_data(value):
    return value


def use(value):
    return value + 1


def worker_task_state(worker, key):
    task = getattr(worker, "state", worker).tasks.get(key)
    return getattr(task, "state", None)


def task_summary(dask_scheduler, keys):
    summary = {}
    for key in keys:
        ts = dask_scheduler.tasks.get(key)
        if ts is None:
            summary[key] = None
        else:
            summary[key] = (
                ts.state,
                sorted(ws.address for ws in ts.who_has or ()),
                ts.processing_on.address if ts.processing_on else None,
            )
    return summary


def long_running_on(dask_scheduler, key, address):
    ws = dask_scheduler.workers.get(address)
    ts = dask_scheduler.tasks.get(key)
    return ws is not None and ts is not None and ts in ws.long_running


def check(dask_scheduler):
    try:
        dask_scheduler.validate_state()
    except AssertionError as error:
        line = traceback.extract_tb(error.__traceback__)[-1].line
        return f"AssertionError at `{line}` {error!r}".strip()
    except Exception as error:  # validate_state wraps some assertions in Exception
        return f"{type(error).__name__}: {error}"
    return None


def wait_until(predicate, what, explain=lambda: "", timeout=20):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"set-up: {what} did not happen within {timeout} s {explain()}")
        time.sleep(0.02)


KEYS = ["m1", "m2", "d", "x"]


def data_on_a_dependent_on_b(client, a, b, release_get_data):
    """m1 then m2 in memory on worker A only; d needs m2 and runs on B, but B cannot fetch m2 from A."""
    futures = []
    for key, value in (("m1", 1), ("m2", 2)):
        futures.append(client.submit(make_data, value, key=key, workers=[a.address]))
        futures[-1].result(timeout=20)  # m1 first in A's has_what

    async def held_get_data(comm=None, **kwargs):
        while not release_get_data.is_set():
            await asyncio.sleep(0.05)
        return {"status": "busy"}

    a.handlers["get_data"] = held_get_data
    futures.append(client.submit(use, futures[1], key="d", workers=[b.address]))
    wait_until(lambda: worker_task_state(b, "m2") == "flight", "B fetching m2 from A", explain(client))
    return futures  # held: the futures keep m1, m2 and d wanted


def stale_long_running(cluster, client, a, b):
    """As in stale_long_running.py: x secedes on A, A's stream is held, x is released and submitted again on B and
    secedes there; then A's "long-running" message arrives. Returns x's future, the ops held, and the state before."""
    x = client.submit(seceding, "x", key="x", workers=[a.address])
    Event("x-started", client=client).wait(20)
    stream, sent, held = a.batched_stream, [], []
    original_send = stream.send

    def hold(*messages):
        sent.extend(messages)
        held.extend(message.get("op") for message in messages)  # the scheduler pops "op" (inproc: no copy)

    stream.send = hold
    try:
        Event("x-secede", client=client).set()
        wait_until(lambda: worker_task_state(a, "x") == "long-running", "x seceding on worker A")
        x.release()
        del x
        wait_until(lambda: client.run_on_scheduler(task_summary, keys=["x"])["x"] is None, "x released")
        for name in ("x-started", "x-secede", "x-finish"):
            Event(name, client=client).clear()
        x = client.submit(seceding, "x", key="x", workers=[b.address])
        Event("x-started", client=client).wait(20)
        Event("x-secede", client=client).set()
        wait_until(
            lambda: client.run_on_scheduler(long_running_on, key="x", address=b.address),
            "the scheduler hearing that x seceded on worker B",
            explain(client),
        )
        before = client.run_on_scheduler(task_summary, keys=KEYS)
    finally:
        stream.send = original_send
        if sent:
            cluster.sync(lambda: _send(original_send, sent))  # A's stale "long-running" arrives now
    return x, held, before


def explain(client):
    return lambda: f"(the scheduler: {client.run_on_scheduler(task_summary, keys=KEYS)})"


def main():
    release_get_data = threading.Event()
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        a, b = sorted(cluster.workers.values(), key=lambda worker: worker.address)
        try:
            futures = data_on_a_dependent_on_b(client, a, b, release_get_data)
            x, held, before = stale_long_running(cluster, client, a, b)
            futures.append(x)
            time.sleep(1.0)
            after = client.run_on_scheduler(task_summary, keys=KEYS)
            problem = client.run_on_scheduler(check)
            workers = sorted(client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.workers)))
        finally:
            release_get_data.set()
            Event("x-finish", client=client).set()

        state, who_has, _ = after["m1"] or (None, [], None)
        print(f"distributed {distributed.__version__}")
        print(f"  held on A's stream, then sent: {held}")
        if "long-running" not in held:
            print("  set-up: A's long-running message for x was not among the held messages")
            return 2
        print(f"  before A's stale message: {before}")
        print(f"  after:                    {after}; workers {workers}")
        print(f"  expected: m1 in memory on a worker ({a.address}), or released/waiting if A was removed")
        if state == "memory" and not who_has:
            print(
                f"  got: BUG PRESENT — m1 is in memory with no worker holding it (A removed: "
                f"{a.address not in workers}); validate_state(): {problem}"
            )
            return 1
        if problem:
            print(f"  got: m1 {after['m1']}, but validate_state() fails otherwise: {problem}")
            return 2
        print(f"  got: ok — m1 {after['m1']}; validate_state() holds")
        return 0


async def _send(send, messages):
    send(*messages)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:
        traceback.print_exc()
        sys.exit(2)
