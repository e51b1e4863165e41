"""What the report reads from the results store: every query, through :class:`framework.query.Results` (read-only).

Never one query per page: two queries read the executions (binding the ``rows`` view reads every file's footer,
so every query over it costs), one the narrow columns per case, one every column per run section; DuckDB groups
the rows per workload or per run and writes the JSON and table rows each page embeds, so Python mostly cuts the
answers into pages. The records (comparisons, regressions, environments, health checks, lock changes)
take one small query each.
Values that were not measured stay NULL (shown as missing), never 0.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pyarrow as pa

from framework.in_runtime import redaction
from framework.machines import class_sql, join_sql, load_policy, register
from framework.metric_catalogue import METRICS
from framework.query import Results
from framework.records import AB_ROUND_RUNS_SQL
from framework.report.layout import CASE_HTML_SQL, MISSING
from framework.report.run_values import redacted_settings, run_value_sql, value_html_text
from framework.report.run_values import sql_escape as _esc
from framework.results import CASE_COLUMNS

# Columns that describe the run × runtime × hardware rather than one execution, shown once per section: the runner
# writes them from the run's plan and the machine it runs on, the same on every row of its file (the rounds of a
# comparison, one file each, share the environment and the machine).
RUN_COLUMNS = (
    "run_started_at", "run_group", "shard", "schema_version", "runtime", "runtime_hash", "env_hash", "runtime_spec",
    "dask_config", "env_vars", "settings_scope", "packages", "dask_version", "distributed_version", "python_version",
    "python_implementation", "executable", "hardware", "hardware_backend", "hardware_spec", "os", "cpu_model",
    "cpu_count", "ram_bytes", "hostname", "machine_fingerprint", "machine_id", "git_commit", "git_dirty",
)  # fmt: skip
# Every other column, one per execution, in schema order (run_id names the page).
ROW_COLUMNS = tuple(name for name in CASE_COLUMNS if name not in RUN_COLUMNS and name != "run_id")

_SAFE_NAME = re.compile(r"[A-Za-z0-9._-]{1,100}")


def page_name(text: str) -> str:
    """A file name for a run, workload or comparison: the text itself when safe, else a slug with a hash."""
    if _SAFE_NAME.fullmatch(text) and not text.startswith("."):
        return text
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:80].lstrip(".") + "-" + hashlib.md5(text.encode()).hexdigest()[:8]


def section_anchor(runtime: str, hardware: str) -> str:
    """The id of a run page's section for one runtime × hardware."""
    return "sec-" + page_name(f"{runtime}__{hardware}")


def _page_name_sql(column: str) -> str:
    """:func:`page_name` in SQL, so links DuckDB writes into page data match the files Python writes."""
    return (
        f"CASE WHEN regexp_full_match({column}, '[A-Za-z0-9._-]{{1,100}}') AND NOT starts_with({column}, '.')"
        f" THEN {column} ELSE ltrim(left(regexp_replace({column}, '[^A-Za-z0-9._-]+', '_', 'g'), 80), '.')"
        f" || '-' || left(md5({column}), 8) END"
    )


def _finite(expression: str) -> str:
    return f"CASE WHEN isfinite({expression}) THEN {expression} END"


_OUTCOME = """CASE WHEN bool_or(outcome = 'timeout') THEN 'timeout' WHEN bool_or(outcome = 'error') THEN 'error'
                  WHEN bool_or(outcome = 'failed') THEN 'failed'
                  WHEN bool_or(outcome = 'interrupted') THEN 'interrupted' WHEN count(outcome) = 0 THEN 'unknown'
                  ELSE 'passed' END"""
_MEDIANS = ",\n       ".join(
    _finite(f"median({spec.column}) FILTER (WHERE phase = 'measure' AND outcome = 'passed')") + f" AS {name}"
    for name, spec in METRICS.items()
)
# Row columns that are timestamps: in the page data as microseconds since the epoch (cheaper to write than text;
# the page shows them in UTC).
TIMESTAMP_COLUMNS = tuple(name for name in ROW_COLUMNS if pa.types.is_timestamp(CASE_COLUMNS[name]))


def _execution_value(name: str) -> str:
    if name in TIMESTAMP_COLUMNS:
        return f"epoch_us({name})"
    if CASE_COLUMNS[name] == pa.float64():
        return _finite(name)  # JSON has no NaN or Infinity: such a value shows as missing
    return name


# An execution as a JSON array of its ROW_COLUMNS values.
_EXECUTION = f"to_json(row({', '.join(_execution_value(name) for name in ROW_COLUMNS)}))"
_DUMP = "{'case_id': case_id, 'phase': phase, 'repeat': repeat, 'outcome': outcome, 'cluster_dump': cluster_dump}"
_UTC_TEXT = "strftime(timezone('UTC', started_at), '%Y-%m-%d %H:%M')"  # shown as UTC whatever the session zone
_STABILITY = f"""{{'case_id': case_id, 'started_at': {_UTC_TEXT}, 'outcome': outcome, 'wall_s': wall_s, 'error': error,
                 'failure_id': failure_id, 'extra_metrics': extra_metrics,
                 'replay_of': json_extract_string(params, '$.failure_id')}}"""
# The first query over the executions reads the narrow columns into one line per run × runtime × hardware × case:
# the grain of the history plots, the matrix and the run summaries. Medians are over passed measured repeats (as
# the regression scan sees a run); the outcome is the worst of every execution, warm-ups and setup rows included
# (a case that could not start did not pass). Each machine class a run's rows ran on is a line of its own (a history
# series is hardware profile × machine class: :mod:`framework.machines`).
_PER_CASE = f"""
SELECT run_id, runtime, hardware, machine_class, workload, case_id, coalesce(size, '') AS size,
       min(run_started_at) AS run_started_at, coalesce(min(started_at), min(run_started_at)) AS started_at,
       any_value(dask_version) AS dask_version, any_value(distributed_version) AS distributed_version,
       count(*) FILTER (WHERE phase = 'measure') AS repeats,
       count(*) FILTER (WHERE phase = 'measure' AND outcome = 'passed') AS passed,
       {_OUTCOME} AS outcome,
       {_MEDIANS},
       left(any_value(error) FILTER (WHERE outcome <> 'passed'), 300) AS error,
       count(*) AS n_rows, any_value(runtime_spec) AS runtime_spec, any_value(dask_config) AS dask_config,
       coalesce(any_value(run_group), run_id) AS run_group, any_value(shard) AS shard,
       count(*) FILTER (WHERE phase = 'measure' AND overloaded) AS overloaded_repeats,
       max(load_avg_1m) FILTER (WHERE phase = 'measure') AS max_load, any_value(cpu_count) AS cpu_count,
       any_value(env_hash) AS env_hash, any_value(runtime_hash) AS runtime_hash
FROM (SELECT r.*, {class_sql()} AS machine_class FROM rows r {join_sql()})
GROUP BY run_id, runtime, hardware, machine_class, workload, case_id, coalesce(size, '')
"""

HISTORY_FIELDS = (
    "case_id", "size", "runtime", "hardware", "machine_class", "run_id", "page", "t", "dask_version",
    "distributed_version", "repeats", "passed", "outcome", *METRICS, "error", "compare",
)  # fmt: skip
# A workload's points as one JSON array of arrays (HISTORY_FIELDS order, by time): one sort, no repeated keys.
_HISTORY_POINTS = f"to_json(list(row({', '.join(HISTORY_FIELDS)}) ORDER BY t, run_id, case_id))"
_FAILURE = f"""{{'case_id': case_id, 'size': size, 'runtime': runtime, 'hardware': hardware, 'run_id': run_id,
               'page': page, 'started_at': {_UTC_TEXT}, 'outcome': outcome, 'passed': passed,
               'repeats': repeats, 'error': error}}"""


_MISSING_HTML = MISSING


def _cell(expression: str, css: str = "", wrap: str = "{0}") -> str:
    attribute = f' class="{css}"' if css else ""
    return f"'<td{attribute}>' || coalesce({wrap.format(_esc(expression))}, '{_MISSING_HTML}') || '</td>'"


# A metric's median in its unit, written by DuckDB (the run pages' tables are built there).
_SHOW_SQL = {
    "s": "CASE WHEN {0} IS NULL THEN NULL ELSE printf('%.3g s', {0}) END",
    "bytes": "format_bytes({0}::BIGINT)",
}
_SUMMARY_ROW = " || ".join(
    [
        "'<tr class=\"' || outcome || '\">'",
        _cell("case_id", wrap=CASE_HTML_SQL),
        _cell("nullif(size, '')"),
        _cell("outcome", "outcome"),
        _cell("passed::VARCHAR || '/' || repeats::VARCHAR", "num"),
        *(_cell(_SHOW_SQL[spec.unit].format(name), "num") for name, spec in METRICS.items()),
        _cell("error", "error"),
        "'</tr>'",
    ]
)
# Three kinds of lines, one result (UNION ALL BY NAME: each kind has its own columns, NULL in the others; a name
# two kinds share must have one type in both).
_ROWS_SQL = f"""
WITH per_case AS MATERIALIZED ({_PER_CASE}),
compare_runs AS ({AB_ROUND_RUNS_SQL}),  -- the rounds of an A/B comparison: not history
points AS (SELECT *, epoch_ms(started_at) AS t, {_page_name_sql("run_id")} AS page,
                  run_id IN (SELECT run_id FROM compare_runs) AS compare
           FROM per_case WHERE NOT starts_with(workload, 'stability.')),
starts AS (SELECT workload, to_json(list({{'hardware': hardware, 'machine_class': machine_class, 'run_id': run_id,
                                           'page': page, 'started_at': started_at}} ORDER BY t, run_id)) AS machines
           FROM (SELECT workload, hardware, machine_class, arg_min(run_id, (t, run_id)) AS run_id,
                        arg_min(page, (t, run_id)) AS page, min(started_at) AS started_at, min(t) AS t
                 FROM points GROUP BY ALL)
           GROUP BY workload)
SELECT 'history' AS kind, * FROM (
    SELECT workload, count(*) AS points, len(list_distinct(list(run_id))) AS runs,
           count(*) FILTER (WHERE outcome <> 'passed') AS not_passed,
           min(started_at) AS first_at, max(started_at) AS last_at,
           {_HISTORY_POINTS} AS data,
           to_json(list({_FAILURE} ORDER BY t DESC) FILTER (WHERE outcome <> 'passed')) AS failures
    FROM points GROUP BY workload
) LEFT JOIN starts USING (workload)
UNION ALL BY NAME
SELECT 'latest' AS kind, runtime, hardware, case_id, size, workload, run_id, {_page_name_sql("run_id")} AS page,
       started_at, outcome, passed, repeats, error
FROM per_case
QUALIFY row_number() OVER (PARTITION BY runtime, hardware, case_id, size
                           ORDER BY run_started_at DESC, started_at DESC) = 1
UNION ALL BY NAME
SELECT 'section' AS kind, run_id, {_page_name_sql("run_id")} AS page, runtime, hardware,
       min(run_started_at) AS run_started_at, min(started_at) AS started_at, any_value(dask_version) AS dask_version,
       any_value(distributed_version) AS distributed_version, count(*) AS cases,
       count(*) FILTER (WHERE outcome = 'passed') AS cases_passed,
       count(*) FILTER (WHERE outcome = 'failed') AS cases_failed,
       count(*) FILTER (WHERE outcome = 'error') AS cases_error,
       count(*) FILTER (WHERE outcome = 'timeout') AS cases_timeout,
       count(*) FILTER (WHERE outcome = 'interrupted') AS cases_interrupted,
       sum(passed) AS repeats_passed, sum(repeats) AS repeats_measured, sum(n_rows) AS n_rows,
       string_agg({_SUMMARY_ROW}, '' ORDER BY case_id, size) AS summary,
       any_value(runtime_spec) AS runtime_spec, any_value(dask_config) AS dask_config,
       any_value(run_group) AS run_group, any_value(shard) AS shard,
       sum(overloaded_repeats) AS overloaded, max(max_load) AS max_load, any_value(cpu_count) AS cpu_count,
       any_value(env_hash) AS env_hash, any_value(runtime_hash) AS runtime_hash
FROM per_case GROUP BY run_id, runtime, hardware
"""
# The second reads every column: per run × runtime × hardware, its run-level values (as table rows, escaped here:
# 25 cells × every section is cheap in DuckDB), every execution as JSON (in the order they ran; the page adds the
# enclosing brackets), its cluster dumps and its stability executions.


# Run-level columns that hold settings: shown redacted by Python (rows written before redaction hold secrets).
REDACTED_RUN_COLUMNS = ("runtime_spec", "dask_config", "env_vars")
_FIRST_REDACTED = RUN_COLUMNS.index(REDACTED_RUN_COLUMNS[0])
_LAST_REDACTED = _FIRST_REDACTED + len(REDACTED_RUN_COLUMNS)
if RUN_COLUMNS[_FIRST_REDACTED:_LAST_REDACTED] != REDACTED_RUN_COLUMNS:
    raise AssertionError("REDACTED_RUN_COLUMNS must be consecutive in RUN_COLUMNS")


def _provenance_rows(names: tuple[str, ...]) -> str:
    return " || ".join(f"'<tr><th>{name}</th><td>' || {run_value_sql(name)} || '</td></tr>'" for name in names)


_EXECUTIONS_SQL = f"""
SELECT run_id, runtime, hardware, run_env_hash AS env_hash, {_provenance_rows(RUN_COLUMNS[:_FIRST_REDACTED])}
       AS provenance_head, {_provenance_rows(RUN_COLUMNS[_LAST_REDACTED:])} AS provenance_tail,
       {", ".join(f"run_{name}" for name in REDACTED_RUN_COLUMNS)}, executions, dumps, stability
FROM (
    SELECT run_id, runtime, hardware, {", ".join(f"any_value({name})::VARCHAR AS run_{name}" for name in RUN_COLUMNS)},
           string_agg({_EXECUTION}, ',' ORDER BY started_at, repeat) AS executions,
           to_json(list({_DUMP} ORDER BY started_at) FILTER (WHERE cluster_dump IS NOT NULL)) AS dumps,
           to_json(list({_STABILITY} ORDER BY started_at DESC) FILTER (WHERE starts_with(workload, 'stability.')))
               AS stability
    FROM rows GROUP BY run_id, runtime, hardware
)
"""


@dataclasses.dataclass(frozen=True)
class WorkloadHistory:
    workload: str
    points: int  # run × case points
    runs: int
    not_passed: int
    first_at: dt.datetime | None
    last_at: dt.datetime | None
    data: str  # JSON: every point, an array of HISTORY_FIELDS' values, by time
    failures: list[dict[str, Any]]  # newest first
    # Each hardware profile × machine class and the first run on it (hardware, machine_class, run_id, page,
    # started_at), the first first: a class after a profile's first starts series of its own.
    machines: list[dict[str, Any]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class RunSection:
    """One run × runtime × hardware: a line of the runs list and a section of its run page."""

    summary: dict[str, Any]  # run_id, page, runtime, hardware, started_at, versions, counts of cases and repeats
    provenance: str  # <tr> per run-level column with its value (the runner writes one per section), escaped
    env_hash: str | None  # its environment, whose lock the page shows
    executions: str  # JSON arrays, one per execution (the values of ROW_COLUMNS), comma-separated: no brackets
    case_rows: str  # <tr> per case (built and escaped by DuckDB)
    dumps: list[dict[str, Any]]  # cluster dumps of its executions
    stability: list[dict[str, Any]]  # its executions of stability runs (fuzz batches, replays…)

    @property
    def run_id(self) -> str:
        return str(self.summary["run_id"])


# A section's summary: its name in the result → its key for the pages.
_SUMMARY_FIELDS = {
    **{name: name for name in ("run_id", "page", "runtime", "hardware", "run_started_at", "started_at")},
    **{name: name for name in ("dask_version", "distributed_version", "cases", "repeats_passed", "n_rows")},
    **{name: name for name in ("run_group", "shard", "overloaded", "max_load", "cpu_count")},
    **{name: name for name in ("env_hash", "runtime_hash")},
    **{f"cases_{kind}": kind for kind in ("passed", "failed", "error", "timeout", "interrupted")},
    "repeats_measured": "repeats",
}


@dataclasses.dataclass(frozen=True)
class Cases:
    """What the first query (the narrow columns, per case) gives."""

    histories: list[WorkloadHistory]
    latest: list[dict[str, Any]]  # the newest run of each runtime × hardware × case: the overview's matrix
    summaries: dict[tuple[str, str, str], dict[str, Any]]  # (run, runtime, hardware) → counts, versions, case rows
    # Secret values to mask in what is shown: those this process knows and those every run's settings hold (rows
    # written before redaction hold them verbatim), longest first.
    secrets: tuple[str, ...] = ()

    def runs(self) -> list[dict[str, Any]]:
        """One line per run × runtime × hardware, the newest first."""
        lines = [{key: line[name] for name, key in _SUMMARY_FIELDS.items()} for line in self.summaries.values()]
        return sorted(lines, key=lambda line: (line["run_started_at"], line["run_id"]), reverse=True)


def cases(results: Results) -> Cases:
    """Histories, the matrix and the run summaries: the first query over the executions. Every text is redacted by
    the secret values this process knows and those any run's settings hold (:attr:`Cases.secrets`)."""
    register(results, load_policy())  # the machine classes the points are keyed by
    table = results.arrow(_ROWS_SQL)
    kinds = table.column("kind").to_pylist()

    def lines(kind: str, names: tuple[str, ...]) -> list[dict[str, Any]]:
        chosen = table.take(pa.array([i for i, value in enumerate(kinds) if value == kind], pa.int64()))
        columns = {name: chosen.column(name).to_pylist() for name in names}
        return [{name: columns[name][i] for name in names} for i in range(chosen.num_rows)]

    section_lines = lines("section", (*_SUMMARY_FIELDS, "summary", "runtime_spec", "dask_config"))
    found = set(redaction.known_secrets())
    for line in section_lines:
        found |= redaction.row_secrets(line)
    masked = sorted(found, key=len, reverse=True)

    histories = [
        WorkloadHistory(
            workload=line["workload"],
            points=line["points"],
            runs=line["runs"],
            not_passed=line["not_passed"],
            first_at=line["first_at"],
            last_at=line["last_at"],
            data=redaction.redact_text(line["data"], masked),
            failures=redaction.redact_strings(json.loads(line["failures"] or "[]"), masked),
            machines=json.loads(line["machines"] or "[]"),
        )
        for line in sorted(
            lines(
                "history",
                ("workload", "points", "runs", "not_passed", "first_at", "last_at", "data", "failures", "machines"),
            ),
            key=lambda line: line["workload"],
        )
    ]
    latest_fields = ("runtime", "hardware", "case_id", "size", "workload", "run_id", "page", "started_at", "outcome")
    latest = sorted(
        redaction.redact_strings(lines("latest", (*latest_fields, "passed", "repeats", "error")), masked),
        key=lambda line: (line["case_id"], line["size"], line["runtime"], line["hardware"]),
    )
    summaries = {
        (line["run_id"], line["runtime"], line["hardware"]): {
            **line,
            "summary": redaction.redact_text(line["summary"], masked),
        }
        for line in section_lines
    }
    return Cases(histories, latest, summaries, tuple(masked))


def run_details(results: Results) -> pa.Table:
    """Every run section's run-level values, executions, dumps and stability rows: the second query (the one that
    reads every column). Its own connection may run it while the first query's pages are written."""
    return results.arrow(_EXECUTIONS_SQL)


def sections(found: Cases, details: pa.Table) -> list[RunSection]:
    """The run sections, ordered by run, runtime and hardware. Settings and texts are redacted on the way (rows
    written before redaction may hold secrets): by key, and by the secret values their own settings hold."""
    keys = list(zip(*(details.column(name).to_pylist() for name in ("run_id", "runtime", "hardware"))))
    head, tail, env_hash, dumps, stability = (
        details.column(name).to_pylist()
        for name in ("provenance_head", "provenance_tail", "env_hash", "dumps", "stability")
    )
    settings = {name: details.column(f"run_{name}").to_pylist() for name in REDACTED_RUN_COLUMNS}
    executions = details.column("executions")
    ordered = []
    for i in sorted(range(len(keys)), key=keys.__getitem__):  # sorting here moves no page data
        line = found.summaries.get(keys[i])
        if line is None:  # published between the two queries' file listings: in the next build
            continue
        stored = {name: settings[name][i] for name in REDACTED_RUN_COLUMNS}
        masked = sorted(set(found.secrets) | redaction.row_secrets(stored), key=len, reverse=True)
        shown = redacted_settings(stored, masked)
        middle = "".join(
            f"<tr><th>{name}</th><td>{value_html_text(shown[name])}</td></tr>" for name in REDACTED_RUN_COLUMNS
        )
        ordered.append(
            RunSection(
                summary={name: line[column] for column, name in _SUMMARY_FIELDS.items()},
                provenance=head[i] + middle + tail[i],
                env_hash=env_hash[i],
                executions=redaction.redact_text(executions[i].as_py(), masked),
                case_rows=line["summary"],  # redacted by :func:`cases`
                dumps=json.loads(dumps[i] or "[]"),
                stability=redaction.redact_strings(json.loads(stability[i] or "[]"), masked),
            )
        )
    return ordered


def dict_rows(results: Results, query: str) -> list[dict[str, Any]]:
    """The query's rows as mappings, every text redacted by the secret values this process knows."""
    columns, rows = results.sql(query)
    masked = redaction.known_secrets()
    return [redaction.redact_strings(dict(zip(columns, row)), masked) for row in rows]


def environments(results: Results) -> dict[str, dict[str, Any]]:
    """env_hash → its lock and when it was built."""
    return {
        row["env_hash"]: row
        for row in dict_rows(
            results, "SELECT env_hash, runtime, python, built_at, lock FROM environments ORDER BY built_at"
        )
    }


def health_checks(results: Results) -> list[dict[str, Any]]:
    """Every health check of an environment (empty in a store older than health checks), the newest first."""
    rows = dict_rows(
        results,
        "SELECT run_id, checked_at, runtime, env_hash, usable, cause, problems, seconds, note, dask_version,"
        " distributed_version, steps FROM health ORDER BY checked_at DESC, run_id DESC",
    )
    for row in rows:
        row["steps"] = json.loads(row["steps"] or "[]")
    return rows


def lock_changes(results: Results) -> list[dict[str, Any]]:
    """Every recorded lock change (one row per package that moved, or one 'unchanged' row per run × runtime)."""
    return dict_rows(
        results,
        "SELECT run_id, runtime, previous_run_id, previous_env_hash, change, package, old_version, new_version"
        " FROM lock_changes ORDER BY run_id, runtime, package",
    )


def latest_scan(results: Results) -> list[dict[str, Any]]:
    """Every finding of the newest regression scan (an empty list when there was no scan or it found nothing)."""
    return dict_rows(
        results,
        "SELECT * FROM regressions WHERE scan_id = (SELECT arg_max(scan_id, scanned_at) FROM regressions)"
        " ORDER BY status, direction, workload, case_id, metric",
    )


def scans(results: Results) -> list[dict[str, Any]]:
    """Each scan's id, time and finding count (the newest first)."""
    return dict_rows(
        results,
        "SELECT scan_id, max(scanned_at) AS scanned_at, count(*) AS findings, any_value(along) AS along"
        " FROM regressions GROUP BY scan_id ORDER BY scanned_at DESC",
    )


def change_points(results: Results) -> list[dict[str, Any]]:
    """Each change any scan found (series × first run after it × direction), as its newest scan described it."""
    return dict_rows(
        results,
        f"""SELECT along, hardware, json_extract_string(detail, '$.machine_class') AS machine_class, runtime,
                   workload, case_id, coalesce(size, '') AS size, metric, direction,
                   status, change_run_id, {_page_name_sql("change_run_id")} AS page, before_version, after_version,
                   ratio, sentence, scan_id, scanned_at
            FROM regressions
            QUALIFY row_number() OVER (PARTITION BY series, along, change_run_id, direction
                                       ORDER BY scanned_at DESC) = 1
            ORDER BY workload, case_id, metric, change_at""",
    )


def comparisons(results: Results) -> list[dict[str, Any]]:
    """Every comparison row (case × metric), grouped by comparison downstream; the newest comparison first."""
    return dict_rows(
        results,
        "SELECT * EXCLUDE (detail) FROM comparisons ORDER BY created_at DESC, comparison_id, case_id, size, metric",
    )


def failure_records(results_dir: Path) -> list[dict[str, Any]]:
    """The recorded stability failures (``results/stability/failures/<id>/failure.json``), newest first.

    A record that cannot be read is listed with the reason rather than dropped."""
    records = []
    for path in sorted((results_dir / "stability" / "failures").glob("*/failure.json")):
        try:
            record: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            record = {"failure_id": path.parent.name, "unreadable": f"{path}: {error}"}
        if isinstance(record.get("runtime_spec"), dict):  # a record written before redaction
            masked = redaction.row_secrets(record)
            record = redaction.redact_strings(
                {**record, "runtime_spec": redaction.redact_runtime_spec(record["runtime_spec"])}, masked
            )
        record.setdefault("failure_id", path.parent.name)
        record["directory"] = path.parent
        records.append(record)
    return sorted(records, key=lambda record: str(record.get("created_at") or ""), reverse=True)
