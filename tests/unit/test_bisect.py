"""framework/bisect: the search over synthetic release ranges with a known first bad release, the oracles with
fake measurements, and the session from options to the printed answer and the stored comparison record."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.version import Version

from framework.bisect import Judgement, Step, find_boundary
from framework.bisect import session as bisect_session
from framework.bisect.oracles import MetricOracle, OutcomeOracle, StabilityOracle, metric_samples
from framework.bisect.search import oracle_calls_bound
from framework.bisect.session import plan_bisection
from framework.cli.verdicts import bisect_parser, cmd_bisect
from framework.in_runtime.errors import EnvironmentBuildError, FrameworkError, SelectionError
from framework.models import Runtime
from framework.query import Results
from framework.stats import metric

MiB = 2**20


def versions(count: int) -> list[str]:
    return [f"2025.{index}.0" for index in range(count)]


class Oracle:
    """Bad from ``first_bad`` on; ``skips`` cannot be built. Counts its calls and refuses to be asked twice."""

    def __init__(self, names: Sequence[str], first_bad: int, skips: Sequence[int] = ()):
        self.names, self.first_bad, self.skips = list(names), first_bad, {names[i] for i in skips}
        self.calls: list[str] = []

    def __call__(self, version: str) -> Judgement:
        assert version not in self.calls, f"{version} classified twice"
        self.calls.append(version)
        if version in self.skips:
            return Judgement("skip", "environment not built: conflict")
        bad = self.names.index(version) >= self.first_bad
        return Judgement("bad" if bad else "good", "fake")


@settings(max_examples=300, deadline=None)
@given(st.integers(2, 300).flatmap(lambda n: st.tuples(st.just(n), st.integers(1, n - 1))))
def test_binary_search_finds_the_first_bad_release_within_log2_calls(case: tuple[int, int]) -> None:
    count, first_bad = case
    names = versions(count)
    oracle = Oracle(names, first_bad)
    search = find_boundary(names, oracle)
    assert search.status == "found"
    assert (search.last_good, search.first_bad) == (names[first_bad - 1], names[first_bad])
    assert len(oracle.calls) <= math.ceil(math.log2(count)) + 2 == oracle_calls_bound(count)
    assert [step.version for step in search.steps] == oracle.calls


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_skipped_releases_are_stepped_around_and_never_hide_the_boundary(data: st.DataObject) -> None:
    count = data.draw(st.integers(3, 120))
    first_bad = data.draw(st.integers(1, count - 1))
    skips = data.draw(st.sets(st.integers(1, count - 2), max_size=count - 2))
    names = versions(count)
    oracle = Oracle(names, first_bad, sorted(skips))
    search = find_boundary(names, oracle)
    assert search.last_good is not None and search.first_bad is not None
    low, high = names.index(search.last_good), names.index(search.first_bad)
    assert low < first_bad <= high  # the true boundary is inside the answer
    assert all(index in skips for index in range(low + 1, high))  # only untestable releases are left between
    assert search.untested == names[low + 1 : high]
    assert search.status == ("found" if high == low + 1 else "ambiguous")


def test_a_skipped_middle_tries_its_neighbour() -> None:
    names = versions(9)  # middle of 0..8 is 4
    oracle = Oracle(names, first_bad=6, skips=[4])
    search = find_boundary(names, oracle)
    assert oracle.calls[:4] == [names[0], names[8], names[4], names[3]]  # 4 skipped → its nearest neighbour
    assert (search.status, search.first_bad) == ("found", names[6])


def test_every_release_between_skipped_leaves_a_range() -> None:
    names = versions(5)
    search = find_boundary(names, Oracle(names, first_bad=2, skips=[1, 2, 3]))
    assert search.status == "ambiguous"
    assert (search.last_good, search.first_bad, search.untested) == (names[0], names[4], names[1:4])


def test_adjacent_ends_need_no_middle_release() -> None:
    oracle = Oracle(["2025.1.0", "2025.2.0"], first_bad=1)
    search = find_boundary(["2025.1.0", "2025.2.0"], oracle)
    assert (search.status, search.last_good, search.first_bad) == ("found", "2025.1.0", "2025.2.0")
    assert len(oracle.calls) == 2


def test_first_fixed_release_when_good_is_the_newer_end() -> None:
    newest_first = list(reversed(versions(12)))  # good = 2025.11.0 (fixed), bad = 2025.0.0 (broken)
    fixed_in = "2025.7.0"  # releases ≥ 2025.7.0 are good
    oracle = Oracle(newest_first, first_bad=newest_first.index(fixed_in) + 1)
    search = find_boundary(newest_first, oracle)
    assert (search.last_good, search.first_bad) == ("2025.7.0", "2025.6.0")


@pytest.mark.parametrize(
    ("first_bad", "skips", "problem"),
    [
        (0, [], "the good end 2025.0.0 is bad, not good: fake"),
        (5, [], "the bad end 2025.4.0 is good, not bad: fake"),
        (3, [0], "the good end 2025.0.0 is skip, not good: environment not built: conflict"),
    ],
)
def test_ends_that_are_not_good_and_bad_stop_the_search(first_bad: int, skips: list[int], problem: str) -> None:
    names = versions(5)
    search = find_boundary(names, Oracle(names, first_bad, skips))
    assert (search.status, search.problem) == ("endpoints", problem)
    assert search.last_good is None


def test_known_ends_are_not_asked_again() -> None:
    names = versions(6)
    oracle = Oracle(names, first_bad=3)
    known = {
        names[0]: Step(names[0], Judgement("good", "A/B"), 9.0),
        names[5]: Step(names[5], Judgement("bad", "A/B"), 9.0),
    }
    search = find_boundary(names, oracle, known)
    assert names[0] not in oracle.calls and names[5] not in oracle.calls
    assert search.steps[0].seconds == 9.0
    assert search.first_bad == names[3]


# --- oracles --------------------------------------------------------------------------------------------------


def runtime(version: str) -> Runtime:
    return Runtime(name=f"bisect-dask-{version}", python="3.11", packages={"dask": ""})


def rows(values: Sequence[float], outcome: str = "passed", phase: str = "measure") -> list[dict[str, Any]]:
    return [{"phase": phase, "outcome": outcome, "peak_memory_bytes": value, "error": None} for value in values]


class FakeMeasure:
    """Peak memory by version: ``levels[version]`` MiB, a little noise; ``broken`` versions cannot be built."""

    def __init__(self, levels: dict[str, float], broken: Sequence[str] = (), failing: Sequence[str] = ()):
        self.levels, self.broken, self.failing = levels, set(broken), set(failing)
        self.calls: list[tuple[str, int]] = []

    def __call__(self, version: str, on: Runtime, repeats: int) -> list[dict[str, Any]]:
        assert on.name == f"bisect-dask-{version}"
        self.calls.append((version, repeats))
        if version in self.broken:
            raise EnvironmentBuildError(f"runtimes.{on.name}: installing its packages failed: conflict")
        if version in self.failing:
            return [{"phase": "measure", "outcome": "error", "error": "ImportError: pandas 3\nmore"}] * repeats
        jitter = [1 + 0.001 * ((len(self.calls) * 7 + i) % 5) for i in range(repeats)]
        return rows([self.levels[version] * MiB * j for j in jitter])


def test_metric_oracle_measures_the_ends_interleaved_then_classifies_by_the_nearer_median() -> None:
    measure = FakeMeasure({"a": 100, "b": 104, "c": 131, "d": 140})
    oracle = MetricOracle(metric("peak_memory"), 5, measure, runtime)
    known = oracle.endpoints("a", "d")
    assert measure.calls == [("a", 1), ("d", 1), ("d", 1), ("a", 1)] * 2 + [("a", 1), ("d", 1)]  # A B | B A | …
    assert (known["a"].verdict, known["d"].verdict) == ("good", "bad")
    assert "regressed" in known["d"].judgement.evidence
    assert oracle.classify("b").verdict == "good"
    judged = oracle.classify("c")
    assert judged.verdict == "bad"
    assert "nearer the bad end" in judged.evidence and judged.shown.endswith("MiB")
    assert measure.calls[-1] == ("c", 5)
    evidence = oracle.boundary("b", "c")  # not the ends: a new interleaved A/B of the two
    assert measure.calls[-10:] == [("b", 1), ("c", 1), ("c", 1), ("b", 1)] * 2 + [("b", 1), ("c", 1)]
    assert evidence.startswith("b → c: peak memory +")
    assert evidence.endswith("regressed")


def test_metric_oracle_says_when_the_boundary_alone_does_not_confirm_the_change() -> None:
    # a gradual change: each step is small, the ends differ
    oracle = MetricOracle(metric("peak_memory"), 5, FakeMeasure({"a": 100, "b": 110, "c": 111, "d": 121}), runtime)
    oracle.endpoints("a", "d")
    assert oracle.classify("c").verdict == "bad"
    evidence = oracle.boundary("b", "c")
    assert "unchanged" in evidence
    assert evidence.endswith("not confirmed on its own: the change may be spread over several releases")


def test_metric_oracle_without_a_change_between_the_ends_stops_with_the_evidence() -> None:
    oracle = MetricOracle(metric("peak_memory"), 5, FakeMeasure({"a": 100, "d": 100.1}), runtime)
    search = find_boundary(["a", "b", "d"], oracle.classify, oracle.endpoints("a", "d"))
    assert search.status == "endpoints"
    assert "no change between good and bad to bisect: peak memory" in search.problem
    assert "unchanged" in search.problem


def test_metric_oracle_bad_better_than_good_suggests_swapping() -> None:
    oracle = MetricOracle(metric("peak_memory"), 5, FakeMeasure({"a": 200, "d": 100}), runtime)
    known = oracle.endpoints("a", "d")
    assert known["d"].verdict == "good"
    assert "improved — swap --good and --bad" in known["d"].judgement.evidence


def test_metric_oracle_skips_what_cannot_be_built_or_does_not_pass() -> None:
    measure = FakeMeasure({"a": 100, "d": 150}, broken=["b"], failing=["c"])
    oracle = MetricOracle(metric("peak_memory"), 5, measure, runtime)
    oracle.endpoints("a", "d")
    assert oracle.classify("b").verdict == "skip"
    assert "environment not built" in oracle.classify("b").evidence
    failing = oracle.classify("c")
    assert (failing.verdict, failing.evidence) == ("skip", "no passed repeat: ImportError: pandas 3")


def test_metric_oracle_an_end_without_samples_is_skip_with_the_hint() -> None:
    oracle = MetricOracle(metric("peak_memory"), 5, FakeMeasure({"a": 100}, failing=["d"]), runtime)
    known = oracle.endpoints("a", "d")
    assert known["a"].verdict == "good"
    assert known["d"].verdict == "skip"
    assert "bisect with --metric=outcome" in known["d"].judgement.evidence
    broken = MetricOracle(metric("peak_memory"), 5, FakeMeasure({}, broken=["a"]), runtime).endpoints("a", "d")
    assert list(broken) == ["a"] and broken["a"].verdict == "skip"


def test_metric_samples_are_the_passed_measured_repeats_only() -> None:
    mixed = rows([1.0]) + rows([2.0], phase="warmup") + rows([3.0], outcome="failed") + rows([None])  # type: ignore[list-item]
    assert metric_samples(mixed, metric("peak_memory")) == [1.0]


def test_outcome_oracle_is_bad_when_any_execution_fails() -> None:
    measure = FakeMeasure({"a": 100}, broken=["b"], failing=["c"])
    oracle = OutcomeOracle(3, measure, runtime)
    assert oracle.endpoints("a", "c") == {}
    assert oracle.classify("a") == Judgement("good", "every execution passed (3/3 passed)", "3/3 passed")
    assert oracle.classify("b").verdict == "skip"
    failing = oracle.classify("c")
    assert (failing.verdict, failing.shown) == ("bad", "0/3 passed")
    assert oracle.boundary("a", "c") == "a: 3/3 passed; c: 0/3 passed, error: ImportError: pandas 3"


def test_stability_oracle_is_bad_when_the_failure_reproduces_once() -> None:
    hits = {"a": 0, "b": 1}

    def replay_on(version: str, on: Runtime) -> tuple[int, int, list[str]]:
        if version == "x":
            raise EnvironmentBuildError("no such python")
        return hits[version], 3, ["liveness: LivenessError: 10 future(s) …"] * hits[version]

    oracle = StabilityOracle("F1", replay_on, runtime)
    assert oracle.classify("a") == Judgement("good", "F1: reproduced 0/3", "reproduced 0/3")
    assert oracle.classify("b").verdict == "bad"
    assert oracle.classify("x").verdict == "skip"
    assert oracle.boundary("a", "b") == "a: reproduced 0/3; b: reproduced 1/3 (liveness: LivenessError: 10 future(s) …)"


def test_a_release_called_good_by_clean_replays_says_what_they_rule_out() -> None:
    runs = {"a": 3, "b": 14}

    def replay_on(version: str, on: Runtime) -> tuple[int, int, list[str]]:
        return 0, runs[version], []

    oracle = StabilityOracle("F1", replay_on, runtime)
    oracle.classify("a")
    oracle.classify("b")

    # 3 clean replays: a failure reproducing in 63 % of runs or less passes them 5 % of the time or more
    assert oracle.caution("a") == (
        "a passed 3 replay(s): that rules out only a failure reproducing in more than 63% of runs (95 %);"
        " to rule out 20%, --times=14"
    )
    assert "more than 19% of runs" in str(oracle.caution("b"))
    assert oracle.caution("never tried") is None


def test_report_of_a_range_left_by_untestable_releases_names_the_candidates() -> None:
    from framework.bisect.session import report
    from framework.releases import Release, ReleaseRange

    names = versions(5)
    search = find_boundary(names, Oracle(names, first_bad=2, skips=[1, 2]))
    span = ReleaseRange("dask", [Release(Version(v), None) for v in names], True, [])
    text = report(search, span, "dask", "outcome", "e", None)
    assert "no single release: the change is in dask one of 2025.1.0, 2025.2.0, 2025.3.0" in text
    backwards = list(reversed(names))
    search = find_boundary(backwards, Oracle(backwards, first_bad=2, skips=[1]))
    span = ReleaseRange("dask", [Release(Version(v), None) for v in backwards], False, [])
    text = report(search, span, "dask", "outcome", "e", None)
    assert "no single release: the change is in dask one of 2025.4.0, 2025.3.0 (untested releases: 2025.3.0)" in text


# --- the session ----------------------------------------------------------------------------------------------


def options(*extra: str) -> argparse.Namespace:
    return bisect_parser().parse_args(["--package=dask", "--good=2025.1.0", "--bad=2025.5.0", *extra])


WORKLOAD = "--workload=array_mean_var"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "nothing to judge releases by — give --workload=NAME --metric=peak_memory"),
        ([WORKLOAD], "nothing to judge releases by"),
        (["--failure=F", "--metric=wall"], "bisect either a failure or a workload — drop one"),
        ([WORKLOAD, "--metric=peak_memry"], "unknown metric 'peak_memry' — did you mean 'peak_memory'"),
        ([WORKLOAD, "--metric=wall", "--repeat=3"], "--repeat=3: 3 vs 3 repeats can never reach p < 0.01"),
        (
            ["--workload=array_mean_vr", "--metric=wall"],
            "--workload=array_mean_vr: unknown workload 'array_mean_vr' — did you mean 'array_mean_var'",
        ),
        (
            ["--workload=groupby_agg", "--metric=wall"],
            "bisect one case — pick one of groupby_agg[by=name], groupby_agg[by=id]",
        ),
        ([WORKLOAD, "--metric=wall", "--size=huge"], "--size=huge: workload array_mean_var declares no size 'huge'"),
        (
            ["--failure=nope", "--results=/nonexistent"],
            "--failure=nope: unknown failure or regression case id 'nope' known: 20261126T144205Z",
        ),
        ([WORKLOAD, "--metric=outcome", "--runtime=lates"], "unknown runtime 'lates' — did you mean 'latest'"),
    ],
)
def test_mistakes_are_refused_before_anything_runs(extra: list[str], message: str) -> None:
    with pytest.raises(FrameworkError) as caught:
        plan_bisection(options(*extra))
    assert message in str(caught.value)
    assert getattr(caught.value, "exit_code", None) == 2
    assert "\n" not in str(caught.value)


def test_parser_refuses_an_abbreviated_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        bisect_parser().parse_args(["--package=dask", "--good=1", "--bad=2", "--metrc=wall"])
    assert caught.value.code == 2
    assert "did you mean --metric?" in capsys.readouterr().err


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> Callable[..., list[FakeRunner]]:
    """The session with a fake index, a fake base environment and a fake runner (peak memory by release)."""
    from test_releases import DASK, DISTRIBUTED

    from framework.releases import parse_releases

    documents = {"dask": DASK, "distributed": DISTRIBUTED}
    monkeypatch.setattr(bisect_session, "list_releases", lambda name, index: parse_releases(documents[name]))

    lock = {"dask": "2026.8.0", "distributed": "2026.8.0", "pandas": "3.0.2", "numpy": "2.4.4"}
    monkeypatch.setattr(bisect_session, "prepare_environment", lambda *args: argparse.Namespace(packages=lock))
    created: list[FakeRunner] = []

    def make(runner_class: type[FakeRunner] | None = None, **levels: Any) -> list[FakeRunner]:
        def factory(*args: Any) -> FakeRunner:
            runner = (runner_class or FakeRunner)(*args, **levels)
            created.append(runner)
            return runner

        monkeypatch.setattr(bisect_session, "ReleaseRunner", factory)
        return created

    return make


class FakeRunner(FakeMeasure):
    def __init__(self, case: Any, hardware: Any, results_dir: Path, root: Path, rebuild: bool, **levels: Any):
        super().__init__({version.replace("_", "."): value for version, value in levels.items()})
        self.case, self.hardware = case, hardware
        self.run_ids: dict[str, str] = {}
        self.environments: dict[str, Any] = {}

    def __call__(self, version: str, on: Runtime, repeats: int) -> list[dict[str, Any]]:
        self.run_ids.setdefault(version, f"run-{version}")

        self.environments[on.name] = argparse.Namespace(packages={"dask": version, "distributed": version})
        return [
            {**row, "runtime_hash": f"r-{version}", "env_hash": f"e-{version}"}
            for row in super().__call__(version, on, repeats)
        ]


def test_session_names_the_first_bad_release_with_the_ab_evidence_and_stores_it(
    offline: Callable[..., Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 2024.12.1 (good) … 2025.5.0 (bad); kept between: 2025.1.0, 2025.2.0, 2025.3.1 (rc, yanked, python dropped)
    offline(**{"2024_12_1": 100, "2025_1_0": 101, "2025_2_0": 150, "2025_3_1": 151, "2025_5_0": 150})
    code = cmd_bisect(
        [
            "--package=dask",
            "--good=2024.12.1",
            "--bad=2025.5.0",
            "--workload=array_mean_var",
            "--metric=peak_memory",
            f"--results={tmp_path}",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.out + captured.err
    assert "first bad release: dask 2025.2.0 (last good 2025.1.0)" in captured.out
    assert "evidence: 2025.1.0 → 2025.2.0: peak memory +" in captured.out
    assert "not tried: 2025.3.0 — yanked: Critical performance regression" in captured.err
    assert "step  version" in captured.out and "peak memory (median)" in captured.out
    with Results(tmp_path) as results:
        _, found = results.sql(
            "SELECT mode, baseline, candidate, metric, verdict, n_baseline, n_candidate, baseline_versions,"
            " json_extract_string(detail, '$.bisect.package') FROM comparisons"
        )
    assert len(found) == 1
    mode, baseline, candidate, name, verdict, n_a, n_b, versions_json, package = found[0]
    assert (mode, baseline, candidate, name, verdict) == (
        "bisect", "bisect-dask-2025.1.0", "bisect-dask-2025.2.0", "peak_memory", "regressed",
    )  # fmt: skip
    assert (n_a, n_b, package) == (5, 5, "dask")
    assert '"dask": "2025.1.0"' in versions_json


def test_session_exits_1_when_the_ends_do_not_differ(
    offline: Callable[..., Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runners = offline(**{"2025_1_0": 100, "2025_2_0": 100, "2025_3_1": 100})
    argv = ["--package=dask", "--good=2025.1.0", "--bad=2025.3.1", "--workload=array_mean_var", "--metric=peak_memory"]
    assert cmd_bisect([*argv, f"--results={tmp_path}"]) == 1
    out = capsys.readouterr().out
    assert "no bisection: the bad end 2025.3.1 is good, not bad: no change between good and bad to bisect" in out
    assert {version for version, _ in runners[0].calls} == {"2025.1.0", "2025.3.1"}  # the middle never built
    assert not (tmp_path / "comparisons").exists()


def test_session_reports_the_first_fixed_release_when_good_is_newer(
    offline: Callable[..., Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fixed_in = "2025.2.0"

    class Failing(FakeRunner):
        def __call__(self, version: str, on: Runtime, repeats: int) -> list[dict[str, Any]]:
            if version in ("2024.12.1", "2025.1.0"):
                return [{"phase": "measure", "outcome": "failed", "error": "AssertionError: wrong sum"}] * repeats
            return super().__call__(version, on, repeats)

    runners = offline(Failing, **{"2025_2_0": 1, "2025_3_1": 1, "2025_5_0": 1})
    argv = ["--package=dask", "--good=2025.5.0", "--bad=2024.12.1", "--workload=array_mean_var", "--metric=outcome"]
    assert cmd_bisect([*argv, f"--results={tmp_path}", "--repeat=2"]) == 0
    out = capsys.readouterr().out
    assert f"first fixed release: dask {fixed_in} (last bad 2025.1.0)" in out
    assert f"evidence: {fixed_in}: 2/2 passed; 2025.1.0: 0/2 passed, failed: AssertionError: wrong sum" in out
    assert all(repeats == 2 for _, repeats in runners[0].calls)
    assert not (tmp_path / "comparisons").exists()  # a comparison record is for metrics only


def test_a_regression_case_replays_on_each_release_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    from framework import stability
    from framework.bisect.session import failure_to_replay, replayer
    from framework.config import ROOT

    record = failure_to_replay("20261126T144205Z-780984-dask-2022.10.1-shrunk", Path("/nonexistent"), ROOT)
    assert record["runtime"] == "dask-2022.10.1"
    assert record["program"][0]["op"] == "start"
    seen: dict[str, Any] = {}

    def fake_replay(failure_id: str, **kwargs: Any) -> Any:
        seen.update(kwargs, failure_id=failure_id)
        return argparse.Namespace(hits=2, runs=3, errors=["liveness: hang"])

    monkeypatch.setattr(stability, "replay", fake_replay)
    on = Runtime(name="bisect-distributed-2022.10.2", python="3.10", packages={"distributed": "==2022.10.2"})
    assert replayer(record, 3, Path("/r"), ROOT)("2022.10.2", on) == (2, 3, ["liveness: hang"])
    assert seen["save"] is False  # a bisection never adds regression cases
    assert seen["times"] == 3
    assert seen["record"]["runtime"] == "bisect-distributed-2022.10.2"
    assert seen["record"]["runtime_spec"]["packages"] == {"distributed": "==2022.10.2"}
    assert seen["record"]["program"] == record["program"]


# ---------------------------------------------------------------- sweep: every release, a history along versions


class SweepRunner:
    """Stands in for ReleaseRunner: peak memory by version, one release that cannot be built."""

    def __init__(self, peaks: dict[str, float], broken: str | None = None):
        self.peaks, self.broken = peaks, broken
        self.run_ids: dict[str, str] = {}
        self.calls: list[tuple[str, str]] = []

    def __call__(self, version: str, runtime: Runtime, repeats: int) -> list[dict[str, Any]]:
        if version == self.broken:
            raise EnvironmentBuildError(f"uv: no solution for dask=={version}\nmore detail")
        run_id = self.run_ids.setdefault(version, f"run-{version}-{len(self.calls)}")
        self.calls.append((version, run_id))
        row = {"phase": "measure", "outcome": "passed", "wall_s": 1.0, "spilled_bytes": 0}
        return [{**row, "peak_memory_bytes": self.peaks[version] * MiB, "mean_memory_bytes": None}] * repeats


def test_sweep_measures_every_release_once_per_pass_in_a_new_order_each_pass() -> None:
    from framework.bisect import sweep

    names = versions(6)
    orders = [sweep.order_of_pass(names, index) for index in range(3)]
    assert all(sorted(order) == sorted(names) for order in orders)
    assert len({tuple(order) for order in orders}) == 3
    assert sweep.order_of_pass(names, 1) == orders[1]  # seeded: the run can be repeated

    runner = SweepRunner({name: 300.0 + 10 * i for i, name in enumerate(names)}, broken=names[2])

    def runtime_for(version: str) -> Runtime:
        return Runtime(name=f"bisect-dask-{version}", python="3.11", packages={"dask": f"=={version}"})

    rows, skipped = sweep.run_sweep(names, 2, 3, runner, runtime_for)
    assert [version for version, _ in runner.calls] == [v for order in orders[:2] for v in order if v != names[2]]
    # each pass of a release is a run of its own: two run ids per release, one history point each
    assert all(len({run for v, run in runner.calls if v == name}) == 2 for name in names if name != names[2])
    assert skipped == {names[2]: f"environment not built: uv: no solution for dask=={names[2]}"}
    assert len(rows[names[0]]) == 6 and rows[names[2]] == []

    table = sweep.sweep_table(names, rows, skipped)
    assert "2025.0.0  6/6" in table and "300.0 MiB" in table and "350.0 MiB" in table
    assert "skipped" in table and "–" in table  # mean memory not measured: shown as missing, never 0


def test_sweep_needs_a_workload_and_no_failure() -> None:
    for extra in (["--sweep"], ["--sweep", "--failure=F"]):
        with pytest.raises(FrameworkError, match="--sweep measures a workload on every release"):
            plan_bisection(options(*extra))


def test_bisect_json_is_one_document_with_every_step_and_the_answer(
    offline: Callable[..., Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    offline(**{"2024_12_1": 100, "2025_1_0": 101, "2025_2_0": 150, "2025_3_1": 151, "2025_5_0": 150})
    argv = ["--package=dask", "--good=2024.12.1", "--bad=2025.5.0", "--workload=array_mean_var", "--metric=peak_memory"]
    assert cmd_bisect([*argv, f"--results={tmp_path}", "--json"]) == 0
    captured = capsys.readouterr()
    document = json.loads(captured.out)  # stdout is the document alone; the table went to stderr
    assert (document["status"], document["last_good"], document["first_bad"]) == ("found", "2025.1.0", "2025.2.0")
    assert document["evidence"].startswith("2025.1.0 → 2025.2.0: peak memory +")
    assert [step["version"] for step in document["steps"]][:2] == ["2024.12.1", "2025.5.0"]
    assert {step["verdict"] for step in document["steps"]} <= {"good", "bad", "skip"}
    assert "first bad release: dask 2025.2.0" in captured.err


@pytest.mark.parametrize("extra", ["--sweep", "--dry-run"])
def test_bisect_json_with_a_table_or_a_plan_is_refused_in_one_line(extra: str) -> None:
    argv = ["--package=dask", "--good=2024.12.1", "--bad=2025.5.0", "--workload=array_mean_var", "--json", extra]
    with pytest.raises(SelectionError, match="--json with --sweep or --dry-run"):
        cmd_bisect(argv)


def test_warmup_sets_the_judged_cases_warmups_for_bisect_and_attribute() -> None:
    """``--warmup`` reaches the case every environment is judged on (attribute shares bisect's judged_case)."""
    from framework.bisect.session import judged_case
    from framework.config import load_catalog

    catalog = load_catalog()
    args = argparse.Namespace(workload="groupby_agg[by=name]", size=None, hardware="local", warmup=4)
    case, _ = judged_case(args, catalog, None)
    assert case is not None and case.workload.warmup == 4
    case, _ = judged_case(argparse.Namespace(**{**vars(args), "warmup": None}), catalog, None)
    assert case is not None and case.workload.warmup == catalog.workloads["groupby_agg"].warmup
