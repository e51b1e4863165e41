"""The findings ledger (``matrices/findings.yaml``): upstream bugs the proving ground met, each kept by a guard.

A finding names its guard (a workload tagged ``guard`` whose own check fails exactly when the bug is present), a
one-line summary, the upstream issue where one exists, the release range it was measured in (``first_bad``
inclusive, ``first_fixed`` exclusive; dask and distributed move together, so a range is given for the package whose
release carries the bug), the standalone reproducer kept beside the guard and the runs that are its evidence.

``affecting(findings, packages)`` says which findings a lock falls inside; ``bless`` turns each into a ✗ line
unless the criteria accept it with a reason, ``nox -s sql`` has them as the ``findings`` table and the report lists
them per runtime. The file is read, and checked against the catalogue, by ``framework.config.load_findings``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from packaging.version import InvalidVersion, Version
from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from framework.in_runtime.errors import near_miss
from framework.models import Name, StrictModel

if TYPE_CHECKING:
    from framework.config import Catalog  # config reads the ledger and checks it with findings_problems

FINDINGS_FILE = Path("matrices") / "findings.yaml"
GUARD_TAG = "guard"


def _version(value: str) -> str:
    try:
        Version(value)
    except InvalidVersion:
        raise PydanticCustomError(
            "version", "is not a release version — write it as on the index, e.g. 2026.3.0", {"value": value}
        ) from None
    return value


class Finding(StrictModel):
    """One upstream bug, the release range it was measured in, and the guard that keeps it."""

    summary: str = Field(description="One line: what goes wrong, as a user would notice it.")
    package: str = Field(
        description="The package whose releases carry the bug: dask or distributed (they move together)."
    )
    first_bad: str = Field(description="The first release with the bug (measured with bisect), e.g. 2026.3.0.")
    first_fixed: str | None = Field(
        default=None, description="The first release without it again; omitted while no release fixes it."
    )
    last_good: str | None = Field(default=None, description="The release before first_bad that passed the guard.")
    upstream: str | None = Field(default=None, description="The upstream issue or pull request, where one exists.")
    note: str | None = Field(default=None, description="What else the range depends on, what was seen at its edges.")
    intermittent: bool = Field(
        default=False,
        description="The bug shows only some of the time inside its range (it hangs on memory layout, timing…): its"
        " guard may pass there, and a pass proves nothing.",
    )
    related: list[str] = Field(
        default_factory=list, description="Upstream links that bear on it (the change that introduced it, a neighbour)."
    )
    reproducer: str = Field(description="The standalone script beside the guard, e.g. workloads/reproducers/x.py.")
    evidence: list[str] = Field(default_factory=list, description="Run ids (bisect, matrix) that measured the range.")
    workarounds: list[str] = Field(
        default_factory=list, description="Workloads that route around the bug to measure other things."
    )

    @field_validator("first_bad", "first_fixed", "last_good")
    @classmethod
    def _release(cls, value: str | None) -> str | None:
        return None if value is None else _version(value)

    @field_validator("summary")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if not value.strip() or "\n" in value.strip():
            raise PydanticCustomError("summary", "must be one line saying what goes wrong", {})
        return value.strip()

    @field_validator("related")
    @classmethod
    def _links(cls, value: list[str]) -> list[str]:
        for link in value:
            cls._link(link)
        return value

    @field_validator("upstream")
    @classmethod
    def _link(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("https://"):
            raise PydanticCustomError("upstream", "is not a link — give the issue's https:// URL", {"value": value})
        return value

    @model_validator(mode="after")
    def _ordered(self) -> Finding:
        if self.first_fixed is not None and Version(self.first_fixed) <= Version(self.first_bad):
            raise PydanticCustomError(
                "range",
                "first_fixed {fixed} is not after first_bad {bad} — a fix comes after the bug",
                {"fixed": self.first_fixed, "bad": self.first_bad},
            )
        if self.last_good is not None and Version(self.last_good) >= Version(self.first_bad):
            raise PydanticCustomError(
                "range",
                "last_good {good} is not before first_bad {bad}",
                {"good": self.last_good, "bad": self.first_bad},
            )
        return self

    def affects(self, packages: dict[str, str]) -> str | None:
        """The installed version of ``package`` when it lies in [first_bad, first_fixed); None otherwise."""
        installed = packages.get(self.package)
        if not installed:
            return None
        try:
            version = Version(installed)
        except InvalidVersion:
            return None
        if version < Version(self.first_bad):
            return None
        if self.first_fixed is not None and version >= Version(self.first_fixed):
            return None
        return installed

    @property
    def range_text(self) -> str:
        fixed = f"fixed in {self.first_fixed}" if self.first_fixed else "no fix released yet"
        return f"{self.package} {self.first_bad} and later, {fixed}"


class FindingsFile(StrictModel):
    findings: dict[Name, Finding] = Field(
        default_factory=dict, description="Guard workload name → the finding it keeps."
    )


@dataclasses.dataclass(frozen=True)
class Affected:
    """A finding a lock falls inside: its guard, the finding, and the installed version that puts it there."""

    guard: str
    finding: Finding
    installed: str

    def line(self, runtime: str) -> str:
        link = f" — {self.finding.upstream}" if self.finding.upstream else ""
        return (
            f"{runtime} has {self.finding.package} {self.installed}: known issue {self.guard} — {self.finding.summary}"
            f" ({self.finding.range_text}){link}"
        )


def findings_problems(findings: dict[str, Finding], catalog: Catalog, root: Path, shown: str) -> list[str]:
    """Each guard a workload tagged ``guard``; each reproducer a file; each workaround a workload (``shown``: the
    ledger's path as messages show it)."""
    problems = []
    for guard, finding in findings.items():
        where = f"{shown}: findings.{guard}"
        workload = catalog.workloads.get(guard)
        if workload is None:
            problems.append(
                f"{where}: {near_miss(guard, catalog.workloads, 'workload')} — a finding is keyed by its guard:"
                " declare that workload (tag guard), or remove the finding"
            )
        elif GUARD_TAG not in workload.tags:
            problems.append(f"{where}: workload {guard!r} is not tagged {GUARD_TAG!r} — add the tag to its YAML entry")
        if not (root / finding.reproducer).is_file():
            problems.append(
                f"{where}.reproducer: {finding.reproducer!r} is not a file — write the standalone script there"
            )
        for index, name in enumerate(finding.workarounds):
            if name not in catalog.workloads:
                problems.append(
                    f"{where}.workarounds.{index}: {near_miss(name, catalog.workloads, 'workload')}"
                    " — name a workload that exists, or take it off the list"
                )
    return problems


def affecting(findings: dict[str, Finding], packages: dict[str, str]) -> list[Affected]:
    """The findings whose release range holds the installed packages, in the ledger's order."""
    found = []
    for guard, finding in findings.items():
        installed = finding.affects(packages)
        if installed is not None:
            found.append(Affected(guard, finding, installed))
    return found


@dataclasses.dataclass(frozen=True)
class GuardOutcomes:
    """A run's guard cases read against the ledger: which failures are known findings, which passes contradict it."""

    known: list[str]  # one line per guard case that did not pass inside its finding's range (expected)
    contradicted: list[str]  # one line per guard case that passed inside a range the ledger says always fails
    expected_rows: int = 0  # rows of the known lines: not counted against the run

    @property
    def lines(self) -> list[str]:
        out = []
        if self.known:
            out.append(
                f"known findings ({len(self.known)}): guards failing inside their matrices/findings.yaml range — "
                "expected, not counted in the exit code:"
            )
            out += [f"  {line}" for line in self.known]
        out += [f"! {line}" for line in self.contradicted]
        return out


def guard_outcomes(findings: dict[str, Finding], rows: Sequence[Mapping[str, Any]]) -> GuardOutcomes:
    """``rows``: a run's cases (``case_id``, ``workload``, ``runtime``, ``outcome``, ``dask_version``,
    ``distributed_version``). A guard that did not pass where its finding holds the packages is a known finding (the
    nightly says so instead of failing on it every night); one that did not pass outside the range, or any other
    case, stays a failure; a guard that passed inside a range that is not ``intermittent`` says the ledger may be
    stale (a fix released?) and counts as a failure until the ledger says so."""
    known: dict[str, None] = {}
    contradicted: dict[str, None] = {}
    expected = 0
    for row in rows:
        finding = findings.get(str(row["workload"]))
        if finding is None:
            continue
        packages = {name: str(row.get(f"{name}_version") or "") for name in ("dask", "distributed")}
        installed = finding.affects(packages)
        if installed is None:
            continue
        where = f"{row['case_id']} on {row['runtime']} ({finding.package} {installed})"
        if row["outcome"] != "passed":
            expected += 1
            known[f"{where}: known finding {row['workload']} — {finding.summary} ({finding.range_text})"] = None
        elif not finding.intermittent:
            contradicted[
                f"guard {where} passed although the ledger puts {finding.package} {installed} inside finding"
                f" {row['workload']} ({finding.range_text}) — fixed? measure the range again with nox -s bisect --"
                f" --metric=outcome --workload={row['workload']} and set first_fixed in matrices/findings.yaml"
            ] = None
    return GuardOutcomes(list(known), list(contradicted), expected)


FINDINGS_SCHEMA = pa.schema(
    [
        ("guard", pa.string()),
        ("summary", pa.string()),
        ("package", pa.string()),
        ("first_bad", pa.string()),
        ("first_fixed", pa.string()),
        ("last_good", pa.string()),
        ("upstream", pa.string()),
        ("note", pa.string()),
        ("intermittent", pa.bool_()),
        ("related", pa.list_(pa.string())),
        ("reproducer", pa.string()),
        ("evidence", pa.list_(pa.string())),
        ("workarounds", pa.list_(pa.string())),
    ]
)


def findings_table(findings: dict[str, Finding]) -> pa.Table:
    """The ledger as a table: ``nox -s sql -- "SELECT guard, first_bad, first_fixed FROM findings"``."""
    rows: list[dict[str, Any]] = [{"guard": guard, **finding.model_dump()} for guard, finding in findings.items()]
    return pa.Table.from_pylist(rows, schema=FINDINGS_SCHEMA)
