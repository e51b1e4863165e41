"""Bisection across releases (``nox -s bisect``): which release of a package made a workload worse or fail, or
made a stability failure appear — or which release fixed it.

    releases from good to bad (package index, :mod:`framework.releases`) → a runtime per release, the other
    packages held → binary search (:mod:`.search`) → an oracle per release (:mod:`.oracles`) → the boundary's
    evidence, printed and stored (:mod:`.session`)
"""

from __future__ import annotations

from framework.bisect.search import Judgement, Search, Step, find_boundary
from framework.bisect.session import run_bisection

__all__ = ["Judgement", "Search", "Step", "find_boundary", "run_bisection"]
