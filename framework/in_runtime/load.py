"""How busy the machine was while a case ran: load average, CPU pressure and CPU steal.

Runs inside runtime environments (standard library only). An execution's times mean little when the machine was
overloaded — a stability failure recorded at load 16 on a 2-core machine cannot be told apart from a distributed bug —
so each execution records, over its own wall time:

- ``load_avg_1m``: the highest 1-minute load average read (at the start, every ``SAMPLE_S`` seconds, at the end);
- ``cpu_pressure``: the fraction of the case's wall time in which some task waited for a CPU (Linux PSI,
  ``/proc/pressure/cpu``, the ``some`` line's ``total`` in µs, read before and after);
- ``cpu_steal``: the fraction of CPU time the hypervisor gave to others (``/proc/stat``'s steal jiffies over all);
- ``overloaded``: ``load_avg_1m`` above the machine's cores (``os.cpu_count()``): more runnable threads than CPUs.
  The case's own threads count in the load too: a cluster sized within the machine's cores stays below it, so
  above it something competed with the case (or the cluster itself oversubscribes the machine) — either way its
  times are not comparable with a quiet run's.

What a platform cannot provide (no PSI on macOS or kernels before 4.20, no ``/proc`` at all, a remote cluster whose
machines are not this one) is None with a reason in the row's ``missing``, never 0.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

SAMPLE_S = 1.0  # the load average changes slowly (a 1-minute decay): a reading a second is plenty
COLUMNS = ("load_avg_1m", "cpu_pressure", "cpu_steal", "overloaded")
_STAT_FIELDS = 8  # user nice system idle iowait irq softirq steal (guest time is counted in user already)


def overloaded(load_avg_1m: Optional[float], cores: Optional[int]) -> Optional[bool]:
    """The rule: more runnable threads than cores over the last minute. None when either is unknown."""
    if load_avg_1m is None or not cores:
        return None
    return load_avg_1m > cores


def read_load(getloadavg: Callable[[], tuple[float, float, float]] = os.getloadavg) -> tuple[Optional[float], str]:
    """(the 1-minute load average, "") or (None, why not)."""
    try:
        return float(getloadavg()[0]), ""
    except (OSError, AttributeError) as error:  # AttributeError: a platform without getloadavg
        return None, f"load average unavailable: {type(error).__name__}: {error}"


def read_cpu_stall_us(path: Path) -> tuple[Optional[int], str]:
    """(µs some task has waited for a CPU since boot, "") from a PSI file, or (None, why not)."""
    try:
        text = path.read_text()
    except OSError as error:
        return None, f"no CPU pressure information ({path}: {error.strerror or error}; Linux ≥ 4.20 with PSI has it)"
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "some":
            for field in fields[1:]:
                name, _, value = field.partition("=")
                if name == "total" and value.isdigit():
                    return int(value), ""
    return None, f"{path}: no 'some … total=' line in {text[:80]!r}"


def read_cpu_times(path: Path) -> tuple[Optional[tuple[int, int]], str]:
    """((steal jiffies, all jiffies) since boot, "") from ``/proc/stat``'s ``cpu`` line, or (None, why not)."""
    try:
        with path.open() as file:
            first = file.readline()
    except OSError as error:
        return None, f"no CPU steal information ({path}: {error.strerror or error})"
    fields = first.split()
    if len(fields) < 1 + _STAT_FIELDS or fields[0] != "cpu" or not all(f.isdigit() for f in fields[1:9]):
        return None, f"{path}: its first line is not a 'cpu' line with 8 counters: {first.strip()[:80]!r}"
    counters = [int(field) for field in fields[1 : 1 + _STAT_FIELDS]]
    return (counters[7], sum(counters)), ""


class LoadWatch:
    """Readings before, during (a light thread, every ``sample_s``; ``None``: none) and after one execution.

    Without the thread the highest load is that of the start and the end: the 1-minute average at the end still
    weighs the whole of a short case. The stability runner reads so — its invariants count every thread left running.

    ``with LoadWatch() as watch: ...`` then ``watch.values`` (the four columns) and ``watch.missing`` (column → why).
    """

    def __init__(
        self,
        proc: Path = Path("/proc"),
        getloadavg: Callable[[], tuple[float, float, float]] = os.getloadavg,
        cores: Optional[int] = None,
        sample_s: Optional[float] = SAMPLE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.proc, self.getloadavg, self.sample_s, self.clock = proc, getloadavg, sample_s, clock
        self.cores = cores if cores is not None else os.cpu_count()
        self.values: dict[str, Any] = dict.fromkeys(COLUMNS)
        self.missing: dict[str, str] = {}
        self._loads: list[float] = []
        self._load_problem = ""
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def _sample_load(self) -> None:
        load, problem = read_load(self.getloadavg)
        if load is None:
            self._load_problem = problem
        else:
            self._loads.append(load)

    def _sampler(self) -> None:
        assert self.sample_s is not None
        while not self._stop.wait(self.sample_s):
            self._sample_load()

    def __enter__(self) -> LoadWatch:
        self._stall_before, self._stall_problem = read_cpu_stall_us(self.proc / "pressure" / "cpu")
        self._times_before, self._times_problem = read_cpu_times(self.proc / "stat")
        self._sample_load()
        self._started = self.clock()
        if self._loads and self.sample_s is not None:  # no load average here (or no sampling asked): no thread
            self._thread = threading.Thread(target=self._sampler, name="blessing-load", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        elapsed_s = self.clock() - self._started
        self._sample_load()
        self.values["load_avg_1m"] = max(self._loads) if self._loads else None
        if not self._loads:
            self.missing["load_avg_1m"] = self._load_problem or "load average unavailable"
        self.values["overloaded"] = overloaded(self.values["load_avg_1m"], self.cores)
        if self.values["overloaded"] is None:
            self.missing["overloaded"] = self.missing.get("load_avg_1m") or "the machine's core count is unknown"
        self._pressure(elapsed_s)
        self._steal()

    def _pressure(self, elapsed_s: float) -> None:
        stall_after, problem = (
            read_cpu_stall_us(self.proc / "pressure" / "cpu")
            if self._stall_before is not None
            else (None, self._stall_problem)
        )
        if self._stall_before is None or stall_after is None:
            self.missing["cpu_pressure"] = problem
        elif elapsed_s <= 0:
            self.missing["cpu_pressure"] = "the case took no measurable time"
        else:
            fraction = (stall_after - self._stall_before) / (elapsed_s * 1e6)
            self.values["cpu_pressure"] = min(max(fraction, 0.0), 1.0)

    def _steal(self) -> None:
        after, problem = (
            read_cpu_times(self.proc / "stat") if self._times_before is not None else (None, self._times_problem)
        )
        if self._times_before is None or after is None:
            self.missing["cpu_steal"] = problem
            return
        total = after[1] - self._times_before[1]
        if total <= 0:
            self.missing["cpu_steal"] = "the case was shorter than one tick of /proc/stat's CPU counters"
        else:
            self.values["cpu_steal"] = min(max((after[0] - self._times_before[0]) / total, 0.0), 1.0)


def not_measured(reason: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The four columns of a row that measured no execution here: None each, with the reason."""
    return dict.fromkeys(COLUMNS), dict.fromkeys(COLUMNS, reason)
