"""What every verb's command line shares: the parser, argument types, the ``--results`` checks, common options.

A mistake is one line with the near miss and exit 2; a count is bounded; ``--results`` is checked before anything
runs. The verbs' own options live beside their glue (run.py, query.py, verdicts.py, store.py).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from framework.config import DEFAULT_RESULTS
from framework.in_runtime.errors import closest

# The most a count option takes: beyond it a value is a typo (--repeat=99999999999999999999), not a plan. Counts
# without an entry take at most DEFAULT_COUNT_LIMIT.
COUNT_LIMITS = {
    "--repeat": 1000,  # measured repeats per case per environment (matrix, bisect: per release, reproduce)
    "--rounds": 1000,  # interleaved rounds of a comparison (each measures every case once per side)
    "--times": 1000,  # replays
    "--budget": 1000,  # rounds with --until-decided
    "--passes": 100,  # sweeps over every release
    "--examples": 100_000,  # hypothesis examples per tier (the nightly profile runs 400)
    "--steps": 1000,  # steps per example (the nightly profile runs 25; shrinking costs steps squared)
}
DEFAULT_COUNT_LIMIT = 10_000


class Parser(argparse.ArgumentParser):
    """argparse that reports a mistake in one line, with the near miss, and exits 2.

    Abbreviations are refused: ``--runtim=latest`` must not silently start a run. A count (``type=positive``) is
    bounded by ``COUNT_LIMITS``; ``--results`` must name a directory (or where one can be created), writable unless
    the verb only reads it (``results_read_only``, or an ``--out`` elsewhere was given).
    """

    def __init__(self, results_read_only: bool = False, **kwargs: Any) -> None:
        super().__init__(allow_abbrev=False, **kwargs)
        self.results_read_only = results_read_only

    def add_argument(self, *names: Any, **kwargs: Any) -> argparse.Action:
        if kwargs.get("type") is positive and names:
            option = str(names[0])
            kwargs["type"] = count(option, COUNT_LIMITS.get(option, DEFAULT_COUNT_LIMIT), kwargs.get("default"))
        return super().add_argument(*names, **kwargs)

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: Any = None
    ) -> tuple[Any, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        results = getattr(parsed, "results", None)
        has_results = any("--results" in action.option_strings for action in self._actions)
        written = not self.results_read_only and getattr(parsed, "out", None) is None
        if isinstance(results, ResultsURL) and has_results:
            from framework.object_store import StoreError, open_store

            try:  # checked before anything runs: protocol, credentials, bucket, endpoint
                parsed.results = open_store(str(results), writes=written)
            except StoreError as error:
                self.error(f"--results: {error}")
        elif isinstance(results, Path) and has_results:
            problem = results_problem(results, written)
            if problem:
                self.error(f"--results={results}: {problem}")
        return parsed, extras

    def error(self, message: str) -> NoReturn:
        hint = ""
        if "unrecognized arguments:" in message:
            bad = message.split(":", 1)[1].split(maxsplit=1)[0].split("=", maxsplit=1)[0]
            options = [o for action in self._actions for o in action.option_strings]
            close = closest(bad, options)
            hint = f" — did you mean {close}?" if close else f" — known options: {', '.join(sorted(options))}"
        print(f"{self.prog}: {message}{hint}", file=sys.stderr)
        raise SystemExit(2)


# --- options several verbs take -----------------------------------------------------------------------------


class ResultsURL(str):
    """``--results=s3://bucket/prefix``: the parser opens it (framework.object_store) and passes on its work
    directory, so every verb works on a local directory."""


def results_location(text: str) -> Path | ResultsURL:
    """A results directory (a path, or ``file://``), or a URL (any other fsspec protocol)."""
    from framework.object_store import is_url, local_path

    return ResultsURL(text) if is_url(text) else local_path(text)


def add_results(parser: argparse.ArgumentParser, help: str = "results directory") -> None:
    """``--results``: the results directory or URL, by default the project's own directory (``DEFAULT_RESULTS``)."""
    parser.add_argument("--results", type=results_location, default=DEFAULT_RESULTS, help=f"{help} (or a URL)")


def shown(results: Path) -> str:
    """Where the results are, as the user gave it: a URL store's URL, not its work directory."""
    from framework.object_store import opened

    store = opened(results)
    return store.shown if store is not None else str(results)


def add_rebuild(parser: argparse.ArgumentParser, help: str = "rebuild environments even if a build exists") -> None:
    parser.add_argument("--rebuild", action="store_true", help=help)


def add_dry_run(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--dry-run", action="store_true", help=help)


def add_json(parser: argparse.ArgumentParser, help: str = "print rows as JSON lines") -> None:
    parser.add_argument("--json", action="store_true", help=help)


# --- argument types --------------------------------------------------------------------------------------------


def split(values: Sequence[str] | None) -> list[str] | None:
    """``--runtime=a,b --runtime=c`` → [a, b, c]."""
    if not values:
        return None
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


def positive(text: str) -> int:
    """A whole number ≥ 1; as the ``type=`` of an option of :class:`Parser`, also at most its ``COUNT_LIMITS``."""
    return count("--repeat", sys.maxsize)(text)


def count(option: str, maximum: int, default: Any = None) -> Callable[[str], int]:
    """A whole number from 1 to ``maximum``; the message names the option, the value and the range."""
    example = f"{option}={default if isinstance(default, int) else min(5, maximum)}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number — use e.g. {example}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{value} is not ≥ 1 — use e.g. {example}")
        if value > maximum:
            raise argparse.ArgumentTypeError(f"{value} is more than {maximum} — use 1 to {maximum}, e.g. {example}")
        return value

    return parse


WARMUP_LIMIT = 100


def warmups(text: str) -> int:
    """``--warmup``: unmeasured executions before the measured ones (0 to ``WARMUP_LIMIT``), not the workloads'."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number — use e.g. --warmup=3") from None
    if not 0 <= value <= WARMUP_LIMIT:
        raise argparse.ArgumentTypeError(f"{value} is not from 0 to {WARMUP_LIMIT} — use e.g. --warmup=3")
    return value


def add_warmup(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--warmup",
        type=warmups,
        metavar="N",
        help="unmeasured executions per case before the measured ones, on each cluster (overrides the workloads')",
    )


def bounded_number(low: float, high: float, example: str, low_allowed: bool = True) -> Callable[[str], float]:
    """A finite number in [low, high] (or (low, high] without ``low_allowed``) for options like --settle."""
    shown = f"{'from' if low_allowed else 'above'} {low:g} {'to' if low_allowed else 'up to'} {high:g}"

    def number(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number — use one {shown}, e.g. {example}") from None
        in_range = math.isfinite(value) and (value >= low if low_allowed else value > low) and value <= high
        if not in_range:
            raise argparse.ArgumentTypeError(f"{text} is out of range — use a number {shown}, e.g. {example}")
        return value

    return number


def seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 2**63 - 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a seed — use a whole number from 0 to 2**63-1, e.g. --seed=1"
        )
    return value


def fraction(value: str) -> float:
    """A number strictly between 0 and 1 (``--alpha``)."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number — use e.g. --alpha=0.01") from None
    if not 0 < number < 1:
        raise argparse.ArgumentTypeError(f"{number:g} is not between 0 and 1 — use e.g. --alpha=0.01")
    return number


def persistence(value: str) -> int:
    """Runs a change must last (``--persistence``): a whole number ≥ 1."""
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number ≥ 1 — use e.g. --persistence=2")
    return int(value)


# --- the results directory -------------------------------------------------------------------------------------

_RESULTS_FIX = "pass a results directory (it is created if missing), e.g. --results=results"


def results_problem(path: Path, written: bool) -> str | None:
    """Why ``path`` cannot be the results directory (read, or also ``written``), with the fix; None if it can."""
    try:
        return _existing_results_problem(path, written) if path.exists() else _new_results_problem(path, written)
    except (OSError, ValueError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        return f"is not a usable path ({reason}) — {_RESULTS_FIX}"


def _existing_results_problem(path: Path, written: bool) -> str | None:
    if not path.is_dir():
        return f"is {'a file' if path.is_file() else 'a device or special file'}, not a directory — {_RESULTS_FIX}"
    if not os.access(path, os.R_OK | os.X_OK):
        return "is not readable — fix its permissions, or pass another results directory"
    if written and os.statvfs(path).f_flag & os.ST_RDONLY:
        return "is on a read-only file system — remount it read-write, or pass --results on a writable one"
    if written and not os.access(path, os.W_OK):
        return "is not writable — pass a directory you can write to (e.g. a copy of it), or fix its permissions"
    return None


def _new_results_problem(path: Path, written: bool) -> str | None:
    ancestor = path.absolute().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"cannot be created: {ancestor} is not a directory — {_RESULTS_FIX}"
    if written and not os.access(ancestor, os.W_OK | os.X_OK):
        return f"cannot be created: {ancestor} is not writable — pass a directory you can write to"
    return None


def renamed(parser: argparse.ArgumentParser, old: str, new: str, why: str) -> None:
    """``old`` was renamed ``new``: using it is one line naming the new flag and exit 2, never a changed meaning."""

    class Renamed(argparse.Action):
        def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> NoReturn:
            parser.error(f"{old} is now {new} on this verb ({why}) — use {new}=N")

    parser.add_argument(old, action=Renamed, help=argparse.SUPPRESS)
