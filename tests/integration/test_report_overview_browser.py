"""The overview's go/no-go answer in headless Chromium: a store with one runtime in each state
(tests/integration/overview_store.py), the report built from it, each state's line read as the browser shows it.

The browser and its skip rule (DASK_BLESSING_REQUIRE_BROWSER=1 makes a missing Chromium a failure) are
tests/integration/test_report_browser.py's. A screenshot of the overview goes to $DASK_BLESSING_SCREENSHOTS.
"""

from __future__ import annotations

from typing import Any

import pytest

from framework.metric_catalogue import METRICS
from framework.report import build_site
from tests.integration.overview_store import EXPORT, INCOHERENT, UNUSABLE, WALL_REGRESSION, every_state
from tests.integration.test_report_browser import _red, browser, screenshots  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser


def _line(page: Any, runtime: str) -> Any:
    return page.locator(f'li.state[data-runtime="{runtime}"]')


def _colour(page: Any, selector: str, css: str = "color") -> tuple[int, ...]:
    value = page.eval_on_selector(selector, f"(element) => getComputedStyle(element)['{css}']")
    return tuple(int(part) for part in value.removeprefix("rgb(").removesuffix(")").split(","))


def test_the_overview_answers_go_or_no_go_for_each_runtime_first(tmp_path, browser, screenshots):  # noqa: F811
    results = tmp_path / "results"
    ids = every_state(results)
    site = build_site(results, tmp_path / "site").out_dir
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("requestfailed", lambda request: errors.append(f"failed to load {request.url}"))
    page.goto((site / "index.html").as_uri())
    page.wait_for_load_state("load")

    lines = page.locator("li.state")
    shown = {lines.nth(i).get_attribute("data-runtime"): lines.nth(i).get_attribute("data-state") for i in range(4)}
    assert lines.count() == 4
    assert shown == {"latest": "NOT BLESSED", UNUSABLE: "UNUSABLE", "previous": "BLESSED", "stable": "NOT JUDGED"}
    assert not page.locator("details.undeclared").count()  # every runtime of the store is declared

    blessed = _line(page, "previous").inner_text()
    assert blessed.startswith("previous is BLESSED — 2026-01-06 02:00 UTC, against stable on local by criteria default")
    checks = 2 + 1 + 2 * len(METRICS)  # 2 must-pass cases, stability, every metric of 2 cases
    assert (
        f"{checks} of {checks} checks passed — 2 must-pass case(s) passed every repeat; stability profile ci" in blessed
    )
    assert f"Install: uv pip sync {(results / EXPORT).resolve()}" in blessed

    not_blessed = _line(page, "latest")
    assert not_blessed.inner_text().startswith(
        f"latest is NOT BLESSED — 2026-01-06 02:00 UTC, against stable on local by criteria default: 1 of 3 checks"
        f" failed — {WALL_REGRESSION}"
    )
    assert not not_blessed.locator("details li").is_visible()  # the evidence folds away until asked for
    not_blessed.locator("summary").click()
    assert "allowed ≤ 25 %" in not_blessed.locator("details li").inner_text()
    overloaded = not_blessed.locator(".overloaded").inner_text()
    assert overloaded.startswith("! its verdict rests on 1 check(s) measured while the machine was overloaded")
    assert f"its newest run {ids['latest_run']} measured 6 repeat(s)" in overloaded

    unusable = _line(page, UNUSABLE)
    assert unusable.locator(".unusable-cause").inner_text() == f"{UNUSABLE} is UNUSABLE: {INCOHERENT}"
    assert _red(_colour(page, f'li.state[data-runtime="{UNUSABLE}"] .unusable-cause'))
    assert f"health check of run {ids['unusable_run']}" in unusable.inner_text()

    judged = _line(page, "stable").inner_text()
    assert judged.startswith("stable is NOT JUDGED — no blessing verdict yet — nox -s bless -- --runtime=stable")
    assert f"--baseline=previous --results={results} judges it" in judged  # declared after stable

    # every line in the first screenful, before the rest of the page
    last = lines.nth(3).bounding_box()
    assert last and last["y"] + last["height"] < 900
    first_table = page.locator("h2", has_text="Latest run of each runtime").bounding_box()
    assert first_table and last["y"] < first_table["y"]

    # the grid: latest's wall time regressed (red), its peak memory improved (green), the rest ≈ or ?
    grid = page.locator("table.changes")
    wall = grid.locator("tr", has_text="wall").first.locator("td.change")
    assert [wall.nth(i).inner_text() for i in range(2)] == ["+60 %", "+60 %"]
    assert "regressed" in (wall.first.get_attribute("class") or "")
    assert _red(_colour(page, "table.changes td.change.regressed", "background-color"))
    hover = wall.first.get_attribute("title") or ""
    assert "wall time +60 % (" in hover and "Allowed change ≤ 25 % (criteria default)" in hover and "(MDE)" in hover
    assert grid.locator("td.change.improved").count() == 2
    assert grid.locator("td.change.inconclusive").count() == 2  # latest's spill: too noisy to tell
    # latest's mean memory and health metrics (3 others changed), every metric of previous; 2 cases each
    assert grid.locator("td.change.unchanged").count() == 2 * (len(METRICS) - 3) + 2 * len(METRICS)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 1280, f"the overview is {width} px wide at 1280"
    page.screenshot(path=str(screenshots / "overview-states.png"), full_page=False)
    assert not errors, errors
    context.close()
