"""The probes of an attribution: the baseline's lock with some changes applied, every package pinned exactly; and the
metric oracle, which measures each probe in interleaved rounds against both ends — like the baseline, like the
candidate, part of the effect, or undecided when the noise allows no call (never a guess)."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import Any

import pytest

from framework.attribute.changes import lock_diff
from framework.attribute.probes import (
    BASELINE,
    CANDIDATE,
    Ends,
    ProbeMetricOracle,
    Probes,
    effect_share,
    subset_runtime,
)
from framework.attribute.search import attribute
from framework.metric_catalogue import metric
from framework.models import Runtime

BASE = Runtime(
    name="stable",
    python="3.11",
    packages={"dask[dataframe]": "==2026.3.0", "distributed": "==2026.3.0", "pandas": ""},
    env={"OMP_NUM_THREADS": "1"},
    dask_config={"distributed.scheduler.worker-saturation": 1.1},
)
OLD = {"dask": "2026.3.0", "distributed": "2026.3.0", "pandas": "2.2.3", "numpy": "2.3.5", "toolz": "1.0.0"}
NEW = {"dask": "2026.8.0", "distributed": "2026.8.0", "pandas": "3.0.2", "numpy": "2.3.5", "toolz": "1.1.0"}
ENDS = Ends("stable", "latest", BASE, OLD, NEW, lock_diff(OLD, NEW, BASE.lockstep))
WALL = metric("wall")


def test_a_probe_pins_every_package_of_the_baseline_with_the_changes_applied_and_keeps_the_runtimes_settings() -> None:
    runtime = subset_runtime(ENDS, frozenset({"pandas"}))

    # The runtime's own packages declared (the health check imports them), the rest of the lock pinned only.
    assert runtime.packages == {"dask[dataframe]": "==2026.3.0", "distributed": "==2026.3.0", "pandas": "==3.0.2"}
    assert runtime.pins == {"numpy": "==2.3.5", "toolz": "==1.0.0"}
    assert runtime.requirements == [
        "dask[dataframe]==2026.3.0", "distributed==2026.3.0", "pandas==3.0.2", "numpy==2.3.5", "toolz==1.0.0"
    ]  # fmt: skip
    assert runtime.as_of is None and runtime.python == "3.11"
    assert runtime.env == BASE.env and runtime.dask_config == BASE.dask_config
    assert runtime.name.startswith("attribute-") and "with pandas as in latest" in runtime.description
    family = subset_runtime(ENDS, frozenset({"dask+distributed"}))
    assert family.packages["dask[dataframe]"] == "==2026.8.0" and family.packages["distributed"] == "==2026.8.0"
    # The same pins, the same runtime (its environment is reused); other pins, another.
    assert subset_runtime(ENDS, frozenset({"pandas"})) == runtime and family.name != runtime.name


def test_labels_name_the_ends_and_the_changes_applied_in_the_diffs_order() -> None:
    probes = Probes(ENDS)
    every = frozenset(change.name for change in ENDS.changes)
    assert probes.label(frozenset()) == BASELINE and probes.label(every) == CANDIDATE
    assert probes.label(frozenset({"toolz", "dask+distributed"})) == "dask+distributed+toolz"
    assert probes.runtime_for("dask+distributed+toolz").pins["toolz"] == "==1.1.0"
    assert probes.runtime_for(BASELINE).packages["pandas"] == "==2.2.3"
    assert ENDS.describe(frozenset({"pandas"})) == "pandas 2.2.3 → 3.0.2"


class FakeCase:
    """Wall times per label: ``effect`` of the candidate, ``share`` of it per probe label, multiplicative noise."""

    def __init__(
        self, shares: dict[str, float], noise: float = 0.02, effect: float = 2.0, seed: int = 0, default: float = 0.0
    ) -> None:
        self.shares, self.noise, self.effect, self.default = shares, noise, effect, default
        self.rng = random.Random(seed)
        self.calls: list[str] = []

    def __call__(self, label: str, runtime: Runtime, repeats: int) -> list[dict[str, Any]]:
        self.calls.append(label)
        share = {BASELINE: 0.0, CANDIDATE: 1.0}.get(label, self.shares.get(label, self.default))
        value = 1.0 * self.effect**share * (1 + self.rng.uniform(-self.noise, self.noise))
        return [{"phase": "measure", "outcome": "passed", "wall_s": value}]


def labelled() -> Probes:
    probes = Probes(ENDS)
    probes.label(frozenset({"pandas"}))
    return probes


def oracle(case: FakeCase, repeat: int = 7) -> ProbeMetricOracle:
    return ProbeMetricOracle(WALL, repeat, case, labelled().runtime_for)


def test_the_ends_are_measured_interleaved_and_must_differ() -> None:
    case = FakeCase({})
    found = oracle(case).endpoints()
    assert found[BASELINE].verdict == "good" and found[CANDIDATE].verdict == "bad"
    assert case.calls[:4] == [BASELINE, CANDIDATE, CANDIDATE, BASELINE]
    same = oracle(FakeCase({}, effect=1.0)).endpoints()
    assert same[CANDIDATE].verdict == "good" and "no change between the ends to attribute" in same[CANDIDATE].evidence


@pytest.mark.parametrize(
    ("share", "noise", "verdict", "says"),
    [
        (1.0, 0.02, "bad", "like the candidate"),
        (0.0, 0.02, "good", "like the baseline"),
        (0.8, 0.02, "bad", r"unlike both ends \(8\d % of the effect\): nearer the candidate"),
        (0.2, 0.02, "good", r"unlike both ends \(2\d % of the effect\): nearer the baseline"),
        (0.5, 0.9, "undecided", "differs significantly from neither end"),
    ],
)
def test_a_probe_is_judged_against_both_ends_of_its_rounds(share: float, noise: float, verdict: str, says: str) -> None:
    # share 0.5 with ±90 % noise: half the effect, inside the noise of both ends — no call.
    case = FakeCase({"pandas": share}, noise=noise, seed=3)
    judged = oracle(case).classify("pandas")
    assert judged.verdict == verdict, judged.evidence
    assert re.search(says, judged.evidence), judged.evidence
    # Rounds of three in a rotating order: each position holds each side once every three rounds.
    rounds = [case.calls[index : index + 3] for index in range(0, 9, 3)]
    assert rounds == [[BASELINE, "pandas", CANDIDATE], ["pandas", CANDIDATE, BASELINE], [CANDIDATE, BASELINE, "pandas"]]


def test_an_undecided_probe_gets_as_many_rounds_again_once_and_a_clear_one_does_not() -> None:
    """Three rounds cannot tell (too few); six can: the probe is measured again, once, in the same rotation, and the
    verdict rests on all its rounds. A probe clear at once is not measured again; noise that still allows no call
    after the second lot stays undecided."""
    borderline = FakeCase({"pandas": 1.0}, noise=0.02, seed=1)
    judged = oracle(borderline, repeat=3).classify("pandas")
    assert judged.verdict == "bad" and "of 6 (" in judged.evidence, judged.evidence
    assert len(borderline.calls) == 18 and borderline.calls[9:12] == [BASELINE, "pandas", CANDIDATE]
    clear = FakeCase({"pandas": 1.0}, noise=0.02, seed=1)
    assert oracle(clear, repeat=7).classify("pandas").verdict == "bad" and len(clear.calls) == 21
    noisy = FakeCase({"pandas": 0.5}, noise=0.9, seed=3)
    still = oracle(noisy, repeat=7).classify("pandas")
    assert still.verdict == "undecided" and len(noisy.calls) == 42 and "of 14 (" in still.evidence


def test_the_share_of_the_effect_the_named_set_holds() -> None:
    measured = oracle(FakeCase({"pandas": 0.9}, noise=0.01, effect=1.95, seed=5))
    assert measured.classify("pandas").verdict == "bad"
    text = measured.share("pandas")
    assert text.startswith("+8") and "of the candidate's +9" in text and "95 % CI" in text, text
    assert effect_share(1.88, 1.95) == pytest.approx(0.946, abs=0.01)
    assert effect_share(1.0, 1.0) is None and effect_share(0.0, 2.0) is None


def test_noise_alone_stops_the_search_undecided_with_the_narrowest_set_never_a_guess() -> None:
    """Every probe halfway between the ends and inside both ends' noise: no call can be made, so the search stops
    undecided and names the narrowest set known to hold the cause (here, all of it)."""
    labels = Probes(ENDS)
    every = frozenset(change.name for change in ENDS.changes)
    ends = ProbeMetricOracle(WALL, 5, FakeCase({}, noise=0.0), labels.runtime_for).endpoints()
    noisy = ProbeMetricOracle(WALL, 5, FakeCase({}, noise=0.9, seed=11, default=0.5), labels.runtime_for)
    found = attribute(
        [change.name for change in ENDS.changes],
        lambda names: noisy.classify(labels.label(names)),
        {frozenset(): ends[BASELINE], every: ends[CANDIDATE]},
    )
    assert found.status == "undecided" and found.culprits == []
    assert set(found.narrowest) == set(every) and "differs significantly from neither end" in found.problem


def test_a_probe_that_cannot_be_built_is_skipped() -> None:
    from framework.in_runtime.errors import EnvironmentBuildError

    def unbuildable(label: str, runtime: Runtime, repeats: int) -> Sequence[dict[str, Any]]:
        if label == "pandas":
            raise EnvironmentBuildError("matrices/runtimes.yaml: runtimes.x: resolution failed: no solution")
        return [{"phase": "measure", "outcome": "passed", "wall_s": 1.0}]

    judged = ProbeMetricOracle(WALL, 3, unbuildable, labelled().runtime_for).classify("pandas")
    assert judged.verdict == "skip" and "no solution" in judged.evidence


def test_ends_that_cannot_be_told_apart_ask_for_more_rounds() -> None:
    found = oracle(FakeCase({}, noise=0.9, effect=1.5, seed=2), repeat=5).endpoints()
    assert found[CANDIDATE].verdict == "good", found[CANDIDATE].evidence
    assert "the ends cannot be told apart in 5 rounds" in found[CANDIDATE].evidence
    assert found[CANDIDATE].evidence.endswith("run again with --repeat=7 or more")


def test_a_runtime_without_pins_dumps_and_hashes_as_before_pins_existed() -> None:
    from framework.environments import runtime_hash

    assert "pins" not in BASE.model_dump() and "pins" not in BASE.model_dump(mode="json")
    probe = subset_runtime(ENDS, frozenset())
    assert probe.model_dump(mode="json")["pins"] == {"numpy": "==2.3.5", "toolz": "==1.0.0"}
    assert Runtime.model_validate(probe.model_dump(mode="json")) == probe  # a stored spec reads back
    without = Runtime.model_validate({k: v for k, v in probe.model_dump(mode="json").items() if k != "pins"})
    assert runtime_hash(without) != runtime_hash(probe)
