"""Reproducer: ``LocalCluster.scale(n - 1)`` closes the worker it drops without retiring it, so that worker's scattered
data is lost for good (and its computed results are computed again).

``SpecCluster._correct_state_internal`` calls ``scheduler.retire_workers(workers=list(to_close))`` with the *names* of
the workers it drops, where the scheduler expects *addresses*: it retires none, and the worker objects are then
closed with their data. distributed#4069 and #5577 (open since 2020); found by ``workloads/soak.py``'s
``scale_down_keeps_data``, the guard of this finding in ``matrices/findings.yaml``.

Plain distributed, no import from this project. Run it with an environment's python:
``.blessing/envs/latest-*/bin/python workloads/reproducers/speccluster_scale_down_data_loss.py``.
Exit 1 = the bug is present (scattered data lost), 0 = every key survived, 2 = anything else went wrong.
"""

import sys
import time

import distributed
from distributed import Client, LocalCluster

ITEMS = 5  # scattered keys on each worker


def held(dask_scheduler, keys):
    """The keys the scheduler knows some worker to hold."""
    return [key for key in keys if key in dask_scheduler.tasks and dask_scheduler.tasks[key].who_has]


def main() -> int:
    print(f"distributed {distributed.__version__}")
    cluster_options = {"n_workers": 2, "threads_per_worker": 1, "processes": False, "dashboard_address": None}
    with LocalCluster(**cluster_options) as cluster, Client(cluster) as client:
        workers = sorted(client.scheduler_info()["workers"])
        scattered = []
        for number, address in enumerate(workers):
            payloads = [i.to_bytes(8, "little") * 128 for i in range(number * ITEMS, (number + 1) * ITEMS)]
            scattered += client.scatter(payloads, workers=[address], hash=False)
        print(f"scattered {len(scattered)} keys, {ITEMS} on each of {workers}")

        cluster.scale(1)  # a graceful scale-down: the dropped worker's keys should move to the other one first
        deadline = time.monotonic() + 30
        while len(client.scheduler_info()["workers"]) != 1:
            if time.monotonic() > deadline:
                print("the cluster did not scale down to 1 worker within 30 s")
                return 2
            time.sleep(0.05)

        keys = [future.key for future in scattered]
        kept = set(client.run_on_scheduler(held, keys=keys))
        lost = [key for key in keys if key not in kept]
        print(f"after cluster.scale(1): {len(kept)} of {len(keys)} scattered keys held, {len(lost)} lost")
        if lost:
            print(f"BUG PRESENT: LocalCluster.scale lost scattered data: {lost}")
            return 1
    print("ok: every scattered key survived the scale-down")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as error:  # anything but the bug: not a verdict
        print(f"error: {type(error).__name__}: {error}")
        sys.exit(2)
