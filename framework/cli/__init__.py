"""Command lines of the nox sessions: parse, call the feature, print. User mistakes → one line, exit 2.

python -m framework.cli matrix [--runtime=NAME ...] [--hardware=NAME] [--workload=NAME|tag:TAG] [--tag=TAG] ...
python -m framework.cli sql ["SELECT ..."]
python -m framework.cli schema [--check]
python -m framework.cli stability [--runtime=NAME] [--profile=ci|nightly] [--examples=N] [--replay=ID]
python -m framework.cli compare --baseline=RUNTIME[@HW] --candidate=RUNTIME[@HW] [--rounds=N] [--until-decided]
python -m framework.cli regressions | bisect | attribute | bless | guard ...   (verdicts.py)
python -m framework.cli report | compact | merge ...               (store.py)
python -m framework.cli export --runtime=NAME | --run=RUN_ID [--format=requirements|pylock] [--out=PATH]
python -m framework.cli reproduce --run=RUN_ID [--case=CASE_ID] [--repeat=N]

The parser, argument types and shared options are in parser.py; each verb's options and the glue that calls its
feature are in run.py, query.py, verdicts.py or store.py. What every verb shares: the workload selectors
(selectors.py), ``--dry-run`` plans (dry_run.py) and ``--json`` documents (json_output.py). Features never import
this package.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from framework import lifetime
from framework.cli.parser import COUNT_LIMITS
from framework.cli.query import cmd_schema, cmd_sql, cmd_workloads
from framework.cli.run import cmd_compare, cmd_export, cmd_matrix, cmd_reproduce, cmd_stability
from framework.cli.store import cmd_compact, cmd_merge, cmd_report
from framework.cli.verdicts import cmd_attribute, cmd_bisect, cmd_bless, cmd_guard, cmd_regressions
from framework.in_runtime.errors import WRITE_ERRNOS, FrameworkError, cannot_write
from framework.in_runtime.runner import RowsUnwritableError

__all__ = ["COMMANDS", "COUNT_LIMITS", "main"]

COMMANDS: dict[str, Callable[[Sequence[str]], int]] = {
    "matrix": cmd_matrix,
    "sql": cmd_sql,
    "schema": cmd_schema,
    "workloads": cmd_workloads,
    "stability": cmd_stability,
    "compare": cmd_compare,
    "regressions": cmd_regressions,
    "bisect": cmd_bisect,
    "attribute": cmd_attribute,
    "bless": cmd_bless,
    "report": cmd_report,
    "compact": cmd_compact,
    "merge": cmd_merge,
    "guard": cmd_guard,
    "export": cmd_export,
    "reproduce": cmd_reproduce,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in COMMANDS:
        print(f"usage: python -m framework.cli {{{','.join(COMMANDS)}}} ...", file=sys.stderr)
        return 2
    try:
        try:
            code = COMMANDS[args[0]](args[1:])
        finally:
            _close_stores()
    except (FrameworkError, RowsUnwritableError, OSError, KeyboardInterrupt, lifetime.Stopped) as error:
        line, code = _failure(error)
        print(line, file=sys.stderr)
    return code


def _close_stores() -> None:
    """A verb on a URL store: upload what it wrote besides Parquet files (logs, dumps, failures) at its end."""
    if "framework.object_store" not in sys.modules:
        return
    from framework.object_store import close_all

    uploaded = close_all()
    if uploaded:
        print(f"uploaded {len(uploaded)} more file{'s' if len(uploaded) != 1 else ''} to the results URL")


def _failure(error: BaseException) -> tuple[str, int]:
    """The one line and exit code for what stopped a command; anything else (a bug) is raised with its traceback."""
    if isinstance(error, FrameworkError):
        return str(error), error.exit_code
    if isinstance(error, RowsUnwritableError):  # the controller's own rows (disk full, read-only …)
        return cannot_write(str(error.path), error.errno, error.reason), 2
    if isinstance(error, OSError) and error.errno in WRITE_ERRNOS:
        return cannot_write(str(error.filename or "results"), error.errno, error.strerror or ""), 2
    kept = "cases not finished are recorded as interrupted; finished ones are kept"
    if isinstance(error, KeyboardInterrupt):
        return f"interrupted (SIGINT) — {kept}", 130
    if isinstance(error, lifetime.Stopped):
        return f"{error.why} — {kept}", error.exit_code
    raise error  # not the disk's state nor a stop: a bug, whose traceback is wanted
