"""framework/report: the static site built from a results store (pages, their data, the atomic swap, the command)."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from html import escape, unescape
from pathlib import Path

import pytest

from framework.cli import main
from framework.in_runtime import provenance
from framework.in_runtime.errors import ResultsError
from framework.query import Results
from framework.records import write_record
from framework.report import build_site, data, details
from framework.results import CASE_COLUMNS, ResultsStore
from tests.unit.conftest import locked_environment

DAY0 = dt.datetime(2026, 1, 1, 2, 0, tzinfo=dt.timezone.utc)


def _run_id(day: int, runtime: str = "latest") -> str:
    return f"{DAY0 + dt.timedelta(days=day):%Y%m%dT%H%M%SZ}-{runtime[:4]}{day:02d}"


@pytest.fixture
def history(case_row, write_run):
    """``history(walls)`` writes one run a day of groupby_agg[by=id] (3 measured repeats at that wall time);
    ``outcomes`` overrides the outcome of a day's last repeat. Returns the run ids."""

    def write(walls, *, runtime="latest", outcomes=None, dask=None, first_day=0, **row):
        run_ids = []
        for day, wall in enumerate(walls, start=first_day):
            run_id = _run_id(day, runtime)
            at = (DAY0 + dt.timedelta(days=day, hours=0 if runtime == "latest" else 1)).isoformat()
            rows = []
            for repeat in range(3):
                values = {"run_id": run_id, "run_started_at": at, "runtime": runtime, "repeat": repeat, "wall_s": wall}
                values["dask_version"] = dask[day] if dask else "2026.1.0"
                values.update(row)
                outcome = (outcomes or {}).get(day) if repeat == 2 else None
                if outcome:  # a failed repeat's wall time is not a measurement of the workload
                    values.update(outcome=outcome, error=f"RuntimeError: {outcome} on day {day}", wall_s=100.0)
                rows.append(case_row(**values))
            write_run(rows)
            run_ids.append(run_id)
        return run_ids

    return write


def _site(results_dir: Path, tmp_path: Path) -> Path:
    out = tmp_path / "site"
    summary = build_site(results_dir, out)
    assert summary.out_dir == out.resolve()
    assert summary.pages == len(list(out.rglob("*.html")))
    return out


def _json(page: Path, element_id: str):
    match = re.search(rf'<script type="application/json" id="{element_id}">(.*?)</script>', page.read_text(), re.S)
    assert match, f"{page.name} embeds no #{element_id}"
    return json.loads(match.group(1), parse_constant=_not_json)  # as strict as the browser's JSON.parse


def _not_json(constant: str) -> None:
    raise AssertionError(f"{constant} is not JSON: the page's JSON.parse would fail")


def _text(page: Path) -> str:
    """The page's visible text, tags removed and entities decoded, whitespace collapsed."""
    body = re.sub(r"<script.*?</script>", " ", page.read_text(), flags=re.S)
    body = re.sub(r"</?(?:td|th|tr|li|p|h\d|br|div|nav|header|section|summary|pre|table|ul|ol)\b[^>]*>", " ", body)
    return " ".join(unescape(re.sub(r"<[^>]+>", "", body)).split())


def _comparison_row(case_id, metric, ratio, sentence, verdict="unchanged", **extra):
    return {
        "comparison_id": "20260105T000000Z-cmp001",
        "created_at": DAY0,
        "mode": "interleaved",
        "baseline": "stable",
        "candidate": "latest",
        "baseline_versions": {"dask": "2025.1.0"},
        "candidate_versions": {"dask": "2026.1.0"},
        "hardware": "local",
        "workload": case_id.split("[")[0],
        "case_id": case_id,
        "size": "tiny",
        "metric": metric,
        "ratio": ratio,
        "ci_low": None if ratio is None else ratio * 0.95,
        "ci_high": None if ratio is None else ratio * 1.05,
        "p_value": 0.0005,
        "verdict": verdict,
        "conclusive": True,
        "sentence": sentence,
        **extra,
    }


def test_comparison_sentences_are_sorted_by_the_size_of_the_change(results_dir, tmp_path):
    write_record(
        results_dir,
        "comparisons",
        "20260105T000000Z-cmp001",
        [
            _comparison_row("groupby_agg[by=id]", "wall", 1.05, "wall time +5.0 % (0.4–9.8 %), p = 0.030, n = 7 vs 7"),
            _comparison_row(
                "groupby_agg[by=id]",
                "peak_memory",
                1.38,
                "peak memory +38 % (31–45 %), p < 0.001, n = 7 vs 7 — regressed",
                "regressed",
            ),
            _comparison_row(
                "array_mean_var",
                "wall",
                0.5,
                "wall time -50 % (-55 % to -45 %), p < 0.001, n = 7 vs 7 — improved",
                "improved",
            ),
            _comparison_row("array_mean_var", "spill", None, None, missing="spill was not measured on the baseline"),
        ],
    )
    out = _site(results_dir, tmp_path)
    page = out / "comparisons" / "20260105T000000Z-cmp001.html"
    items = re.findall(r"<li class=\"(\w+)\">(.*?)</li>", page.read_text())
    assert [kind for kind, _ in items] == ["improved", "regressed", "unchanged", "unusable"]
    texts = [unescape(re.sub(r"<[^>]+>", "", item)) for _, item in items]
    sentence = "peak memory +38 % (31–45 %), p < 0.001, n = 7 vs 7 — regressed"
    assert texts[1] == f"regressed groupby_agg[by=id] (tiny) · peak memory: {sentence.removeprefix('peak memory ')}"
    assert "could not be compared: spill was not measured on the baseline" in texts[3]
    plotted = _json(page, "comparison-data")  # a panel per metric; the missing one left out
    assert [(panel["metric"], [row["verdict"] for row in panel["rows"]]) for panel in plotted] == [
        ("wall", ["improved", "unchanged"]),
        ("peak_memory", ["regressed"]),
    ]
    assert plotted[1]["rows"][0]["change"] == "+38 %"
    assert plotted[1]["rows"][0]["low"] == pytest.approx(math.log(1.38 * 0.95))  # a log-ratio
    assert page.read_text().count('class="plot comparison"') == 2
    listing = _text(out / "comparisons" / "index.html")
    assert "stable → latest" in listing
    assert "1 regressed, 1 improved, 1 unchanged, 1 unusable" in listing


def test_history_marks_failures_and_change_points_and_takes_medians_of_passed_repeats(history, results_dir, tmp_path):
    run_ids = history([1.0, 1.0, 1.0, 1.5, 1.5, 1.5], outcomes={1: "failed", 4: "timeout"})
    write_record(
        results_dir,
        "regressions",
        "20260107T000000Z-scan01",
        [
            {
                "scan_id": "20260107T000000Z-scan01",
                "scanned_at": DAY0 + dt.timedelta(days=7),
                "series": "local|latest|groupby_agg[by=id]|tiny|wall",
                "along": "date",
                "hardware": "local",
                "runtime": "latest",
                "workload": "groupby_agg",
                "case_id": "groupby_agg[by=id]",
                "size": "tiny",
                "metric": "wall",
                "direction": "regression",
                "status": "open",
                "new": True,
                "change_run_id": run_ids[3],
                "ratio": 1.5,
                "sentence": f"wall time of groupby_agg[by=id] (tiny) on local / latest rose +50 % at run {run_ids[3]}",
            }
        ],
    )
    out = _site(results_dir, tmp_path)
    page = out / "workloads" / "groupby_agg.html"
    fields = _json(page, "history-meta")["fields"]
    points = {field: [point[k] for point in _json(page, "history-points")] for k, field in enumerate(fields)}
    assert points["run_id"] == run_ids
    assert points["outcome"] == ["passed", "failed", "passed", "passed", "timeout", "passed"]
    assert points["wall"] == [1.0, 1.0, 1.0, 1.5, 1.5, 1.5]  # the failed repeats' 100 s is not a measurement
    assert points["passed"] == [3, 2, 3, 3, 2, 3]
    assert points["error"][1] == "RuntimeError: failed on day 1"
    assert points["page"] == run_ids  # what a click on a point opens: runs/<page>.html
    assert all((out / "runs" / f"{run_id}.html").exists() for run_id in run_ids)
    changes = _json(page, "history-meta")["changes"]
    assert [(c["run_id"], c["metric"], c["along"], c["status"]) for c in changes] == [
        (run_ids[3], "wall", "date", "open")
    ]
    text = _text(page)
    assert f"rose +50 % at run {run_ids[3]}" in text
    assert "RuntimeError: timeout on day 4" in text  # the failures table
    overview = _text(out / "index.html")
    assert f"wall time of groupby_agg[by=id] (tiny) on local / latest rose +50 % at run {run_ids[3]}" in overview


def test_a_second_machine_class_is_a_series_of_its_own_with_a_note_where_it_starts(history, results_dir, tmp_path):
    machine_a = {
        "cpu_model": "AMD EPYC",
        "cores": 4,
        "memory_gib": 16,
        "kernel": "6",
        "virtualisation": None,
        "arch": "x",
    }
    machine_b = {**machine_a, "cores": 8, "memory_gib": 32}
    history([1.0, 1.0], **provenance.identity(machine_a, "runner"))
    later = history([1.4, 1.4], first_day=2, **provenance.identity(machine_b, "runner"))

    page = _site(results_dir, tmp_path) / "workloads" / "groupby_agg.html"

    fields = _json(page, "history-meta")["fields"]
    classes = [dict(zip(fields, point))["machine_class"] for point in _json(page, "history-points")]
    assert re.fullmatch(r"(4c-16g-\w{6},){2}(8c-32g-\w{6},){2}", ",".join(classes) + ",")
    assert (
        f"machine class {classes[-1]} first seen on local in run {later[0]}: a new series, not compared with the runs"
        f" before it (on {classes[0]})"
    ) in _text(page)


def test_the_overview_shows_verdicts_latest_runs_the_latest_scan_and_the_matrix(history, results_dir, tmp_path):
    history([1.0, 1.0], outcomes={1: "timeout"})
    history([2.0], runtime="stable")
    write_record(
        results_dir,
        "verdicts",
        "20260103T000000Z-verd01",
        [
            {
                "verdict_id": "20260103T000000Z-verd01",
                "decided_at": DAY0 + dt.timedelta(days=2),
                "criteria": "default",
                "runtime": "latest",
                "baseline": "stable",
                "hardware": "local",
                "blessed": False,
                "reasons": ["groupby_agg[by=id]: timeout in run X <on latest>"],
                "checks": [{"criterion": "must_pass", "subject": "groupby_agg[by=id]", "passed": False}],
            }
        ],
    )
    for scan, status in (("20260103T000000Z-scan01", "open"), ("20260104T000000Z-scan02", "pending")):
        write_record(
            results_dir,
            "regressions",
            scan,
            [
                {
                    "scan_id": scan,
                    "scanned_at": dt.datetime.strptime(scan[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc),
                    "workload": "groupby_agg",
                    "case_id": "groupby_agg[by=id]",
                    "metric": "wall",
                    "direction": "regression",
                    "status": status,
                    "change_run_id": _run_id(1),
                    "sentence": f"finding of {scan}",
                }
            ],
        )
    text = _text(_site(results_dir, tmp_path) / "index.html")
    assert "latest not blessed stable default local" in text
    assert "groupby_agg[by=id]: timeout in run X <on latest>" in text
    # the go/no-go lines first: latest's failed criterion in words, the command that judges stable (the baseline)
    assert (
        "latest is NOT BLESSED — 2026-01-03 02:00 UTC, against stable on local by criteria default: 1 of 1 checks"
        " failed — must pass groupby_agg[by=id]" in text
    )
    command = f"nox -s bless -- --runtime=stable --baseline=previous --results={results_dir} judges it"
    assert f"stable is NOT JUDGED — no blessing verdict yet — {command}" in text
    assert text.index("latest is NOT BLESSED") < text.index("Latest run of each runtime")
    assert f"latest local {_run_id(1)}" in text
    assert "0 of 1 cases passed, 1 timeout 2/3" in text  # the latest run of latest: its timed-out repeat
    assert "finding of 20260104T000000Z-scan02" in text  # only the newest scan
    assert "finding of 20260103T000000Z-scan01" not in text
    assert "groupby_agg[by=id] tiny ✗ timeout 2/3 ✓ 3/3" in text  # the matrix row: latest, stable


def test_a_run_page_has_every_column_the_lock_and_the_dump(case_row, write_run, results_dir, tmp_path):
    dump = results_dir / "dumps" / "r1" / "groupby_agg-measure1.msgpack.gz"
    dump.parent.mkdir(parents=True)
    dump.write_bytes(b"state")
    elsewhere = "/somewhere/else/dump.msgpack.gz"
    write_run(
        [
            case_row(run_id="r1", repeat=0, traceback="Traceback <most recent call last>", spill_time_s=float("nan")),
            case_row(run_id="r1", repeat=1, outcome="timeout", wall_s=None, cluster_dump=str(dump)),
            case_row(run_id="r1", repeat=2, outcome="timeout", wall_s=None, cluster_dump=elsewhere),
        ]
    )
    ResultsStore(results_dir).record_environment(locked_environment(DAY0))
    out = _site(results_dir, tmp_path)
    page = out / "runs" / "r1.html"
    html = page.read_text()
    columns = _json(page, "columns")["names"]
    assert _json(page, "columns")["timestamps"] == ["started_at", "ended_at"]
    keyvalue = re.search(r'<table class="keyvalue">(.*?)</table>', html, re.S)
    assert keyvalue
    provenance = re.findall(r"<tr><th>(\w+)</th>", keyvalue.group(1))
    assert sorted([*columns, *provenance, "run_id"]) == sorted(CASE_COLUMNS)
    executions = _json(page, "executions-0")
    assert len(executions) == 3
    assert all(len(row) == len(columns) for row in executions)
    by_column = dict(zip(columns, executions[0]))
    assert by_column["traceback"] == "Traceback <most recent call last>"
    assert by_column["started_at"] == 1767225600 * 10**6  # 2026-01-01 00:00 UTC, in µs; the page shows it in UTC
    assert by_column["spill_time_s"] is None  # NaN cannot be JSON: shown as missing
    assert "<most" not in html  # escaped in the embedded JSON
    assert by_column["tasks_by_worker"] == json.dumps({"tcp://127.0.0.1:1": 6, "tcp://127.0.0.1:2": 4}, sort_keys=True)
    assert "dask==2026.1.0\ndistributed==2026.1.0" in html  # the environment lock
    assert '<a href="../../results/dumps/r1/groupby_agg-measure1.msgpack.gz">' in html
    assert f"<code>{elsewhere}</code>" in html
    assert f"not in {results_dir}" in html
    links = _json(page, "dump-links")
    assert links[str(dump)].startswith('<a href="../../results/dumps/')
    text = _text(page)
    assert "groupby_agg[by=id] tiny timeout 1/3 1 s 100.0 MiB 50.0 MiB 0 bytes" in text  # the case's summary


def test_a_shard_s_run_page_names_its_run_group_and_shard(case_row, write_run, results_dir, tmp_path):
    write_run([case_row(run_id="r1", run_group="nightly-7", shard="2/3")])
    text = _text(_site(results_dir, tmp_path) / "runs" / "r1.html")
    assert "run_group nightly-7" in text and "shard 2/3" in text


def test_the_overview_counts_a_sharded_run_group_as_one_run(case_row, write_run, results_dir, tmp_path):
    for run, shard, case in (("r1", "1/3", "a"), ("r2", "2/3", "b"), ("r3", "3/3", "c")):
        write_run([case_row(run_id=run, run_group="nightly-7", shard=shard, case_id=case, repeat=r) for r in range(2)])
    write_run([case_row(run_id="r4", run_group="nightly-8", shard="1/2", case_id="a", runtime="stable")])
    text = _text(_site(results_dir, tmp_path) / "index.html")

    assert "run group nightly-7: shards 1, 2, 3 of 3" in text
    assert "3 of 3 cases passed 6/6" in text  # the group's three shards, not the newest shard's one case
    assert "run group nightly-8: shards 1 of 2 — not every shard is here" in text


def test_a_moved_store_still_links_its_dumps(case_row, write_run, results_dir, tmp_path):
    (results_dir / "dumps" / "r1").mkdir(parents=True)
    (results_dir / "dumps" / "r1" / "d.msgpack.gz").write_bytes(b"state")
    write_run([case_row(run_id="r1", outcome="timeout", cluster_dump="/old/place/results/dumps/r1/d.msgpack.gz")])
    html = (_site(results_dir, tmp_path) / "runs" / "r1.html").read_text()
    assert '<a href="../../results/dumps/r1/d.msgpack.gz">d.msgpack.gz</a>' in html


def test_stability_page_lists_failures_with_their_replay_command(case_row, write_run, results_dir, tmp_path):
    failure_id = "20260101T020000Z-abcdef-latest-process"
    record = results_dir / "stability" / "failures" / failure_id
    record.mkdir(parents=True)
    (record / "failure.json").write_text(
        json.dumps(
            {
                "failure_id": failure_id,
                "created_at": "2026-01-01T02:05:00+00:00",
                "tier": "process",
                "kind": "result",
                "error": "result: x-1 = 3, but the oracle gives 4",
                "runtime": "latest",
                "versions": {"dask": "2026.1.0", "distributed": "2026.1.0"},
                "cluster_dump": None,
                "source": {"fuzz": {"profile": "ci", "seed": 7}, "examples_before_failure": 11},
            }
        )
    )
    (record / "log-tail.txt").write_text("last lines\n")
    child = results_dir / "stability" / "failures" / "s2-replay0"
    child.mkdir()
    (child / "failure.json").write_text(
        json.dumps(
            {
                "failure_id": "s2-replay0",
                "error": "result: x-1 = 3 again",
                "source": {"replay_of": failure_id, "attempt": 0},
            }
        )
    )
    fuzz = {"workload": "stability.fuzz", "function": "framework.chaos.machine:fuzz", "size": None, "hardware": "chaos"}
    write_run(
        [
            case_row(
                run_id="s1",
                case_id="fuzz[process]",
                outcome="failed",
                failure_id=failure_id,
                error="result: x-1 = 3",
                extra_metrics={"examples": 12, "steps": 80},
                **fuzz,
            ),
            case_row(run_id="s1", case_id="fuzz[inprocess]", extra_metrics={"examples": 40, "steps": 300}, **fuzz),
        ]
    )
    replay = {
        "workload": "stability.replay",
        "hardware": "chaos",
        "case_id": f"replay[{failure_id}]",
        "params": {"failure_id": failure_id, "times": 2},
    }
    write_run([case_row(run_id="s2", repeat=n, outcome=o, **replay) for n, o in enumerate(["failed", "passed"])])
    text = _text(_site(results_dir, tmp_path) / "stability.html")
    assert f"nox -s stability -- --replay={failure_id}" in text
    assert "result: x-1 = 3, but the oracle gives 4" in text
    assert "replayed 2×, failed 1×" in text
    assert "by fuzzing (profile ci, seed 7, after 11 examples)" in text
    html = (tmp_path / "site" / "stability.html").read_text()
    assert html.count('<div class="failure">') == 1  # the replay's own record is shown inside its parent's
    assert "1 failure(s) recorded while replaying or shrinking it" in text
    assert "s2-replay0 (replay 0): result: x-1 = 3 again" in text
    assert "fuzz[process] failed" in text and "12 examples, 80 steps" in text
    assert f'href="../results/stability/failures/{failure_id}/log-tail.txt"' in html
    # counted by signature: the fuzz failure's (its keys and values left out) and its replay's failure's
    assert "Failures by signature" in text
    assert 'result: no error type; "N = N, but the oracle gives N" 1 2026-01-01 02:05 latest' in text


def test_an_empty_store_is_a_site_that_says_no_runs_yet(results_dir, tmp_path):
    out = _site(results_dir, tmp_path)
    assert "No runs yet" in _text(out / "index.html")
    for linked in ("workloads/index.html", "runs/index.html", "comparisons/index.html", "stability.html"):
        assert (out / linked).exists()
    assert sorted(p.name for p in (out / "static").iterdir()) == sorted(
        ["report.css", "report.js", *(n for n in [p.name for p in (out / "static").iterdir()] if n.startswith("bokeh"))]
    )
    assert {re.sub(r"-[\d.]+\.min\.js$", "", p.name) for p in (out / "static").glob("bokeh*")} == {"bokeh", "bokeh-api"}


def test_every_page_has_the_nav_the_time_the_results_dir_and_how_to_regenerate(history, results_dir, tmp_path):
    history([1.0])
    out = _site(results_dir, tmp_path)
    for page in out.rglob("*.html"):
        text = _text(page)
        nav = re.search(r"<nav>(.*?)</nav>", page.read_text())
        assert nav
        assert re.findall(r">(\w+)</a>", nav.group(1)) == ["Overview", "Workloads", "Runs", "Comparisons", "Stability"]
        assert re.search(r"generated \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC from " + re.escape(str(results_dir)), text)
        assert f"regenerate: nox -s report -- --results={results_dir} --out={out}" in text


def test_a_missing_results_directory_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["report", f"--results={tmp_path / 'nope'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"--results={tmp_path / 'nope'}: no such directory" in err


def test_the_command_builds_into_results_report_by_default(history, results_dir, capsys):
    history([1.0])
    assert main(["report", f"--results={results_dir}"]) == 0
    assert (results_dir / "report" / "index.html").exists()
    assert f"open {results_dir / 'report' / 'index.html'}" in capsys.readouterr().out
    with Results(results_dir) as results:  # the site inside results/ is not read as results
        assert results.sql("SELECT count(*) FROM rows")[1] == [(3,)]


def test_a_failed_build_leaves_the_previous_site_intact(history, results_dir, tmp_path, monkeypatch):
    history([1.0])
    out = _site(results_dir, tmp_path)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    history([1.0, 2.0], runtime="stable")

    def broken(*args, **kwargs):
        raise RuntimeError("disk full while writing a run page")

    monkeypatch.setattr(details, "run", broken)  # the last pages written: most of the new site exists
    with pytest.raises(RuntimeError, match="disk full"):
        build_site(results_dir, out)
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results", "site"]  # no half-built directory left


def test_a_directory_that_is_not_a_site_is_never_replaced(history, results_dir, tmp_path):
    history([1.0])
    precious = tmp_path / "documents"
    precious.mkdir()
    (precious / "thesis.txt").write_text("years of work")
    with pytest.raises(ResultsError, match="is not a report site"):
        build_site(results_dir, precious)
    with pytest.raises(ResultsError, match="would replace the results directory"):
        build_site(results_dir, results_dir)
    assert (precious / "thesis.txt").read_text() == "years of work"


def test_page_names_from_sql_match_the_files_python_writes(case_row, write_run, results_dir, tmp_path):
    odd = "run 1 <x>"
    write_run([case_row(run_id=odd, runtime="latest")])
    out = _site(results_dir, tmp_path)
    name = data.page_name(odd)
    assert re.fullmatch(r"run_1_x_-[0-9a-f]{8}", name)
    assert (out / "runs" / f"{name}.html").exists()
    page = out / "workloads" / "groupby_agg.html"
    point = dict(zip(_json(page, "history-meta")["fields"], _json(page, "history-points")[0]))
    assert point["page"] == name
    assert data.page_name("20260101T000000Z-abc123") == "20260101T000000Z-abc123"


CAUSE = "import distributed failed: ImportError: cannot import name 'collections_to_dsk' from 'dask.base'"
NOTE = "latest: dask 2026.11.0 has no matching distributed on the index — using dask and distributed 2026.8.0"


def _health(results_dir, run_id, day, *, runtime="latest", env_hash="e" * 16, cause=None, note=None, problems=0):
    write_record(
        results_dir,
        "health",
        f"{run_id}__{runtime}",
        [
            {
                "run_id": run_id,
                "checked_at": DAY0 + dt.timedelta(days=day, hours=0 if runtime == "latest" else 1),
                "runtime": runtime,
                "env_hash": env_hash,
                "usable": cause is None,
                "cause": cause,
                "problems": problems or (0 if cause is None else 1),
                "seconds": 2.54,
                "note": note,
                "dask_version": "2026.11.0",
                "distributed_version": "2026.11.0",
                "steps": [
                    {"step": "import dask", "ok": True, "seconds": 0.4, "detail": None},
                    {"step": "import distributed", "ok": cause is None, "seconds": 0.1, "detail": cause},
                ],
            }
        ],
    )


def _lock_changes(results_dir, run_id, previous_run_id, changes, runtime="latest"):
    base = {
        "run_id": run_id,
        "recorded_at": DAY0,
        "runtime": runtime,
        "env_hash": "e" * 16,
        "previous_run_id": previous_run_id,
        "previous_env_hash": "d" * 16,
    }
    rows = [
        {**base, "change": kind, "package": package, "old_version": old, "new_version": new}
        for kind, package, old, new in changes
    ] or [{**base, "change": "unchanged"}]
    write_record(results_dir, "lock_changes", f"{run_id}__{runtime}", rows)


@pytest.fixture
def unusable_latest(history, case_row, write_run, results_dir):
    """latest: two usable runs, then one whose health check failed (every case a setup error, as the pipeline
    records it); stable: one usable run whose resolution was steered. Returns latest's run ids."""
    run_ids = history([1.0, 1.0])
    history([2.0], runtime="stable")
    broken = _run_id(2)
    headline = f"latest is UNUSABLE: {CAUSE}"
    at = (DAY0 + dt.timedelta(days=2)).isoformat()
    write_run([case_row(run_id=broken, run_started_at=at, phase="setup", outcome="error", wall_s=None, error=headline)])
    _health(results_dir, run_ids[0], 0)
    _health(results_dir, run_ids[1], 1)
    _health(results_dir, broken, 2, cause=CAUSE)
    _health(results_dir, _run_id(0, "stable"), 0, runtime="stable", env_hash="s" * 16, note=NOTE)
    _lock_changes(
        results_dir,
        run_ids[1],
        run_ids[0],
        [
            ("changed", "pandas", "3.0.2", "3.0.3"),
            ("changed", "dask", "2026.8.0", "2026.11.0"),
            ("added", "toolz", None, "1.1.0"),
            ("removed", "partd", "1.4.2", None),
        ],
    )
    _lock_changes(results_dir, broken, run_ids[1], [])
    return [*run_ids, broken]


def test_the_overview_puts_an_unusable_runtime_first_in_red(unusable_latest, tmp_path, results_dir):
    page = _site(results_dir, tmp_path) / "index.html"
    html, text = page.read_text(), _text(page)
    banner = re.search(r'<li class="state unusable" data-runtime="latest" data-state="UNUSABLE">(.*?)</li>', html, re.S)
    assert banner, "no UNUSABLE line for latest"
    assert html.index(banner.group(0)) < html.index("<h2>Latest run of each runtime")  # before anything else
    cause = re.search(r'<span class="unusable-cause">(.*?)</span>', banner.group(1))
    assert cause
    assert unescape(re.sub(r"<[^>]+>", "", cause.group(1))) == f"latest is UNUSABLE: {CAUSE}"
    broken = unusable_latest[2]
    assert f'health check of run <a href="runs/{broken}.html">{broken}</a>, 2026-01-03 02:00 UTC' in banner.group(1)
    assert "stable is UNUSABLE" not in text  # its newest check passed
    # latest's latest-run line says UNUSABLE and why, not '0 of 1 cases passed, 1 error'
    assert f"latest local {broken} 2026-01-03 02:00 2026.1.0 2026.1.0 UNUSABLE: {CAUSE} –" in text
    assert "0 of 1 cases passed, 1 error" not in text
    assert "groupby_agg[by=id] tiny ✗ unusable 0/0 ✓ 3/3" in text  # the matrix: latest, stable
    # stable's resolution note, quietly
    assert f'<p class="note resolution">{escape(NOTE)} (noted when run' in html
    runs = _text(page.parent / "runs" / "index.html")
    assert f"{broken} latest local 2026-01-03 02:00 2026.1.0 UNUSABLE: {CAUSE} –" in runs


def test_a_runtime_whose_newest_check_passed_is_not_called_unusable(unusable_latest, results_dir, tmp_path):
    _health(results_dir, "20260104T020000Z-late04", 3)  # a later check (e.g. of a comparison) passed
    page = _site(results_dir, tmp_path) / "index.html"
    assert 'data-state="UNUSABLE"' not in page.read_text()
    assert f"UNUSABLE: {CAUSE}" in _text(page)  # the run itself stays unusable in its line


def test_a_run_page_shows_its_lock_diff_its_health_and_the_resolution_note(unusable_latest, results_dir, tmp_path):
    first, second, broken = unusable_latest
    out = _site(results_dir, tmp_path)
    html = (out / "runs" / f"{second}.html").read_text()
    text = _text(out / "runs" / f"{second}.html")
    assert f"lock: since {first}: dask 2026.8.0 → 2026.11.0, pandas 3.0.2 → 3.0.3, − partd 1.4.2, + toolz 1.1.0" in text
    assert f'since <a href="{first}.html#sec-latest__local">{first}</a>:' in html  # the previous run's page
    assert "health check: usable in 2.5 s" in text
    assert "lock: first recorded run of this runtime" in _text(out / "runs" / f"{first}.html")
    text = _text(out / "runs" / f"{broken}.html")
    assert f"health check: latest is UNUSABLE: {CAUSE}" in text
    assert f"lock: since {second}: no package changed" in text
    assert "its 2 check(s)" in text  # the probe's steps, folded
    stable = _text(out / "runs" / f"{_run_id(0, 'stable')}.html")
    assert f"resolution: {NOTE}" in stable
    assert "lock: first recorded run of this runtime" in stable


def test_a_lock_diff_since_a_run_without_a_page_names_it_without_a_link(history, results_dir, tmp_path):
    (run_id,) = history([1.0])
    _health(results_dir, run_id, 0)
    _lock_changes(results_dir, run_id, "20251231T000000Z-gone00", [("changed", "dask", "2025.12.0", "2026.1.0")])
    html = (_site(results_dir, tmp_path) / "runs" / f"{run_id}.html").read_text()
    assert "lock: since <code>20251231T000000Z-gone00</code>: dask 2025.12.0 → 2026.1.0" in html


def test_a_comparison_with_an_unusable_side_shows_the_cause_instead_of_a_plot(history, results_dir, tmp_path):
    history([1.0])
    _health(results_dir, "20260104T000000Z-side01", 3, env_hash="c" * 16, cause=CAUSE, problems=3)

    def not_compared(comparison_id, metric, **extra):
        row = _comparison_row("groupby_agg[by=id]", metric, None, None, **extra)
        return row | {"comparison_id": comparison_id, "created_at": DAY0 + dt.timedelta(days=4), "sentence": None}

    first, second = "20260105T000000Z-cmp001", "20260105T000000Z-cmp002"
    side = {"candidate_env_hash": "c" * 16, "missing": "0 candidate repeat(s) passed"}
    write_record(results_dir, "comparisons", first, [not_compared(first, m, **side) for m in ("wall", "peak_memory")])
    # the cause only in 'missing' (no environment hash recorded for a side that never ran)
    write_record(
        results_dir,
        "comparisons",
        second,
        [not_compared(second, "wall", missing=f"the candidate, latest is UNUSABLE: {CAUSE}")],
    )
    out = _site(results_dir, tmp_path)
    page = out / "comparisons" / f"{first}.html"
    html, text = page.read_text(), _text(page)
    assert text.index(f"the candidate, latest is UNUSABLE: {CAUSE} (and 2 more problems)") < text.index("against")
    assert re.search(r'<div class="unusable"><p class="cause"><span class="unusable-cause">', html)
    assert '<div class="plot' not in html  # no grey plot of missing rows
    assert "2 case × metric(s) not compared: a side could not run" in text  # folded under <details>
    assert html.count('<li class="unusable">') == 2 and html.index("<details>") < html.index('<li class="unusable">')
    other = _text(out / "comparisons" / f"{second}.html")
    assert other.index(f"the candidate, latest is UNUSABLE: {CAUSE}") < other.index("against")
    listing = _text(out / "comparisons" / "index.html")
    assert listing.count("UNUSABLE: a side could not run") == 2


def test_a_store_without_health_or_lock_records_builds_as_before(history, results_dir, tmp_path):
    run_ids = history([1.0, 1.0], outcomes={1: "error"})
    out = _site(results_dir, tmp_path)
    with Results(results_dir) as results:  # the views exist, empty
        assert results.sql("SELECT count(*) FROM health")[1] == [(0,)]
        assert results.sql("SELECT count(*) FROM lock_changes")[1] == [(0,)]
    overview = (out / "index.html").read_text()
    assert "unusable" not in overview.lower() and "resolution" not in overview
    assert f"latest local {run_ids[1]}" in _text(out / "index.html")
    assert "0 of 1 cases passed, 1 error" in _text(out / "index.html")
    for run_id in run_ids:
        html = (out / "runs" / f"{run_id}.html").read_text()
        assert "environment-facts" not in html and "health check" not in html


def test_a_runtime_unusable_before_any_run_still_heads_the_overview(results_dir, tmp_path):
    _health(results_dir, "20260101T020000Z-cmpsid", 0, cause=CAUSE)  # a comparison that stopped before its rounds
    page = _site(results_dir, tmp_path) / "index.html"
    text = _text(page)
    assert text.index(f"latest is UNUSABLE: {CAUSE}") < text.index("No runs yet")
    assert "health check of run <code>20260101T020000Z-cmpsid</code>" in page.read_text()  # no page to link to
