"""The report's plots in headless Chromium: a comparison draws one panel per metric, and an interval that runs off
its panel ends in an arrow while a small significant change beside it stays readable; a workload page hides the
runs of an A/B comparison until asked. (The browser set-up is test_report_browser's: Debian's chromium through
Playwright, skipped without it unless DASK_BLESSING_REQUIRE_BROWSER=1.)"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from framework.records import write_record
from framework.report import build_site
from framework.results import ResultsStore, case_table, write_atomic
from tests.integration.test_report_browser import PLOT_TIMEOUT_MS, browser  # noqa: F401 (the fixture)
from tests.unit.conftest import _case_row

pytestmark = pytest.mark.browser

DAY0 = dt.datetime(2026, 1, 1, 2, 0, tzinfo=dt.timezone.utc)
COMPARISON = "20260105T000000Z-cmp001"
CASES = [f"groupby_agg[by=id,split_out={n}]" for n in range(1, 9)]
# The release manager's comparison: wall time inconclusive up to +439 %, eight significant +5 % memory regressions.
WALL = (5.39, 0.92, 5.39)
MEMORY = (1.05, 1.04, 1.06)


def _store(results: Path) -> None:
    store = ResultsStore(results)
    run_ids = []
    for day in range(4):  # three nightly runs, then one side of the comparison (its rounds)
        at = DAY0 + dt.timedelta(days=day)
        run_id = f"{at:%Y%m%dT%H%M%SZ}-{'cmpb' if day == 3 else 'nite'}{day:02d}"
        run_ids.append(run_id)
        rows = [
            _case_row(run_id=run_id, run_started_at=at, started_at=at + dt.timedelta(seconds=repeat), repeat=repeat,
                      case_id=case_id, wall_s=1.0 + 0.02 * repeat + (3.0 if day == 3 else 0), params={},
                      cluster_memory_limit_bytes=4 * 2**30)
            for case_id in CASES[:2]
            for repeat in range(3)
        ]  # fmt: skip
        write_atomic(case_table(rows), store.cases_dir / f"{run_id}__latest__local.parquet")

    def row(case_id: str, metric: str, figures: tuple[float, float, float], verdict: str, conclusive: bool) -> Any:
        ratio, low, high = figures
        detail = {"run_ids": {"candidate": [run_ids[3]]}}
        return {"comparison_id": COMPARISON, "created_at": DAY0 + dt.timedelta(days=4), "mode": "interleaved",
                "baseline": "stable", "candidate": "latest", "hardware": "local", "workload": "groupby_agg",
                "case_id": case_id, "size": "tiny", "metric": metric, "ratio": ratio, "ci_low": low, "ci_high": high,
                "p_value": 0.002 if conclusive else 0.2, "verdict": verdict, "conclusive": conclusive,
                "sentence": f"{metric} {(ratio - 1) * 100:+.0f} %", "detail": detail, "n_baseline": 5,
                "n_candidate": 5, "baseline_median": 1.0, "candidate_median": ratio, "min_effect": 0.05,
                "alpha": 0.01, "mde": 0.03 if conclusive else 0.9,
                "repeats_needed": None if conclusive else 60}  # fmt: skip

    rows = [row(case_id, "wall", WALL, "unchanged", False) for case_id in CASES]
    rows += [row(case_id, "peak_memory", MEMORY, "regressed", True) for case_id in CASES]
    rows += [row(case_id, "mean_memory", (1.0, 0.99, 1.01), "unchanged", True) for case_id in CASES]
    write_record(results, "comparisons", COMPARISON, rows)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("plots")
    _store(root / "results")
    return build_site(root / "results", root / "site").out_dir


def _rendered(page: Any) -> None:
    page.wait_for_function(
        "() => [...document.querySelectorAll('.plot')].filter((p) => p.offsetParent)"
        ".every((p) => p.dataset.rendered === 'true')",
        timeout=PLOT_TIMEOUT_MS,
    )


def test_a_comparison_draws_a_panel_per_metric_and_an_arrow_where_an_interval_runs_off(site, browser):  # noqa: F811
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto((site / "comparisons" / f"{COMPARISON}.html").as_uri())
    _rendered(page)
    panels = page.locator(".plot.comparison")
    found = {
        panels.nth(i).get_attribute("data-metric"): (
            int(panels.nth(i).get_attribute("data-points") or 0),
            int(panels.nth(i).get_attribute("data-arrows") or 0),
            panels.nth(i).locator("canvas").count(),
        )
        for i in range(panels.count())
    }
    assert not problems, problems
    # one panel per metric, each with its eight cases drawn; only wall time's +439 % runs off, with an arrow
    assert found == {"wall": (8, 8, found["wall"][2]), "peak_memory": (8, 0, found["peak_memory"][2]),
                     "mean_memory": (8, 0, found["mean_memory"][2])}  # fmt: skip
    assert all(canvases > 0 for _, _, canvases in found.values()), found
    context.close()


def test_a_workload_page_hides_the_runs_of_a_comparison_until_asked(site, browser):  # noqa: F811
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto((site / "workloads" / "groupby_agg.html").as_uri())
    _rendered(page)
    toggle = page.locator('input[data-compare-toggle="date"]')
    assert toggle.is_visible() and not toggle.is_checked()
    legend = page.locator('.legend[data-axis="date"]').inner_text()
    assert "comparison" not in legend  # the comparison's run is not a line of the history
    spill = page.locator('.plot[data-axis="date"][data-metric="spill"]')
    assert spill.inner_text().startswith("spill: none — 0 B in each of the")  # no axis around nothing
    toggle.check()  # shows the hidden series without errors
    assert toggle.is_checked()
    context.close()


def test_a_run_pages_executions_show_byte_counts_in_binary_units(site, browser):  # noqa: F811
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto((site / "runs" / "20260101T020000Z-nite00.html").as_uri())
    page.wait_for_selector('.executions[data-rendered="true"]', timeout=PLOT_TIMEOUT_MS)
    limits = page.locator('.executions td[title="4294967296 bytes"]')
    assert limits.count() == 6  # two cases × three repeats
    assert limits.first.inner_text() == "4.0 GiB"
    context.close()
