"""Machine classes: which rows' timings belong in one history series (``matrices/machines.yaml`` decides).

Every row records the fingerprint of the machine its workers ran on (:mod:`framework.in_runtime.provenance`).
A *machine class* groups fingerprints that agree on the policy's ``class_fields`` (named ``<cores>c-<GiB>g-<hash>``),
or that a pool names (named after the pool). History series, regression scans, ``compare --from-results`` and the
report key on hardware profile × machine class: a run on a new class starts a series of its own.

Rows written before fingerprints (results schema ≤ 2) have only ``cpu_model``, ``cpu_count`` and ``ram_bytes``: they
join the class of the fingerprinted machines that agree with them on those facts when exactly one class does, so
a history stays one series across the upgrade; otherwise they make a class of their own.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import fnmatch
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from framework.config import ROOT, load_file
from framework.in_runtime.provenance import memory_gib
from framework.models.machines import MachinePool, MachinesFile
from framework.query import Results

MACHINES_FILE = ROOT / "matrices" / "machines.yaml"
TABLE = "machines"  # what :func:`register` adds to a Results connection
UNKNOWN = "unknown-machine"  # rows that say nothing about their machine


def machine_key_sql(alias: str = "") -> str:
    """A row's machine: its machine_id, or for a row without one (schema ≤ 2) the facts it has."""
    p = f"{alias}." if alias else ""
    return (
        f"coalesce({p}machine_id, 'legacy|' || coalesce({p}cpu_model, '') || '|' || coalesce({p}cpu_count::VARCHAR, '')"
        f" || '|' || coalesce({p}ram_bytes::VARCHAR, ''))"
    )


# The facts a row without a fingerprint has, by fingerprint field.
_LEGACY_FIELDS = ("cpu_model", "cores", "memory_gib")


def load_policy(path: Path = MACHINES_FILE) -> MachinesFile:
    """The policy in ``path``; the default (every fact but the kernel, no pools) when there is no such file."""
    return load_file(path, MachinesFile) if path.exists() else MachinesFile()


@dataclasses.dataclass(frozen=True)
class Machine:
    """One machine the store's rows name, and the first run that ran on it."""

    key: str  # machine_key_sql's value
    machine_id: str | None
    fingerprint: dict[str, Any] | None  # None for a row without one: the facts are then the legacy ones
    first_run_id: str
    first_at: dt.datetime | None

    @property
    def facts(self) -> dict[str, Any]:
        if self.fingerprint is not None:
            return self.fingerprint
        cpu_model, cpu_count, ram_bytes = self.key.removeprefix("legacy|").rsplit("|", 2)
        return {
            "cpu_model": cpu_model or None,
            "cores": int(cpu_count) if cpu_count else None,
            "memory_gib": memory_gib(int(ram_bytes)) if ram_bytes else None,
        }


_MACHINES_SQL = f"""
SELECT {machine_key_sql()} AS key, any_value(machine_id) AS machine_id, any_value(machine_fingerprint) AS fingerprint,
       arg_min(run_id, run_started_at) AS first_run_id, min(run_started_at) AS first_at
FROM rows GROUP BY key ORDER BY first_at, key
"""


def machines(results: Results) -> list[Machine]:
    """Every machine the rows name, the first seen first."""
    found = []
    for key, machine_id, fingerprint, first_run_id, first_at in results.sql(_MACHINES_SQL)[1]:
        try:
            facts = json.loads(fingerprint) if fingerprint else None
        except ValueError:
            facts = None
        found.append(Machine(key, machine_id, facts if isinstance(facts, dict) else None, first_run_id, first_at))
    return found


def classify(found: list[Machine], policy: MachinesFile) -> dict[str, str]:
    """Machine key → machine class."""
    classes: dict[str, str] = {}
    legacy = []
    for machine in found:
        if machine.fingerprint is None:
            legacy.append(machine)
            continue
        classes[machine.key] = _pool(machine, policy) or _class_name(machine.fingerprint, policy.class_fields)
    for machine in legacy:
        facts = machine.facts
        if not any(facts.values()):
            classes[machine.key] = UNKNOWN
            continue
        known = [name for name in policy.class_fields if name in _LEGACY_FIELDS]
        agreeing = {
            classes[other.key]
            for other in found
            if other.fingerprint is not None and all(other.fingerprint.get(name) == facts[name] for name in known)
        }
        pooled = _pool(machine, policy)
        if pooled is None and len(agreeing) == 1:
            pooled = agreeing.pop()
        classes[machine.key] = pooled or _class_name(facts, policy.class_fields)
    return classes


def _pool(machine: Machine, policy: MachinesFile) -> str | None:
    facts = machine.facts
    for name, pool in policy.pools.items():
        if machine.machine_id is not None and machine.machine_id in pool.machine_ids:
            return name
        members = _members(facts)
        if pool.match and all(_matches(member, pool) for member in members):
            return name
    return None


def _members(facts: dict[str, Any]) -> list[dict[str, Any]]:
    """The machines of a fingerprint: itself, or those of a remote cluster whose workers ran on several kinds."""
    machines = facts.get("machines")
    return [member for member in machines if isinstance(member, dict)] if isinstance(machines, list) else [facts]


def _matches(facts: dict[str, Any], pool: MachinePool) -> bool:
    for name, wanted in pool.match.items():
        value = facts.get(name)
        if value is None:
            return False
        if isinstance(wanted, str) and not fnmatch.fnmatchcase(str(value), wanted):
            return False
        if not isinstance(wanted, str) and value != wanted:
            return False
    return True


def _class_name(facts: dict[str, Any], fields: Sequence[str]) -> str:
    """``<cores>c-<GiB>g-<6 hex>``: readable at a glance, the hash telling apart machines that differ elsewhere."""
    members = _members(facts)
    chosen = sorted(json.dumps({name: member.get(name) for name in fields}, sort_keys=True) for member in members)
    digest = hashlib.sha256(json.dumps(chosen).encode()).hexdigest()[:6]
    if len(members) > 1:
        return f"{len(members)}kinds-{digest}"
    cores, gib = facts.get("cores"), facts.get("memory_gib")
    return f"{cores if cores is not None else '?'}c-{gib if gib is not None else '?'}g-{digest}"


def register(results: Results, policy: MachinesFile) -> dict[str, str]:
    """Add the ``machines`` table to ``results``: each machine's key, id, class and first run. Queries join it on
    :func:`machine_key_sql` (``FROM rows r LEFT JOIN machines m ON m.key = <machine_key_sql("r")>``), and read the
    class with :func:`class_sql`. Returns key → class."""
    found = machines(results)
    classes = classify(found, policy)
    table = pa.Table.from_pylist(
        [
            {
                "key": machine.key,
                "machine_id": machine.machine_id,
                "machine_class": classes[machine.key],
                "fingerprint": json.dumps(machine.fingerprint, sort_keys=True) if machine.fingerprint else None,
                "first_run_id": machine.first_run_id,
                "first_at": machine.first_at,
            }
            for machine in found
        ],
        schema=pa.schema(
            [
                ("key", pa.string()),
                ("machine_id", pa.string()),
                ("machine_class", pa.string()),
                ("fingerprint", pa.string()),
                ("first_run_id", pa.string()),
                ("first_at", pa.timestamp("us", tz="UTC")),
            ]
        ),
    )
    results.add_table(TABLE, table)
    return classes


def class_sql(row: str = "r", table: str = "m") -> str:
    """The machine class of a row joined with the ``machines`` table (a row newer than the table: its own key)."""
    return f"coalesce({table}.machine_class, {machine_key_sql(row)})"


def join_sql(row: str = "r", table: str = "m") -> str:
    """The join that gives each row its class: ``FROM rows r {join_sql()}``."""
    return f"LEFT JOIN {TABLE} {table} ON {table}.key = {machine_key_sql(row)}"


def classified_summary_sql() -> str:
    """Common table expressions ending in ``classified``: each ``case_summary`` line with its run's machine class
    (``WITH {classified_summary_sql()}, this AS (SELECT * FROM classified WHERE …)``; :func:`register` first)."""
    return f"""run_machines AS (
    SELECT r.run_id, r.runtime, r.hardware, any_value({class_sql()}) AS machine_class
    FROM rows r {join_sql()} GROUP BY ALL
),
classified AS (SELECT * FROM case_summary JOIN run_machines USING (run_id, runtime, hardware))"""
