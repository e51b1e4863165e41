"""The words a judgement is said in, defined once: terminal, Markdown summary, stored records and report use these.

A comparison of one case × metric ends in one :class:`Verdict`:

    regressed     significant and at least the metric's minimum effect, the wrong way
    improved      the same, the right way
    unchanged     the interval fits inside the minimum-effect band (or the change is below the metric's floor)
    inconclusive  none of the above: these repeats cannot tell (the interval spans the band's edge)
    unusable      not compared: a side has no value for it (it failed, could not run, or did not measure it)
    interrupted   not compared: the run was stopped before the case finished

Stored comparison rows written before the word ``inconclusive`` existed say ``unchanged`` with
``conclusive = false``; :func:`read_verdict` (and the ``comparisons`` view, :data:`LEGACY_VERDICT_SQL`) map them.
The interval of a change is written by :func:`change_with_interval`, and nowhere else.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable


class Verdict(str, enum.Enum):
    REGRESSED = "regressed"
    IMPROVED = "improved"
    UNCHANGED = "unchanged"
    INCONCLUSIVE = "inconclusive"
    UNUSABLE = "unusable"
    INTERRUPTED = "interrupted"

    def __str__(self) -> str:
        return self.value


VERDICTS: tuple[Verdict, ...] = tuple(Verdict)  # the order counts and sorted lists use

# Words older records (or older code) used → today's word.
_LEGACY = {"missing": Verdict.UNUSABLE, "not compared": Verdict.UNUSABLE}


def decide_word(changed_word: str, conclusive: bool) -> Verdict:
    """A statistical decision (regressed / improved / unchanged) and whether the data could tell → the verdict."""
    word = Verdict(changed_word)
    return Verdict.INCONCLUSIVE if word is Verdict.UNCHANGED and not conclusive else word


def read_verdict(word: str | None, conclusive: bool | None = True) -> Verdict:
    """A verdict as stored (any age) → today's word; ``None`` (nothing compared) is ``unusable``."""
    if word is None:
        return Verdict.UNUSABLE
    if word in _LEGACY:
        return _LEGACY[word]
    return decide_word(word, conclusive is not False)


# The same mapping in SQL, for the ``comparisons`` view over stored rows of any age.
LEGACY_VERDICT_SQL = (
    "CASE WHEN verdict = 'unchanged' AND conclusive IS FALSE THEN 'inconclusive' "
    "WHEN verdict IN ('missing', 'not compared') THEN 'unusable' ELSE verdict END"
)


def count_verdicts(words: Iterable[Verdict | str]) -> dict[Verdict, int]:
    """How many of each verdict, every word present (zeros too), in :data:`VERDICTS` order."""
    counts = dict.fromkeys(VERDICTS, 0)
    for word in words:
        counts[Verdict(word)] += 1
    return counts


def counts_text(counts: dict[Verdict, int]) -> str:
    """'8 regressed, 0 improved, 4 unchanged, 4 inconclusive' — the four judged words always, the rest when non-zero."""
    judged = (Verdict.REGRESSED, Verdict.IMPROVED, Verdict.UNCHANGED, Verdict.INCONCLUSIVE)
    shown = [word for word in VERDICTS if word in judged or counts.get(word)]
    return ", ".join(f"{counts.get(word, 0)} {word}" for word in shown)


# --------------------------------------------------------------------------------------------------
# Changes and their intervals


def percent(ratio: float, sign: bool = True) -> str:
    """A ratio as a change: 1.38 → '+38 %', 1.042 → '+4.2 %', 0.5 → '-50 %'; '+∞ %' from nothing to something.

    A ratio that is not a number (from a missing value) is '–', as a metric's ``show`` shows one.
    """
    if math.isnan(ratio):
        return "–"
    if math.isinf(ratio):
        return "+∞ %" if sign else "∞ %"
    change = (ratio - 1) * 100
    digits = 1 if abs(change) < 10 else 0
    return f"{change:+.{digits}f} %" if sign else f"{change:.{digits}f} %"


def interval_bounds(low: float, high: float) -> str:
    """'+3.1 % to +7.4 %': both ends signed, joined by ' to ' (never a dash between negatives)."""
    return f"{percent(low)} to {percent(high)}"


def interval(low: float, high: float) -> str:
    """'95 % CI +3.1 % to +7.4 %'."""
    return f"95 % CI {interval_bounds(low, high)}"


def change_with_interval(ratio: float, low: float, high: float) -> str:
    """'+5.2 % (95 % CI +3.1 % to +7.4 %)' — the one way a relative change and its interval are written."""
    return f"{percent(ratio)} ({interval(low, high)})"
