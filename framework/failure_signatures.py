"""Failure signatures: what a failure *is*, so the same bug counts once across runs, releases and machines.

A signature is read from what a failure recorded (its kind or outcome, its error line and its traceback), never from
the live exception, so stored failures of any age get one too:

    teardown: TeardownError; threads wait in rejoin (distributed/threadpoolexecutor.py)
    failed: WorkloadCheckFailed ← FutureCancelledError; raised at _gather (distributed/client.py) ← compute (…)
    timeout: LivenessError; stuck processing, queued; "N future(s) neither finished, erred nor were cancelled …"

- the **kind** (the stability invariant, or a matrix case's outcome);
- the **error types**, outermost first then what caused them, without their modules;
- an **assertion's label** (distributed's ``validate_state`` asserts ``('dep missing', <task>, <dependency>)``: one
  function raises them all, so only the label tells two scheduler bugs apart);
- a **bare assertion's statement** (``assert a.keys() == b.keys()`` raises an AssertionError with no message: its source
  line, as the traceback shows it, is all that tells it from the function's other asserts);
- what a hang's tasks **wait on**, when the failure says (``stuck on: seceded`` — a task processing after
  secede(); ``queued on missing data``; ``no running worker``): it tells apart hangs whose keys are in the same
  states (distributed#7223 and #8702 both leave keys processing, queued and waiting); else the **stuck keys'
  states** (a liveness failure's scheduler states, as a sorted set);
- the **innermost frames outside the harness** (not ``framework/`` or ``workloads/``, not the standard library): where
  leaked threads wait (one frame each), else the innermost two frames of the deepest exception that has any;
- only when no such frame exists, the error's **gist**: its first clause, every token with a digit and every quoted
  text replaced, so keys, addresses, counts and thread names drop out.

Line numbers, paths up to ``site-packages``, exception messages, key names, addresses and thread ids are left out:
each differs between runs or releases of the same bug (``reason: unknown`` on 2024.12 is ``lost dependencies`` on
2025.3 for one bug; ``threadpoolexecutor.py:141`` on 2026.8 is ``:142`` on 2026.3).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

from framework.config import ROOT

HARNESS = ("framework", "workloads")  # the project's own packages: where a failure is noticed, not where it is
# Hypothesis's own control flow: a failure found while hypothesis stops an example (its StopTest is then the context
# of the chain) is the same failure — neither the exception nor the fuzzing engine's frames are part of it.
CONTROL_FLOW = ("StopTest",)
FRAMES_RAISED = 2
KINDS = ("liveness", "result", "validate", "livelock", "teardown", "invariant", "error")
STATES = ("released", "waiting", "no-worker", "queued", "processing", "memory", "erred", "forgotten")

_FRAME = re.compile(r'^\s*File "(?P<path>[^"]+)", line \d+, in (?P<name>\S+)')
_EXCEPTION = re.compile(r"^(?P<type>(?:[A-Za-z_]\w*\.)*[A-Z]\w*)(?::|$)")  # a class: capitalised
_CHAIN = ("The above exception was the direct cause", "During handling of the above exception")
_MESSAGE_FRAME = re.compile(r"(?P<name>[\w<>.]+) \((?P<path>[\w./<>-]+\.py):\d+\)")
_STATE = re.compile(r"=(" + "|".join(STATES) + r")\b")
# Every stuck key's state counted, after the first few keys listed: ``… (all 35: processing 2, queued 33)``.
# What the stuck tasks wait on (``framework.chaos.invariants.stuck_causes``): ``; stuck on: seceded, …``.
NO_CAUSE = "nothing seceded or missing"  # framework.chaos.invariants.NO_CAUSE (no import: that module needs dask)
SCHEDULER_FAILED = "the scheduler failed "  # how the fuzzer names a hang by the first exception the scheduler logged
_STUCK_ON = re.compile(r"; stuck on: ([a-z ,]+?)(?:;|$| \(hypothesis)")
_ALL_STATES = re.compile(r"\(all \d+: ((?:[a-z-]+ \d+(?:, )?)+)\)")
_STDLIB = re.compile(r"/lib/python\d+\.\d+/|^<frozen |^<string>")
_FLAKY = " (hypothesis: flaky"
# ``AssertionError: ('dep missing', "<TaskState …>", …)``: one validate_task_state raises every such assertion, so
# only its label tells two scheduler bugs apart (keys and states after it differ from run to run).
_ASSERTION_LABEL = re.compile(r"AssertionError: \(['\"](?P<label>[A-Za-z][\w ,-]{0,60})['\"],")


@dataclasses.dataclass(frozen=True)
class FailureSignature:
    kind: str
    errors: tuple[str, ...]  # exception class names, outermost first
    states: tuple[str, ...] = ()  # stuck keys' scheduler states, sorted
    causes: tuple[str, ...] = ()  # what they wait on: 'seceded', 'queued on missing data', …
    frames: tuple[str, ...] = ()  # 'rejoin (distributed/threadpoolexecutor.py)', innermost first
    waits: bool = False  # the frames are where leaked threads wait, not where an exception was raised
    gist: str = ""
    label: str = ""  # an assertion's own label: distributed's validate_state asserts ('dep missing', …)
    asserted: str = ""  # a bare assertion's statement, from its source line: 'a.keys() == b.keys()'

    @property
    def text(self) -> str:
        """The signature as printed and as ``matrices/known_failures.yaml`` names it."""
        parts = [f"{self.kind}: {' ← '.join(self.errors) or 'no error type'}"]
        if self.label:
            parts.append(f"assert {self.label!r}")
        if self.asserted:
            parts.append(f"assert {self.asserted}")
        if self.causes == (NO_CAUSE,) and self.gist.startswith(SCHEDULER_FAILED):
            # what the scheduler failed on names it, as for a hang with no running worker: the states it leaves vary
            # with what happened to be queued (2022.10.2's add_to_long_running: processing, queued, waiting)
            parts.append(f"stuck ({NO_CAUSE})")
        elif self.causes == (NO_CAUSE,):  # none of the causes read: the states describe it, apart from old records
            parts.append(f"stuck {', '.join(self.states)} ({NO_CAUSE})")
        elif self.causes:  # what the tasks wait on names the hang better than the states it leaves them in
            parts.append(f"stuck on {', '.join(self.causes)}")
        elif self.states:
            parts.append(f"stuck {', '.join(self.states)}")
        if self.frames:
            parts.append(("threads wait in " if self.waits else "raised at ") + " ← ".join(self.frames))
        if self.gist:
            parts.append(f'"{self.gist}"')
        return "; ".join(parts)

    @property
    def short_id(self) -> str:
        return "sig-" + hashlib.sha256(self.text.encode()).hexdigest()[:8]


def signature(kind: str, error: str | None, traceback: str | None) -> FailureSignature:
    """The signature of one recorded failure: ``kind`` (an invariant or an outcome), its error line, its traceback."""
    message = _message(error or "")
    sections, threads = _split(traceback or "")
    sections = [section for section in sections if section[1] not in CONTROL_FLOW]
    errors = [section[1] for section in reversed(sections) if section[1]] or _error_type(message)
    waits = sorted({frame for stack in threads for frame in _innermost(stack, 1)} | _message_waits(error or ""))
    frames: tuple[str, ...] = tuple(dict.fromkeys(waits))
    if not frames:
        for stack, _ in sections:  # the root cause first (a chained traceback prints it first): where it was raised
            frames = _innermost(stack, FRAMES_RAISED)
            if frames:
                break
    counted = _ALL_STATES.search(error or "")
    if counted:
        states = tuple(sorted({item.rsplit(" ", 1)[0] for item in counted.group(1).split(", ")} & set(STATES)))
    else:
        states = tuple(sorted(set(_STATE.findall(error or ""))))
    label = _ASSERTION_LABEL.search(message) if "AssertionError" in errors else None
    stuck_on = _STUCK_ON.search(error or "")
    causes = tuple(sorted(cause.strip() for cause in stuck_on.group(1).split(","))) if stuck_on and states else ()
    return FailureSignature(
        kind=kind,
        errors=tuple(errors),
        states=states,
        causes=causes,
        frames=frames,
        waits=bool(waits),
        # A bare TimeoutError keeps its message beside where it was raised: one function raises timeouts for
        # different waits (distributed's restart_workers: nannies that did not shut down, workers that did not return).
        gist="" if frames and errors != ["TimeoutError"] else gist(message),
        label=label.group("label") if label else "",
        asserted=_bare_assertion(traceback or "") if "AssertionError" in errors and not label else "",
    )


def of_row(row: Mapping[str, Any]) -> FailureSignature:
    """A results row that did not pass: a stability row's kind is its error's prefix, a matrix row's its outcome."""
    if str(row.get("workload") or "").startswith("stability."):
        return of_stability(row.get("outcome"), row.get("error"), row.get("traceback"))
    error, outcome = str(row.get("error") or ""), str(row.get("outcome") or "failed")
    return signature(outcome, error.removeprefix(f"{outcome}: "), row.get("traceback"))


def of_stability(outcome: str | None, error: str | None, traceback: str | None) -> FailureSignature:
    """A stability row's: its kind is its error's prefix (``teardown: TeardownError: …``), else its outcome."""
    kind, _, rest = (error or "").partition(": ")
    if kind in KINDS:
        return signature(kind, rest, traceback)
    return signature(str(outcome or "failed"), error, traceback)


def of_record(record: Mapping[str, Any]) -> FailureSignature:
    """A stability failure record (``results/stability/failures/<id>/failure.json``)."""
    kind = str(record.get("kind") or "error")
    error = str(record.get("error") or "").removeprefix(f"{kind}: ")
    return signature(kind, error, record.get("traceback"))


def gist(message: str) -> str:
    """The message's first clause with every token holding a digit and every quoted text replaced."""
    match = _EXCEPTION.match(message)
    if match:
        message = message[match.end() :]  # its type is in the signature already
    first = re.split(r" — |; |: | \(", message, maxsplit=1)[0]
    first = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", first)
    first = re.sub(r"[^\s,]*\d[^\s,]*", "N", first)
    first = " ".join(first.split()).strip(" ,")
    return first if len(first) <= 100 else first[:99] + "…"


def _message(error: str) -> str:
    """The error line without the run's decorations (the flaky note)."""
    cut = error.find(_FLAKY)
    return (error[:cut] if cut >= 0 else error).strip()


def _error_type(message: str) -> list[str]:
    match = _EXCEPTION.match(message)
    return [match.group("type").rsplit(".", 1)[-1]] if match else []


def _split(traceback: str) -> tuple[list[tuple[list[tuple[str, str]], str]], list[list[tuple[str, str]]]]:
    """The chained exceptions (root cause first: each its frames, outermost first, and its type) and the stacks of
    threads the notes carry (``stack of thread NAME:``)."""
    sections: list[tuple[list[tuple[str, str]], str]] = []
    threads: list[list[tuple[str, str]]] = []
    frames: list[tuple[str, str]] = []
    in_thread = False
    for line in traceback.splitlines():
        found = _FRAME.match(line)
        if found:
            frames.append((found.group("path"), found.group("name")))
            continue
        if line.startswith("stack of thread "):
            if in_thread and frames:
                threads.append(frames)
            in_thread, frames = True, []
            continue
        if in_thread or not line or line.startswith((" ", "\t", "Traceback (")):
            continue
        if line.startswith(_CHAIN):
            frames = []
            continue
        exception = _EXCEPTION.match(line)
        if exception and (frames or not sections):
            sections.append((frames, exception.group("type").rsplit(".", 1)[-1]))
            frames = []
    if in_thread and frames:
        threads.append(frames)
    return sections, threads


def _bare_assertion(traceback: str) -> str:
    """The statement of the first AssertionError without a message in ``traceback`` (``a.keys() == b.keys()``, from
    the source line under its innermost frame), or ``""``."""
    source = ""
    for line in traceback.splitlines():
        if _FRAME.match(line):
            source = ""
            continue
        text = line.strip()
        if line.startswith((" ", "\t")) and not source and text and set(text) - set("^~ "):
            source = text
            continue
        if text.rsplit(".", 1)[-1] in ("AssertionError", "AssertionError:") and line == line.lstrip():
            statement = " ".join(source.split("#", 1)[0].split())
            if statement.startswith("assert ") and statement.rstrip("(").strip() != "assert":
                shown = statement.removeprefix("assert ")
                return shown if len(shown) <= 100 else shown[:99] + "…"
            return ""
    return ""


def _innermost(stack: list[tuple[str, str]], count: int) -> tuple[str, ...]:
    """The ``count`` innermost frames of ``stack`` outside the harness and the standard library."""
    kept = []
    for path, name in reversed(stack):
        where = module_path(path)
        if where is not None:
            kept.append(f"{name} ({where})")
            if len(kept) == count:
                break
    return tuple(kept)


def _message_waits(error: str) -> set[str]:
    """Where threads wait, as an error line says it: ``NAME in f (file.py:12) ← g (file.py:3)``, innermost first."""
    found = set()
    for chain in re.split(r"; |, thread ", error):
        for match in _MESSAGE_FRAME.finditer(chain):
            where = module_path(match.group("path"))
            if where is not None:
                found.add(f"{match.group('name')} ({where})")
                break
    return found if " in " in error and ("wait" in error or "blocked" in error) else set()


@functools.lru_cache(maxsize=4096)
def module_path(path: str) -> str | None:
    """A frame's file as the signature shows it, or None for the harness and the standard library.

    ``/…/envs/latest-84948cc5/lib/python3.11/site-packages/distributed/utils.py`` → ``distributed/utils.py``.
    """
    path = path.replace("\\", "/")
    for anchor in ("/site-packages/", "/dist-packages/"):
        if anchor in path:
            return path.rsplit(anchor, 1)[1]
    if _STDLIB.search(path):
        return None
    parts = path.split("/")
    if any(part in HARNESS for part in parts[:-1]) or _in_project(path):
        return None
    if path.startswith("/"):
        return parts[-1]  # a script outside any package: its name is all that is the same elsewhere
    return path


def _in_project(path: str) -> bool:
    """A short path (``chaos/graphs.py``, as an error line gives it) of a project file."""
    return not path.startswith("/") and any((ROOT / package / path).is_file() for package in HARNESS)


@dataclasses.dataclass(frozen=True)
class SignatureGroup:
    """Every failure with one signature: how many, since when, on which runtimes, and one to replay."""

    signature: FailureSignature
    count: int
    first_seen: str
    last_seen: str
    runtimes: tuple[str, ...]
    example: str | None  # a failure id (newest), for --replay


def grouped(failures: Iterable[Mapping[str, Any]]) -> list[SignatureGroup]:
    """Failures (rows or records with runtime, a time, a failure id) by signature: the most frequent first."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    signatures: dict[str, FailureSignature] = {}
    for failure in failures:
        found = of_record(failure) if "kind" in failure else of_row(failure)
        signatures[found.text] = found
        groups.setdefault(found.text, []).append(failure)
    result = []
    for text, members in groups.items():
        times = sorted(str(_when(member)) for member in members)
        newest = max(members, key=lambda member: str(_when(member)))
        ids = [member.get("failure_id") for member in members if member.get("failure_id")]
        example = newest.get("failure_id") or (ids[-1] if ids else None)
        runtimes = tuple(sorted({str(member.get("runtime")) for member in members}))
        result.append(SignatureGroup(signatures[text], len(members), times[0], times[-1], runtimes, example))
    return sorted(result, key=lambda group: (-group.count, group.first_seen))


def _when(failure: Mapping[str, Any]) -> Any:
    return failure.get("created_at") or failure.get("started_at") or failure.get("run_started_at") or ""


def replay_command(failure_id: str, runtime: str | None = None) -> str:
    """The command that replays a recorded failure (on ``runtime``: another runtime than the one it failed in)."""
    where = f" --runtime={runtime}" if runtime else ""
    return f"nox -s stability -- --replay={failure_id}{where}"


def group_line(group: SignatureGroup, known: str | None = None) -> str:
    """``3× since 2026-12-05 09:00 on latest, stable — SIGNATURE [known …] — e.g. ID: nox -s stability -- …``"""
    line = f"{group.count}× since {group.first_seen[:16].replace('T', ' ')} on {', '.join(group.runtimes)}"
    line += f" — {group.signature.text}" + (f" [{known}]" if known else "")
    if group.example:
        line += f" — e.g. {group.example}: {replay_command(group.example)}"
    return line
