"""A LocalCluster closed while a worker it no longer tracks is still closing: its loop thread never stops.

``SpecCluster.close`` closes the workers in its spec, then the scheduler, then stops its event loop. A worker taken
out of the spec (as the stability fuzzer did with the workers its steps retired or closed) may still be closing
then: ``Worker.close`` shuts its executor down, joining a busy task thread for up to its 30 s timeout. Stopping the
loop cancels that close half-way, and the loop thread cannot finish within distributed's 10 s join:
``TimeoutError: join timed out``. (In the fuzzer's form the worker's stream handler, cancelled too, then waited in
``finished()`` for the cancelled close.) The fuzzer met this on 2024.6.0, 2024.6.1, 2026.3.0 and 2026.8 and blamed
the release, until its teardown waited for every worker it had taken out of the spec (framework/chaos/executor.py).
A user's cluster keeps retired workers in its spec and closes them again, which waits for the close in progress.

Here one in-process worker runs a task that sleeps 25 s; the worker is taken out of the spec and closed without
waiting, and the cluster is closed 2 s later. Then the same with the worker's close awaited first. Seen on
2024.6.0, 2026.3.0 and 2026.8.0: the first close fails with "join timed out" after 10 s; the second takes about
23 s and succeeds. Exit 1 if the first close fails (the behaviour is present), 0 if it does not, 2 on any other
error.
"""

import asyncio
import sys
import time
import traceback

import distributed
from distributed import Client, LocalCluster


def busy(seconds):
    time.sleep(seconds)
    return seconds


def close_with_worker_closing(wait_for_worker):
    cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None)
    client = Client(cluster)
    [name] = list(cluster.workers)
    worker = cluster.workers[name]
    client.submit(busy, 25, pure=False)
    while not worker.state.executing:
        time.sleep(0.05)
    cluster.worker_spec.pop(name)  # out of the spec: the cluster will not close it again
    cluster.workers.pop(name)
    closing = asyncio.run_coroutine_threadsafe(worker.close(), cluster.loop.asyncio_loop)
    time.sleep(2)
    if wait_for_worker:
        closing.result(timeout=60)
    client.close()
    started = time.monotonic()
    try:
        cluster.close()
    except Exception as error:
        return f"cluster.close() failed after {time.monotonic() - started:.0f} s: {type(error).__name__}: {error}"
    return None


def main():
    problem = close_with_worker_closing(wait_for_worker=False)
    if problem:
        print(f"distributed {distributed.__version__}: PRESENT — closed while a worker was still closing, {problem}")
        second = close_with_worker_closing(wait_for_worker=True)
        print(f"  with the worker's close awaited first: {second or 'closed cleanly'}")
        return 1
    print(f"distributed {distributed.__version__}: ok — the cluster closed while a worker was still closing")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:
        traceback.print_exc()
        sys.exit(2)
