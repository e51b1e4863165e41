"""Accepted changes (``matrices/accepted.yaml``): changes in a metric's history that a person looked at and accepted.

``nox -s regressions`` reports a change matching an entry as ``accepted`` rather than open, so it never fails
CI again. Schema and loading only; matching a finding is the entry's :meth:`AcceptedChange.matches`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from framework.config import ROOT, load_file
from framework.in_runtime.errors import near_miss
from framework.metric_catalogue import METRIC_NAMES, METRICS
from framework.models import StrictModel

if TYPE_CHECKING:
    from framework.history import Finding

ACCEPTED_FILE = ROOT / "matrices" / "accepted.yaml"


class AcceptedChange(StrictModel):
    """A change a person looked at and accepted: reported as ``accepted``, never again as open."""

    metric: str = Field(description=f"{', '.join(METRIC_NAMES[:-1])} or {METRIC_NAMES[-1]}.")
    case_id: str | None = Field(default=None, description="The case, e.g. 'groupby_agg[by=id]'.")
    workload: str | None = Field(default=None, description="Every case of this workload (instead of case_id).")
    hardware: str | None = Field(default=None, description="Only on this hardware profile (default: any).")
    runtime: str | None = Field(default=None, description="Only in this runtime's series (default: any).")
    run_id: str | None = Field(default=None, description="The first run after the change.")
    version: str | None = Field(default=None, description="The version of 'package' the change came with.")
    package: str = Field(default="dask", description="The package of 'version'.")
    reason: str = Field(description="Why the change is fine: a sentence and a link.")
    accepted_by: str = Field(description="Who accepted it.")

    @field_validator("reason", "accepted_by")
    @classmethod
    def _said(cls, value: str) -> str:
        if not value.strip():
            raise PydanticCustomError("empty", "is empty — an accepted change says why, and who accepted it", {})
        return value

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        if value not in METRICS:
            raise PydanticCustomError("metric", "{message}", {"message": near_miss(value, METRICS, "metric")})
        return value

    @model_validator(mode="after")
    def _names_a_change(self) -> AcceptedChange:
        if self.case_id is None and self.workload is None:
            raise PydanticCustomError("series", "names no series — add case_id or workload", {})
        if (self.run_id is None) == (self.version is None):
            message = "names the change by neither or both of run_id and version — give exactly one"
            raise PydanticCustomError("change", message, {})
        return self

    def matches(self, finding: Finding) -> bool:
        series, before, after = finding.series, finding.before, finding.after
        if self.metric != finding.metric or self.hardware not in (None, series.hardware):
            return False
        if self.runtime not in (None, series.runtime, after.runtime):
            return False
        if self.case_id not in (None, series.case_id) or self.workload not in (None, series.workload):
            return False
        if self.run_id is not None:
            return self.run_id == after.run_id
        package = normalise_package(self.package)
        return after.versions.get(package) == self.version != before.versions.get(package)


class AcceptedFile(StrictModel):
    accepted: list[AcceptedChange] = Field(default_factory=list)


def load_accepted(path: Path = ACCEPTED_FILE) -> list[AcceptedChange]:
    """The accepted changes (none when the file does not exist); mistakes raise ConfigError naming the field."""
    return list(load_file(path, AcceptedFile).accepted) if path.exists() else []


def normalise_package(package: str) -> str:
    """``Typing_Extensions`` → ``typing-extensions``: how package names are compared (PEP 503, without the regex)."""
    return package.lower().replace("_", "-").replace(".", "-")
