"""framework/compare.py: the interleaving order, judging rows, sequential stopping, and comparing stored results."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from framework.cli import main
from framework.compare import (
    BASELINE,
    CANDIDATE,
    CompareOptions,
    interleaving,
    resolve_side,
    run_interleaved,
)
from framework.compare_stored import from_results, side_filter
from framework.config import load_catalog
from framework.in_runtime import provenance
from framework.in_runtime.errors import SelectionError
from framework.matrix import expand_workload
from framework.metric_catalogue import METRICS
from framework.query import Results

GiB = 1024**3


@pytest.fixture
def store(results_dir, case_row, write_run):
    """``store(rows)``: write synthetic rows (one file per run) into ``results_dir``; returns the directory."""

    def write(rows):
        for run_id in dict.fromkeys(row["run_id"] for row in rows):
            write_run([case_row(**row) for row in rows if row["run_id"] == run_id])
        return results_dir

    return write


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def _cases(catalog, name="array_mean_var"):
    cases, _ = expand_workload(catalog.workloads[name], "tiny")
    return cases


def test_rounds_alternate_who_goes_first():
    assert interleaving(4) == [
        (0, BASELINE),
        (0, CANDIDATE),
        (1, CANDIDATE),
        (1, BASELINE),
        (2, BASELINE),
        (2, CANDIDATE),
        (3, CANDIDATE),
        (3, BASELINE),
    ]


def test_sides_resolve_runtime_hardware_and_config(catalog):
    side = resolve_side("stable@local-threads", catalog, "local")
    assert side.label == "stable@local-threads"
    assert side.hardware.name == "local-threads"
    tuned = resolve_side("latest", catalog, "local", ["distributed.scheduler.worker-saturation=1.0"])
    assert tuned.runtime.dask_config["distributed.scheduler.worker-saturation"] == 1.0
    assert tuned.label == "latest+distributed.scheduler.worker-saturation=1.0"
    with pytest.raises(SelectionError, match="did you mean 'stable'"):
        resolve_side("stabel", catalog, "local")
    with pytest.raises(SelectionError, match="is not KEY=VALUE"):
        resolve_side("latest", catalog, "local", ["oops"])


class FakeSides:
    """Measures by formula: the candidate holds ``shift`` more memory; calls are logged in order."""

    def __init__(self, cases, shift=0.0, noise=0.01, fail_candidate=False, seed=0):
        self.cases = cases
        self.shift = shift
        self.noise = noise
        self.fail_candidate = fail_candidate
        self.rng = np.random.default_rng(seed)
        self.calls = []

    def __call__(self, side, index):
        self.calls.append((index, side))
        rows = []
        for case in self.cases:
            factor = 1 + (self.shift if side == CANDIDATE else 0.0)
            failed = self.fail_candidate and side == CANDIDATE
            rows.append(
                {
                    "case_id": case.case_id,
                    "phase": "measure",
                    "repeat": index,
                    "outcome": "failed" if failed else "passed",
                    "wall_s": 2.0 * math.exp(self.rng.normal(0, 0.1)),
                    "peak_memory_bytes": GiB * factor * math.exp(self.rng.normal(0, self.noise)),
                    "mean_memory_bytes": None,
                    "spilled_bytes": 0,
                    "missing": {"mean_memory_bytes": "no samples: the case finished before the first probe"},
                    "runtime_hash": f"hash-{side}",
                    "env_hash": f"env-{side}",
                }
            )
        return rows


def _options(catalog, tmp_path, **kwargs):
    cases = _cases(catalog)
    side = resolve_side("latest", catalog, "local")
    return CompareOptions(side, side, cases, tmp_path, **kwargs)


def test_fixed_rounds_run_interleaved_and_judge_every_metric(catalog, tmp_path):
    options = _options(catalog, tmp_path, repeat=5)
    fake = FakeSides(options.cases, shift=0.10)
    report = run_interleaved(options, measure=fake)
    assert fake.calls == interleaving(5)
    by_metric = {line.metric: line for line in report.lines}
    assert by_metric["peak_memory"].result.verdict == "regressed"
    assert by_metric["wall"].result.verdict == "inconclusive"
    assert by_metric["spill"].result.conclusive
    # a metric the runner recorded as missing is not compared, and says why — never 0
    assert by_metric["mean_memory"].result is None
    assert "no samples" in by_metric["mean_memory"].missing
    assert [line.case_id for line in report.regressed] == ["array_mean_var"]
    with Results(tmp_path) as results:
        _, rows = results.sql("SELECT metric, verdict, n_baseline, n_candidate, missing FROM comparisons ORDER BY 1")
    assert ("peak_memory", "regressed", 5, 5, None) in rows
    assert any(row[0] == "mean_memory" and row[1] == "unusable" and "no samples" in row[4] for row in rows)


def test_until_decided_stops_when_every_metric_is_decided(catalog, tmp_path):
    options = _options(catalog, tmp_path, until_decided=True, budget=40, metrics=("peak_memory",))
    fake = FakeSides(options.cases, shift=0.10, noise=0.005)
    report = run_interleaved(options, measure=fake)
    assert report.mode == "sequential"
    assert report.rounds < 40
    assert len(fake.calls) == 2 * report.rounds
    [line] = report.lines
    assert line.result.sequential and line.result.verdict == "regressed" and line.result.conclusive


def test_until_decided_respects_the_budget(catalog, tmp_path):
    options = _options(catalog, tmp_path, until_decided=True, budget=6, metrics=("wall",))
    report = run_interleaved(options, measure=FakeSides(options.cases))
    assert report.rounds == 6
    [line] = report.lines
    assert not line.result.conclusive  # 6 pairs of 10 % noise cannot decide a 5 % band


def test_failures_on_the_candidate_are_reported_and_leave_metrics_missing(catalog, tmp_path):
    options = _options(catalog, tmp_path, repeat=3)
    report = run_interleaved(options, measure=FakeSides(options.cases, fail_candidate=True))
    assert report.failures(CANDIDATE) == [("array_mean_var", 0, 3)]
    assert all(line.result is None for line in report.lines)
    assert "0 candidate repeat(s) passed" in report.lines[0].missing


# ---------------------------------------------------------------- from results


def test_from_results_compares_stored_runs_by_sql_filters(store):
    rng = np.random.default_rng(1)
    rows = []
    for runtime, factor, run in (("stable", 1.0, "r1"), ("latest", 1.2, "r2")):
        for repeat in range(6):
            rows.append(
                {
                    "run_id": run,
                    "runtime": runtime,
                    "case_id": "groupby",
                    "workload": "groupby",
                    "repeat": repeat,
                    "wall_s": 3.0 * math.exp(rng.normal(0, 0.02)),
                    "peak_memory_bytes": int(GiB * factor * math.exp(rng.normal(0, 0.01))),
                    "load_avg_1m": 9.0 if (run, repeat) == ("r2", 0) else 0.5,
                    "overloaded": (run, repeat) == ("r2", 0),
                }
            )
    tmp_path = store(rows)
    report = from_results(tmp_path, ("stable", side_filter("stable")), ("latest", side_filter("latest")))
    verdicts = {line.metric: line.result.verdict for line in report.lines if line.result}
    assert verdicts["peak_memory"] == "regressed"
    assert verdicts["wall"] == "unchanged"
    assert report.run_ids == {BASELINE: ["r1"], CANDIDATE: ["r2"]}
    assert report.overloaded == {(BASELINE, "groupby"): (0, 6, 0.5), (CANDIDATE, "groupby"): (1, 6, 9.0)}
    with Results(tmp_path) as results:
        _, [(mode, n)] = results.sql("SELECT any_value(mode), count(*) FROM comparisons")
    assert (mode, n) == ("from-results", len(METRICS))  # one line per metric, measured or not


FP_A = {
    "cpu_model": "AMD EPYC",
    "cores": 4,
    "memory_gib": 16,
    "kernel": "6.5",
    "virtualisation": None,
    "arch": "x86_64",
}
FP_B = {**FP_A, "cores": 8}


def _two_machines(store):
    rows = []
    for runtime, run, fingerprint in (("stable", "r1", FP_A), ("latest", "r2", FP_B), ("latest", "r0", FP_A)):
        for repeat in range(4):
            rows.append(
                {
                    "run_id": run,
                    "run_started_at": f"2026-01-0{int(run[1]) + 1}T00:00:00+00:00",
                    "runtime": runtime,
                    "case_id": "groupby",
                    "workload": "groupby",
                    "repeat": repeat,
                    "wall_s": (2.0 if fingerprint is FP_A else 1.0) + 0.01 * repeat,
                    **provenance.identity(fingerprint, "runner"),
                }
            )
    return store(rows)


def test_from_results_refuses_sides_on_different_machine_classes_unless_told(store):
    results_dir = _two_machines(store)
    sides = ("stable", side_filter("stable")), ("latest", side_filter("latest"))
    with pytest.raises(
        SelectionError,
        match=r"the baseline \(stable\) ran on machine class 4c-16g-\w+, the candidate"
        r" \(latest\) on 8c-16g-\w+ — .* or pass --across-machines",
    ):
        from_results(results_dir, *sides, record=False)

    report = from_results(results_dir, *sides, record=False, across_machines=True)
    assert re.fullmatch(r"stable \[4c-16g-\w+\]", report.baseline)
    assert re.fullmatch(r"local@4c-16g-\w+ vs local@8c-16g-\w+", report.lines[0].hardware)
    # The machine class is a column a side's filter can name; one side over two classes is refused.
    same = from_results(
        results_dir, *sides[:1], ("latest", "runtime = 'latest' AND machine_class LIKE '4c-%'"), record=False
    )
    assert same.run_ids[CANDIDATE] == ["r0"]
    with pytest.raises(SelectionError, match=r"the candidate rows \(latest\) ran on machine classes 4c-16g-\w+, 8c-"):
        from_results(results_dir, *sides, record=False, latest_only=False)


def test_from_results_explains_an_empty_side(store):
    tmp_path = store([{"run_id": "r1", "runtime": "stable", "case_id": "groupby", "workload": "groupby"}])
    with pytest.raises(SelectionError, match="no measured rows match the candidate filter"):
        from_results(tmp_path, ("stable", side_filter("stable")), ("latets", side_filter("latets")))


def test_compare_command_from_results_prints_sentences_and_exits_1_on_a_regression(store, capsys):
    rows = [
        {
            "run_id": run,
            "runtime": runtime,
            "case_id": "groupby",
            "workload": "groupby",
            "repeat": repeat,
            "wall_s": 3.0 + 0.01 * repeat,
            "peak_memory_bytes": int(GiB * factor) + repeat,
        }
        for runtime, factor, run in (("stable", 1.0, "r1"), ("latest", 1.38, "r2"))
        for repeat in range(7)
    ]
    tmp_path = store(rows)
    code = main(["compare", "--baseline=stable", "--candidate=latest", "--from-results", f"--results={tmp_path}"])
    out = capsys.readouterr().out
    assert code == 1
    assert "groupby: peak memory +38 % (" in out
    assert "p < 0.001, n = 7 vs 7 — regressed" in out
    assert "wall time" not in out and "unchanged (--verbose lists them; the record holds all)" in out  # folded
    assert main(["compare", "--baseline=stable", "--candidate=latest", "--from-results", f"--results={tmp_path}",
                 "--verbose"]) == 1  # fmt: skip
    out = capsys.readouterr().out
    assert out.index("peak memory") < out.index("wall time")  # biggest effect first, every pair listed
    assert main(["compare", "--baseline=stable", "--candidate=stable", "--from-results", f"--results={tmp_path}"]) == 0
    assert "A/A: the noise floor" in capsys.readouterr().out


def test_compare_command_refuses_bad_input_in_one_line(tmp_path, capsys):
    assert main(["compare", "--baseline=stable", "--candidate=latest", "--metric=peak"]) == 2
    assert "unknown metric 'peak'" in capsys.readouterr().err
    assert main(["compare", "--baseline=stable", "--candidate=latest", "--alpha=2"]) == 2
    assert "--alpha=2.0 is not between 0 and 0.5" in capsys.readouterr().err
