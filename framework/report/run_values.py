"""How a run page shows its run-level values (written by DuckDB, with the rest of the run's provenance table):
byte counts in binary units with the exact count on hover, JSON with its real characters (``×``, not ``\\u00d7``:
Python's json.dumps escapes every non-ASCII character)."""

from __future__ import annotations

import json

from framework.in_runtime import redaction
from framework.report.layout import MISSING
from framework.results import CASE_COLUMNS

LONG_VALUE = 100  # characters: a longer run-level value folds into <details>

# Run-level columns that hold JSON text (shown through DuckDB's json(), which writes characters as they are).
JSON_RUN_COLUMNS = frozenset(
    {"runtime_spec", "dask_config", "env_vars", "packages", "hardware_spec", "machine_fingerprint"}
)
BYTE_RUN_COLUMNS = frozenset(name for name in CASE_COLUMNS if name.endswith("_bytes"))


def sql_escape(expression: str) -> str:
    """HTML-escape a text expression inside DuckDB (the run pages' tables are built there, not in Python)."""
    return f"replace(replace(replace(replace({expression}, '&', '&amp;'), '<', '&lt;'), '>', '&gt;'), '\"', '&quot;')"


def value_html_sql(value: str) -> str:
    """A text value as a cell's content, in DuckDB: <code>, folded into <details> when longer than LONG_VALUE."""
    return (
        f"CASE WHEN {value} IS NULL THEN '{MISSING}' WHEN length({value}) <= {LONG_VALUE}"
        f" THEN '<code>' || {sql_escape(value)} || '</code>'"
        f" ELSE '<details><summary><code>' || {sql_escape(f'left({value}, {LONG_VALUE})')} || '…</code></summary><pre>'"
        f" || {sql_escape(value)} || '</pre></details>' END"
    )


def run_value_sql(name: str) -> str:
    """The SQL expression of one run-level value's cell content (the column is ``run_<name>``, as text)."""
    column = f"run_{name}"
    if name in BYTE_RUN_COLUMNS:
        return (
            f"CASE WHEN TRY_CAST({column} AS BIGINT) IS NULL THEN {value_html_sql(column)} ELSE '<span title=\"' ||"
            f" {sql_escape(column)} || ' bytes\">' || format_bytes({column}::BIGINT) || '</span>' END"
        )
    if name in JSON_RUN_COLUMNS:
        return value_html_sql(f"CASE WHEN json_valid({column}) THEN json({column})::VARCHAR ELSE {column} END")
    return value_html_sql(column)


def value_html_text(value: str | None) -> str:
    """:func:`value_html_sql` in Python, for the run-level values redacted here."""
    if value is None:
        return MISSING
    if len(value) <= LONG_VALUE:
        return f"<code>{_escape(value)}</code>"
    folded = _escape(value[:LONG_VALUE])
    return f"<details><summary><code>{folded}…</code></summary><pre>{_escape(value)}</pre></details>"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def redacted_settings(values: dict[str, str | None], secrets: list[str]) -> dict[str, str | None]:
    """A section's runtime_spec, dask_config and env_vars (JSON text) as they may be shown: redacted by key and by
    the secret values they (or ``secrets``) hold; JSON is shown with its real characters (no \\u escapes)."""
    redacted = redaction.redact_row(values, secrets)
    shown: dict[str, str | None] = {}
    for name in values:
        after = redacted[name]
        if after is None or isinstance(after, str):
            shown[name] = after  # not the JSON of a mapping: redacted as text
        else:  # real characters, not \u escapes
            shown[name] = json.dumps(after, sort_keys=True, default=str, ensure_ascii=False)
    return shown
