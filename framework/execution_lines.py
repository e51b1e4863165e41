"""The console during a run: one line per case from the lines a runner prints per execution, and the progress count.

The runner (``framework.in_runtime.runner``) prints one line per execution into the log; the console shows each case
once, when it ends, and every execution that did not pass at once.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from framework.progress import Progress, echo

if TYPE_CHECKING:
    from framework.engine import CaseGroup

# What framework.in_runtime.runner prints per execution, or when a case's set-up fails:
# "[latest × local] groupby_agg[by=name] measure 3: passed in 1.17 s", "[latest × local] shuffle[…] setup: why".
_EXECUTION_LINE = re.compile(
    r"^\[[^\]]*\] (?P<case>.+?) (?:(?P<phase>warmup|measure) \d+: (?P<outcome>\w+) in (?P<seconds>[\d.]+) s|setup: )"
)


class LinesOnly:
    """Where nothing counts executions (a compare's round, which counts runs): the lines, above any bar."""

    def note(self, line: str) -> None:
        echo(line)

    def advance(self, n: int = 1, *, current: str | None = None, failed: int = 0) -> None:
        return None


class ExecutionProgress:
    """Counts on ``progress`` each execution a runner reports, from the lines it prints, and prints one line per
    case when it ends: ``[latest × local] groupby_agg[by=id]: passed 1 warm-up + 3 measured, 0.12–0.16 s``.

    An execution that does not pass, and a set-up failure, are printed at once, as the runner said them. A case
    whose set-up fails, or which a timeout ends early, runs fewer executions than planned: the rest of it is counted
    when a later case reports, or when the runner ends (``finish``).
    """

    def __init__(self, progress: Progress | LinesOnly, group: CaseGroup) -> None:
        self.progress, self.side = progress, f"{group.environment.runtime.name} × {group.hardware.name}"
        self.planned = {case.case_id: case.workload.warmup + case.workload.repeats for case in group.cases}
        self.left = dict(self.planned)  # in the order the runner runs them
        self.seen: dict[str, list[tuple[str, str, float]]] = {}  # case → (phase, outcome, seconds) so far
        self.failed = 0
        self._show()

    def __call__(self, line: str) -> None:
        match = _EXECUTION_LINE.match(line)
        if match is None or match["case"] not in self.left:
            self.progress.note(line)
            return
        for case in list(self.left)[: list(self.left).index(match["case"])]:  # those before it are over
            self._count(case, self.left[case])
        if match["outcome"] != "passed":
            self.progress.note(line)  # a failure or a set-up error: loud, at once
        if match["outcome"]:
            self.seen.setdefault(match["case"], []).append((match["phase"], match["outcome"], float(match["seconds"])))
        failed = int(match["outcome"] != "passed")
        self.failed += failed
        self._count(match["case"], 1 if match["outcome"] else self.left[match["case"]], failed)

    def finish(self, rows: list[dict[str, Any]]) -> None:
        """The runner ended: count what it did not run, and the failures only its rows show (a runner that died)."""
        for case in list(self.left):
            self._count(case, self.left[case])
        self.progress.advance(0, failed=max(sum(row.get("outcome") != "passed" for row in rows) - self.failed, 0))

    def _count(self, case: str, n: int, failed: int = 0) -> None:
        self.left[case] -= n
        if self.left[case] <= 0:
            del self.left[case]
            self._case_line(case)
        self.progress.advance(n, failed=failed)
        self._show()

    def _case_line(self, case: str) -> None:
        """The case's one line, once it is over (nothing when it never ran an execution: its set-up line said why)."""
        seen = self.seen.pop(case, [])
        if not seen:
            return
        passed = [seconds for phase, outcome, seconds in seen if outcome == "passed" and phase == "measure"]
        warmups = sum(phase == "warmup" for phase, _, _ in seen)
        measured = sum(phase == "measure" for phase, _, _ in seen)
        not_passed = [outcome for _, outcome, _ in seen if outcome != "passed"]
        ran = f"{warmups} warm-up + {measured} measured" if warmups else f"{measured} measured"
        if len(seen) < self.planned[case]:
            ran += f" of {self.planned[case]} planned"
        word = "passed" if not not_passed else f"NOT PASSED ({len(not_passed)} {', '.join(sorted(set(not_passed)))})"
        spread = f", {min(passed):.2f}–{max(passed):.2f} s" if len(passed) > 1 else ""
        spread = f", {passed[0]:.2f} s" if len(passed) == 1 else spread
        self.progress.note(f"[{self.side}] {case}: {word} — {ran}{spread}")

    def _show(self) -> None:
        case = next(iter(self.left), None)  # the one running now
        if case is not None:
            done = self.planned[case] - self.left[case]
            self.progress.advance(0, current=f"{self.side} · {case} ({done + 1}/{self.planned[case]})")
