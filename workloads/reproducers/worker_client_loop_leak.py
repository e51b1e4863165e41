"""An in-process worker's own client keeps the cluster's "IO loop" thread alive after everything is closed.

A task calls get_client(). An in-process worker reuses the default client only if that client's scheduler address
string equals the worker's; here the client connects by ``localhost`` while the workers were given ``127.0.0.1``,
so the worker opens a client of its own, synchronously, on the cluster's loop (a LoopRunner user). When the last
worker closes, it closes that client the asynchronous way (``await client.close()``), which never calls
``_loop_runner.stop()``: the loop keeps one user and its thread never exits.

Found by the stability fuzzer's network layer (a worker given a proxy as its scheduler address) on 2026.8.0.
No chaos harness: a LocalCluster in this process, one task, close everything, look for the thread 10 s later.
Exit 1 if the bug is present, 0 if not, 2 on any other error.
"""

import logging
import sys
import threading
import time
import traceback

import distributed
from distributed import Client, LocalCluster, get_client


def nested(x):
    return get_client().submit(lambda y: y + 1, x).result()


def main():
    before = {thread.ident for thread in threading.enumerate()}
    cluster = LocalCluster(
        n_workers=2,
        processes=False,
        protocol="tcp://",
        dashboard_address=None,
        scheduler_kwargs={"dashboard": False},
        silence_logs=logging.ERROR,
    )
    client = Client(cluster.scheduler_address.replace("127.0.0.1", "localhost"))
    result = client.submit(nested, 1).result()
    client.close()
    cluster.close()
    time.sleep(10)
    left = [t.name for t in threading.enumerate() if t.ident not in before and t.name.startswith("IO loop")]
    if left:
        print(
            f"distributed {distributed.__version__}: BUG PRESENT — the nested task returned {result}, and 10 s after"
            f" the client and the cluster closed these threads still run: {', '.join(left)}"
        )
        return 1
    print(f"distributed {distributed.__version__}: ok — nothing left running after close (the task returned {result})")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:
        traceback.print_exc()
        sys.exit(2)
