"""The ledger of a chaos program: what was submitted, and how each held future may legitimately end.

Each submission knows the values the pure-Python oracle expects and which of its keys may fail on purpose.
The ledger adds what the program did to them: cancelled (a key and everything depending on it), churned (a
worker left while the key was outstanding), restarted (every held key). ``judge`` holds every future to it
once the cluster has settled.
"""

from __future__ import annotations

import functools
from typing import Any, Optional

from framework.chaos import graphs
from framework.chaos.invariants import LivenessError, ResultError, bounded, class_names, describe, is_comm_error


class Submission:
    """One submitted graph: its futures, the values the oracle expects and what may legitimately go wrong."""

    def __init__(self, sid: int, gid: int, nodes: list[dict[str, Any]], futures: dict[str, Any], kind: str) -> None:
        self.sid, self.gid, self.nodes, self.futures, self.kind = sid, gid, nodes, futures, kind
        self.expected: dict[str, Any] = graphs.evaluate(nodes) if kind == "graph" else {}
        self.faulty = graphs.faulty(nodes) if kind == "graph" else set()
        self.ancestors = graphs.ancestors(nodes) if kind == "graph" else {}
        self.rows = 0  # P2P shuffles: rows in


class Ledger:
    """Every submission of one program, and the keys the program cancelled or exposed to worker churn."""

    def __init__(self) -> None:
        self.submissions: dict[int, Submission] = {}
        self.cancelled_keys: set[str] = set()
        self.churned_keys: set[str] = set()

    def add(self, gid: int, nodes: list[dict[str, Any]], futures: dict[str, Any], kind: str) -> Submission:
        sub = Submission(len(self.submissions), gid, nodes, futures, kind)
        self.submissions[sub.sid] = sub
        return sub

    def pick(self, which: int) -> Optional[Submission]:
        """The ``which``-th submission still holding futures (modulo their number), if any."""
        live = [sub for sub in self.submissions.values() if sub.futures]
        return live[int(which) % len(live)] if live else None

    def futures(self) -> list[Any]:
        return [future for sub in self.submissions.values() for future in sub.futures.values()]

    def held_keys(self) -> set[str]:
        return {key for sub in self.submissions.values() for key in sub.futures}

    def pending_keys(self) -> set[str]:
        return {key for sub in self.submissions.values() for key, future in sub.futures.items() if not future.done()}

    def cancel(self, sub: Submission) -> None:
        """Cancelling a key cancels what depends on it, in any submission holding it."""
        keys = set(sub.futures)
        for other in self.submissions.values():
            for key in other.futures:
                if other.ancestors.get(key, {key}) & keys:
                    self.cancelled_keys.add(key)
        self.cancelled_keys |= keys

    def churn(self) -> None:
        """A worker is leaving: whatever is still pending may be lost with it."""
        self.churned_keys |= self.pending_keys()

    def restart(self) -> None:
        """A restart drops every key, finished ones too: each held future may end cancelled."""
        held = self.held_keys()
        self.churned_keys |= held
        self.cancelled_keys |= held

    def allowed_error(self, sub: Submission, key: str, error: BaseException) -> bool:
        names = class_names(error)
        if "ChaosTaskError" in names:
            return key in sub.faulty
        if "KilledWorker" in names or "WorkerClosing" in names:
            return key in self.churned_keys
        if "CancelledError" in names:
            return key in self.cancelled_keys
        if sub.kind == "p2p" and key in self.churned_keys:
            return "shuffle" in str(error).lower() or "p2p" in str(error).lower()
        # an error that crossed a worker death (e.g. lost dependencies) may surface as other comm errors
        return key in self.churned_keys and is_comm_error(error)

    def judge(self) -> dict[str, int]:
        """Every held future, once settled: the right value, an error the program explains, or a cancellation it
        made. Returns how many ended each way; raises ResultError (or LivenessError if one is still pending)."""
        counts = {"finished": 0, "error": 0, "cancelled": 0}
        for sub in self.submissions.values():
            values: list[Any] = []
            for key, future in sub.futures.items():
                status = future.status
                if status == "finished":
                    counts["finished"] += 1
                    value = bounded(functools.partial(future.result, timeout=30), 60, f"fetching {key}")
                    values.append(value)
                    problem = None if sub.kind == "p2p" else self.wrong(sub, key, value)
                    if problem:
                        raise ResultError(problem)
                elif status == "error":
                    counts["error"] += 1
                    error = bounded(functools.partial(future.exception, timeout=30), 60, f"fetching the error of {key}")
                    if not self.allowed_error(sub, key, error):
                        raise ResultError(
                            f"{key} failed with {describe(error)}, which nothing in the program explains"
                            f" (faulty={key in sub.faulty}, churned={key in self.churned_keys},"
                            f" cancelled={key in self.cancelled_keys})"
                        )
                elif status == "cancelled":
                    counts["cancelled"] += 1
                    if key not in self.cancelled_keys:
                        raise ResultError(f"{key} was cancelled, but the program never cancelled it nor restarted")
                else:
                    raise LivenessError(f"{key} is still {status!r} after settling")
            if sub.kind == "p2p" and sub.futures and len(values) == len(sub.futures):
                problem = graphs.check_p2p_partitions(values, sub.rows)
                if problem:
                    raise ResultError(problem)
        return counts

    def wrong(self, sub: Submission, key: str, value: Any) -> Optional[str]:
        expected = sub.expected[key]
        got = graphs.fingerprint(value)
        if got != expected:
            return f"{key} = {got}, but the pure-Python evaluation of its graph gives {expected}"
        return None
