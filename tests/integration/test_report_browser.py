"""The report site in a real browser: every page opened from disk (file://) in headless Chromium.

Debian's /usr/bin/chromium driven by Playwright (no browser download). Without it the test is skipped — unless
DASK_BLESSING_REQUIRE_BROWSER=1 (CI), where a missing browser is a failure. Screenshots of every page go to
$DASK_BLESSING_SCREENSHOTS when set (a temporary directory otherwise).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest

from framework.metric_catalogue import METRICS
from framework.records import write_record
from framework.report import build_site
from framework.results import ResultsStore, case_table, write_atomic
from tests.unit.conftest import _case_row, locked_environment

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DAY0 = dt.datetime(2026, 1, 1, 2, 0, tzinfo=dt.timezone.utc)
CASES = [
    ("groupby_agg", "groupby_agg[by=id]"),
    ("groupby_agg", "groupby_agg[by=name]"),
    ("array_mean_var", "array_mean_var"),
]
PLOT_TIMEOUT_MS = 30_000
CAUSE = "import distributed failed: ImportError: cannot import name 'collections_to_dsk' from 'dask.base'"
NOTE = "stable: dask 2026.1.0 has no matching distributed on the index — using dask and distributed 2025.12.0"
UNUSABLE_RUN = "20260109T020000Z-late08"
UNUSABLE_COMPARISON = "20260110T000000Z-cmp002"


def _store(results: Path) -> None:
    """Two runtimes × 8 daily runs × 3 cases, a failure, a timeout with its dump, a step in latest's peak
    memory found by a scan, a comparison, a verdict and a stability failure; then a ninth run of latest whose
    health check failed (every case a setup error), its lock diff, and a comparison it stopped."""
    store = ResultsStore(results)
    change_run = ""
    for day in range(8):
        for runtime, dask in (("latest", f"2026.{1 + day // 3}.0"), ("stable", "2025.12.0")):
            at = DAY0 + dt.timedelta(days=day, hours=0 if runtime == "latest" else 1)
            run_id = f"{at:%Y%m%dT%H%M%SZ}-{runtime[:4]}{day:02d}"
            if runtime == "latest" and day == 5:
                change_run = run_id
            rows = []
            for n, (workload, case_id) in enumerate(CASES):
                for repeat in range(3):
                    started = at + dt.timedelta(seconds=10 * (3 * n + repeat))
                    peak = (400 + (40 if runtime == "latest" and day >= 5 else 0) + repeat + n * 50) * 2**20
                    values = {"outcome": "passed", "wall_s": 0.2 + 0.01 * repeat + 0.1 * n}
                    if (runtime, day, n, repeat) == ("latest", 3, 0, 2):
                        values = {"outcome": "failed", "wall_s": 0.3, "error": "WorkloadCheckFailed: wrong sum"}
                    if (runtime, day, n, repeat) == ("stable", 6, 2, 1):
                        dump = store.dumps_dir(run_id) / "array_mean_var-measure1.msgpack.gz"
                        dump.parent.mkdir(parents=True, exist_ok=True)
                        dump.write_bytes(b"cluster state")
                        values = {"outcome": "timeout", "wall_s": None, "error": "timed out", "cluster_dump": str(dump)}
                    rows.append(
                        _case_row(
                            run_id=run_id,
                            run_started_at=at,
                            runtime=runtime,
                            workload=workload,
                            case_id=case_id,
                            repeat=repeat,
                            started_at=started,
                            ended_at=started + dt.timedelta(seconds=1),
                            peak_memory_bytes=peak,
                            mean_memory_bytes=peak - 20 * 2**20,
                            dask_version=dask,
                            distributed_version=dask,
                            packages={"dask": dask, "distributed": dask},
                            params={},
                            **values,
                        )
                    )
            write_atomic(case_table(rows), store.cases_dir / f"{run_id}__{runtime}__local.parquet")
    store.record_environment(locked_environment(DAY0))
    write_record(
        results,
        "regressions",
        "20260110T000000Z-scan01",
        [
            {
                "scan_id": "20260110T000000Z-scan01",
                "scanned_at": DAY0 + dt.timedelta(days=9),
                "series": f"local|latest|{case_id}|tiny|peak_memory",
                "along": "date",
                "hardware": "local",
                "runtime": "latest",
                "workload": workload,
                "case_id": case_id,
                "size": "tiny",
                "metric": "peak_memory",
                "direction": "regression",
                "status": "open",
                "new": True,
                "change_run_id": change_run,
                "ratio": 1.1,
                "sentence": f"peak memory of {case_id} (tiny) on local / latest rose +10 % at run {change_run}",
            }
            for workload, case_id in CASES
        ],
    )
    write_record(
        results,
        "comparisons",
        "20260110T000000Z-cmp001",
        [
            {
                "comparison_id": "20260110T000000Z-cmp001",
                "created_at": DAY0 + dt.timedelta(days=9),
                "mode": "interleaved",
                "baseline": "stable",
                "candidate": "latest",
                "hardware": "local",
                "workload": workload,
                "case_id": case_id,
                "size": "tiny",
                "metric": metric,
                "ratio": ratio,
                "ci_low": ratio - 0.03,
                "ci_high": ratio + 0.04,
                "p_value": 0.001,
                "verdict": "regressed" if ratio > 1.05 else "unchanged",
                "conclusive": True,
                "sentence": f"{metric} {(ratio - 1) * 100:+.0f} %, p = 0.001, n = 7 vs 7",
            }
            for workload, case_id in CASES
            for metric, ratio in (("wall", 0.97), ("peak_memory", 1.1))
        ],
    )
    write_record(
        results,
        "verdicts",
        "20260110T000000Z-verd01",
        [
            {
                "verdict_id": "20260110T000000Z-verd01",
                "decided_at": DAY0 + dt.timedelta(days=9),
                "criteria": "default",
                "runtime": "latest",
                "baseline": "stable",
                "hardware": "local",
                "blessed": False,
                "reasons": ["groupby_agg[by=id]: peak memory +10 % vs stable, allowed ≤ 5 %"],
                "checks": [{"criterion": "metric", "subject": "groupby_agg[by=id]", "passed": False}],
            }
        ],
    )
    _unusable_latest(results)
    failure_id = "20260109T000000Z-stab01-latest-process"
    failure = results / "stability" / "failures" / failure_id
    failure.mkdir(parents=True)
    (failure / "failure.json").write_text(
        json.dumps({"failure_id": failure_id, "tier": "process", "kind": "result", "error": "result: wrong value"})
    )
    at = DAY0 + dt.timedelta(days=8)
    write_atomic(
        case_table(
            [
                _case_row(
                    run_id="20260109T000000Z-stab01",
                    run_started_at=at,
                    started_at=at,
                    runtime="latest",
                    hardware="chaos",
                    workload="stability.fuzz",
                    case_id="fuzz[process]",
                    outcome="failed",
                    wall_s=30.0,
                    error="result: wrong value",
                    failure_id=failure_id,
                    dask_version="2026.3.0",
                    distributed_version="2026.3.0",
                    params={},
                    extra_metrics={"examples": 12, "steps": 90},
                )
            ]
        ),
        store.cases_dir / "20260109T000000Z-stab01__latest__chaos.parquet",
    )


def _unusable_latest(results: Path) -> None:
    """Day 8: latest re-resolved to a dask that its distributed cannot import; stable's resolution was steered."""
    at = DAY0 + dt.timedelta(days=8)
    headline = f"latest is UNUSABLE: {CAUSE}"
    rows = [
        _case_row(run_id=UNUSABLE_RUN, run_started_at=at, started_at=at, ended_at=at, runtime="latest",
                  workload=workload, case_id=case_id, phase="setup", outcome="error", error=headline, wall_s=None,
                  peak_memory_bytes=None, mean_memory_bytes=None, dask_version="2026.11.0",
                  distributed_version="2026.11.0", params={})
        for workload, case_id in CASES
    ]  # fmt: skip
    write_atomic(case_table(rows), ResultsStore(results).cases_dir / f"{UNUSABLE_RUN}__latest__local.parquet")
    for run_id, runtime, checked_at, cause, note in (
        ("20260108T030000Z-stab07", "stable", DAY0 + dt.timedelta(days=7, hours=1), None, NOTE),
        (UNUSABLE_RUN, "latest", at, CAUSE, None),
    ):
        write_record(
            results,
            "health",
            f"{run_id}__{runtime}",
            [
                {
                    "run_id": run_id,
                    "checked_at": checked_at,
                    "runtime": runtime,
                    "env_hash": ("f" if cause else "e") * 16,
                    "usable": cause is None,
                    "cause": cause,
                    "problems": 1 if cause else 0,
                    "seconds": 3.1,
                    "note": note,
                    "dask_version": "2026.11.0" if cause else "2025.12.0",
                    "distributed_version": "2026.11.0" if cause else "2025.12.0",
                    "steps": [{"step": "import distributed", "ok": cause is None, "seconds": 0.2, "detail": cause}],
                }
            ],
        )
    previous = f"{DAY0 + dt.timedelta(days=7):%Y%m%dT%H%M%SZ}-late07"
    write_record(
        results,
        "lock_changes",
        f"{UNUSABLE_RUN}__latest",
        [
            {"run_id": UNUSABLE_RUN, "recorded_at": at, "runtime": "latest", "env_hash": "f" * 16,
             "previous_run_id": previous, "previous_env_hash": "e" * 16, "change": "changed", "package": package,
             "old_version": old, "new_version": new}
            for package, old, new in (("dask", "2026.3.0", "2026.11.0"), ("pandas", "3.0.2", "3.0.3"))
        ],
    )  # fmt: skip
    write_record(
        results,
        "comparisons",
        UNUSABLE_COMPARISON,
        [
            {"comparison_id": UNUSABLE_COMPARISON, "created_at": DAY0 + dt.timedelta(days=9), "mode": "interleaved",
             "baseline": "stable", "candidate": "latest", "candidate_env_hash": "f" * 16, "hardware": "local",
             "workload": workload, "case_id": case_id, "size": "tiny", "metric": "wall",
             "missing": "0 baseline and 0 candidate repeat(s) passed with a value"}
            for workload, case_id in CASES
        ],
    )  # fmt: skip


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report")
    _store(root / "results")
    return build_site(root / "results", root / "site").out_dir


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    required = os.environ.get("DASK_BLESSING_REQUIRE_BROWSER") == "1"
    problem = None
    if not CHROMIUM.exists():
        problem = f"{CHROMIUM} not found — install Debian's chromium (apt-get install chromium)"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        problem = "the playwright package is not installed — pip install -e '.[test]'"
    if problem:
        if required:
            pytest.fail(f"DASK_BLESSING_REQUIRE_BROWSER=1 but {problem}")
        pytest.skip(problem)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = Path(os.environ.get("DASK_BLESSING_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    target.mkdir(parents=True, exist_ok=True)
    return target


def _wait_for_plots(page: Any, scope: str) -> list[dict[str, Any]]:
    """Wait until every plot under ``scope`` is drawn; return each one's points and canvas count."""
    page.wait_for_function(
        "(scope) => [...document.querySelectorAll(`${scope} .plot`)].every((p) => p.dataset.rendered === 'true')",
        arg=scope,
        timeout=PLOT_TIMEOUT_MS,
    )
    plots = page.locator(f"{scope} .plot")
    return [
        {
            "points": int(plots.nth(i).get_attribute("data-points") or 0),
            "flat": "unmeasured" in (plots.nth(i).get_attribute("class") or ""),  # 'spill: none …': no canvas
            # Playwright's CSS locators pierce BokehJS's open shadow roots: the canvas it draws on.
            "canvases": plots.nth(i).locator("canvas").count(),
        }
        for i in range(plots.count())
    ]


def test_every_page_opens_from_disk_without_errors_and_draws_its_plots(site, browser, screenshots):
    pages = sorted(site.rglob("*.html"))
    # overview, stability, known issues, 3 lists, 2 workloads, 2 comparisons, 17 matrix runs and 1 stability run
    assert len(pages) == 3 + 3 + 2 + 2 + 18
    problems: list[str] = []
    plotted: dict[str, list[dict[str, Any]]] = {}
    for path in pages:
        name = str(path.relative_to(site))
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.on(
            "console",
            lambda message, name=name: message.type == "error" and problems.append(f"{name}: console: {message.text}"),
        )
        page.on("pageerror", lambda error, name=name: problems.append(f"{name}: page error: {error}"))
        page.on("requestfailed", lambda request, name=name: problems.append(f"{name}: failed to load {request.url}"))
        page.goto(path.as_uri())
        page.wait_for_load_state("load")
        tabs = page.locator(".tab")
        shot = name.replace("/", "__").removesuffix(".html")
        if tabs.count():
            for i in range(tabs.count()):
                tabs.nth(i).click()
                axis = tabs.nth(i).get_attribute("data-tab")
                plotted[f"{name}#{axis}"] = _wait_for_plots(page, f'.tab-panel[data-panel="{axis}"]')
                page.screenshot(path=str(screenshots / f"{shot}-{axis}.png"), full_page=True)
        else:
            if page.locator(".plot").count():
                plotted[name] = _wait_for_plots(page, "main")
            page.screenshot(path=str(screenshots / f"{shot}.png"), full_page=True)
        tables = page.locator(".executions")
        for i in range(tables.count()):
            if tables.nth(i).get_attribute("data-rendered") != "true" or not tables.nth(i).locator("tbody tr").count():
                problems.append(f"{name}: execution table {i} is empty")
        for href in page.eval_on_selector_all("a[href]", "links => links.map((a) => a.href)"):
            target = urlparse(href)
            if target.scheme == "file" and not Path(unquote(target.path)).exists():
                problems.append(f"{name}: broken link {href}")
        context.close()
    assert not problems, "\n".join(problems)
    assert sorted(plotted) == [
        "comparisons/20260110T000000Z-cmp001.html",
        "workloads/array_mean_var.html#date",
        "workloads/array_mean_var.html#version",
        "workloads/groupby_agg.html#date",
        "workloads/groupby_agg.html#version",
    ]
    for key, plots in plotted.items():
        # comparison: wall, peak; workloads: every metric of the catalogue
        expected = 2 if key.startswith("comparisons/") else len(METRICS)
        assert len(plots) == expected, key
        for plot in plots:
            assert plot["canvases"] > 0 or plot["flat"], f"{key}: nothing drawn"
            assert plot["points"] > 0, f"{key}: no points"


def _colour(page: Any, selector: str) -> tuple[int, ...]:
    rgb = page.eval_on_selector(selector, "(element) => getComputedStyle(element).color")
    return tuple(int(part) for part in rgb.removeprefix("rgb(").removesuffix(")").split(","))


def _red(colour: tuple[int, ...]) -> bool:
    red, green, blue = colour[:3]
    return red >= 150 and green <= 80 and blue <= 80


def test_an_unusable_runtime_is_first_and_red_on_the_overview_and_its_run_page(site, browser, screenshots):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto((site / "index.html").as_uri())
    banner = page.locator('.unusable[data-runtime="latest"] .unusable-cause')
    assert banner.is_visible()
    assert banner.inner_text() == f"latest is UNUSABLE: {CAUSE}"
    assert _red(_colour(page, '.unusable[data-runtime="latest"] .unusable-cause')), "the cause is not red"
    top = page.locator("li.state.unusable").bounding_box()
    verdicts = page.locator("h2", has_text="Verdicts").bounding_box()
    assert top and verdicts and top["y"] < verdicts["y"]  # above everything else, in the first screenful
    assert top["y"] + top["height"] < 900
    assert page.locator("p.note.resolution").inner_text().startswith(NOTE)
    latest_row = page.locator("tr", has_text=UNUSABLE_RUN).first
    assert latest_row.locator(".unusable-cause").inner_text() == f"UNUSABLE: {CAUSE}"
    page.screenshot(path=str(screenshots / "overview-unusable.png"))
    page.locator("li.state.unusable").first.screenshot(path=str(screenshots / "overview-unusable-banner.png"))

    page.goto((site / "runs" / f"{UNUSABLE_RUN}.html").as_uri())
    facts = page.locator("ul.environment-facts")
    assert facts.locator(".unusable-cause").inner_text() == f"latest is UNUSABLE: {CAUSE}"
    assert _red(_colour(page, "ul.environment-facts .unusable-cause"))
    previous = f"{DAY0 + dt.timedelta(days=7):%Y%m%dT%H%M%SZ}-late07"
    lock = facts.locator("li.lock-diff")
    assert lock.inner_text() == f"lock: since {previous}: dask 2026.3.0 → 2026.11.0, pandas 3.0.2 → 3.0.3"
    lock.locator("a").click()
    page.wait_for_load_state("load")
    assert page.url.endswith(f"runs/{previous}.html#sec-latest__local")
    page.goto((site / "runs" / f"{UNUSABLE_RUN}.html").as_uri())
    page.screenshot(path=str(screenshots / "run-unusable.png"))

    page.goto((site / "comparisons" / f"{UNUSABLE_COMPARISON}.html").as_uri())
    cause = page.locator(".unusable .unusable-cause")
    assert cause.inner_text() == f"the candidate, latest is UNUSABLE: {CAUSE}"
    assert _red(_colour(page, ".unusable .unusable-cause"))
    assert page.locator(".plot").count() == 0
    page.screenshot(path=str(screenshots / "comparison-unusable.png"))
    context.close()
