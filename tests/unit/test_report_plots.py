"""framework/report: what the plots are drawn from — comparison panels (log-ratios, clipping), a workload's noise
bands, compare runs apart from history, failures grouped by error — and readable run pages (bytes, characters,
case ids)."""

from __future__ import annotations

import datetime as dt
import json
import math
import re

import pytest

from framework.metric_catalogue import METRICS
from framework.records import write_record
from framework.report import build_site, comparison_plot, workload_view
from framework.report.data import HISTORY_FIELDS
from framework.report.details import verdict_kind
from framework.report.layout import case_html

DAY0 = dt.datetime(2026, 1, 1, 2, 0, tzinfo=dt.timezone.utc)


def _row(case_id, metric, ratio, low, high, verdict, conclusive=True):
    return {"case_id": case_id, "size": "tiny", "metric": metric, "ratio": ratio, "ci_low": low, "ci_high": high,
            "verdict": verdict, "conclusive": conclusive, "sentence": f"{metric} of {case_id}"}  # fmt: skip


def test_a_significant_small_memory_change_stays_visible_beside_a_wide_inconclusive_wall_interval():
    rows = [
        _row("shuffle", "wall", 5.39, 0.8, 10.0, "unchanged", conclusive=False),  # +439 %, inconclusive
        _row("shuffle", "peak_memory", 1.05, 1.04, 1.06, "regressed"),
        _row("groupby", "peak_memory", 1.06, 1.05, 1.07, "regressed"),
        _row("groupby", "wall", 1.01, 0.97, 1.05, "unchanged"),
        _row("groupby", "spill", None, None, None, "unchanged"),  # not comparable: left out
    ]
    panels = comparison_plot.panels(rows, verdict_kind)
    assert [panel["metric"] for panel in panels] == ["wall", "peak_memory"]  # one per metric, catalogue order
    wall, memory = panels
    # the memory panel is scaled to its findings (at least ±10 %): +5 % is half its half-width, not a dot at 0
    assert memory["limit"] == pytest.approx(math.log(1.10))
    assert all(not row["off_low"] and not row["off_high"] for row in memory["rows"])
    assert memory["rows"][1]["x"] / memory["limit"] > 0.45
    # the wall panel: the +439 % change and its interval are clipped at +50 % with an arrow, the real bounds kept
    assert wall["limit"] == pytest.approx(math.log(1.5))
    clipped = next(row for row in wall["rows"] if row["label"] == "shuffle (tiny)")
    assert clipped["off_high"] and not clipped["off_low"]
    assert clipped["x"] == clipped["high"] == pytest.approx(wall["limit"])
    assert clipped["change"] == "+439 %" and clipped["interval"] == "-20 % to +900 %"
    assert clipped["verdict"] == "inconclusive"
    # the cases come in one order in every panel: a significant finding first
    assert memory["labels"] == ["groupby (tiny)", "shuffle (tiny)"]
    assert wall["labels"] == ["groupby (tiny)", "shuffle (tiny)"]


def test_log_ratios_and_ticks_in_percent():
    assert comparison_plot.log_ratio(2.0) == pytest.approx(math.log(2))
    assert comparison_plot.log_ratio(0.0) is None and comparison_plot.log_ratio(math.inf) is None
    assert comparison_plot.log_ratio(None) is None  # type: ignore[arg-type]
    ticks = comparison_plot.ticks(math.log(1.5))
    assert [label for _, label in ticks] == ["-33 %", "-20 %", "-10 %", "0", "+20 %", "+50 %"]
    assert {label: at for at, label in ticks}["+50 %"] == pytest.approx(math.log(1.5))
    assert all(abs(at) <= math.log(1.5) + 1e-12 for at, _ in ticks)


def test_a_noise_band_is_the_median_plus_minus_the_metrics_noise_between_change_points():
    spec = METRICS["wall"]
    low, level, high = workload_view.band([1.0, 1.1, 0.9, 1.0], spec)
    spread = float(__import__("numpy").std(__import__("numpy").log([1.0, 1.1, 0.9, 1.0]), ddof=1))
    assert level == pytest.approx(1.0)
    assert (low, high) == (pytest.approx(math.exp(-spread)), pytest.approx(math.exp(spread)))
    assert workload_view.band([1.0, 1.1], spec) is None  # too few runs for a spread

    def point(day, wall, compare=False, run=None):
        return {"runtime": "latest", "hardware": "local", "machine_class": "", "case_id": "c", "size": "tiny",
                "run_id": run or f"r{day}", "t": day, "compare": compare, **dict.fromkeys(METRICS), "wall": wall,
                "spill": 0}  # fmt: skip

    found = [point(day, 1.0 + 0.01 * (day % 2)) for day in range(4)]
    found += [point(day, 2.0 + 0.01 * (day % 2)) for day in range(4, 8)]
    found.append(point(9, 50.0, compare=True))  # an A/B comparison's run: not history, no part of any band
    change = {"along": "date", "runtime": "latest", "hardware": "local", "machine_class": "", "case_id": "c",
              "size": "tiny", "metric": "wall", "change_run_id": "r4"}  # fmt: skip
    walls = [band for band in workload_view.bands(found, [change]) if band["metric"] == "wall"]
    assert [(band["from"], band["to"], band["runs"]) for band in walls] == [(0, 3, 4), (4, 7, 4)]
    assert walls[0]["level"] == pytest.approx(1.005, rel=0.01) and walls[1]["level"] == pytest.approx(2.005, rel=0.01)
    spills = [band for band in workload_view.bands(found, [change]) if band["metric"] == "spill"]
    assert [(band["low"], band["high"]) for band in spills] == [(0.0, 0.0)]  # 0 every run: a band of no width


def test_the_same_error_six_times_is_one_line_with_its_count_and_runs():
    failures = [
        {"error": "KeyError: 'id'", "outcome": "error", "case_id": f"c[{n % 2}]", "runtime": "latest",
         "hardware": "local", "run_id": f"run{n}", "page": f"run{n}", "started_at": f"2026-01-0{9 - n} 02:00"}
        for n in range(6)
    ] + [{"error": "timed out", "outcome": "timeout", "case_id": "c[0]", "runtime": "stable", "hardware": "local",
          "run_id": "run0", "page": "run0", "started_at": "2026-01-09 02:00"}]  # fmt: skip
    groups = workload_view.grouped_failures(failures)
    assert [(group["error"], group["count"]) for group in groups] == [("KeyError: 'id'", 6), ("timed out", 1)]
    assert groups[0]["cases"] == ["c[0]", "c[1]"] and groups[0]["runtimes"] == ["latest"]
    assert [run["run_id"] for run in groups[0]["runs"]] == [f"run{n}" for n in range(6)]  # newest first


def test_case_ids_wrap_only_between_parameters():
    assert case_html("shuffle[method=p2p,n=4]") == '<span class="case-id">shuffle[<wbr>method=p2p,<wbr>n=4]</span>'
    assert case_html("a<b") == '<span class="case-id">a&lt;b</span>'


def test_compare_runs_are_a_series_apart_and_run_pages_show_bytes_and_real_characters(
    case_row, write_run, results_dir, tmp_path
):
    spec = json.dumps({"description": "Two workers × 1 thread — 4 GiB"})  # stored as json.dumps writes: \u00d7
    assert "\\u00d7" in spec
    for day, run_id in enumerate(("20260101T020000Z-nite00", "20260102T020000Z-nite01", "20260103T020000Z-cmpb01")):
        at = DAY0 + dt.timedelta(days=day)
        write_run(
            [
                case_row(
                    run_id=run_id,
                    run_started_at=at,
                    started_at=at + dt.timedelta(seconds=repeat),
                    repeat=repeat,
                    case_id="groupby_agg[by=id,split_out=4]",
                    hardware_spec=spec,
                    ram_bytes=25276194816,
                )
                for repeat in range(3)
            ]
        )
    detail = {"run_ids": {"baseline": ["x"], "candidate": ["20260103T020000Z-cmpb01"]}}
    comparison = {
        "comparison_id": "20260103T030000Z-cmp001", "created_at": DAY0 + dt.timedelta(days=2), "mode": "interleaved",
        "baseline": "stable", "candidate": "latest", "hardware": "local", "workload": "groupby_agg",
        "case_id": "groupby_agg[by=id,split_out=4]", "size": "tiny", "metric": "wall", "ratio": 1.0, "ci_low": 0.9,
        "ci_high": 1.1, "p_value": 0.5, "verdict": "unchanged", "conclusive": True, "sentence": "wall time +0.0 %",
        "detail": detail,
    }  # fmt: skip
    write_record(results_dir, "comparisons", "20260103T030000Z-cmp001", [comparison])
    out = build_site(results_dir, tmp_path / "site").out_dir
    page = (out / "workloads" / "groupby_agg.html").read_text()
    rows = json.loads(re.search(r'id="history-points">(.*?)</script>', page, re.S).group(1))
    compare = HISTORY_FIELDS.index("compare")
    assert {row[HISTORY_FIELDS.index("run_id")]: row[compare] for row in rows} == {
        "20260101T020000Z-nite00": False,
        "20260102T020000Z-nite01": False,
        "20260103T020000Z-cmpb01": True,
    }
    assert 'data-compare-toggle="date"' in page and "show the 1 point(s) of A/B comparisons" in page
    meta = json.loads(re.search(r'id="history-meta">(.*?)</script>', page, re.S).group(1))
    assert meta["bands"] == []  # two nightly runs: too few for a spread (the compare run does not count)
    run = (out / "runs" / "20260101T020000Z-nite00.html").read_text()
    assert '<span title="25276194816 bytes">23.5 GiB</span>' in run
    body = re.sub(r"<script.*?</script>", "", run, flags=re.S)
    assert "\\u00d7" not in body and "\\u2014" not in body
    assert "Two workers × 1 thread — 4 GiB" in body
    assert '<span class="case-id">groupby_agg[<wbr>by=id,<wbr>split_out=4]</span>' in body
