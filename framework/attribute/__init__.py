"""Attribution (``nox -s attribute``): which of the packages that moved between two runtimes' locks made the change.

the two locks → the changes (a lockstep family moves as one) → delta debugging over them (:mod:`.search`),
each probe an environment built from the baseline's lock with some of the candidate's changes applied
"""

from __future__ import annotations

from framework.attribute.search import Attribution, Probe, attribute, probes_bound

__all__ = ["Attribution", "Probe", "attribute", "probes_bound"]
