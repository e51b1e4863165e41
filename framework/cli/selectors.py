"""Which workloads a verb is about: ``--workload=NAME|tag:TAG`` and ``--tag=TAG``, the same on every verb.

``--tag=TAG`` is ``--workload=tag:TAG``. A name or tag that the catalogue does not know is one line with the near
miss and exit 2 — never an empty selection that exits 0.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from framework.cli.parser import split
from framework.config import Catalog, selector_problem
from framework.in_runtime.errors import SelectionError

TAG_PREFIX = "tag:"


def add_workload_options(parser: argparse.ArgumentParser, what: str = "workload name(s)", single: bool = False) -> None:
    """``--workload`` and ``--tag`` (both repeatable, comma-separated), unless ``single`` (one workload)."""
    if single:
        parser.add_argument("--workload", help=f"{what}, or tag:TAG when the tag has one workload")
        parser.add_argument("--tag", help="the same as --workload=tag:TAG (the tag must have one workload)")
        return
    parser.add_argument("--workload", action="append", help=f"{what} or tag:TAG (several: repeat, or commas)")
    parser.add_argument("--tag", action="append", help="only workloads with this tag: the same as --workload=tag:TAG")


def selectors(args: argparse.Namespace) -> list[str] | None:
    """The workload selectors of a command line: ``--workload`` values, then ``--tag=X`` as ``tag:X``; None: all."""
    workload, tag = args.workload, args.tag
    names = split([workload] if isinstance(workload, str) else workload) or []
    tags = split([tag] if isinstance(tag, str) else tag) or []
    found = names + [f"{TAG_PREFIX}{name}" for name in tags]
    return found or None


def checked(found: Sequence[str] | None, catalog: Catalog, names: bool = True) -> list[str] | None:
    """The selectors, each naming a tag (and, unless ``names`` is False, a workload) of the catalogue.

    ``names=False`` is for verbs over stored rows, which check names against what the results hold (a workload
    may be gone from the catalogue, and a case id is a name too)."""
    for selector in found or ():
        if not names and not selector.startswith(TAG_PREFIX):
            continue
        problem = selector_problem(selector, catalog)
        if problem:
            raise SelectionError(problem + _fix(selector))
    return list(found) if found else None


def expanded(found: Sequence[str] | None, catalog: Catalog, names: bool = True) -> list[str] | None:
    """The selectors with each ``tag:X`` replaced by the names of the workloads it tags (for stored-row filters)."""
    out: list[str] = []
    for selector in checked(found, catalog, names) or ():
        if selector.startswith(TAG_PREFIX):
            tag = selector.removeprefix(TAG_PREFIX)
            out += [name for name, workload in catalog.workloads.items() if tag in workload.tags]
        else:
            out.append(selector)
    return list(dict.fromkeys(out)) or None


def by_tag(found: Sequence[str] | None, catalog: Catalog) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    """(the names, {tag: its workloads}): for verbs over stored rows, which check that each tag finds some rows."""
    given = checked(found, catalog, names=False) or []
    names = tuple(selector for selector in given if not selector.startswith(TAG_PREFIX))
    tags = {
        selector.removeprefix(TAG_PREFIX): tuple(expanded([selector], catalog) or ())
        for selector in given
        if selector.startswith(TAG_PREFIX)
    }
    return names, tags


def single(found: Sequence[str] | None, catalog: Catalog) -> str | None:
    """The one workload (or case id) a verb about one workload is given; a tag must name exactly one."""
    names = expanded(found, catalog, names=False)
    if names is None:
        return None
    if len(names) != 1:
        given = ", ".join(found or ())
        raise SelectionError(
            f"--workload/--tag: {given} selects {len(names)} workloads ({', '.join(names)}) — this verb takes one:"
            " use --workload=NAME"
        )
    return names[0]


def _fix(selector: str) -> str:
    if selector.startswith(TAG_PREFIX):
        return " — list the tags with: nox -s workloads"
    return " — list the workloads with: nox -s workloads (a tag is --tag=TAG or --workload=tag:TAG)"
