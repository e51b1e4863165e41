"""A task waiting in distributed.rejoin() when its worker closes is never woken: its thread leaks.

rejoin() appends (thread, event) to the executor's _rejoin_list and waits for a pool thread to pop it. A task that
calls rejoin() after its worker closed gets "RuntimeError: cannot schedule new futures after shutdown", but its
entry stays on the list. The pool thread that finishes next pops that dead entry (the list is LIFO) instead of the
task that was already waiting, and leaves the pool: the waiting thread blocks in rejoin() forever.

One worker with one thread, in this process (so the leaked thread can be seen): a waiter secedes and rejoins while
a slot holder keeps the only pool thread busy; the worker closes; a late rejoiner, seceded before the close, rejoins
after it; then the slot holder returns. Seen on every distributed release from 2022.10.1 to 2026.8.0.
Exit 1 if the bug is present, 0 if not, 2 on any other error.
"""

import sys
import threading
import time
import traceback

import dask
import distributed
from distributed import Client, LocalCluster, get_worker, rejoin, secede


def gate(name):
    """The tasks run in this process but are pickled by value: they reach the script's gates through sys.modules."""
    return sys.modules["__main__"].GATES[name]


def reached(name):
    if not gate(name).wait(10):
        raise RuntimeError(f"set-up: {name!r} not reached within 10 s")


def waiter():
    sys.modules["__main__"].WAITER.append(threading.current_thread())
    secede()
    gate("waiter seceded").set()
    gate("waiter may rejoin").wait(10)
    gate("waiter rejoining").set()
    rejoin()  # queued behind the slot holder: the pool thread that finishes next must wake it


def late_rejoiner():
    worker = get_worker()
    secede()
    gate("late seceded").set()
    while worker.status.name != "closed":
        time.sleep(0.01)
    try:
        rejoin()  # RuntimeError: cannot schedule new futures after shutdown — its entry stays on the rejoin list
    finally:
        gate("late rejoined").set()


def slot_holder():
    gate("holder running").set()
    gate("late rejoined").wait(10)  # hold the only pool thread until the late rejoiner has tried


GATES = {
    name: threading.Event()
    for name in (
        "waiter seceded",
        "waiter may rejoin",
        "waiter rejoining",
        "late seceded",
        "late rejoined",
        "holder running",
    )
}
WAITER = []


def main():
    print(f"dask {dask.__version__}, distributed {distributed.__version__}, python {sys.version.split()[0]}")
    cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None)
    with cluster, Client(cluster) as client:
        futures = [client.submit(waiter)]
        reached("waiter seceded")
        futures.append(client.submit(late_rejoiner))
        reached("late seceded")
        futures.append(client.submit(slot_holder))
        reached("holder running")
        gate("waiter may rejoin").set()
        reached("waiter rejoining")
        time.sleep(0.2)  # the waiter is now blocked in rejoin()
        (worker,) = cluster.workers.values()
        cluster.sync(worker.close, timeout=1)  # waits 1 s for the busy pool thread, then closes
        reached("late rejoined")
        (thread,) = WAITER
        thread.join(2)
    if not thread.is_alive():
        print("the waiting task's thread ended after its worker closed: no leak")
        return 0
    stack = "".join(traceback.format_stack(sys._current_frames()[thread.ident])[-4:])
    print(f"thread {thread.name!r} is still blocked in rejoin() 2 s after its worker closed:\n{stack}", end="")
    return 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:
        traceback.print_exc()
        sys.exit(2)
