"""What is measured around a case: cluster memory, spill, task counts and task time by action.

Runs inside runtime environments (any Python ≥ 3.9, distributed releases from 2022 on): standard library and
``distributed`` only, and every measure that an installed release cannot provide is reported missing with a
reason, never as 0.

Counters are read from the cluster before and after a case and subtracted:
- tasks and time by action (compute, transfer, disk-read/-write, deserialize) from a small scheduler
  plugin that sums ``startstops`` on every ``processing → memory|erred`` transition (no buffer to overflow);
- spilled bytes and time from each worker's ``SpillBuffer.cumulative_metrics``;
- cluster memory: see ``framework.in_runtime.memory``.
"""

from __future__ import annotations

import sys
from typing import Any, Optional

PLUGIN_NAME = "dask-blessing-task-counter"


def _install_task_counter(dask_scheduler: Any) -> bool:
    """Add the counting plugin to the scheduler once. Defined in a function so it pickles by value."""
    from distributed.diagnostics.plugin import SchedulerPlugin

    plugins = dask_scheduler.plugins
    if (
        (PLUGIN_NAME in plugins)
        if isinstance(plugins, dict)
        else any(getattr(p, "name", None) == PLUGIN_NAME for p in plugins)
    ):
        return False

    class TaskCounter(SchedulerPlugin):  # type: ignore[misc]
        name = PLUGIN_NAME

        def __init__(self) -> None:
            self.totals: dict[str, float] = {"tasks": 0, "erred": 0}
            self.by_worker: dict[str, int] = {}

        def transition(self, key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
            if start != "processing" or finish not in ("memory", "erred"):
                return
            self.totals["tasks"] += 1
            if finish == "erred":
                self.totals["erred"] += 1
            for startstop in kwargs.get("startstops") or ():
                action = "time:" + str(startstop.get("action"))
                self.totals[action] = self.totals.get(action, 0.0) + (startstop["stop"] - startstop["start"])
            worker = kwargs.get("worker")
            if worker is not None:
                self.by_worker[str(worker)] = self.by_worker.get(str(worker), 0) + 1

    plugin = TaskCounter()
    try:
        dask_scheduler.add_plugin(plugin, name=PLUGIN_NAME)
    except TypeError:  # releases before 2022 take no name
        dask_scheduler.add_plugin(plugin)
    return True


def _read_task_counter(dask_scheduler: Any) -> dict[str, Any]:
    plugins = dask_scheduler.plugins
    if isinstance(plugins, dict):
        plugin = plugins[PLUGIN_NAME]
    else:
        plugin = next(p for p in plugins if getattr(p, "name", None) == PLUGIN_NAME)
    return {"totals": dict(plugin.totals), "by_worker": dict(plugin.by_worker)}


def _read_spill_counters(dask_worker: Any) -> dict[str, Any]:
    """Cumulative spill counters of one worker, or why there are none."""
    data = dask_worker.data
    metrics = getattr(data, "cumulative_metrics", None)
    if metrics is not None:
        return {
            "id": str(dask_worker.id),
            "written_bytes": float(metrics.get(("disk-write", "bytes"), 0.0)),
            "written_count": float(metrics.get(("disk-write", "count"), 0.0)),
            "written_seconds": float(metrics.get(("disk-write", "seconds"), 0.0)),
            "read_bytes": float(metrics.get(("disk-read", "bytes"), 0.0)),
            "read_seconds": float(metrics.get(("disk-read", "seconds"), 0.0)),
        }
    if isinstance(data, dict) or type(data).__name__ == "dict":
        # No memory limit: this worker cannot spill, so zero is a measurement, not a guess.
        return {
            "id": str(dask_worker.id),
            "written_bytes": 0.0,
            "written_count": 0.0,
            "written_seconds": 0.0,
            "read_bytes": 0.0,
            "read_seconds": 0.0,
        }
    return {"id": str(dask_worker.id), "missing": f"{type(data).__name__} keeps no cumulative spill counters"}


def ship_by_value(module_name: str = __name__) -> None:
    """Send a module's functions to the scheduler and workers as code, not as ``framework.<module>.<name>``.

    A remote cluster (Coiled, or a scheduler started elsewhere) has the runtime's packages but not this project:
    by reference, every function run there fails with ``No module named 'framework'``.
    """
    try:
        import cloudpickle

        cloudpickle.register_pickle_by_value(sys.modules[module_name])
    except (ImportError, AttributeError):  # cloudpickle < 2.0: such clusters must have the project on PYTHONPATH
        pass


class CaseMeasurement:
    """Counters read before a case; ``finish()`` reads them again and returns the differences."""

    def __init__(self, client: Any) -> None:
        ship_by_value()
        self.client = client
        self.missing: dict[str, str] = {}
        self._tasks_before = self._tasks()
        self._spill_before = self._spill()

    def _tasks(self) -> Optional[dict[str, Any]]:
        try:
            self.client.run_on_scheduler(_install_task_counter)
            result: dict[str, Any] = self.client.run_on_scheduler(_read_task_counter)
        except Exception as error:
            self.missing["tasks"] = f"scheduler plugin unavailable: {type(error).__name__}: {error}"
            return None
        return result

    def _spill(self) -> Optional[dict[str, dict[str, Any]]]:
        try:
            result: dict[str, dict[str, Any]] = self.client.run(_read_spill_counters)
        except Exception as error:
            self.missing["spilled_bytes"] = f"workers unreachable: {type(error).__name__}: {error}"
            return None
        return result

    def finish(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        tasks_after = self._tasks() if self._tasks_before is not None else None
        if self._tasks_before is not None and tasks_after is not None:
            before, after = self._tasks_before["totals"], tasks_after["totals"]
            delta = {key: after.get(key, 0) - before.get(key, 0) for key in after}
            values["tasks"] = int(delta.get("tasks", 0))
            values["tasks_erred"] = int(delta.get("erred", 0))
            values["compute_time_s"] = delta.get("time:compute", 0.0)
            values["transfer_time_s"] = delta.get("time:transfer", 0.0)
            values["deserialize_time_s"] = delta.get("time:deserialize", 0.0)
            task_spill_time = delta.get("time:disk-read", 0.0) + delta.get("time:disk-write", 0.0)
            by_worker_before = self._tasks_before["by_worker"]
            values["tasks_by_worker"] = {
                worker: count - by_worker_before.get(worker, 0)
                for worker, count in tasks_after["by_worker"].items()
                if count - by_worker_before.get(worker, 0) > 0
            }
        else:
            task_spill_time = None
            for key in ("tasks", "compute_time_s", "transfer_time_s"):
                self.missing.setdefault(key, self.missing.get("tasks", "task counters unavailable"))
        values.update(self._spill_delta(task_spill_time))
        return values

    def _spill_delta(self, task_spill_time: Optional[float]) -> dict[str, Any]:
        after = self._spill() if self._spill_before is not None else None
        if self._spill_before is None or after is None:
            self.missing.setdefault("spilled_bytes", "spill counters unavailable")
            self.missing.setdefault("spill_time_s", self.missing["spilled_bytes"])
            return {}
        totals = {
            "written_bytes": 0.0,
            "written_count": 0.0,
            "written_seconds": 0.0,
            "read_bytes": 0.0,
            "read_seconds": 0.0,
        }
        for address, counters in after.items():
            if "missing" in counters:
                self.missing["spilled_bytes"] = f"worker {address}: {counters['missing']}"
                self.missing["spill_time_s"] = self.missing["spilled_bytes"]
                return {}
            previous = self._spill_before.get(address)
            if previous is not None and previous.get("id") != counters["id"]:
                previous = None  # the worker was replaced: its counters started again from zero
            for key in totals:
                totals[key] += counters[key] - (previous or {}).get(key, 0.0)
        gone = set(self._spill_before) - set(after)
        result = {
            "spilled_bytes": int(totals["written_bytes"]),
            "unspilled_bytes": int(totals["read_bytes"]),
            "spill_count": int(totals["written_count"]),
            "spill_time_s": totals["written_seconds"] + totals["read_seconds"],
        }
        if gone:
            # A worker that left took its counters with it: what it spilled during the case is unknown.
            self.missing["spilled_bytes"] = f"{len(gone)} worker(s) left during the case; their spill is unknown"
            self.missing["spill_time_s"] = self.missing["spilled_bytes"]
            return {}
        if task_spill_time is not None and result["spill_time_s"] == 0.0:
            result["spill_time_s"] = task_spill_time  # older releases report spill time in task startstops only
        return result
