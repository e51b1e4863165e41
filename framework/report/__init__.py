"""``nox -s report``: a static site of the results store that opens offline, from disk.

    results/ → DuckDB (data.py) → HTML pages (pages.py, details.py) → OUT/ (site.py), plots drawn by BokehJS

Pages: the overview (unusable runtimes first, verdicts, latest runs, latest regressions, the matrix), a history
per workload, every run with all its recorded columns and its environment's health and lock changes, every A/B
comparison, and the stability runs with their failures.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from framework.report.site import SiteSummary, build_site

__all__ = ["SiteSummary", "build_site", "command"]


def command(argv: Sequence[str]) -> int:
    """``nox -s report [-- --results=DIR --out=DIR]``: build the site, print where it is."""
    from framework.cli import _Parser
    from framework.compaction import compact_if_due
    from framework.config import ROOT

    parser = _Parser(prog="nox -s report --", description="Generate a static site from the results store.")
    parser.add_argument("--results", type=Path, default=ROOT / "results", help="results directory (default results/)")
    parser.add_argument("--out", type=Path, help="where the site goes, replaced whole (default RESULTS/report)")
    args = parser.parse_args(argv)
    for line in compact_if_due(args.results):  # a long history of small files: merged first, read faster
        print(line)  # noqa: T201 - the command's output
    summary = build_site(args.results, args.out or args.results / "report")
    print(  # noqa: T201 - the command's output
        f"report: {summary.pages} pages in {summary.seconds:.1f} s — open {summary.out_dir / 'index.html'}"
    )
    return 0
