"""The hypothesis state machines: rules draw steps, the executor applies them, invariants judge the cluster.

Two tiers share one machine: ``inprocess`` (workers in this process: fast, many examples; workers are closed or
retired, never killed) and ``process`` (nanny-managed worker processes: SIGKILL, ``Client.restart``). Each
example is one fresh cluster, created in the initialize rule and closed in ``teardown`` (a sync client: rules
cannot be async). Everything random is drawn by hypothesis, so a seed regenerates the same programs; the
cluster's timing is not, hence replays report a hit rate.

Budgets are hypothesis settings profiles: ``ci`` (minutes, no shrinking: the unshrunk program is recorded) and
``nightly`` (ten times the examples, with shrinking).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable, Optional

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from framework.chaos.executor import Executor, format_traceback
from framework.chaos.graphs import p2p_support
from framework.chaos.strategies import (
    close_targets,
    cluster_configs,
    graph_params_for,
    queued_fanouts,
    targets,
    which,
)

MiB = 2**20
MAX_WORKERS = 4
# Examples and steps per example of the in-process tier; the process tier runs PROCESS_SHARE of the examples.
PROFILES: dict[str, dict[str, Any]] = {
    "ci": {"max_examples": 40, "stateful_step_count": 12, "shrink": False},
    "nightly": {"max_examples": 400, "stateful_step_count": 25, "shrink": True},
}
PROCESS_SHARE = 0.2
# Longer than a worker's own close timeout (30 s): in one process, a closing worker holds distributed's global
# thread-pool lock while it joins its task threads, so every secede() in that process may wait out that timeout
# (measured on 2026.8: a 29 s stall, then everything finishes). Slower than that is not a stall.
SETTLE_S = {"inprocess": 40.0, "process": 40.0}
MEMORY_LIMIT = {"inprocess": 256 * MiB, "process": 768 * MiB}


def register_profiles() -> None:
    """The named budgets, as hypothesis settings profiles (``settings.get_profile("blessing-ci")``)."""
    for name, budget in PROFILES.items():
        phases = [Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if budget["shrink"] else [])
        settings.register_profile(
            f"blessing-{name}",
            max_examples=budget["max_examples"],
            stateful_step_count=budget["stateful_step_count"],
            deadline=None,
            database=None,
            phases=phases,
            report_multiple_bugs=False,
            suppress_health_check=list(HealthCheck),
            print_blob=False,
        )


def tier_settings(profile: str, tier: str, examples: Optional[int] = None, steps: Optional[int] = None) -> Any:
    register_profiles()
    base = settings.get_profile(f"blessing-{profile}")
    count = examples if examples is not None else base.max_examples
    if tier == "process" and examples is None:
        count = max(2, int(count * PROCESS_SHARE))
    step_count = steps if steps is not None else base.stateful_step_count
    if tier == "process" and steps is None:
        step_count = max(4, int(step_count * 0.7))
    return settings(base, max_examples=count, stateful_step_count=step_count)


@dataclasses.dataclass
class Failure:
    """A failing example: its program, what broke, the traceback and the cluster dump (path or None)."""

    program: list[dict[str, Any]]
    kind: str
    error: str
    traceback: str
    dump_path: Optional[str]
    scratch: str
    log_tail: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class ExampleEnd:
    """One example of a batch, as it ended: its number, the steps it ran, ``passed`` or the failure's kind."""

    tier: str
    number: int
    steps: int
    outcome: str
    seconds: float


@dataclasses.dataclass
class BatchStats:
    examples: int = 0
    steps: int = 0
    tasks: int = 0
    failures: list[Failure] = dataclasses.field(default_factory=list)
    missing: dict[str, str] = dataclasses.field(default_factory=dict)
    outcomes: dict[str, int] = dataclasses.field(default_factory=lambda: {"finished": 0, "error": 0, "cancelled": 0})
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)  # time per step kind / phase, summed
    slowest_settle_s: float = 0.0  # the longest any example's futures took to end once faults stopped
    step_counts: dict[str, int] = dataclasses.field(default_factory=dict)  # steps run, per kind
    network_examples: int = 0  # examples whose workers were behind the proxies (config "network")
    aimed: dict[str, int] = dataclasses.field(default_factory=dict)  # aimed faults: hits, misses (Executor.aimed)


class ChaosMachine(RuleBasedStateMachine):
    """Subclassed per batch by ``machine_for`` (tier, stats, settle time, scratch dir)."""

    tier = "inprocess"
    stats = BatchStats()
    settle_s = 20.0
    work_dir: Optional[Path] = None
    # Told of each example as it ends (see ``ExampleEnd``): the runner prints one line per example.
    on_example: Optional[Callable[[ExampleEnd], None]] = None

    def __init__(self) -> None:
        super().__init__()
        self.executor: Optional[Executor] = None
        self.failed = False
        self.started = time.perf_counter()

    def _do(self, step: dict[str, Any]) -> None:
        assert self.executor is not None
        try:
            self.executor.apply(step)
        except BaseException as error:
            self._record(error)
            raise

    def _record(self, error: BaseException) -> None:
        if self.failed or self.executor is None:
            return
        self.failed = True
        self.executor.fail()
        self.stats.failures.append(
            Failure(
                program=list(self.executor.program),
                kind=getattr(error, "kind", "error"),
                error=f"{type(error).__name__}: {error}"[:2000],
                traceback=format_traceback(error),
                dump_path=self.executor.dump_path,
                scratch=str(self.executor.scratch),
                log_tail=list(self.executor.log_tail.lines),
            )
        )

    @initialize(config=cluster_configs())
    def start(self, config: dict[str, Any]) -> None:
        config = {
            **config,
            "tier": self.tier,
            "validate": bool(config["validate"]) and self.tier == "inprocess",
            "memory_limit": MEMORY_LIMIT[self.tier],
        }
        self.executor = Executor(config, settle_s=self.settle_s, work_dir=self.work_dir)
        self.stats.examples += 1
        try:
            self.executor.start()
        except BaseException as error:
            self._record(error)
            raise

    def _started(self) -> bool:
        return self.executor is not None and not self.failed

    def _has_workers(self) -> bool:
        return self._started() and self.executor is not None and self.executor.workers_model > 0

    def _networked(self) -> bool:
        return self._has_workers() and self.executor is not None and self.executor.network is not None

    # One submit rule per graph kind: submitting is most of what a fuzzer should do, and each kind gets its turn.
    @precondition(lambda self: self._started())
    @rule(graph=graph_params_for("chain"))
    def submit_chain(self, graph: dict[str, Any]) -> None:
        self._do({"op": "submit", "graph": graph})

    @precondition(lambda self: self._started())
    @rule(graph=graph_params_for("tree"))
    def submit_tree(self, graph: dict[str, Any]) -> None:
        self._do({"op": "submit", "graph": graph})

    @precondition(lambda self: self._started())
    @rule(graph=graph_params_for("fanout"))
    def submit_fanout(self, graph: dict[str, Any]) -> None:
        self._do({"op": "submit", "graph": graph})

    @precondition(lambda self: self._started())
    @rule(graph=graph_params_for("dag"))
    def submit_dag(self, graph: dict[str, Any]) -> None:
        self._do({"op": "submit", "graph": graph})

    @precondition(lambda self: self._started())
    @rule(graph=graph_params_for("nested"))
    def submit_nested(self, graph: dict[str, Any]) -> None:
        self._do({"op": "submit", "graph": graph})

    @precondition(lambda self: self._started())
    @rule(graph=graph_params_for("spill"))
    def submit_spill(self, graph: dict[str, Any]) -> None:
        """Memory pressure: payloads sized from the workers' memory limit, so the workers spill to disk."""
        self._do({"op": "submit", "graph": graph})

    @precondition(lambda self: self._started() and bool(self.executor and self.executor.submissions))
    @rule(which=which, rounds=st.integers(1, 5), ms=st.sampled_from([0, 5, 20]))
    def flap(self, which: int, rounds: int, ms: int) -> None:
        """Release and resubmit the same keys quickly, while they may still be queued."""
        self._do({"op": "flap", "which": which, "rounds": rounds, "ms": ms})

    @precondition(lambda self: self._started() and bool(self.executor and self.executor.graphs))
    @rule(which=which)
    def resubmit(self, which: int) -> None:
        self._do({"op": "resubmit", "which": which})

    @precondition(lambda self: self._started() and bool(self.executor and self.executor.submissions))
    @rule(which=which, after_ms=st.sampled_from([0, 0, 10, 50]))
    def cancel(self, which: int, after_ms: int) -> None:
        self._do({"op": "cancel", "which": which, "after_ms": after_ms})

    @precondition(lambda self: self._started() and bool(self.executor and self.executor.submissions))
    @rule(which=which)
    def release(self, which: int) -> None:
        self._do({"op": "release", "which": which})

    @precondition(lambda self: self._started() and bool(self.executor and self.executor.gates_closed))
    @rule(which=which)
    def open_gate(self, which: int) -> None:
        self._do({"op": "open_gate", "which": which})

    @precondition(lambda self: self._started())
    @rule(ms=st.sampled_from([0, 10, 50, 200]))
    def pause(self, ms: int) -> None:
        self._do({"op": "pause", "ms": ms})

    @precondition(lambda self: self._started() and bool(self.executor and self.executor.workers_model < MAX_WORKERS))
    @rule()
    def add_worker(self) -> None:
        self._do({"op": "add_worker"})

    @precondition(lambda self: self._has_workers())
    @rule(which=which, aim=close_targets)  # (hypothesis reserves ``target``)
    def close_worker(self, which: int, aim: str) -> None:
        self._do({"op": "close_worker", "which": which, "target": aim})

    @precondition(lambda self: self._has_workers())
    @rule(graph=queued_fanouts, which=which)
    def lose_queued_input(self, graph: dict[str, Any], which: int) -> None:
        """Submit a fan-out over one shared input, then close the worker holding the only copy of that input while
        tasks are queued on it: the input must be computed again and the queued tasks wait for it (distributed#8702
        left them queued for ever). Two steps of the program, replayed as such."""
        self._do({"op": "submit", "graph": graph})
        self._do({"op": "close_worker", "which": which, "target": "queued"})

    @precondition(lambda self: self._has_workers())
    @rule(which=which)
    def retire_worker(self, which: int) -> None:
        self._do({"op": "retire_worker", "which": which})

    @precondition(lambda self: self._has_workers() and self.tier == "process")
    @rule(which=which, aim=targets)  # (hypothesis reserves ``target``)
    def kill_worker(self, which: int, aim: str) -> None:
        self._do({"op": "kill_worker", "which": which, "target": aim})

    @precondition(lambda self: self._has_workers() and self.tier == "process")
    @rule()
    def restart(self) -> None:
        self._do({"op": "restart"})

    # Process tier only: an in-process worker retired mid-shuffle keeps its P2P task threads blocked for the
    # worker's close timeout (30 s, measured), which stalls the whole in-process cluster's teardown.
    @precondition(lambda self: self._has_workers() and self.tier == "process" and p2p_support()[0])
    @rule(
        rows=st.integers(20, 400),
        partitions=st.integers(2, 6),
        replace=st.booleans(),
        after_ms=st.sampled_from([0, 20, 100]),
        which=which,
    )
    def p2p_shuffle(self, rows: int, partitions: int, replace: bool, after_ms: int, which: int) -> None:
        self._do(
            {
                "op": "p2p_shuffle",
                "rows": rows,
                "partitions": partitions,
                "replace": replace,
                "after_ms": after_ms,
                "which": which,
            }
        )

    @precondition(lambda self: self._networked())
    @rule(which=which, ms=st.sampled_from([5, 50, 200, 1000]), seed=st.integers(0, 2**16))
    def slow_link(self, which: int, ms: int, seed: int) -> None:
        """Latency on one worker's links (to it, and its own to the scheduler), both ways, until the next settle."""
        self._do({"op": "slow_link", "which": which, "ms": ms, "seed": seed})

    @precondition(lambda self: self._networked())
    @rule(which=which, scope=st.sampled_from(["peers", "all"]), refuse_ms=st.sampled_from([0, 200, 1000]))
    def drop_links(self, which: int, scope: str, refuse_ms: int) -> None:
        """Abort one worker's connections (``peers``: those made to it; ``all``: its scheduler stream too)."""
        self._do({"op": "drop_links", "which": which, "scope": scope, "refuse_ms": refuse_ms})

    # Past the workers' heartbeat interval (0.5 s for a small cluster), under the connect timeout (20 s) and far
    # under the scheduler's worker-ttl (5 minutes, 2022.10 to 2026.8): a pause the cluster must sit out.
    @precondition(lambda self: self._has_workers() and self.tier == "process")
    @rule(which=which, ms=st.sampled_from([100, 500, 3000]))
    def stop_worker(self, which: int, ms: int) -> None:
        """SIGSTOP a worker process, wait, SIGCONT."""
        self._do({"op": "stop_worker", "which": which, "ms": ms})

    @precondition(lambda self: self._started())
    @rule()
    def settle(self) -> None:
        """A checkpoint: faults stop, every future so far must end, results must be right."""
        self._do({"op": "settle"})

    @invariant()
    def state_is_valid(self) -> None:
        if not self._started():
            return
        assert self.executor is not None
        try:
            self.executor.check_state()
        except BaseException as error:
            self._record(error)
            raise

    def teardown(self) -> None:
        executor = self.executor
        if executor is None:
            return
        try:
            if not self.failed:
                try:
                    outcomes = executor.finish()
                except BaseException as error:
                    self._record(error)
                    raise
                for name, count in outcomes.items():
                    self.stats.outcomes[name] = self.stats.outcomes.get(name, 0) + count
        finally:
            self.stats.steps += executor.steps_run
            self.stats.tasks += executor.tasks_submitted
            self.stats.missing.update(executor.missing)
            self.stats.slowest_settle_s = max(self.stats.slowest_settle_s, executor.slowest_settle_s)
            self.stats.network_examples += executor.network is not None
            for step in executor.program[1:]:
                self.stats.step_counts[step["op"]] = self.stats.step_counts.get(step["op"], 0) + 1
            for outcome, count in executor.aimed.items():
                self.stats.aimed[outcome] = self.stats.aimed.get(outcome, 0) + count
            for phase, spent in executor.timings.items():
                self.stats.seconds[phase] = self.stats.seconds.get(phase, 0.0) + spent
            keep = bool(self.stats.failures and self.stats.failures[-1].scratch == str(executor.scratch))
            executor.cleanup(keep=keep)
            if type(self).on_example is not None:
                outcome = self.stats.failures[-1].kind if self.failed and self.stats.failures else "passed"
                ended = ExampleEnd(
                    self.tier, self.stats.examples, executor.steps_run, outcome, time.perf_counter() - self.started
                )
                type(self).on_example(ended)  # type: ignore[misc]  # a plain function, not a method


def machine_for(
    tier: str,
    settle_s: float,
    work_dir: Optional[Path],
    on_example: Optional[Callable[[ExampleEnd], None]] = None,
) -> type[ChaosMachine]:
    """A machine class of its own per batch: its stats and settings do not leak into the next batch."""
    return type(
        f"Chaos{tier.title()}",
        (ChaosMachine,),
        {
            "tier": tier,
            "stats": BatchStats(),
            "settle_s": settle_s,
            "work_dir": work_dir,
            "on_example": staticmethod(on_example) if on_example is not None else None,
        },
    )


@dataclasses.dataclass
class BatchResult:
    tier: str
    profile: str
    seed: int
    examples_wanted: int
    seconds: float
    stats: BatchStats
    failure: Optional[Failure]
    flaky: bool
    error: Optional[str]


def fuzz(
    tier: str,
    profile: str = "ci",
    seed: int = 0,
    examples: Optional[int] = None,
    steps: Optional[int] = None,
    settle_s: Optional[float] = None,
    work_dir: Optional[Path] = None,
    on_example: Optional[Callable[[ExampleEnd], None]] = None,
) -> BatchResult:
    """Run one batch of examples; stop at the first failure (shrunk under ``nightly``) and report it.

    ``on_example`` is told of each example as it ends (hypothesis's re-runs while shrinking included)."""
    from hypothesis import seed as with_seed

    chosen = tier_settings(profile, tier, examples, steps)
    machine = machine_for(tier, settle_s if settle_s is not None else SETTLE_S[tier], work_dir, on_example)
    with_seed(seed)(machine)
    started = time.perf_counter()
    error: Optional[str] = None
    try:
        run_state_machine_as_test(machine, settings=chosen)
    except BaseException as raised:
        if isinstance(raised, KeyboardInterrupt):
            raise
        error = f"{type(raised).__name__}: {raised}".splitlines()[0][:2000]
    seconds = time.perf_counter() - started
    stats = machine.stats
    failure = stats.failures[-1] if stats.failures else None
    # Hypothesis reports a failure it could not reproduce as Flaky; the recorded program is still the evidence.
    flaky = bool(error and "Flaky" in error)
    if failure is not None and error is None:
        error = failure.error  # raised during teardown after hypothesis finished: still a failure
    if failure is not None and flaky:
        # The final (minimal) run passed: keep the shortest program that failed. Otherwise the last one failed.
        failure = min(stats.failures, key=lambda f: len(f.program))
    return BatchResult(tier, profile, seed, chosen.max_examples, seconds, stats, failure, flaky, error)
