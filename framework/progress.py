"""How far a long run is: a bar on a terminal; in CI or a pipe, plain lines and a status line now and then.

    with Progress("matrix", total=400, unit="executions") as progress:
        progress.note("[latest × local] groupby_agg[by=name] measure 3: passed in 1.17 s")
        progress.advance(1, current="latest × local groupby_agg[by=name] measure 3")

Modes: ``bar`` redraws one line at the bottom of the terminal (rich) and prints notes above it; ``plain`` prints
the notes as they come and at most one ``progress: 120/400 executions, 3 failed, ETA 4 min`` line every 30 s — no
carriage return, no redraw, so logs stay readable; ``off`` prints the notes only. The default is ``bar`` when
stderr is a terminal, else ``plain``; ``DASK_BLESSING_PROGRESS=bar|plain|off`` overrides. The ETA is the mean time
of the units done so far times the units left. Showing progress never raises into the run: when the terminal
fails, the bar falls back to plain lines, and plain lines that fail fall silent.

A runner process (no rich in a runtime's environment, so rich is imported only to draw a bar) reports its own
progress with :func:`runner_line`; the controller reading its output hands such lines to :class:`RunnerProgress`.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Literal, TextIO

Mode = Literal["bar", "plain", "off"]
# How the total is known: exactly, as an upper bound (a sequential comparison may stop early), or as an estimate.
Bound = Literal["exact", "at most", "about"]
MODES: tuple[Mode, ...] = ("bar", "plain", "off")
ENV = "DASK_BLESSING_PROGRESS"
STATUS_EVERY_S = 30.0
REDRAW_EVERY_S = 0.5
_MARK = {"exact": "", "at most": "≤", "about": "~"}

_shown: list[Progress] = []  # the progress displays open now, innermost last


def choose_mode(stream: TextIO) -> tuple[Mode, str | None]:
    """The mode for ``stream``: ``DASK_BLESSING_PROGRESS`` if set, else bar on a terminal; and any complaint."""
    wanted = os.environ.get(ENV, "").strip().lower()
    complaint = None
    if wanted in MODES:
        return wanted, None
    if wanted:
        complaint = f"{ENV}={wanted!r} is not one of {', '.join(MODES)} — showing progress as if it were unset"
    try:
        terminal = stream.isatty() and os.environ.get("TERM") != "dumb"
    except Exception:
        terminal = False
    return ("bar" if terminal else "plain"), complaint


def echo(line: str) -> None:
    """Print one line of a run's output: above the bar when one is shown, else on stderr."""
    if _shown:
        _shown[-1].note(line)
        return
    with contextlib.suppress(Exception):
        sys.stderr.write(line + "\n")
        sys.stderr.flush()


def duration(seconds: float) -> str:
    """``35 s``, ``4 min``, ``2 h 05 min``: as precise as an estimate deserves."""
    if seconds < 59.5:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


class Progress:
    """Progress of ``total`` units of one run (a context manager); safe to call from several threads.

    Args:
        title: what runs, shown at the left of the bar (``matrix``, ``compare``, ``bisect``).
        total: units expected; may be raised later (``progress.total = n``), and grows if ``done`` passes it.
        unit: what a unit is, plural (``executions``, ``runs``, ``steps``).
        bound: ``exact``, ``at most`` (shown ``≤400``) or ``about`` (shown ``~7``).
        mode: bar, plain or off; by default from the environment and whether ``stream`` is a terminal.
        console: a rich Console to draw the bar on (tests); by default one on ``stream``.
    """

    def __init__(
        self,
        title: str,
        total: int,
        unit: str,
        *,
        bound: Bound = "exact",
        mode: Mode | None = None,
        stream: TextIO | None = None,
        console: Any = None,
        clock: Callable[[], float] = time.monotonic,
        status_every_s: float = STATUS_EVERY_S,
    ) -> None:
        self.title, self.unit, self.bound = title, unit, bound
        self.done = self.failed = 0
        self.current = ""
        self.mode: Mode = "off"
        self._total = max(int(total), 0)
        self._wanted_mode, self._stream, self._console = mode, stream, console
        self._clock, self._status_every_s = clock, status_every_s
        self._lock = threading.RLock()
        self._outer: Progress | None = None
        self._silent = False  # the stream failed: write nothing more
        self._started = self._last_mark = self._last_status = 0.0
        self._aside_s = 0.0  # time in ``setup`` stretches, left out of the time per unit
        self._aside_since: float | None = None
        self._bar: Any = None
        self._task: Any = None
        self._saved_io = (sys.stdout, sys.stderr)
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    # --- the run's side ---------------------------------------------------------------------------------------

    def __enter__(self) -> Progress:
        self._stream = self._stream or sys.stderr
        mode, complaint = (self._wanted_mode, None) if self._wanted_mode else choose_mode(self._stream)
        self._started = self._last_mark = self._last_status = self._clock()
        if _shown:
            self._outer = _shown[-1]  # a run inside a run (a bisection's replays): the outer display counts
            return self
        self.mode = mode
        _shown.append(self)
        if complaint:
            self.note(complaint)
        if self.mode == "bar":
            self._safely(self._start_bar)
        return self

    def __exit__(self, *exc_info: object) -> None:
        with contextlib.suppress(ValueError):
            _shown.remove(self)
        self._safely(self._finish)

    @property
    def total(self) -> int:
        return self._total

    @total.setter
    def total(self, value: int) -> None:
        with self._lock:
            self._total = max(int(value), self.done, 0)
            self._safely(self._show)

    def advance(self, n: int = 1, *, current: str | None = None, failed: int = 0) -> None:
        """``n`` more units done (0 to change only what is shown as current), ``failed`` of them did not pass."""
        with self._lock:
            if n:
                self.done += n
                self._total = max(self._total, self.done)
                self._last_mark = self._clock()
            self.failed += failed
            if current is not None:
                self.current = current
            self._safely(self._show)

    def note(self, line: str) -> None:
        """Print a line above the bar (or as it is, without a bar)."""
        if self._outer is not None:
            self._outer.note(line)
            return
        with self._lock:
            self._safely(lambda: self._print(line))
            if self.mode == "bar":
                self._safely(self._show)

    @contextlib.contextmanager
    def setup(self, current: str) -> Iterator[None]:
        """A stretch that is none of the units (building an environment): shown, but left out of the ETA."""
        self.advance(0, current=current)
        with self._lock:
            self._aside_since = self._clock()
        try:
            yield
        finally:
            with self._lock:
                now = self._clock()
                self._aside_s += now - (now if self._aside_since is None else self._aside_since)
                self._aside_since = None
                self._last_mark = max(self._last_mark, now)

    # --- figures ----------------------------------------------------------------------------------------------

    def eta_s(self) -> float | None:
        """Seconds left: the mean time per unit done so far times the units left; None before the first unit."""
        with self._lock:
            left = self._total - self.done
            if self.done <= 0 or left <= 0:
                return None
            per_unit = (self._last_mark - self._started - self._aside_s) / self.done
            if per_unit <= 0:
                return None
            now = self._aside_since if self._aside_since is not None else self._clock()
            in_flight = max(now - self._last_mark, 0.0)  # the unit running now is partly done
            return max(per_unit * left - in_flight, per_unit * (left - 1))

    def counts(self) -> str:
        return f"{self.done}/{_MARK[self.bound]}{self._total} {self.unit}"

    def eta(self) -> str:
        seconds = self.eta_s()
        return "" if seconds is None else f"ETA {_MARK[self.bound]}{duration(seconds)}"

    def status(self) -> str:
        """``progress: 120/400 executions, 3 failed, ETA 4 min`` — the plain mode's status line."""
        eta = self.eta()
        parts = [self.counts()] + ([f"{self.failed} failed"] if self.failed else []) + ([eta] if eta else [])
        return "progress: " + ", ".join(parts)

    # --- drawing ----------------------------------------------------------------------------------------------

    def _safely(self, action: Callable[[], object]) -> None:
        """Run a drawing step; on any error, fall back from the bar to plain lines, or from plain lines to none."""
        try:
            action()
        except Exception:
            if self.mode == "bar":
                self._stop_bar()
                self.mode = "plain"
            else:
                self._silent = True

    def _print(self, line: str) -> None:
        if self._silent:
            return
        if self.mode == "bar" and self._bar is not None:
            self._bar.console.print(line, markup=False, highlight=False, emoji=False, soft_wrap=True)
        else:
            assert self._stream is not None
            self._stream.write(line + "\n")
            self._stream.flush()

    def _show(self) -> None:
        if self._outer is not None or self._silent:
            return
        if self.mode == "bar" and self._bar is not None:
            self._redraw()
        elif self.mode == "plain":
            now = self._clock()
            if now - self._last_status >= self._status_every_s:
                self._last_status = now
                self._print(self.status())

    def _start_bar(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as Bar
        from rich.table import Column

        console = self._console or Console(file=self._stream, force_terminal=self._wanted_mode == "bar" or None)
        self._bar = Bar(
            TextColumn("{task.description}", markup=False),
            BarColumn(bar_width=24),
            TextColumn("{task.fields[counts]}", markup=False),
            TextColumn("{task.fields[failed]}", markup=False, style="bold red"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[eta]}", markup=False),
            TextColumn("{task.fields[current]}", markup=False, style="dim", table_column=Column(no_wrap=True, ratio=1)),
            console=console,
            auto_refresh=False,  # redrawn by our own thread, whose errors are ours to swallow
            expand=True,
            redirect_stdout=_is_terminal(sys.stdout),  # print() elsewhere lands above the bar, not through it
            redirect_stderr=True,
        )
        self._task = self._bar.add_task(self.title, total=None, counts="", failed="", eta="", current="")
        self._saved_io = (sys.stdout, sys.stderr)
        self._bar.start()
        self._redraw()
        self._ticker = threading.Thread(target=self._tick, name="progress-bar", daemon=True)
        self._ticker.start()

    def _redraw(self) -> None:
        self._bar.update(
            self._task,
            completed=self.done,
            total=self._total or None,
            counts=self.counts(),
            failed=f"{self.failed} failed" if self.failed else "",
            eta=self.eta(),
            current=self.current,
        )
        self._bar.refresh()

    def _tick(self) -> None:
        while not self._stop.wait(REDRAW_EVERY_S):
            with self._lock:
                if self.mode != "bar":
                    return
                self._safely(self._redraw)

    def _stop_bar(self) -> None:
        self._stop.set()
        bar, self._bar = self._bar, None
        if bar is not None:
            with contextlib.suppress(Exception):
                bar.stop()
        # A bar that failed half-way may leave print() going to its console: give the streams back.
        if getattr(sys.stdout, "rich_proxied_file", None) is not None:
            sys.stdout = self._saved_io[0]
        if getattr(sys.stderr, "rich_proxied_file", None) is not None:
            sys.stderr = self._saved_io[1]

    def _finish(self) -> None:
        if self._outer is not None:
            return
        with self._lock:
            self.current = ""  # the run is over: nothing is running now
            if self.mode == "bar" and self._bar is not None:
                self._redraw()
                self._stop_bar()
            elif self.mode == "plain" and self._clock() - self._started >= self._status_every_s:
                failed = f", {self.failed} failed" if self.failed else ""
                self._print(f"progress: {self.counts()}{failed}, in {duration(self._clock() - self._started)}")
        if self._ticker is not None:
            self._ticker.join(timeout=2)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except Exception:
        return False


# --- progress a runner process reports about itself ---------------------------------------------------------------

RUNNER_PREFIX = "progress> "


def runner_line(**fields: Any) -> str:
    """A line a runner prints about its own progress: ``total``, ``unit``, ``title``, ``bound`` (once), then
    ``advance``, ``failed``, ``current``. The controller shows it as progress and does not echo it."""
    return RUNNER_PREFIX + json.dumps(fields, sort_keys=True)


class RunnerProgress:
    """Turns a runner's :func:`runner_line` lines into a display of its own — unless a run around it already
    shows one (a bisection's replays): then they are dropped, the outer run counts in its own units."""

    def __init__(self) -> None:
        self.progress: Progress | None = None

    def take(self, line: str) -> bool:
        """Whether ``line`` was a progress line (and so is not to be echoed)."""
        if not line.startswith(RUNNER_PREFIX):
            return False
        with contextlib.suppress(Exception):
            fields = json.loads(line[len(RUNNER_PREFIX) :])
            if "total" in fields and self.progress is None and not _shown:
                bound = fields.get("bound", "exact")
                self.progress = Progress(
                    str(fields.get("title", "runner")),
                    int(fields["total"]),
                    str(fields.get("unit", "units")),
                    bound=bound if bound in _MARK else "exact",
                ).__enter__()
            elif "total" in fields and self.progress is not None:
                self.progress.total = int(fields["total"])
            if self.progress is not None:
                current = fields.get("current")
                self.progress.advance(
                    int(fields.get("advance", 0)),
                    current=None if current is None else str(current),
                    failed=int(fields.get("failed", 0)),
                )
        return True

    def close(self) -> None:
        if self.progress is not None:
            self.progress.__exit__(None, None, None)
            self.progress = None
