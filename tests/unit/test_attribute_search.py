"""The attribution's search (framework/attribute/search.py) against synthetic oracles with known culprits: one
culprit, two that act only together, a change that does not install without another, noise only; and, over diff
sizes 1–20, the probe bound for one culprit and that the named set, applied alone, reproduces the effect."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from framework.attribute.search import Judgement, attribute, probes_bound


def names(count: int) -> list[str]:
    return [f"pkg{index}" for index in range(count)]


def oracle(
    culprits: Iterable[str], needs: dict[str, str] | None = None, calls: list[frozenset[str]] | None = None
) -> Callable[[frozenset[str]], Judgement]:
    """Bad when every culprit is applied; ``skip`` when a change is applied without what it needs to install."""
    wanted, needs = frozenset(culprits), needs or {}

    def judge(applied: frozenset[str]) -> Judgement:
        if calls is not None:
            calls.append(applied)
        missing = [
            f"{name} needs {needed}" for name, needed in needs.items() if name in applied and needed not in applied
        ]
        if missing:
            return Judgement("skip", f"uv could not resolve: {missing[0]}")
        return Judgement("bad" if wanted <= applied else "good", "synthetic")

    return judge


def test_one_culprit_among_many_is_named_within_the_bound() -> None:
    changes = names(12)
    calls: list[frozenset[str]] = []

    found = attribute(changes, oracle(["pkg7"], calls=calls))

    assert found.status == "found" and found.culprits == ["pkg7"] and not found.interaction
    assert len(calls) == len(found.probes) <= probes_bound(12) == 10
    assert len(set(calls)) == len(calls), "no environment is judged twice"
    assert [probe.verdict for probe in found.probes[:2]] == ["good", "bad"], "the ends come first"


def test_two_culprits_that_act_only_together_are_named_as_an_interaction() -> None:
    found = attribute(names(10), oracle(["pkg2", "pkg8"]))

    assert found.status == "found"
    assert found.culprits == ["pkg2", "pkg8"] and found.interaction


def test_a_change_that_does_not_install_alone_is_searched_with_what_it_needs() -> None:
    # pkg5 (the culprit, say pandas 3) does not resolve without pkg1 (numpy 2): those subsets are skipped
    found = attribute(names(8), oracle(["pkg5"], needs={"pkg5": "pkg1"}))

    assert found.status == "found"
    assert found.culprits == ["pkg1", "pkg5"]
    assert not found.interaction, "a set that needs a change to install is not an interaction"
    assert found.skipped and all("pkg5" in probe.applied and "pkg1" not in probe.applied for probe in found.skipped)


def test_noise_only_is_undecided_never_a_guess() -> None:
    def noisy(applied: frozenset[str]) -> Judgement:
        if not applied:
            return Judgement("good", "the baseline")
        if len(applied) == 6:
            return Judgement("bad", "the candidate")
        return Judgement("undecided", "median between the ends, the difference within the noise")

    found = attribute(names(6), noisy)

    assert found.status == "undecided" and not found.culprits
    assert found.narrowest == names(6)
    assert "within the noise" in found.problem


def test_ends_that_do_not_differ_stop_before_any_search() -> None:
    found = attribute(names(4), oracle([]))  # nothing is bad: the baseline itself is bad here
    assert found.status == "endpoints" and "the baseline is bad, not good" in found.problem
    assert len(found.probes) == 1

    calm = attribute(names(4), lambda applied: Judgement("good", "no change"))
    assert calm.status == "endpoints" and "the candidate is good, not bad: no change" in calm.problem


def test_the_budget_stops_the_search_with_the_narrowest_set_known() -> None:
    found = attribute(names(16), oracle(["pkg11"]), budget=4)

    assert found.status == "budget" and "budget of 4" in found.problem
    assert len(found.probes) == 4
    assert "pkg11" in found.narrowest and len(found.narrowest) < 16


def test_judgements_made_beforehand_are_not_asked_again() -> None:
    calls: list[frozenset[str]] = []
    ends = {frozenset(): Judgement("good", "measured"), frozenset(names(4)): Judgement("bad", "measured")}

    found = attribute(names(4), oracle(["pkg0"], calls=calls), known=ends)

    assert found.culprits == ["pkg0"]
    assert frozenset() not in calls and frozenset(names(4)) not in calls


def test_bad_change_lists_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one change"):
        attribute([], oracle([]))
    with pytest.raises(ValueError, match="named twice"):
        attribute(["a", "a"], oracle([]))


@settings(max_examples=200, deadline=None)
@given(data=st.data(), count=st.integers(1, 20))
def test_one_culprit_any_size_within_the_bound_and_the_named_set_reproduces(data: st.DataObject, count: int) -> None:
    changes = data.draw(st.permutations(names(count)))
    culprit = data.draw(st.sampled_from(changes))
    judge = oracle([culprit])

    found = attribute(changes, judge)

    assert found.status == "found" and found.culprits == [culprit]
    assert len(found.probes) <= probes_bound(count) == (2 * math.ceil(math.log2(count)) + 2 if count > 1 else 2)
    assert judge(frozenset(found.culprits)).verdict == "bad", "the named set, applied alone, reproduces the effect"


@settings(max_examples=200, deadline=None)
@given(data=st.data(), count=st.integers(2, 20))
def test_interacting_culprits_any_size_are_all_named_and_reproduce(data: st.DataObject, count: int) -> None:
    changes = names(count)
    culprits = data.draw(st.lists(st.sampled_from(changes), min_size=2, max_size=3, unique=True))
    judge = oracle(culprits)

    found = attribute(changes, judge)

    assert found.status == "found" and set(found.culprits) == set(culprits) and found.interaction
    assert judge(frozenset(found.culprits)).verdict == "bad"
    # each culprit costs at most two probes per halving, plus the ends
    assert len(found.probes) <= len(culprits) * probes_bound(count)
