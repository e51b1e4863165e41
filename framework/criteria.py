"""Blessing criteria (``matrices/blessing.yaml``): what a runtime must show before it is called fit for production.

A named set declares the baseline it is judged against, where and at which size it runs, the workloads whose
every measured repeat must pass, the stability profile that must pass, the largest regression each metric may
show against the baseline, and how old reusable evidence may be. Here: the schema, loading (checked against the
catalogue) and the concrete cases a set selects; the evidence is found in :mod:`framework.evidence`, the decision
made in :mod:`framework.blessing`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    PlainSerializer,
    PositiveInt,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from framework.config import ROOT, Catalog, _show, load_catalog, load_file, load_findings, selector_problem
from framework.in_runtime.errors import ConfigError, SelectionError, did_you_mean, near_miss
from framework.matrix import Case, Selection, build_plan
from framework.metric_catalogue import METRIC_NAMES, METRICS
from framework.models import Name, Selector, StrictModel
from framework.stats import smallest_p

CRITERIA_FILE = Path("matrices") / "blessing.yaml"

# A name of the metric catalogue: the JSON Schema lists them; _known_metrics refuses others with the near miss.
MetricName = Annotated[str, WithJsonSchema({"type": "string", "enum": list(METRIC_NAMES)})]

_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")
_BYTES = r"(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|kB|MB|GB)"
_RATE = re.compile(rf"^\s*{_BYTES}\s*/\s*(repeat|min)\s*$")
_QUANTITY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|min|B|KiB|MiB|GiB|kB|MB|GB)\s*$")
_BYTE_UNITS = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "kB": 10**3, "MB": 10**6, "GB": 10**9}
_TIME_UNITS = {"ms": 0.001, "s": 1.0, "min": 60.0}
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(h|d|w)\s*$")
_AGE_UNITS = {"h": dt.timedelta(hours=1), "d": dt.timedelta(days=1), "w": dt.timedelta(weeks=1)}


def _parse_percent(value: object) -> object:
    # Only 'N%': a bare 10 could mean 10 % or 1000 %, and a gate must not guess.
    match = _PERCENT.match(value) if isinstance(value, str) else None
    if match is None:
        raise PydanticCustomError(
            "percent",
            "{value} is not a percentage — write e.g. '10%' (the largest allowed increase)",
            {"value": repr(value)},
        )
    return float(match.group(1)) / 100.0


def _parse_age(value: object) -> object:
    if isinstance(value, dt.timedelta):
        return value
    match = _AGE.match(value) if isinstance(value, str) else None
    if match is None:
        raise PydanticCustomError(
            "age", "{value} is not an age — write e.g. '7d', '36h' or '2w'", {"value": repr(value)}
        )
    return float(match.group(1)) * _AGE_UNITS[match.group(2)]


def _show_age(age: dt.timedelta) -> str:
    """``7d``, ``36h``: how the file spells it (and how the stored criteria show it)."""
    hours = age.total_seconds() / 3600
    if hours % 24 == 0:
        return f"{hours / 24:g}d"
    return f"{hours:g}h"


def _show_percent(fraction: float) -> str:
    return f"{100 * fraction:g}%"


def parse_rate(value: object, per: str) -> float:
    """'1MiB/repeat' → bytes per repeat; '2MiB/min' → bytes per minute (only the ``per`` the field takes)."""
    match = _RATE.match(value) if isinstance(value, str) else None
    if match is None or match.group(3) != per:
        raise PydanticCustomError(
            "rate",
            "{value} is not a rate of bytes per {per} — write e.g. '1MiB/{per}'",
            {"value": repr(value), "per": per},
        )
    return float(match.group(1)) * _BYTE_UNITS[match.group(2)]


def show_bytes(value: float) -> str:
    """``1MiB``, ``512KiB``, ``1.5GiB``: how the file spells an amount."""
    for unit in ("GiB", "MiB", "KiB"):
        if abs(value) >= _BYTE_UNITS[unit]:
            return f"{value / _BYTE_UNITS[unit]:g}{unit}"
    return f"{value:g}B"


def parse_quantity(text: str, unit: str) -> float:
    """'3s', '500ms', '2GiB' → the metric's unit (seconds or bytes); ValueError naming what to write."""
    match = _QUANTITY.match(text)
    units = _TIME_UNITS if unit == "s" else _BYTE_UNITS
    if match is None or match.group(2) not in units:
        example = "'3s' or '500ms'" if unit == "s" else "'2GiB' or '512MiB'"
        raise ValueError(f"{text!r} is not an amount in {'seconds' if unit == 's' else 'bytes'} — write e.g. {example}")
    return float(match.group(1)) * units[match.group(2)]


Percent = Annotated[
    float,
    BeforeValidator(_parse_percent),
    Field(ge=0.0, le=10.0),
    PlainSerializer(_show_percent, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*%\s*$", "examples": ["10%"]}),
]
Age = Annotated[
    dt.timedelta,
    BeforeValidator(_parse_age),
    PlainSerializer(_show_age, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*(h|d|w)\s*$", "examples": ["7d", "36h"]}),
]


Tier = Literal["inprocess", "process"]


def _every_tier() -> list[Tier]:
    return ["inprocess", "process"]


def _known_metric(key: object) -> None:
    if key not in METRIC_NAMES:
        hint = did_you_mean(str(key), METRIC_NAMES)
        raise PydanticCustomError(
            "metric",
            "unknown metric {key} — {hint}known: {known}",
            {"key": repr(key), "hint": hint, "known": ", ".join(METRIC_NAMES)},
        )


class StabilityCriterion(StrictModel):
    """The chaos fuzzer (``nox -s stability``) must pass on the runtime: every tier and every saved regression case."""

    profile: Literal["ci", "nightly"] = Field(default="ci", description="The hypothesis budget: ci or nightly.")
    tiers: list[Tier] = Field(default_factory=_every_tier, min_length=1)
    examples: PositiveInt | None = Field(
        default=None,
        description="Examples per tier, fewer than the profile's (a quicker gate). Evidence of a run with at least"
        " as many examples counts; omitted: only a run with the profile's full budget counts.",
    )
    steps: PositiveInt | None = Field(default=None, description="Steps per example (overrides the profile's).")

    @field_validator("tiers")
    @classmethod
    def _tiers_once(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise PydanticCustomError("tiers_twice", "a tier is listed twice — list each once", {})
        return value


class MetricsCriterion(StrictModel):
    """No metric may regress against the baseline by more than its allowance, on an interleaved A/B comparison."""

    workloads: list[Selector] = Field(min_length=1, description="Names, 'tag:TAG' or '*': the cases compared.")
    max_regression: dict[MetricName, Percent] = Field(
        min_length=1, description="Metric → the largest allowed increase over the baseline, e.g. peak_memory: '10%'."
    )
    repeat: int = Field(
        default=5,
        ge=2,
        description="Interleaved repeats per side; a stored comparison counts only with at least this many.",
    )
    until_decided: PositiveInt | None = Field(
        default=None,
        description="Sequential mode: add interleaved pairs until decided, at most this many per side.",
    )
    alpha: float = Field(default=0.01, gt=0.0, lt=0.5, description="Significance level of the rank test.")
    inconclusive: Literal["fail", "pass"] = Field(
        default="fail",
        description="When the comparison cannot rule out a regression beyond the allowance (too few repeats for"
        " the noise): fail (a gate needs evidence) or pass (the reason still says so).",
    )

    @property
    def allowances(self) -> dict[str, float]:
        """Metric → largest allowed relative increase (0.10 for '10%')."""
        return {str(name): allowed for name, allowed in self.max_regression.items()}

    @field_validator("max_regression", mode="before")
    @classmethod
    def _known_metrics(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for key in value:
                _known_metric(key)
        return value

    @model_validator(mode="after")
    def _can_detect(self) -> MetricsCriterion:
        # A gate that can never fail is a silent pass: at n ≤ 4 per side the rank test never reaches p < 0.01.
        smallest = smallest_p(self.repeat, self.repeat)
        if self.until_decided is None and smallest >= self.alpha:
            enough = next(n for n in range(self.repeat, 100) if smallest_p(n, n) < self.alpha)
            raise PydanticCustomError(
                "repeat_too_small",
                "repeat {repeat} can never show a regression at alpha {alpha} (the smallest p-value is {p})"
                " — use repeat ≥ {enough} or until_decided",
                {"repeat": self.repeat, "alpha": self.alpha, "p": f"{smallest:.3f}", "enough": enough},
            )
        if self.until_decided is not None and self.until_decided < self.repeat:
            raise PydanticCustomError(
                "budget",
                "until_decided {budget} is below repeat {repeat} — the budget is the most pairs a sequential"
                " comparison may add; use ≥ {repeat}",
                {"budget": self.until_decided, "repeat": self.repeat},
            )
        return self


Inconclusive = Literal["fail", "pass"]
Series = Literal["unmanaged", "worker_rss", "scheduler_rss"]  # workloads/soak.py's memory series


def _unmanaged() -> list[Series]:
    return ["unmanaged"]


class SoakCriterion(StrictModel):
    """Memory must not grow beyond a limit: each soak case's slope (``workloads/soak.py``), judged with its 95 %
    interval — within when the interval lies wholly below the limit, beyond when wholly above, else inconclusive."""

    workloads: list[Selector] = Field(
        default_factory=lambda: ["tag:leak"],
        min_length=1,
        description="Soak cases whose memory slope is judged: leak_* (per repeat) and idle_memory_growth (per minute);"
        " a selected case that records no slope (retire_keeps_data) is judged by its outcome.",
    )
    max_leak: str = Field(
        description="Largest growth per repeat of a leak_* case, e.g. '1MiB/repeat'.", examples=["1MiB/repeat"]
    )
    max_idle_growth: str = Field(
        description="Largest growth per minute of an idle cluster, e.g. '2MiB/min'.", examples=["2MiB/min"]
    )
    series: list[Series] = Field(
        default_factory=_unmanaged,
        min_length=1,
        description="Memory series judged: unmanaged (workers' unmanaged memory), worker_rss, scheduler_rss.",
    )
    inconclusive: Inconclusive = Field(
        default="fail",
        description="When the slope's interval straddles the limit: fail (a gate needs evidence) or pass.",
    )

    @field_validator("max_leak")
    @classmethod
    def _per_repeat(cls, value: str) -> str:
        parse_rate(value, "repeat")
        return value

    @field_validator("max_idle_growth")
    @classmethod
    def _per_minute(cls, value: str) -> str:
        parse_rate(value, "min")
        return value

    @property
    def leak_limit(self) -> float:
        """Bytes per repeat."""
        return parse_rate(self.max_leak, "repeat")

    @property
    def idle_limit(self) -> float:
        """Bytes per minute."""
        return parse_rate(self.max_idle_growth, "min")


class HealthCriterion(StrictModel):
    """Absolute limits on measured values of each case (event-loop stalls, GC pauses…): the median over the
    case's repeats, judged with its distribution-free interval against the limit."""

    workloads: list[Selector] = Field(min_length=1, description="Names, 'tag:TAG' or '*': the cases judged.")
    max: dict[MetricName, str] = Field(
        min_length=1,
        description="Metric → its largest allowed value in the metric's unit, e.g. scheduler_loop_max: 3s,"
        " scheduler_rss: 2GiB.",
    )
    inconclusive: Inconclusive = Field(
        default="fail",
        description="When the median's interval straddles the limit (with few repeats: some repeats beyond it):"
        " fail or pass.",
    )

    @field_validator("max", mode="before")
    @classmethod
    def _known_amounts(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for key, amount in value.items():
                _known_metric(key)
                try:
                    parse_quantity(str(amount), METRICS[key].unit)
                except ValueError as error:
                    raise PydanticCustomError("amount", "{key}: {error}", {"key": key, "error": str(error)}) from None
        return value

    @property
    def limits(self) -> dict[str, float]:
        """Metric → its limit in the metric's unit (seconds or bytes)."""
        return {str(name): parse_quantity(text, METRICS[name].unit) for name, text in self.max.items()}


class Criteria(StrictModel):
    """One named set of blessing criteria."""

    description: str = ""
    baseline: Name = Field(description="Runtime the candidate is judged against (--baseline overrides it).")
    hardware: Name = Field(default="local", description="Hardware profile everything runs on (--hardware).")
    size: Name | None = Field(default=None, description="Data size; omitted: each workload's first.")
    must_pass: list[Selector] = Field(
        default_factory=list, description="Workloads (names, 'tag:TAG', '*') whose every measured repeat must pass."
    )
    stability: StabilityCriterion | None = None
    metrics: MetricsCriterion | None = None
    soak: SoakCriterion | None = None
    health: HealthCriterion | None = None
    accept_findings: dict[Name, str] = Field(
        default_factory=dict,
        description="Known issues (guards of matrices/findings.yaml) that may not block a blessing → why (a sentence).",
    )
    shared_failures: Literal["pass", "fail"] = Field(
        default="pass",
        description="A failure (stability batch or must-pass case) whose signature the baseline's own results show"
        " too is reported as shared, not a regression: pass (it does not hold the candidate back) or fail.",
    )
    baseline_replays: int = Field(
        default=0,
        ge=0,
        le=20,
        description="Replays bless runs on the baseline of each candidate stability failure whose signature the"
        " baseline's stored results do not show (0: none — the check then says it was not checked, and how to).",
    )
    max_age: Age = Field(
        default=dt.timedelta(days=7),
        json_schema_extra={"default": "7d"},
        description="Evidence older than this is produced again, e.g. '7d' or '36h'.",
    )

    @model_validator(mode="after")
    def _checks_something(self) -> Criteria:
        if not self.must_pass and not any((self.stability, self.metrics, self.soak, self.health)):
            raise PydanticCustomError(
                "no_criterion",
                "declares nothing to check — add must_pass, stability, metrics, soak or health (a runtime is not"
                " blessed on no evidence)",
                {},
            )
        return self


class BlessingFile(StrictModel):
    criteria: dict[Name, Criteria] = Field(min_length=1)


def criteria_problems(criteria: dict[str, Criteria], catalog: Catalog, path: Path) -> list[str]:
    """Names the criteria refer to that the catalogue does not declare: one line each, with the near miss."""
    problems = []
    known_findings = load_findings(root=path.parent.parent)
    sizes = {size for workload in catalog.workloads.values() for size in workload.sizes}
    for name, spec in criteria.items():
        where = f"{_show(path)}: criteria.{name}"
        if spec.baseline not in catalog.runtimes:
            problems.append(f"{where}.baseline: {near_miss(spec.baseline, catalog.runtimes, 'runtime')}")
        if spec.hardware not in catalog.hardware:
            problems.append(f"{where}.hardware: {near_miss(spec.hardware, catalog.hardware, 'hardware profile')}")
        if spec.size is not None and spec.size not in sizes:
            problems.append(f"{where}.size: {near_miss(spec.size, sizes, 'size')}")
        for guard, reason in spec.accept_findings.items():
            if guard not in known_findings:
                problems.append(f"{where}.accept_findings.{guard}: {near_miss(guard, known_findings, 'finding')}")
            elif not reason.strip():
                problems.append(f"{where}.accept_findings.{guard}: no reason — say in a sentence why it may be blessed")
        fields = [("must_pass", spec.must_pass), ("metrics.workloads", spec.metrics.workloads if spec.metrics else [])]
        fields += [("soak.workloads", spec.soak.workloads if spec.soak else [])]
        fields += [("health.workloads", spec.health.workloads if spec.health else [])]
        for field, selectors in fields:
            for index, selector in enumerate(selectors):
                problem = selector_problem(selector, catalog)
                if problem:
                    problems.append(f"{where}.{field}.{index}: {problem}")
    return problems


def load_all_criteria(catalog: Catalog, path: Path | None = None) -> dict[str, Criteria]:
    """Every set in the file, checked against the catalogue (a broken ``release`` set fails a ``default`` run too)."""
    path = path or ROOT / CRITERIA_FILE
    criteria = load_file(path, BlessingFile).criteria
    problems = criteria_problems(criteria, catalog, path)
    if problems:
        raise ConfigError("\n".join(problems))
    return criteria


def load_criteria(catalog: Catalog, name: str, path: Path | None = None) -> Criteria:
    """One named set; an unknown name is a one-line error with the near miss."""
    path = path or ROOT / CRITERIA_FILE
    criteria = load_all_criteria(catalog, path)
    if name not in criteria:
        raise SelectionError(
            f"--criteria={name}: {near_miss(name, criteria, 'criteria set')} — declare it in {_show(path)}"
        )
    return criteria[name]


@dataclasses.dataclass(frozen=True)
class Scope:
    """The concrete cases a criteria set names on one hardware profile (expanded as the matrix expands them)."""

    must_pass: list[Case]
    compared: list[Case]
    # (criterion, selector) → why none of its cases can run here: a failed check, not a silent pass
    unrunnable: dict[tuple[str, str], str]
    skipped: tuple[str, ...]  # single cases the hardware cannot run, with the reason
    soak: list[Case] = dataclasses.field(default_factory=list)  # whose memory slopes are judged
    health: list[Case] = dataclasses.field(default_factory=list)  # whose measured values are held to limits

    @property
    def measured(self) -> list[Case]:
        """Cases whose measured rows are evidence beyond the comparison: must-pass, soak and health cases, once."""
        cases = {case.case_id: case for case in [*self.must_pass, *self.soak, *self.health]}
        return list(cases.values())


# criterion of a selector → the field it is declared in (for a reason that names it)
SELECTOR_FIELDS = {
    "must_pass": "must_pass",
    "metric": "metrics.workloads",
    "soak": "soak.workloads",
    "health": "health.workloads",
}


def scope(catalog: Catalog, criteria: Criteria, runtime: str, hardware: str) -> Scope:
    """The criteria's selectors → concrete cases on ``hardware`` at their size (the matrix's own expansion)."""
    chosen: dict[str, dict[str, Case]] = {criterion: {} for criterion in SELECTOR_FIELDS}
    unrunnable: dict[tuple[str, str], str] = {}
    skipped: list[str] = []
    selectors = [("must_pass", selector) for selector in criteria.must_pass]
    selectors += [("metric", selector) for selector in (criteria.metrics.workloads if criteria.metrics else [])]
    selectors += [("soak", selector) for selector in (criteria.soak.workloads if criteria.soak else [])]
    selectors += [("health", selector) for selector in (criteria.health.workloads if criteria.health else [])]
    for criterion, selector in selectors:
        selection = Selection(runtimes=[runtime], hardware=[hardware], workloads=[selector], size=criteria.size)
        plan = build_plan(catalog, selection)
        if not plan.cases:
            unrunnable[(criterion, selector)] = "; ".join(f"{s.case_id}: {s.reason}" for s in plan.skipped)
        # Guards are judged through the findings ledger (bless's known_issue checks, which criteria may accept),
        # not as cases: a guard fails wherever its known bug is, by design, and its timings measure nothing.
        judged = [planned for planned in plan.cases if "guard" not in planned.case.workload.tags]
        chosen[criterion].update((planned.case.case_id, planned.case) for planned in judged)
        skipped += [f"{s.case_id} on {s.hardware}: {s.reason}" for s in plan.skipped]
    return Scope(
        list(chosen["must_pass"].values()),
        list(chosen["metric"].values()),
        unrunnable,
        tuple(dict.fromkeys(skipped)),
        list(chosen["soak"].values()),
        list(chosen["health"].values()),
    )


def load(root: Path, name: str) -> tuple[Catalog, Criteria]:
    """The catalogue under ``root`` and its criteria set ``name``."""
    catalog = load_catalog(root)
    return catalog, load_criteria(catalog, name, root / CRITERIA_FILE)
