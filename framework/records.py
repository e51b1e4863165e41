"""Records of decisions: A/B comparisons, regression scans and blessing verdicts, as append-only Parquet.

Layout (beside the case rows; every file written once under a new name, as in :mod:`framework.results`):

    results/comparisons/<comparison_id>.parquet    one row per case × metric of one A/B comparison
    results/regressions/<scan_id>.parquet          one row per change point found by one history scan
    results/verdicts/<verdict_id>.parquet          one row per blessing decision (criteria, reasons, evidence)
    results/health/<run_id>__<runtime>.parquet     one row per health check of a runtime's environment
    results/lock_changes/<run_id>__<runtime>.parquet  what changed in a runtime's lock since its previous run

``nox -s sql`` sees them as the views ``comparisons``, ``regressions``, ``verdicts``, ``health`` and
``lock_changes``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from framework.in_runtime.errors import ResultsError
from framework.in_runtime.redaction import known_secrets, redact_text
from framework.results import write_atomic

RECORD_VERSION = 1
_TS = pa.timestamp("us", tz="UTC")

COMPARISON_SCHEMA = pa.schema(
    [
        ("record_version", pa.int32()),
        ("comparison_id", pa.string()),
        ("created_at", _TS),
        ("mode", pa.string()),  # interleaved | sequential | from-results | bisect
        ("baseline", pa.string()),  # side label, e.g. 'stable' or 'latest@local-threads'
        ("candidate", pa.string()),
        ("baseline_runtime_hash", pa.string()),
        ("candidate_runtime_hash", pa.string()),
        ("baseline_env_hash", pa.string()),
        ("candidate_env_hash", pa.string()),
        ("baseline_versions", pa.string()),  # JSON: dask, distributed (and the bisected package) → version
        ("candidate_versions", pa.string()),  # JSON
        ("hardware", pa.string()),
        ("workload", pa.string()),
        ("case_id", pa.string()),
        ("size", pa.string()),
        ("metric", pa.string()),  # a name of framework.metric_catalogue.METRICS
        ("n_baseline", pa.int32()),
        ("n_candidate", pa.int32()),
        ("baseline_median", pa.float64()),
        ("candidate_median", pa.float64()),
        ("ratio", pa.float64()),  # median(candidate) / median(baseline)
        ("ci_low", pa.float64()),  # 95 % bootstrap interval of the ratio
        ("ci_high", pa.float64()),
        ("p_value", pa.float64()),  # two-sided rank test (or the sequential test's always-valid p)
        ("min_effect", pa.float64()),
        ("alpha", pa.float64()),
        (
            "verdict",
            pa.string(),
        ),  # a Verdict (framework/vocabulary.py); files before it say 'unchanged' for inconclusive
        ("conclusive", pa.bool_()),  # False: the data cannot tell (inconclusive, or a sequential run out of budget)
        ("mde", pa.float64()),  # minimum detectable effect at these repeats (relative)
        ("repeats_needed", pa.int32()),  # repeats per side to detect min_effect
        ("sentence", pa.string()),  # the plain-language line the report prints
        ("missing", pa.string()),  # why the metric could not be compared (NULL when it could)
        ("detail", pa.string()),  # JSON: samples of each side, run ids, seed
    ]
)

REGRESSION_SCHEMA = pa.schema(
    [
        ("record_version", pa.int32()),
        ("scan_id", pa.string()),
        ("scanned_at", _TS),
        ("series", pa.string()),  # stable key: hardware|runtime|case_id|size|metric (runtime '*' along versions)
        ("along", pa.string()),  # date | version
        ("hardware", pa.string()),
        ("runtime", pa.string()),
        ("workload", pa.string()),
        ("case_id", pa.string()),
        ("size", pa.string()),
        ("metric", pa.string()),
        ("direction", pa.string()),  # regression | improvement
        ("status", pa.string()),  # open | pending | accepted
        ("new", pa.bool_()),  # not reported by the previous scan
        ("change_run_id", pa.string()),  # the first run after the change
        ("change_at", _TS),
        ("before_version", pa.string()),
        ("after_version", pa.string()),
        ("before_median", pa.float64()),
        ("after_median", pa.float64()),
        ("ratio", pa.float64()),
        ("ci_low", pa.float64()),  # 95 % bootstrap interval of the ratio, over runs (NULL when before is 0)
        ("ci_high", pa.float64()),
        ("p_value", pa.float64()),
        ("runs_before", pa.int32()),
        ("runs_after", pa.int32()),
        ("sentence", pa.string()),
        ("detail", pa.string()),  # JSON: the series points, the accepted-change entry if any
    ]
)

VERDICT_SCHEMA = pa.schema(
    [
        ("record_version", pa.int32()),
        ("verdict_id", pa.string()),
        ("decided_at", _TS),
        ("criteria", pa.string()),  # criteria name in matrices/blessing.yaml
        ("runtime", pa.string()),
        ("runtime_hash", pa.string()),
        ("env_hash", pa.string()),
        ("baseline", pa.string()),
        ("baseline_env_hash", pa.string()),
        ("hardware", pa.string()),
        ("blessed", pa.bool_()),
        ("reasons", pa.string()),  # JSON list: each failed criterion, in words, with its evidence
        ("checks", pa.string()),  # JSON list: every criterion with passed/failed and evidence ids
        ("criteria_spec", pa.string()),  # JSON: the criteria as declared when decided
        ("versions", pa.string()),  # JSON: the runtime's package versions
        # a blessed runtime's lock (requirements with hashes; pylock.*.toml beside it), relative to the results
        # directory: blessed/<runtime>-<date>.txt. NULL when not blessed, and in files older than this column.
        ("export_path", pa.string()),
    ]
)

HEALTH_SCHEMA = pa.schema(
    [
        ("record_version", pa.int32()),
        ("run_id", pa.string()),  # the run that checked it (a matrix, compare, stability or bless run)
        ("checked_at", _TS),
        ("runtime", pa.string()),
        ("runtime_hash", pa.string()),
        ("env_hash", pa.string()),
        ("usable", pa.bool_()),
        ("cause", pa.string()),  # the first failure, one line (NULL when usable)
        ("problems", pa.int32()),  # how many checks failed
        ("seconds", pa.float64()),
        ("note", pa.string()),  # what resolution had to steer (a lockstep family), NULL otherwise
        ("dask_version", pa.string()),
        ("distributed_version", pa.string()),
        ("steps", pa.string()),  # JSON list: each check with ok, seconds, detail
    ]
)

LOCK_CHANGES_SCHEMA = pa.schema(
    [
        ("record_version", pa.int32()),
        ("run_id", pa.string()),
        ("recorded_at", _TS),
        ("runtime", pa.string()),
        ("env_hash", pa.string()),
        ("previous_run_id", pa.string()),
        ("previous_env_hash", pa.string()),
        ("change", pa.string()),  # changed | added | removed | unchanged (one row, package NULL: nothing moved)
        ("package", pa.string()),
        ("old_version", pa.string()),
        ("new_version", pa.string()),
    ]
)

# The runs an interleaved or sequential comparison made for its rounds (``detail.run_ids``: side → run ids): they are
# that comparison's evidence, not history — the regression scan, the matrix Δ and its noise, and the report's history
# lines leave them out (each round is a fresh runner a few seconds after the other side's: mixed into a series, a
# comparison's two sides read as change points).
AB_ROUND_RUNS_SQL = (
    "SELECT DISTINCT unnest(json_extract_string(detail, '$.run_ids.*[*]')) AS run_id FROM comparisons"
    " WHERE mode IN ('interleaved', 'sequential')"
)


SCHEMAS: dict[str, pa.Schema] = {
    "comparisons": COMPARISON_SCHEMA,
    "regressions": REGRESSION_SCHEMA,
    "verdicts": VERDICT_SCHEMA,
    "health": HEALTH_SCHEMA,
    "lock_changes": LOCK_CHANGES_SCHEMA,
}


def record_table(kind: str, rows: Sequence[dict[str, Any]]) -> pa.Table:
    """Rows of one record kind → an Arrow table; dicts and lists in string columns become JSON text, and every text
    is redacted (a health step or a reason may echo a secret value the process knows)."""
    schema = SCHEMAS[kind]
    masked = known_secrets()
    names = set(schema.names)
    out = []
    for row in rows:
        unknown = sorted(set(row) - names)
        if unknown:
            raise ResultsError(f"{kind} record has unknown columns {', '.join(unknown)} — add them to records.py")
        normalised: dict[str, Any] = {"record_version": RECORD_VERSION}
        for field in schema:
            value = row.get(field.name, normalised.get(field.name))
            if pa.types.is_string(field.type) and value is not None and not isinstance(value, str):
                value = json.dumps(value, sort_keys=True, default=str)
            if isinstance(value, str):
                value = redact_text(value, masked)
            normalised[field.name] = value
        out.append(normalised)
    return pa.Table.from_pylist(out, schema=schema)


def write_record(results_dir: Path, kind: str, name: str, rows: Sequence[dict[str, Any]]) -> Path:
    """Write one record file (e.g. a comparison's rows) atomically; refuses to overwrite."""
    if kind not in SCHEMAS:
        raise ResultsError(f"unknown record kind {kind!r} — known: {', '.join(SCHEMAS)}")
    return write_atomic(record_table(kind, rows), results_dir / kind / f"{name}.parquet")
