"""``nox -s report``: a static site of the results store that opens offline, from disk.

    results/ → DuckDB (data.py) → HTML pages (pages.py, details.py) → OUT/ (site.py), plots drawn by BokehJS

Pages: the overview (a go/no-go line per runtime and its changes against its baseline — overview.py, changes.py —,
then latest runs, verdicts, latest regressions, the matrix), a history
per workload, every run with all its recorded columns and its environment's health and lock changes, every A/B
comparison, and the stability runs with their failures.
"""

from __future__ import annotations

from framework.report.site import SiteSummary, build_site

__all__ = ["SiteSummary", "build_site"]
