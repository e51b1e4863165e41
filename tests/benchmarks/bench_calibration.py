"""Calibration: do the verdict statistics detect known shifts, and stay quiet when nothing changed, on this machine?

A benchmark that prints figures; it asserts nothing.

1. **Measure** (real runs, the same runner and memory probe as every result): the ``calibration_shift`` workload in
   arms that differ by a known amount — two identical arms ``a`` and ``b`` (A/A), memory +5/10/20 % and work
   +5/10/20 % — all in every round, rounds on fresh ``local`` clusters, in a new random order each round so
   drift and position hit every arm alike. A short pilot first sizes the knobs so each shift is that share of the
   *measured* metric: a worker process has a base beside the memory it holds, and a case has overheads beside
   the hashing (the workload reports its hashing time), so a 5 % knob alone would move either metric by less.
2. **Count** (simulated from the measured samples): draw many comparisons from the measured pools and count how
   often each verdict engine says "changed":
   - ``nox -s compare`` with 5 repeats per side (exact rank test + minimum effect) — ``compare_samples``;
   - ``--until-decided`` (sign confidence sequence, budget = the rounds measured) — ``SequentialComparison``;
   - the history detector (``nox -s regressions``) on series of 24 runs × 3 repeats, shift at run 17 — ``detect``.
   A/A comparisons draw both sides from the identical arms, which of the two plays "A" picked at random each
   round (only a name tells them apart), so their "changed" rate is the false-alarm rate; the one real A/A —
   arm a against arm b over every round, as measured — is printed too, to show the arms did not differ for real.
3. Print the noise (coefficient of variation) of each metric, the minimum detectable effect at 5 repeats, and
   the repeats a 5/10/20 % change needs — every metric of the catalogue the arms record (the scheduler and worker
   health figures included).
4. The blessing criteria's absolute limits (``matrices/blessing.yaml``, set ``default``), counted the same way:
   - ``health``: draws of 7 repeats (the set's comparison repeats) from the identical arms' pooled values of each
     limited metric, judged as ``bless`` judges them (median with its order-statistic interval against the limit,
     ``inconclusive: fail``); the share that fails is the false-alarm rate. Power: the same draws with a stall (or
     pause) of 1.5 × the limit added to one repeat, and to every repeat.
   - ``soak``: real soaks (``leak_array_mean_var``, ``leak_groupby_agg[by=name]`` and ``idle_memory_growth`` at size
     tiny, their every point recorded) give the noise: each series is detrended by its Theil–Sen line and its
     residuals resampled in circular blocks (autocorrelation kept: memory read after each repeat stays allocated for
     a while) onto known slopes — 0, the measured one, ½, 0.9, 1.1 and 2 × the limit — then judged as ``bless``
     judges a slope (95 % interval against the limit). A failure below the limit is a false alarm.

    nox -s bench -- calibration [--rounds=40] [--size=small] [--results=DIR] [--no-spill] [--soak-seconds=60]
    nox -s bench -- calibration --results=DIR --analyse=RUN_ID [--spill-run=RUN_ID] [--soak-run=RUN_ID]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from framework.changepoints import detect
from framework.config import ROOT, load_catalog
from framework.criteria import Criteria, load_criteria
from framework.engine import CaseGroup, new_run_id, prepare_environment, run_group
from framework.in_runtime import provenance
from framework.in_runtime.trend import theil_sen
from framework.limits import median_interval, position
from framework.matrix import Case, expand_workload
from framework.query import Results
from framework.results import ResultsStore
from framework.stats import (
    METRICS,
    SequentialComparison,
    compare_samples,
    minimum_detectable_effect,
    noise,
    repeats_needed,
)

WORKLOAD = "calibration_shift"
SPILL_WORKLOAD, SPILL_HARDWARE, FRACTION = "spill_reduce", "local-small-memory", "fraction_of_cluster_memory"
SHIFTS = (5, 10, 20)
DRAWS = 1000  # comparisons drawn per cell
SERIES = 400  # history series per cell
REPEATS = 5  # per side, as `nox -s compare` defaults to
HISTORY_RUNS, HISTORY_CHANGE, HISTORY_REPEATS = 24, 16, 3
SHIFTED = ("wall", "peak_memory", "mean_memory", "spill")  # the metrics the arms shift by a known amount
SOAKS = ("leak_array_mean_var", "leak_groupby_agg", "idle_memory_growth")
SOAK_DRAWS = 200  # resampled series per slope
HEALTH_REPEATS = 7  # the default criteria's comparison repeats: the rows a health limit is judged on
BLOCK = 8  # residuals resampled in blocks of this many consecutive points


def arms(memory_scale: float, work_scale: float) -> dict[str, dict[str, Any]]:
    """Arm → parameter overrides; the scales turn "x % of the metric" into the knob's percentage."""
    out: dict[str, dict[str, Any]] = {"a": {"arm": "a"}, "b": {"arm": "b"}}
    for shift in SHIFTS:
        out[f"memory+{shift}%"] = {"extra_memory_percent": round(shift * memory_scale, 3)}
        out[f"work+{shift}%"] = {"extra_work_percent": round(shift * work_scale, 3)}
    return out


def cases_for(base: Case, arm_params: dict[str, dict[str, Any]]) -> list[Case]:
    workload = base.workload.model_copy(update={"repeats": 1, "warmup": 0})
    return [
        Case(workload, f"{WORKLOAD}[{name}]", {**base.params, **overrides}, base.size)
        for name, overrides in arm_params.items()
    ]


def round_order(cases: list[Case], index: int) -> list[Case]:
    """A new random order each round (seeded: the run can be repeated), so no arm always follows another — and the
    two identical arms (the first two cases) swap which goes first every round, as ``nox -s compare``'s sides do:
    a case leaves traces behind (spill files being deleted, memory being returned), so order alone could make
    identical arms differ."""
    order = [int(i) for i in np.random.default_rng([20261126, index]).permutation(len(cases))]
    if len(order) > 1:
        first, second = sorted((order.index(0), order.index(1)))
        order[first], order[second] = (0, 1) if index % 2 == 0 else (1, 0)
    return [cases[i] for i in order]


def run_rounds(cases: list[Case], rounds: int, results_dir: Path, label: str, hardware_name: str = "local") -> str:
    """``rounds`` rounds of every case, one fresh cluster each, order rotated; returns the run id."""
    catalog = load_catalog()
    store = ResultsStore(results_dir)
    started = dt.datetime.now(dt.timezone.utc)
    environment = prepare_environment(catalog.runtimes["latest"], ROOT, store, False, started)
    hardware = catalog.hardware[hardware_name]
    run_id = new_run_id()
    git = provenance.git_commit(ROOT)
    for index in range(rounds):
        ordered = round_order(cases, index)
        # the first case of a round warms the fresh cluster up (imports, first-use caches) for all of them
        ordered[0] = dataclasses.replace(ordered[0], workload=ordered[0].workload.model_copy(update={"warmup": 1}))
        clock = time.monotonic()
        group = CaseGroup(environment, hardware, ordered, first_repeat=index, suffix=f"__{label}{index}")
        _, rows = run_group(group, run_id, started, store, ROOT, None, git)
        failed = [row["case_id"] for row in rows if row["phase"] == "measure" and row["outcome"] != "passed"]
        print(
            f"{label} round {index + 1}/{rounds}: {time.monotonic() - clock:.0f} s"
            + (f", not passed: {', '.join(failed)}" if failed else ""),
            file=sys.stderr,
        )
    return run_id


def pools(results_dir: Path, run_id: str) -> dict[str, dict[str, dict[int, float]]]:
    """metric → arm → round → value, of passed measured rows of one run."""
    columns = ", ".join(spec.column for spec in METRICS.values())
    with Results(results_dir) as results:
        names, rows = results.sql(
            f"SELECT case_id, repeat, {columns} FROM cases WHERE run_id = ? AND outcome = 'passed'", [run_id]
        )
    out: dict[str, dict[str, dict[int, float]]] = {name: {} for name in METRICS}
    for row in rows:
        record = dict(zip(names, row))
        arm = record["case_id"].split("[", 1)[1].rstrip("]")
        arm = arm.removeprefix("spill:")
        for name, spec in METRICS.items():
            if record[spec.column] is not None:
                out[name].setdefault(arm, {})[int(record["repeat"])] = float(record[spec.column])
    return out


def wilson_high(hits: int, n: int, z: float = 1.96) -> float:
    """Upper end of the 95 % Wilson interval of a rate: how high the true rate could plausibly be."""
    if n == 0:
        return math.nan
    p = hits / n
    centre = p + z * z / (2 * n)
    margin = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre + margin) / (1 + z * z / n)


def _sides(a: list[float], b: list[float], i: int, rng: np.random.Generator, relabel: bool) -> tuple[float, float]:
    """Round ``i``'s two values; with ``relabel`` (two identical arms) in a random order — nothing but a name and
    an alternating position tells the arms apart, so every labelling is an equally real A/A comparison."""
    if relabel and rng.random() < 0.5:
        return b[i], a[i]
    return a[i], b[i]


def fixed_rate(a: list[float], b: list[float], metric: str, rng: np.random.Generator, expect: str) -> float:
    """Share of DRAWS comparisons of REPEATS vs REPEATS (distinct rounds) whose verdict is ``expect``; A/A
    (``expect="changed"``) relabels the identical arms per round."""
    spec = METRICS[metric]
    hits = 0
    n = min(len(a), len(b))
    relabel = expect == "changed"
    for draw in range(DRAWS):
        rounds = rng.permutation(n)
        left = [_sides(a, b, i, rng, relabel)[0] for i in rounds[:REPEATS]]
        right = [_sides(a, b, i, rng, relabel)[1] for i in rounds[REPEATS : 2 * REPEATS]]
        result = compare_samples(left, right, spec, seed=draw, n_boot=500)
        hits += result.verdict == expect if expect != "changed" else result.verdict in ("regressed", "improved")
    return hits / DRAWS


def sequential_rate(a: list[float], b: list[float], metric: str, rng: np.random.Generator, expect: str) -> tuple:
    """(share deciding ``expect``, median pairs used) over DRAWS/4 random orders of the measured pairs (for A/A
    also random labellings: a fixed labelling would make every draw re-test the same 40 signs)."""
    spec = METRICS[metric]
    hits, used = 0, []
    relabel = expect == "changed"
    for _ in range(DRAWS // 4):
        test = SequentialComparison(spec, spec.min_effect)
        for i in rng.permutation(len(a)):
            test.add(*_sides(a, b, int(i), rng, relabel))
            if test.decision is not None:
                break
        verdict = test.result().verdict
        hits += verdict == expect if expect != "changed" else verdict in ("regressed", "improved")
        used.append(len(test.a))
    return hits / (DRAWS // 4), statistics.median(used)


def measured_aa(a: list[float], b: list[float], metric: str) -> str:
    """The one A/A comparison that is not simulated: arm a against arm b, every round as measured, in order —
    if identical arms differed for real (drift, position), it would show here, and the simulated rates above
    would be too kind."""
    spec = METRICS[metric]
    fixed = compare_samples(a, b, spec)
    test = SequentialComparison(spec, spec.min_effect)
    for x, y in zip(a, b):
        test.add(x, y)
        if test.decision is not None:
            break
    sequential = test.result()
    return (
        f"- {spec.label}: {fixed.sentence()}; sequential after {len(test.a)} pairs: {sequential.verdict}"
        f" ({'decided' if sequential.conclusive else 'undecided'})"
    )


def history_rate(base: list[float], shifted: list[float], metric: str, rng: np.random.Generator) -> float:
    """Share of SERIES series (runs of HISTORY_REPEATS draws; from HISTORY_CHANGE on, from ``shifted``) that
    report a regression or improvement (open, i.e. confirmed; pending ones are not alarms)."""
    spec = METRICS[metric]
    found = 0
    for seed in range(SERIES):
        points = []
        for run in range(HISTORY_RUNS):
            source = shifted if run >= HISTORY_CHANGE else base
            points.append(list(rng.choice(source, size=HISTORY_REPEATS, replace=False)))
        changes = detect(points, spec, seed=seed)
        found += any(change.status == "open" for change in changes)
    return found / SERIES


def spill_rounds(rounds: int, results_dir: Path) -> str:
    """Spill has no knob in the calibration workload: ``spill_reduce`` on 2 × 1 GiB workers, the data it persists
    raised so the *spilled bytes* rise 5/10/20 % (sized by a pilot: spill is the data beyond the thresholds)."""
    workload = load_catalog().workloads[SPILL_WORKLOAD]
    [base], _ = expand_workload(workload, "tiny")
    fraction = float(base.params["target_bytes"]["fraction_of_cluster_memory"])

    def spill_cases(scale: float) -> list[Case]:
        single = workload.model_copy(update={"repeats": 1, "warmup": 0})
        arms = {"a": fraction, "b": fraction}
        arms.update({f"spill+{shift}%": fraction * (1 + shift / 100 * scale) for shift in SHIFTS})
        return [
            Case(single, f"{SPILL_WORKLOAD}[spill:{name}]", {**base.params, "target_bytes": {FRACTION: value}}, "tiny")
            for name, value in arms.items()
        ]

    pilot_id = run_rounds(spill_cases(0.0)[:1], 3, results_dir, "spill pilot", SPILL_HARDWARE)
    with Results(results_dir) as results:
        _, [(spilled, data)] = results.sql(
            "SELECT median(spilled_bytes), median(CAST(json_extract(extra_metrics, '$.data_bytes') AS DOUBLE))"
            " FROM cases WHERE run_id = ?",
            [pilot_id],
        )
    scale = spilled / data
    print(f"spill pilot: {spilled / 2**20:.0f} MiB spilled of {data / 2**20:.0f} MiB persisted", file=sys.stderr)
    return run_rounds(spill_cases(scale), max(10, rounds * 2 // 3), results_dir, "spill round", SPILL_HARDWARE)


def analyse(results_dir: Path, run_id: str, spill_id: str | None = None, soak_id: str | None = None) -> None:
    measured = pools(results_dir, run_id)
    if spill_id:
        measured["spill"] = pools(results_dir, spill_id)["spill"]
    rng = np.random.default_rng(20261126)
    rounds = len(measured["wall"].get("a", {}))
    spill = f"spill: {len(measured['spill'].get('a', {}))}" if spill_id else "no spill rounds"
    soaks = f", soaks: run {soak_id}" if soak_id else ""
    print(f"\nCalibration run {run_id}: {rounds} rounds ({spill}{soaks}), results in {results_dir}")
    print(f"(compare: {REPEATS} vs {REPEATS} repeats drawn {DRAWS}× per cell; sequential: budget {rounds} pairs;")
    print(f" history: {SERIES} series of {HISTORY_RUNS} runs × {HISTORY_REPEATS} repeats, shift from run 17)\n")
    header = "| metric | CV | A/A false alarms: compare / sequential / history | MDE at 5 repeats |"
    header += " repeats for 5 / 10 / 20 % |"
    print(header)
    print("|---|---|---|---|---|")
    for metric in METRICS:
        spec = METRICS[metric]
        by_arm = measured[metric]
        if "a" not in by_arm or "b" not in by_arm:
            print(f"| {spec.label} | – | not measured: no passed rows with this metric | – | – |")
            continue
        common = sorted(set(by_arm["a"]) & set(by_arm["b"]))
        a = [by_arm["a"][i] for i in common]
        b = [by_arm["b"][i] for i in common]
        cv = statistics.median([noise(a, spec), noise(b, spec)])
        if max(a + b) == 0:
            print(f"| {spec.label} | 0 (always 0) | 0 / 0 / 0 — identical zeros are never a change | – | – |")
            continue
        fa_fixed = fixed_rate(a, b, metric, rng, "changed")
        fa_seq, _ = sequential_rate(a, b, metric, rng, "changed")
        fa_hist = history_rate(a + b, a + b, metric, rng)
        mde = minimum_detectable_effect(cv, REPEATS)
        needed = " / ".join(str(repeats_needed(cv, shift / 100)) for shift in SHIFTS)
        high = wilson_high(round(fa_fixed * DRAWS), DRAWS)
        shown_mde = "–" if mde is None else f"{mde * 100:.1f} %"
        print(
            f"| {spec.label} | {cv * 100:.2f} % | {fa_fixed * 100:.1f} % (≤ {high * 100:.1f})"
            f" / {fa_seq * 100:.1f} % / {fa_hist * 100:.1f} % | {shown_mde} | {needed} |"
        )
    print(f"\nThe identical arms as measured (a vs b, all {rounds} rounds, not simulated):")
    for metric in METRICS:
        by_arm = measured[metric]
        if "a" in by_arm and "b" in by_arm:
            common = sorted(set(by_arm["a"]) & set(by_arm["b"]))
            print(measured_aa([by_arm["a"][i] for i in common], [by_arm["b"][i] for i in common], metric))
    criteria = load_criteria(load_catalog(), "default")
    health_limit_rates(measured, criteria)
    if soak_id:
        leak_limit_rates(soak_series(results_dir, soak_id), criteria)
    print("\n| shift | metric | realised | compare (5 vs 5) | sequential (pairs used) | history |")
    print("|---|---|---|---|---|---|")
    for kind, metrics in (("memory", ("peak_memory", "mean_memory")), ("work", ("wall",)), ("spill", ("spill",))):
        for shift in SHIFTS:
            arm = f"{kind}+{shift}%"
            for metric in metrics:
                by_arm = measured[metric]
                if arm not in by_arm or "a" not in by_arm:
                    continue
                common = sorted(set(by_arm["a"]) & set(by_arm[arm]))
                a = [by_arm["a"][i] for i in common]
                b = [by_arm[arm][i] for i in common]
                realised = statistics.median(b) / statistics.median(a) - 1
                power = fixed_rate(a, b, metric, rng, "regressed")
                seq, pairs = sequential_rate(a, b, metric, rng, "regressed")
                hist = history_rate(a, b, metric, rng)
                print(
                    f"| {arm} | {METRICS[metric].label} | {realised * 100:+.1f} % | {power * 100:.0f} % |"
                    f" {seq * 100:.0f} % ({pairs:.0f}) | {hist * 100:.0f} % |"
                )


# --------------------------------------------------------------------------------------------------
# The blessing criteria's absolute limits: health figures and memory slopes


def health_limit_rates(measured: dict[str, dict[str, dict[int, float]]], criteria: Criteria) -> None:
    """Per limited metric: how often ``bless``'s health judgement fails on 7 repeats drawn from the identical arms
    (false alarms), and with a 1.5 × limit stall in one repeat and in all of them (power)."""
    wanted = criteria.health
    if wanted is None:
        print("\n(the default criteria declare no health limits: nothing to count)")
        return
    rng = np.random.default_rng(20261206)
    print(f"\nHealth limits of the default criteria: {HEALTH_REPEATS} repeats drawn {DRAWS}× from the identical arms")
    print("| metric | limit | A/A values: median / max | false alarms | stall of 1.5 × limit in 1 repeat / in all |")
    print("|---|---|---|---|---|")
    for name, limit in wanted.limits.items():
        spec = METRICS[name]
        pooled = [value for arm in ("a", "b") for value in measured[name].get(arm, {}).values()]
        if not pooled:
            print(f"| {spec.label} | {spec.show(limit)} | not measured: no passed rows with it | – | – |")
            continue
        fails = [0, 0, 0]
        for _ in range(DRAWS):
            draw = [float(v) for v in rng.choice(pooled, size=HEALTH_REPEATS, replace=True)]
            one = [draw[0] + 1.5 * limit, *draw[1:]]
            every = [value + 1.5 * limit for value in draw]
            for index, values in enumerate((draw, one, every)):
                _, low, high, _ = median_interval(values)
                fails[index] += position(low, high, limit) != "within"  # inconclusive: fail
        high = wilson_high(fails[0], DRAWS)
        print(
            f"| {spec.label} | {spec.show(limit)} | {spec.show(statistics.median(pooled))} / {spec.show(max(pooled))}"
            f" | {fails[0] / DRAWS * 100:.1f} % (≤ {high * 100:.1f}) | {fails[1] / DRAWS * 100:.0f} % /"
            f" {fails[2] / DRAWS * 100:.0f} % |"
        )


def soak_rounds(results_dir: Path, seconds: float) -> str:
    """One real soak of each of SOAKS at size tiny (``seconds`` long), every point of its series recorded."""
    catalog = load_catalog()
    store = ResultsStore(results_dir)
    started = dt.datetime.now(dt.timezone.utc)
    environment = prepare_environment(catalog.runtimes["latest"], ROOT, store, False, started)
    cases = []
    for name in SOAKS:
        [case, *_], _ = expand_workload(catalog.workloads[name], "tiny")
        if name.startswith("leak_"):
            params = {**case.params, "soak_seconds": seconds, "soak_record_series": True}
        else:
            params = {**case.params, "idle_seconds": seconds, "record_series": True}
        cases.append(dataclasses.replace(case, params=params))
    run_id = new_run_id()
    clock = time.monotonic()
    group = CaseGroup(environment, catalog.hardware["local"], cases, suffix="__soak")
    _, rows = run_group(group, run_id, started, store, ROOT, None, provenance.git_commit(ROOT))
    failed = [row["case_id"] for row in rows if row["phase"] == "measure" and row["outcome"] != "passed"]
    print(f"soak: {time.monotonic() - clock:.0f} s" + (f", not passed: {', '.join(failed)}" if failed else ""),
          file=sys.stderr)  # fmt: skip
    return run_id


def soak_series(results_dir: Path, run_id: str) -> list[tuple[str, list[float], list[float], str]]:
    """(case, x, unmanaged bytes, per) of each passed soak of the run: x is the repeat, or minutes idle."""
    with Results(results_dir) as results:
        _, rows = results.sql(
            "SELECT case_id, extra_metrics FROM cases WHERE run_id = ? AND outcome = 'passed' ORDER BY case_id",
            [run_id],
        )
    out = []
    for case_id, text in rows:
        extra = json.loads(text or "{}")
        points = sorted(key for key in extra if key.startswith("unmanaged_at_"))
        y = [float(extra[key]) for key in points]
        if "minute_at_0000" in extra:
            x, per = [float(extra[key.replace("unmanaged_at_", "minute_at_")]) for key in points], "min"
        else:
            x, per = [float(i) for i in range(len(y))], "repeat"
        if len(y) >= 6:
            out.append((case_id, x, y, per))
    return out


def block_resample(residuals: list[float], rng: np.random.Generator) -> list[float]:
    """A circular block bootstrap of ``residuals``: blocks of BLOCK consecutive points from random starts."""
    n = len(residuals)
    out: list[float] = []
    while len(out) < n:
        start = int(rng.integers(n))
        out += [residuals[(start + i) % n] for i in range(BLOCK)]
    return out[:n]


def leak_limit_rates(series: list[tuple[str, list[float], list[float], str]], criteria: Criteria) -> None:
    """Per soak: how often ``bless``'s slope judgement fails when the true slope is known (SOAK_DRAWS series each)."""
    wanted = criteria.soak
    if wanted is None:
        print("\n(the default criteria declare no soak limits: nothing to count)")
        return
    rng = np.random.default_rng(20261206)
    print(
        f"\nSoak limits of the default criteria (leak ≤ {wanted.max_leak}, idle ≤ {wanted.max_idle_growth},"
        f" inconclusive: fail): {SOAK_DRAWS} series per slope, the measured residuals in blocks of {BLOCK}"
    )
    print(
        "| soak | points | measured slope (95 % CI) | share failing at slope 0 / measured / ½ / 0.9 / 1.1 / 2 × limit |"
    )
    print("|---|---|---|---|")
    for case_id, x, y, per in series:
        limit = wanted.leak_limit if per == "repeat" else wanted.idle_limit
        fitted = theil_sen(x, y)
        residuals = [value - fitted.slope * at for at, value in zip(x, y)]
        slopes = [0.0, fitted.slope, 0.5 * limit, 0.9 * limit, 1.1 * limit, 2.0 * limit]
        shares = []
        for slope in slopes:
            fails = 0
            for _ in range(SOAK_DRAWS):
                noise = block_resample(residuals, rng)
                trend = theil_sen(x, [slope * at + r for at, r in zip(x, noise)])
                fails += position(trend.low, trend.high, limit) != "within"
            shares.append(f"{fails / SOAK_DRAWS * 100:.1f} %")
        kib = f"{fitted.slope / 1024:+.1f} KiB/{per} ({fitted.low / 1024:+.1f} to {fitted.high / 1024:+.1f})"
        print(f"| {case_id} | {len(y)} | {kib} | {' / '.join(shares)} |")


def main() -> int:
    parser = argparse.ArgumentParser(prog="nox -s bench -- calibration")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--size", default="small")
    parser.add_argument("--results", type=Path, help="results directory (default: a new temporary one)")
    parser.add_argument("--analyse", metavar="RUN_ID", help="only count, from the rows of this run in --results")
    parser.add_argument("--spill-run", metavar="RUN_ID", help="with --analyse: the spill rounds' run")
    parser.add_argument("--soak-run", metavar="RUN_ID", help="with --analyse: the soaks' run")
    parser.add_argument("--no-spill", action="store_true", help="leave out the spill rounds (spill_reduce)")
    parser.add_argument("--soak-seconds", type=float, default=60.0, help="length of each soak (0: no soak)")
    args = parser.parse_args(sys.argv[1:])
    if args.rounds < 2 * REPEATS:
        parser.error(
            f"--rounds={args.rounds}: the counts draw {REPEATS} distinct rounds per side — use ≥ {2 * REPEATS}"
        )
    results_dir = args.results or Path(tempfile.mkdtemp(prefix="blessing-calibration-"))
    if args.analyse:
        analyse(results_dir, args.analyse, args.spill_run, args.soak_run)
        return 0
    [base], _ = expand_workload(load_catalog().workloads[WORKLOAD], args.size)
    # Pilot: what share of the peak is the held memory, and of the wall time the hashing? (3 rounds, knobs at 0)
    pilot_id = run_rounds(cases_for(base, {"a": {}}), 3, results_dir, "pilot")
    with Results(results_dir) as results:
        _, [(peak, wall, hashing)] = results.sql(
            "SELECT median(peak_memory_bytes), median(wall_s),"
            " median(CAST(json_extract(extra_metrics, '$.hash_seconds') AS DOUBLE)) FROM cases WHERE run_id = ?",
            [pilot_id],
        )
    held = float(base.params["mib_per_worker"]) * 2**20 * 2  # the local profile's two workers
    memory_scale, work_scale = peak / held, wall / hashing
    print(
        f"pilot: held memory is {held / peak * 100:.0f} % of the peak, hashing {hashing / wall * 100:.0f} % of the"
        f" wall time → knob scales {memory_scale:.2f} and {work_scale:.2f}",
        file=sys.stderr,
    )
    run_id = run_rounds(cases_for(base, arms(memory_scale, work_scale)), args.rounds, results_dir, "round")
    spill_id = None if args.no_spill else spill_rounds(args.rounds, results_dir)
    soak_id = soak_rounds(results_dir, args.soak_seconds) if args.soak_seconds > 0 else None
    analyse(results_dir, run_id, spill_id, soak_id)
    again = f"--analyse={run_id}" + (f" --spill-run={spill_id}" if spill_id else "")
    again += f" --soak-run={soak_id}" if soak_id else ""
    print(f"\n(count again without running: nox -s bench -- calibration --results={results_dir} {again})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
