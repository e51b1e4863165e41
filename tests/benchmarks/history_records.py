"""The decision records of the synthetic history (``history_synth``): comparisons, a regression scan and verdicts,
computed from the history's own rows with the real statistics (``framework.stats``), written as the commands would."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
from history_synth import HARDWARE, STEPS
from packaging.version import Version

from framework.records import write_record
from framework.stats import METRICS, bootstrap_ratio_ci, compare_samples, mann_whitney_p


def _check(criterion: str, subject: str, passed: bool, reason: str, evidence: list[str]) -> dict[str, Any]:
    """A check as ``framework.blessing.Check`` stores it."""
    return {"criterion": criterion, "subject": subject, "passed": passed, "reason": reason, "evidence": evidence}


def write_records(root: Path, catalog: Any, seed: int) -> dict[str, int]:
    """Comparisons of the newest runs, a regression scan of the known steps and verdicts; record kind → count."""
    from framework.criteria import load_criteria, scope
    from framework.query import Results

    criteria = load_criteria(catalog, "default")
    written = {"comparisons": 0, "regressions": 0, "verdicts": 0}
    with Results(root) as results:
        _, [(newest,)] = results.sql("SELECT max(ended_at) FROM rows")
        scan_rows = _regression_rows(results, newest, seed)
        scan_id = f"{newest + dt.timedelta(hours=1):%Y%m%dT%H%M%SZ}-{seed % 2**24:06x}"
        write_record(root, "regressions", scan_id, scan_rows)
        written["regressions"] += len(scan_rows)
        for position, (baseline, candidate) in enumerate((("stable", "latest"), ("previous", "stable"))):
            _, both = results.sql(
                "SELECT run_id FROM runs WHERE runtime IN (?, ?) GROUP BY run_id HAVING count(DISTINCT runtime) = 2"
                " ORDER BY min(n_cases) DESC, max(ended_at) DESC LIMIT 1",  # the newest run complete on both sides
                [baseline, candidate],
            )
            if not both:  # a history too short to hold both runtimes in one run
                continue
            created = newest + dt.timedelta(hours=2, minutes=position)
            comparison_id = f"{created:%Y%m%dT%H%M%SZ}-{(seed + position) % 2**24:06x}"
            sides, rows = _comparison_rows(results, both[0][0], baseline, candidate, comparison_id, created, seed)
            write_record(root, "comparisons", comparison_id, rows)
            written["comparisons"] += len(rows)
            allowed = scope(catalog, criteria, candidate, HARDWARE)
            verdict = _verdict_row(sides, rows, criteria, allowed, comparison_id, created + dt.timedelta(minutes=5))
            write_record(root, "verdicts", f"{comparison_id}-{candidate}", [verdict])
            written["verdicts"] += 1
    return written


def _comparison_rows(
    results: Any, run_id: str, baseline: str, candidate: str, comparison_id: str, created: dt.datetime, seed: int
) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Each side's passed repeats of one run, compared case × metric as ``compare_samples`` judges them."""
    columns = [spec.column for spec in METRICS.values()]
    names, found = results.sql(
        f"SELECT runtime, workload, case_id, size, outcome, runtime_hash, env_hash, packages, {', '.join(columns)}"
        " FROM cases WHERE run_id = ? AND runtime IN (?, ?) ORDER BY started_at",
        [run_id, baseline, candidate],
    )
    rows = [dict(zip(names, row)) for row in found]
    sides = {}
    for side in (baseline, candidate):
        first = next(row for row in rows if row["runtime"] == side)
        packages = json.loads(first["packages"])
        sides[side] = {
            "runtime_hash": first["runtime_hash"],
            "env_hash": first["env_hash"],
            "versions": {name: packages[name] for name in ("dask", "distributed", "numpy", "pandas", "pyarrow")},
            "failed": sorted({row["case_id"] for row in rows if row["runtime"] == side and row["outcome"] != "passed"}),
        }
    common = {
        "comparison_id": comparison_id,
        "created_at": created,
        "mode": "from-results",
        "baseline": baseline,
        "candidate": candidate,
        "hardware": HARDWARE,
        **{
            f"{role}_{key}": sides[side][key]
            for role, side in (("baseline", baseline), ("candidate", candidate))
            for key in ("runtime_hash", "env_hash", "versions")
        },
    }
    out = []
    keys = dict.fromkeys((row["workload"], row["case_id"], row["size"]) for row in rows if row["runtime"] == baseline)
    for workload, case_id, size in keys:
        for name, spec in METRICS.items():
            a, b = (
                [
                    float(row[spec.column])
                    for row in rows
                    if row["runtime"] == side
                    and row["case_id"] == case_id
                    and row["outcome"] == "passed"
                    and row[spec.column] is not None
                ]
                for side in (baseline, candidate)
            )
            run_ids = {"baseline": [run_id], "candidate": [run_id]}
            line = {
                **common,
                "workload": workload,
                "case_id": case_id,
                "size": size,
                "metric": name,
                "n_baseline": len(a),
                "n_candidate": len(b),
                "detail": {"baseline": a, "candidate": b, "run_ids": run_ids},
            }
            if len(a) < 2 or len(b) < 2:
                line["missing"] = f"{len(a)} baseline and {len(b)} candidate repeat(s) passed with a value"
                out.append(line)
                continue
            result = compare_samples(a, b, spec, alpha=0.01, seed=seed, n_boot=_BOOTSTRAP)
            line.update({**result.record_fields(), "sentence": result.sentence()})
            out.append(line)
    return sides, out


def _verdict_row(
    sides: dict[str, dict[str, Any]],
    comparison: list[dict[str, Any]],
    criteria: Any,
    allowed: Any,
    comparison_id: str,
    decided: dt.datetime,
) -> dict[str, Any]:
    """A blessing decision from the comparison: every must-pass case passed, no metric beyond its allowance."""
    baseline, candidate = comparison[0]["baseline"], comparison[0]["candidate"]
    checks = []
    for case in allowed.must_pass:
        passed = case.case_id not in sides[candidate]["failed"]
        reason = (
            f"{case.case_id}: every measured repeat passed" if passed else f"{case.case_id}: not every repeat passed"
        )
        checks.append(_check("must_pass", case.case_id, passed, reason, []))
    compared = {case.case_id for case in allowed.compared}
    allowances = criteria.metrics.allowances if criteria.metrics else {}
    for line in comparison:
        if line["case_id"] not in compared or line["metric"] not in allowances:
            continue
        limit = allowances[line["metric"]]
        ratio = line.get("ratio")
        passed = ratio is not None and not (line["verdict"] == "regressed" and ratio - 1 > limit)
        reason = f"{line['case_id']} {line['metric']}: " + (line.get("sentence") or line["missing"])
        reason += f" (allowed +{limit * 100:g} %) — comparison {comparison_id}"
        checks.append(_check("metric", f"{line['case_id']} × {line['metric']}", passed, reason, [comparison_id]))
    return {
        "verdict_id": f"{comparison_id}-{candidate}",
        "decided_at": decided,
        "criteria": "default",
        "runtime": candidate,
        "runtime_hash": sides[candidate]["runtime_hash"],
        "env_hash": sides[candidate]["env_hash"],
        "baseline": baseline,
        "baseline_env_hash": sides[baseline]["env_hash"],
        "hardware": HARDWARE,
        "blessed": bool(checks) and all(check["passed"] for check in checks),
        "reasons": [check["reason"] for check in checks if not check["passed"]],
        "checks": checks,
        "criteria_spec": criteria.model_dump(mode="json"),
        "versions": sides[candidate]["versions"],
    }


_AROUND = 10  # runs on each side of a change the findings summarise
_BOOTSTRAP = 2_000  # resamples per interval: plenty for records that are only read (compare uses 10,000)


def _regression_rows(results: Any, newest: dt.datetime, seed: int) -> list[dict[str, Any]]:
    """The known steps as a date-ordered scan reports them: one finding per affected series that crossed one."""
    scanned = newest + dt.timedelta(hours=1)
    scan_id = f"{scanned:%Y%m%dT%H%M%SZ}-{seed % 2**24:06x}"
    metric_of = {spec.column: spec for spec in METRICS.values()}
    out: list[dict[str, Any]] = []
    for step in STEPS:
        spec = metric_of[step.column]
        _, found = results.sql(
            f"SELECT runtime, workload, case_id, size, run_id, min(run_started_at) AS run_at,"
            f" json_extract_string(any_value(packages), '$.\"{step.package}\"') AS version, median({step.column})"
            f" FROM cases WHERE outcome = 'passed' AND list_contains(tags, ?) AND {step.column} IS NOT NULL"
            " GROUP BY runtime, workload, case_id, size, run_id ORDER BY runtime, case_id, run_at",
            [step.tag],
        )
        series: dict[tuple[str, str, str, str], list[tuple[Any, ...]]] = {}
        for row in found:
            series.setdefault(row[:4], []).append(row[4:])
        for (runtime, workload, case_id, size), points in series.items():
            crossed = [
                i
                for i in range(1, len(points))
                if Version(points[i - 1][2]) < Version(step.version) <= Version(points[i][2])
            ]
            if not crossed or crossed[0] < 2:  # two runs before a change at least, as the scan needs
                continue
            i = crossed[0]
            before = [p[3] for p in points[max(0, i - _AROUND) : i]]
            after = [p[3] for p in points[i : i + _AROUND]]
            ratio = float(np.median(after) / np.median(before))
            low, high = bootstrap_ratio_ci(before, after, seed=seed)
            p_value = mann_whitney_p(before, after)
            direction = "regression" if ratio > 1 else "improvement"
            status = "open" if len(after) >= 2 else "pending"
            (run_id, at, after_version, _), before_version = points[i], points[i - 1][2]
            sentence = (
                f"{spec.label} of {case_id} ({size}) on {HARDWARE} / {runtime}"
                f" {'rose' if ratio > 1 else 'fell'} {(ratio - 1) * 100:+.0f} %"
                f" ({(low - 1) * 100:.0f}–{(high - 1) * 100:.0f} %),"
                f" {spec.show(float(np.median(before)))} → {spec.show(float(np.median(after)))}, at run {run_id}"
                f" ({step.package} {before_version} → {after_version}), p = {p_value:.2g},"
                f" {len(before)} runs before, {len(after)} after"
            )
            out.append(
                {
                    "scan_id": scan_id,
                    "scanned_at": scanned,
                    "series": f"{HARDWARE}|{runtime}|{case_id}|{size}|{spec.name}",
                    "along": "date",
                    "hardware": HARDWARE,
                    "runtime": runtime,
                    "workload": workload,
                    "case_id": case_id,
                    "size": size,
                    "metric": spec.name,
                    "direction": direction,
                    "status": status,
                    "new": True,
                    "change_run_id": run_id,
                    "change_at": at,
                    "before_version": before_version,
                    "after_version": after_version,
                    "before_median": float(np.median(before)),
                    "after_median": float(np.median(after)),
                    "ratio": ratio,
                    "ci_low": low,
                    "ci_high": high,
                    "p_value": p_value,
                    "runs_before": len(before),
                    "runs_after": len(after),
                    "sentence": sentence,
                    "detail": {
                        "package": step.package,
                        "points": [
                            {"run_id": p[0], "at": p[1].isoformat(), "version": p[2], "median": p[3]}
                            for p in points[max(0, i - _AROUND) : i + _AROUND]
                        ],
                    },
                }
            )
    return out
