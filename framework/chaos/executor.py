"""One cluster per program: apply steps, check invariants, settle, tear down and look for leaks.

Every step is plain JSON (``{"op": "submit", "graph": {...}}``) and every cluster operation is bounded in time,
so a hang shows up as a ``LivenessError`` with a cluster dump rather than as a stuck fuzzer. The executor keeps
its own model of what may legitimately happen to each key (cancelled, failed on purpose, lost with a worker),
and the settle step holds every future to it:

- liveness: with gates open and a worker alive, every future finishes, errs or is cancelled within ``settle_s``;
- results: a finished future's value equals the pure-Python evaluation of its graph (``graphs.evaluate``);
- errors: only the kinds the program explains (ChaosTaskError downstream of a failing task, KilledWorker after
  worker churn, CancelledError after a cancel or restart, P2P errors when a shuffle lost a worker);
- state: ``Scheduler.validate_state()`` and each worker's ``validate_state()``, where the version has them;
- livelock: scheduler transitions stay under a cap proportional to the tasks submitted;
- teardown: closing leaves no child process (but multiprocessing's resource_tracker), no thread, no socket.

Network faults (``slow_link``, ``drop_links``, ``stop_worker``) are ``framework.chaos.network``'s; here they are
thin steps, and ``settle`` ends them (latency cleared, connections accepted, stopped workers continued).
"""

from __future__ import annotations

import collections
import contextlib
import functools
import gc
import logging
import os
import shutil
import signal
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Optional

from framework.chaos import graphs, invariants
from framework.chaos.invariants import (
    InvariantViolation,
    LivelockError,
    LivenessError,
    ResultError,
    StateValidationError,
    TeardownError,
    bounded,
    describe,
    format_traceback,
    is_comm_error,
)
from framework.chaos.ledger import Ledger, Submission
from framework.chaos.network import Network, Stopped

__all__ = [
    "Executor",
    "InvariantViolation",
    "LivelockError",
    "LivenessError",
    "ResultError",
    "StateValidationError",
    "TeardownError",
    "format_traceback",
    "run_program",
]

TIERS = ("inprocess", "process")
STEP_TIMEOUT_S = 60.0
# Client.restart waits this long for every worker to come back (distributed's default is 30 s). Nanny-managed
# workers re-import dask, pandas and numpy: on a loaded 2-core machine that took longer than 30 s, and the fuzzer
# reported distributed's "Waited for N worker(s) to reconnect" TimeoutError as a failure of the release (a harness
# false alarm, measured by `nox -s bench -- stability-calibration`). A restart that never completes still fails.
RESTART_WAIT_S = 120.0
# In one process, closing workers wait for their task threads one after another (each up to 30 s, holding
# distributed's thread-pool lock): allow several of those before calling a close hung.
CLOSE_TIMEOUT_S = 120.0
# Transitions allowed per task submitted before the run counts as a livelock (a healthy task needs < 10).
TRANSITIONS_PER_TASK = 100
TRANSITIONS_BASE = 2000
# Where a fault that loses data is aimed (``Executor._pick_worker``): any worker, the holder of the only copy of what
# tasks still to run need, or the holder of what a queued task needs, at a moment one is queued (waiting up to
# QUEUED_WAIT_S for it: queues form and drain within a second under the fuzzer's gates and sleeps).
TARGETS = ("any", "holder", "queued")
QUEUED_WAIT_S = 2.0


def stuck_states(states: dict[str, str], shown: int = 20) -> str:
    """``k=state`` for the first ``shown`` keys, then, when there are more, every key's state counted:
    ``… (all 35: processing 2, queued 33)`` — the failure's signature reads its states from the count, so it does
    not depend on which keys sort first."""
    text = ", ".join(f"{key}={state}" for key, state in sorted(states.items())[:shown])
    if len(states) > shown:
        tally = collections.Counter(state.split(" on ", 1)[0] for state in states.values())
        text += f" … (all {len(states)}: " + ", ".join(f"{state} {n}" for state, n in sorted(tally.items())) + ")"
    return text


class LogTail(logging.Handler):
    """The last lines distributed logged in this process (scheduler and in-process workers), and the exceptions the
    scheduler logged (``errors``: where each was raised, as ``AssertionError `assert ts.priority, ts` in
    _task_to_msg (distributed/scheduler.py)``) — a worker the scheduler drops says why only there."""

    def __init__(self, size: int = 200) -> None:
        super().__init__(level=logging.INFO)
        self.lines: collections.deque[str] = collections.deque(maxlen=size)
        self.errors: collections.deque[tuple[int, str]] = collections.deque(maxlen=20)  # (number, where raised)
        self.errors_seen = 0
        self.first_error = ""  # where the first of them was raised: later ones often follow from it

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(f"{record.name} {record.levelname} {record.getMessage()}"[:500])
            if record.exc_info and record.exc_info[1] is not None and _the_schedulers(record):
                self.errors_seen += 1
                self.errors.append((self.errors_seen, raised_at(record.exc_info[1])))
                self.first_error = self.first_error or self.errors[-1][1]
        except Exception:
            pass


def _the_schedulers(record: logging.LogRecord) -> bool:
    """An exception the scheduler logged, or one raised through its code and logged by ``distributed.core`` (a stream
    handler's: 2022.10.2 dropped three workers over ``assert ts not in self.long_running`` that way in calibration
    run 7; #7224's ``assert len(recommendations) <= 1`` in handle_long_running is logged alike)."""
    if record.name.startswith("distributed.scheduler"):
        return True
    error = record.exc_info[1] if record.exc_info else None
    if not record.name.startswith("distributed.core") or error is None:
        return False
    return any(
        frame.filename.replace("\\", "/").endswith("distributed/scheduler.py")
        for frame in traceback.extract_tb(error.__traceback__)
    )


def raised_at(error: BaseException) -> str:
    """``AssertionError `assert ts.priority, ts` in _task_to_msg (distributed/scheduler.py)``: the innermost frame."""
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return type(error).__name__
    frame = frames[-1]
    where = frame.filename.replace("\\", "/").rsplit("site-packages/", 1)[-1]
    if where.startswith("/"):
        where = "/".join(where.split("/")[-2:])  # not a package's file: its folder and name
    statement = f" `{frame.line.strip()}`" if frame.line else ""
    return f"{type(error).__name__}{statement} in {frame.name} ({where})"


class Executor:
    """Runs one program on one fresh cluster. ``start`` → ``apply`` × N (+ ``check_state``) → ``finish``."""

    def __init__(
        self,
        config: dict[str, Any],
        settle_s: float = 30.0,
        work_dir: Optional[Path] = None,
        dump_failures: bool = True,
    ) -> None:
        if config.get("tier") not in TIERS:
            raise ValueError(f"cluster config tier {config.get('tier')!r}: expected one of {', '.join(TIERS)}")
        self.config = config
        self.settle_s = settle_s
        self.dump_failures = dump_failures
        self.program: list[dict[str, Any]] = [{"op": "start", "config": config}]
        self.scratch = Path(tempfile.mkdtemp(prefix="blessing-chaos-", dir=work_dir))
        self.graphs: list[list[dict[str, Any]]] = []
        self.ledger = Ledger()
        self.gates_closed: list[str] = []
        self.sibling_events: set[str] = set()  # set only at teardown: opening them would hide a deadlock
        self.tasks_submitted = 0
        self.slowest_settle_s = 0.0
        self.steps_run = 0
        self.workers_model = int(config["workers"])
        self.missing: dict[str, str] = {}
        self.cluster: Any = None
        self.client: Any = None
        self.dump_path: Optional[str] = None
        self.log_tail = LogTail()
        self._config_context: Any = None
        self.leak_watch = invariants.LeakWatch(self.missing)
        self._closed = False
        # Network faults: the proxies (a config with "network": true), stopped worker processes, and workers
        # whose every link was dropped (they close themselves; closed again at teardown, in case one did not).
        self.network: Optional[Network] = None
        self.stopped = Stopped()
        self.dropped_workers: list[Any] = []
        # Workers taken out of the cluster's spec (closed or retired by a step): the cluster no longer waits for them
        self.forgotten: list[tuple[str, Any]] = []
        self.timings: dict[str, float] = collections.defaultdict(float)
        # Faults aimed at a holder: how often the aim found its mark (``queued_found``: a queued task's only input
        # was there) or fell back (``queued_missed``). What tells a batch that never met distributed#8702 why.
        self.aimed: dict[str, int] = collections.defaultdict(int)

    @contextlib.contextmanager
    def timed(self, phase: str) -> Any:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[phase] += time.perf_counter() - started

    # -- lifecycle ------------------------------------------------------------------------------------------

    def dask_config(self) -> dict[str, Any]:
        config = self.config
        settings: dict[str, Any] = {
            # The fuzzer looks for scheduling bugs, not out-of-memory kills: spill by managed memory only.
            "distributed.worker.memory.pause": False,
            "distributed.worker.memory.terminate": False,
            "distributed.scheduler.work-stealing": bool(config.get("work_stealing", True)),
            "distributed.scheduler.validate": bool(config.get("validate", False)),
            "distributed.worker.validate": bool(config.get("validate", False)),
            "distributed.comm.timeouts.connect": "20s",
            # A LocalCluster hard-closes the nanny of a worker missing for this long — also one that is only slow
            # to come back from Client.restart (15 s by default). Measured on this 2-core machine under load:
            # 3 of 4 nannies closed mid-restart, so the restart could never finish, and the fuzzer blamed the
            # release ("Waited for 4 worker(s) to reconnect … only 1 have returned"). Kept beyond RESTART_WAIT_S.
            "distributed.deploy.lost-worker-timeout": f"{RESTART_WAIT_S + 30:g}s",
        }
        if config["tier"] == "inprocess":
            # In-process workers share this process's memory: process-memory thresholds would compare the whole
            # process against one worker's limit. Spill by managed memory (``target``) only.
            settings["distributed.worker.memory.spill"] = False
        saturation = config.get("worker_saturation")
        if saturation is not None:
            settings["distributed.scheduler.worker-saturation"] = float(saturation)
        return settings

    def start(self) -> None:
        import dask
        from distributed import Client, LocalCluster

        self._started_at = time.perf_counter()
        logging.getLogger("distributed").addHandler(self.log_tail)
        self._config_context = dask.config.set(self.dask_config())
        processes = self.config["tier"] == "process"
        extra: dict[str, Any] = {}
        if self.config.get("network"):
            self.network = Network()
            # In one process LocalCluster talks over inproc:// queues; the proxies need TCP.
            extra.update(worker_class=self.network.worker_class(processes), protocol="tcp://")
        self.cluster = bounded(
            lambda: LocalCluster(
                n_workers=int(self.config["workers"]),
                threads_per_worker=int(self.config["threads"]),
                processes=processes,
                memory_limit=int(self.config["memory_limit"]),
                dashboard_address=None,
                scheduler_kwargs={"dashboard": False},  # no dashboard: old releases need bokeh for one
                silence_logs=logging.ERROR,
                local_directory=str(self.scratch / "workers"),
                **extra,
            ),
            STEP_TIMEOUT_S,
            "starting the LocalCluster",
        )
        self.client = bounded(lambda: Client(self.cluster), STEP_TIMEOUT_S, "connecting the client")
        self.timings["start"] += time.perf_counter() - self._started_at

    def live_workers(self) -> list[tuple[str, str]]:
        """(name, address) of the workers the scheduler knows, ordered by name (so ``which`` is reproducible)."""
        info = bounded(self.client.scheduler_info, STEP_TIMEOUT_S, "scheduler_info")
        workers = [(str(w.get("name")), address) for address, w in info.get("workers", {}).items()]
        return sorted(workers)

    def worker_statuses(self) -> dict[str, str]:
        """Name → status (``running``, ``closing_gracefully``, ``paused`` …) of every worker the scheduler lists."""
        info = bounded(self.client.scheduler_info, STEP_TIMEOUT_S, "scheduler_info")
        return {str(w.get("name")): str(w.get("status", "running")) for w in info.get("workers", {}).values()}

    # -- steps ----------------------------------------------------------------------------------------------

    def apply(self, step: dict[str, Any]) -> None:
        """Apply one step and record it in the program (so the program always replays what was run)."""
        self.program.append(step)
        self.steps_run += 1
        op = step["op"]
        handler = getattr(self, "_op_" + op, None)
        if handler is None:
            raise ValueError(f"unknown chaos step {op!r}")
        with self.timed(op):
            handler(step)

    # The ledger's records, where tests and the machine read them.
    @property
    def submissions(self) -> dict[int, Submission]:
        return self.ledger.submissions

    @property
    def churned_keys(self) -> set[str]:
        return self.ledger.churned_keys

    def _submit_nodes(self, nodes: list[dict[str, Any]], gid: int, which: str) -> None:
        client, scratch = self.client, str(self.scratch)
        futures: dict[str, Any] = {}
        for node in nodes:
            deps = [futures[dep] for dep in node["deps"]]
            futures[node["key"]] = client.submit(
                graphs.run_node, node, scratch, *deps, key=node["key"], retries=node.get("retries", 0) or None
            )
        held = {key: futures[key] for key in graphs.outputs(nodes, which)}
        self.tasks_submitted += len(nodes) + sum(int(node.get("nest", 0)) for node in nodes)
        self.ledger.add(gid, nodes, held, "graph")
        self.gates_closed.extend(gate for gate in graphs.gates(nodes) if gate not in self.gates_closed)
        self.sibling_events.update(graphs.sibling_events(nodes))
        del futures  # intermediate results are released once their dependents are done, as in real use

    def _op_submit(self, step: dict[str, Any]) -> None:
        params = dict(step["graph"])
        if params["kind"] == "spill":
            params["n"] = min(int(params["n"]), 10)
        gid = len(self.graphs)
        nodes = graphs.build_graph(params, gid, int(self.config["memory_limit"]))
        self.graphs.append(nodes)
        bounded(lambda: self._submit_nodes(nodes, gid, params.get("outputs", "sinks")), STEP_TIMEOUT_S, "submit")

    def _op_resubmit(self, step: dict[str, Any]) -> None:
        """The same keys again (the scheduler may still hold them, queued or releasing)."""
        if not self.graphs:
            return
        gid = int(step["which"]) % len(self.graphs)
        nodes = self.graphs[gid]
        bounded(lambda: self._submit_nodes(nodes, gid, "sinks"), STEP_TIMEOUT_S, "resubmit")

    def _op_cancel(self, step: dict[str, Any]) -> None:
        sub = self.ledger.pick(step["which"])
        if sub is None:
            return
        if step.get("after_ms"):
            time.sleep(step["after_ms"] / 1000)
        self.ledger.cancel(sub)
        futures = list(sub.futures.values())
        bounded(lambda: self.client.cancel(futures), STEP_TIMEOUT_S, "cancel")

    def _op_flap(self, step: dict[str, Any]) -> None:
        """Release a graph's futures and resubmit the same keys at once, ``rounds`` times (distributed#7200)."""
        sub = self.ledger.pick(step["which"])
        if sub is None or sub.kind != "graph":
            return
        nodes, gid = sub.nodes, sub.gid
        for _ in range(int(step["rounds"])):
            sub.futures.clear()
            bounded(lambda: self._submit_nodes(nodes, gid, "sinks"), STEP_TIMEOUT_S, "resubmit")
            sub = self.submissions[len(self.submissions) - 1]
            time.sleep(int(step.get("ms", 0)) / 1000)

    def _op_release(self, step: dict[str, Any]) -> None:
        """Drop the client's references: the scheduler forgets the keys (mid-execution, if they are running)."""
        sub = self.ledger.pick(step["which"])
        if sub is not None:
            sub.futures.clear()
            gc.collect()

    def _op_open_gate(self, step: dict[str, Any]) -> None:
        if not self.gates_closed:
            return
        from distributed import Event

        name = self.gates_closed.pop(int(step["which"]) % len(self.gates_closed))
        bounded(lambda: Event(name, client=self.client).set(), STEP_TIMEOUT_S, f"opening gate {name}")

    def _op_settle(self, step: dict[str, Any]) -> None:
        self.settle()

    def _op_pause(self, step: dict[str, Any]) -> None:
        time.sleep(int(step["ms"]) / 1000)

    def _op_add_worker(self, step: dict[str, Any]) -> None:
        cluster = self.cluster
        names_before = {str(name) for name in cluster.worker_spec}
        errors_before = self.log_tail.errors_seen
        bounded(lambda: cluster.scale(len(cluster.worker_spec) + 1), STEP_TIMEOUT_S, "scaling up")
        new = {str(name) for name in cluster.worker_spec} - names_before
        # Wait for the new worker by name: a retired worker may still be listed while it closes.
        deadline = time.monotonic() + STEP_TIMEOUT_S
        while not new <= {name for name, _ in self.live_workers()}:
            if time.monotonic() > deadline:
                names = ", ".join(sorted(new))
                failed = [where for number, where in self.log_tail.errors if number > errors_before]
                if failed:  # the scheduler dropped it: what it failed on first is the failure's class
                    raise LivenessError(f"the scheduler failed {failed[0]}; the worker added by scaling up ({names})"
                                        " never arrived")  # fmt: skip
                raise LivenessError(f"the worker added by scaling up ({names}) never arrived")
            time.sleep(0.05)
        self.workers_model += 1

    def _forget_worker(self, name: str) -> Any:
        """Take a worker out of the LocalCluster's spec so the cluster neither restarts nor re-closes it."""
        spec_name: Any = next((key for key in self.cluster.worker_spec if str(key) == name), None)
        if spec_name is None:
            return None
        self.cluster.worker_spec.pop(spec_name, None)
        worker = self.cluster.workers.pop(spec_name, None)
        if worker is not None:
            self.forgotten.append((name, worker))
        return worker

    def _finish_forgotten_closes(self) -> None:
        """Wait until every worker taken out of the spec has finished closing, before the cluster closes.

        ``SpecCluster.close`` waits only for the workers in its spec, then stops its event loop. A retired worker can
        still be closing then: its executor joins a busy task thread for up to its 30 s timeout, holding
        distributed's process-wide thread-pool lock. Stopping the loop cancels that close half-way; the worker's
        stream handler, cancelled too, then waits in ``finished()`` for a close that will never finish, and the
        loop thread never stops (\"join timed out\"). That was the harness's doing, not the release's: a user's
        cluster closes the workers it knows about and waits for them. A close that does not finish here fails.
        """
        deadline = time.monotonic() + CLOSE_TIMEOUT_S
        for name, worker in self.forgotten:
            if any(worker is dropped for dropped in self.dropped_workers):
                continue  # closed above, where a close cut off from the scheduler may fail
            # Worker/Nanny.close on one already closing waits for that close; on a closed one it returns at once.
            remaining = max(deadline - time.monotonic(), 1.0)
            bounded(functools.partial(self.cluster.sync, worker.close), remaining, f"closing worker {name}")

    def _op_close_worker(self, step: dict[str, Any]) -> None:
        """Close a worker (or its nanny) directly: graceful, but no hand-over of its data."""
        picked = self._pick_worker(step["which"], step.get("target", "any"))
        if picked is None:
            return
        name = picked[0]
        self.ledger.churn()
        worker = self._forget_worker(name)
        self.workers_model = max(0, self.workers_model - 1)
        if worker is not None:
            # Its busy task threads may each take the worker's own close timeout (30 s), after any other closing
            # worker's (distributed's thread-pool lock): a close behind a retirement took over 60 s on 2022.10.2.
            bounded(lambda: self.cluster.sync(worker.close), CLOSE_TIMEOUT_S, f"closing worker {name}")

    def _op_retire_worker(self, step: dict[str, Any]) -> None:
        """``Client.retire_workers`` while work is in flight: the scheduler moves its data away, then closes it."""
        workers = self.live_workers()
        if not workers:
            return
        name, address = workers[int(step["which"]) % len(workers)]
        self.ledger.churn()
        self.workers_model = max(0, self.workers_model - 1)
        bounded(lambda: self.client.retire_workers(workers=[address]), STEP_TIMEOUT_S, f"retiring worker {name}")
        worker = self._forget_worker(name)
        # The scheduler closes a retired worker itself; only a worker it left running is closed here. (A retired
        # worker whose P2P task thread is still busy can take its own close timeout, 30 s, to finish closing.)
        if worker is not None and "clos" not in str(getattr(worker, "status", "")):
            with contextlib.suppress(Exception):
                bounded(lambda: self.cluster.sync(worker.close), 10, f"closing retired worker {name}")

    def _op_kill_worker(self, step: dict[str, Any]) -> None:
        """SIGKILL a worker process (process tier): its nanny starts a new one at a new address."""
        if self.config["tier"] != "process":
            return
        pid = self._worker_pid(step["which"], step.get("target", "any"))
        if pid is None:
            return
        self.ledger.churn()
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    def _worker_pid(self, which: int, target: str = "any") -> Optional[int]:
        """The process id of the worker ``_pick_worker`` picks, or None if there is none (or it went away)."""
        picked = self._pick_worker(which, target)
        if picked is None:
            return None
        address = picked[1]
        try:
            pids = bounded(
                lambda: self.client.run(invariants.worker_pid, workers=[address]), STEP_TIMEOUT_S, "worker pid"
            )
        except Exception as error:
            if is_comm_error(error):
                return None  # it went away by itself
            raise
        return int(pids[address])

    def _op_restart(self, step: dict[str, Any]) -> None:
        """``Client.restart`` (process tier): every worker restarts; every future is cancelled or lost."""
        if self.config["tier"] != "process":
            return
        self.ledger.restart()
        bounded(lambda: self.client.restart(timeout=RESTART_WAIT_S), RESTART_WAIT_S + STEP_TIMEOUT_S, "client.restart")

    def _op_p2p_shuffle(self, step: dict[str, Any]) -> None:
        """A small P2P shuffle; with ``replace``, a worker is retired and another added while it runs."""
        available, reason = graphs.p2p_support()
        if not available:
            self.missing["p2p_shuffle"] = reason
            return
        rows, parts = int(step["rows"]), int(step["partitions"])
        futures = bounded(
            functools.partial(graphs.submit_p2p_shuffle, self.client, rows, parts),
            STEP_TIMEOUT_S,
            "submitting a P2P shuffle",
        )
        keys = [f"p2p{len(self.submissions)}-{i}" for i in range(len(futures))]
        self.ledger.add(-1, [], dict(zip(keys, futures)), "p2p").rows = rows
        self.tasks_submitted += 4 * parts * max(1, parts)
        if step.get("replace"):
            time.sleep(int(step.get("after_ms", 50)) / 1000)
            self._op_retire_worker({"which": step.get("which", 0)})
            self._op_add_worker({})

    def _pick_worker(self, which: int, target: str = "any") -> Optional[tuple[str, str]]:
        """(name, address) of a live worker: the ``which``-th; with ``target="holder"`` the one holding the only
        copy of the most data that tasks still to run need (the ``which``-th of those tied; any, if none holds any);
        with ``target="queued"``, the holder of the only copy a *queued* task needs, waiting up to
        ``QUEUED_WAIT_S`` for one to exist (then as ``holder``). A fault aimed where and when it hurts: losing such
        data sends queued and waiting tasks back to wait on recomputation (distributed#8702 lived there)."""
        workers = self.live_workers()
        if not workers:
            return None
        if target not in TARGETS:
            raise ValueError(f"unknown worker target {target!r}; known: {', '.join(TARGETS)}")
        counts: dict[str, int] = {}
        if target == "queued":
            deadline = time.monotonic() + QUEUED_WAIT_S
            while not counts and time.monotonic() < deadline:
                counts = self._sole_holders(queued_only=True)
                if not counts:
                    time.sleep(0.05)
            self.aimed["queued_found" if counts else "queued_missed"] += 1
        if target in ("holder", "queued") and not counts:
            counts = self._sole_holders(queued_only=False)
        most = max((counts.get(address, 0) for _, address in workers), default=0)
        if most > 0:
            workers = [item for item in workers if counts.get(item[1], 0) == most]
        return workers[int(which) % len(workers)]

    def _sole_holders(self, queued_only: bool) -> dict[str, int]:
        return bounded(  # type: ignore[no-any-return]
            lambda: self.client.run_on_scheduler(invariants.sole_holders, queued_only=queued_only),
            STEP_TIMEOUT_S,
            "sole holders",
        )

    def _op_slow_link(self, step: dict[str, Any]) -> None:
        """Latency on one worker's links, both ways (network configs): ``ms`` + jitter seeded by ``seed``."""
        picked = self._pick_worker(step["which"]) if self.network is not None else None
        if picked is not None and self.network is not None:
            self.network.slow(picked[0], float(step["ms"]), int(step.get("seed", 0)))

    def _op_drop_links(self, step: dict[str, Any]) -> None:
        """Abort one worker's connections, refusing new ones for ``refuse_ms`` (network configs): churn. Scope
        ``all`` includes its stream to the scheduler (process tier), which makes it close itself."""
        picked = self._pick_worker(step["which"]) if self.network is not None else None
        if picked is None or self.network is None:
            return
        name, scope = picked[0], str(step.get("scope", "all"))
        self.ledger.churn()
        if scope == "all" and self.network.reaches_scheduler(name):
            worker = self._forget_worker(name)
            if worker is not None:
                self.dropped_workers.append(worker)
            self.workers_model = max(0, self.workers_model - 1)
        self.network.drop(name, float(step.get("refuse_ms", 0)), scope)

    def _op_stop_worker(self, step: dict[str, Any]) -> None:
        """SIGSTOP a worker process for ``ms``, then SIGCONT (process tier). Pure delay: explains no error."""
        if self.config["tier"] != "process":
            return
        pid = self._worker_pid(step["which"])
        if pid is not None and self.stopped.stop(pid):
            try:
                time.sleep(int(step["ms"]) / 1000)
            finally:
                self.stopped.resume(pid)

    def faults_stop(self) -> None:
        """No latency, connections accepted, no process stopped."""
        self.stopped.continue_all()
        if self.network is not None:
            self.network.clear()

    # -- invariants -----------------------------------------------------------------------------------------

    def check_state(self) -> None:
        """Scheduler and worker ``validate_state()`` (skipped, and recorded, where the version lacks them)."""
        if self.client is None:
            return
        with self.timed("validate"):
            self._check_state()

    def _check_state(self) -> None:
        try:
            problem = bounded(
                lambda: self.client.run_on_scheduler(invariants.validate_scheduler),
                STEP_TIMEOUT_S,
                "Scheduler.validate_state",
            )
        except InvariantViolation:
            raise
        except Exception as error:
            raise StateValidationError(f"Scheduler.validate_state failed: {describe(error)}") from error
        if problem:
            self.missing["scheduler_validate_state"] = problem
        for _, address in self.live_workers():
            try:
                result = bounded(
                    functools.partial(self.client.run, invariants.validate_worker, workers=[address]),
                    STEP_TIMEOUT_S,
                    f"validate_state of worker {address}",
                )
            except InvariantViolation:
                raise
            except Exception as error:
                if is_comm_error(error):
                    continue  # the worker left while we asked
                raise StateValidationError(f"worker {address} validate_state failed: {describe(error)}") from error
            problem = (result or {}).get(address)
            if problem:
                self.missing["worker_validate_state"] = problem

    def settle(self) -> dict[str, int]:
        """Faults stop: open every gate, make sure a worker is alive, then every future must reach an end state.

        Returns counts of how the held futures ended.
        """
        from distributed import Event

        self.faults_stop()
        for name in list(self.gates_closed):
            bounded(functools.partial(Event(name, client=self.client).set), STEP_TIMEOUT_S, f"opening gate {name}")
        self.gates_closed.clear()
        # A worker still closing is a fault still in progress: in one process its close holds distributed's
        # thread-pool lock while it joins its busy task threads (up to 30 s), so every secede() anywhere waits, and
        # two closes in a row stalled past the settle time (a liveness false alarm on stable, measured by the
        # stability calibration). The futures' clock starts once the workers taken out have finished closing.
        self._finish_forgotten_closes()
        if "running" not in self.worker_statuses().values():
            # No worker that takes tasks: a retired one may still be listed while it closes (or after a retirement
            # that found no recipient for its data). Settling promises a running worker.
            self._op_add_worker({})
        # Poll ``done()`` rather than ``distributed.wait``: its handling of cancelled futures differs by release.
        futures = self.ledger.futures()
        started = time.monotonic()
        while not all(future.done() for future in futures):
            if time.monotonic() > started + self.settle_s:
                raise self._liveness_failure()
            time.sleep(0.05)
        self.slowest_settle_s = max(self.slowest_settle_s, time.monotonic() - started)
        counts = self.ledger.judge()
        self._check_transitions()
        return counts

    def _liveness_failure(self) -> LivenessError:
        pending = sorted(self.ledger.pending_keys())
        detail = failed = ""
        try:
            states = bounded(
                lambda: self.client.run_on_scheduler(invariants.stuck_keys, keys=pending), 20, "reading stuck keys"
            )
            detail = "; scheduler states: " + stuck_states(states)
            causes = bounded(lambda: self.client.run_on_scheduler(invariants.stuck_causes), 20, "reading causes")
            if causes:
                detail += "; stuck on: " + ", ".join(causes)
            if causes in ([invariants.NO_WORKER], [invariants.NO_CAUSE]) and self.log_tail.first_error:
                # The scheduler dropped the workers, or nothing the tasks wait on explains the hang: what it failed on
                # first names it (as for a worker it refused) — later errors follow from it (a KeyError releasing
                # the task it failed on, …). A hang that seceded tasks or lost data explain keeps that name.
                failed = f"the scheduler failed {self.log_tail.first_error}; "
            workers = sorted(self.worker_statuses().items())
            detail += "; workers: " + (", ".join(f"worker {name} {status}" for name, status in workers) or "none")
            before = bounded(lambda: self.client.run_on_scheduler(invariants.transition_counter), 20, "transitions")
            time.sleep(2)
            after = bounded(lambda: self.client.run_on_scheduler(invariants.transition_counter), 20, "transitions")
            if before is not None and after is not None:
                detail += (
                    f"; livelock: {after - before} transitions in 2 s"
                    if after > before
                    else "; deadlock: no transition in 2 s"
                )
        except Exception as error:
            detail += f"; (could not read the scheduler: {describe(error)})"
        return LivenessError(
            f"{failed}{len(pending)} future(s) neither finished, erred nor were cancelled {self.settle_s:g} s after"
            f" faults stopped: {', '.join(pending[:10])}{' …' if len(pending) > 10 else ''}{detail}"
        )

    def _check_transitions(self) -> None:
        counter = bounded(
            lambda: self.client.run_on_scheduler(invariants.transition_counter), STEP_TIMEOUT_S, "transitions"
        )
        if counter is None:
            self.missing["transition_counter"] = "Scheduler.transition_counter is not available in this version"
            return
        cap = TRANSITIONS_BASE + TRANSITIONS_PER_TASK * self.tasks_submitted
        if counter > cap:
            raise LivelockError(
                f"{counter} scheduler transitions for {self.tasks_submitted} tasks submitted (cap {cap}):"
                " tasks are cycling between states"
            )

    # -- end ------------------------------------------------------------------------------------------------

    def finish(self) -> dict[str, int]:
        """Settle, validate, close, and check nothing leaked. Raises InvariantViolation on the first problem."""
        try:
            with self.timed("final_settle"):
                counts = self.settle()
            self.check_state()
        except BaseException:
            self.fail()
            raise
        with self.timed("close"):
            self.close()
        with self.timed("leak_check"):
            self.leak_watch.check()
        return counts

    def fail(self) -> None:
        """After a violation: dump the cluster state (if asked), then close without further checks."""
        if self.dump_failures and self.client is not None and self.dump_path is None:
            target = self.scratch / "cluster-dump"
            try:
                bounded(
                    lambda: self.client.dump_cluster_state(str(target), format="msgpack"), 60, "dumping the cluster"
                )
                written = sorted(self.scratch.glob("cluster-dump*"))
                self.dump_path = str(written[0]) if written else None
            except Exception as error:
                self.missing["cluster_dump"] = f"cluster dump failed: {describe(error)}"
        with contextlib.suppress(Exception):
            self.close()
        self.leak_watch.kill_children()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.stopped.continue_all()
        try:
            for worker in self.dropped_workers:
                with contextlib.suppress(Exception):
                    bounded(functools.partial(self.cluster.sync, worker.close), 30, "closing a dropped worker")
            if self.client is not None and self.sibling_events:
                from distributed import Event

                # Let tasks still waiting for a sibling end, so their threads do not outlive the cluster.
                for name in sorted(self.sibling_events):
                    with contextlib.suppress(Exception):
                        bounded(functools.partial(Event(name, client=self.client).set), 10, f"setting {name}")
            if self.client is not None:
                bounded(self.client.close, CLOSE_TIMEOUT_S, "closing the client")
            if self.cluster is not None:
                self._finish_forgotten_closes()
                bounded(self.cluster.close, CLOSE_TIMEOUT_S, "closing the cluster")
        except LivenessError as error:
            raise TeardownError(str(error)) from None
        except Exception as error:
            # e.g. the cluster's loop thread not stopping ("join timed out"): closing did not finish cleanly. Say
            # where the program's threads wait, as the leak check does: that, not the join, is the cause.
            theirs = [thread for thread in self.leak_watch.leaked_threads() if not thread.name.startswith("blessing-")]
            stacks = invariants.thread_stacks(theirs)
            where = "; ".join(f"{name} {summary}" for name, (summary, _) in stacks.items())
            loop = getattr(getattr(self.cluster, "loop", None), "asyncio_loop", None)
            pending = invariants.pending_tasks(loop) if loop is not None else []
            teardown = TeardownError(
                f"closing did not finish: {describe(error)}"
                + (f" — where the threads wait: {where}" if where else "")
                + (f" — still pending on the cluster's loop: {'; '.join(pending)}" if pending else "")
            )
            teardown.__notes__ = [f"stack of thread {name}:\n{stack}" for name, (_, stack) in stacks.items()]
            raise teardown from error
        finally:
            if self.network is not None:
                self.network.close()  # also after a failed close: its thread and sockets are the harness's
            if self._config_context is not None:
                self._config_context.__exit__(None, None, None)
                self._config_context = None
            logging.getLogger("distributed").removeHandler(self.log_tail)

    def cleanup(self, keep: bool = False) -> None:
        """Remove the scratch directory (unless ``keep``: it holds the cluster dump of a failure)."""
        if not keep:
            shutil.rmtree(self.scratch, ignore_errors=True)


def run_program(program: list[dict[str, Any]], settle_s: float = 30.0, work_dir: Optional[Path] = None) -> Executor:
    """Replay a recorded program on a fresh cluster. Returns the executor; raises its first violation."""
    if not program or program[0].get("op") != "start":
        raise ValueError("a chaos program starts with a 'start' step holding the cluster config")
    executor = Executor(program[0]["config"], settle_s=settle_s, work_dir=work_dir)
    try:
        executor.start()
        for step in program[1:]:
            executor.apply(step)
            executor.check_state()
        executor.finish()
    except BaseException:
        executor.fail()
        raise
    return executor
