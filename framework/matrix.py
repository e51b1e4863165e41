"""Expand a matrix into concrete cases: runtimes × hardware × workload cases, with include/exclude. Pure."""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Sequence
from typing import Any

from framework.config import Catalog, selector_problem
from framework.in_runtime.errors import SelectionError, near_miss
from framework.models import HardwareProfile, Matrix, MatrixRule, Runtime, Workload

DEFAULT_MATRIX = "default"


@dataclasses.dataclass(frozen=True)
class Case:
    """One parameter set of one workload, at one data size."""

    workload: Workload
    case_id: str
    params: dict[str, Any]
    size: str | None


@dataclasses.dataclass(frozen=True)
class PlannedCase:
    runtime: Runtime
    hardware: HardwareProfile
    case: Case


@dataclasses.dataclass(frozen=True)
class Skipped:
    runtime: str
    hardware: str
    case_id: str
    reason: str


@dataclasses.dataclass(frozen=True)
class Selection:
    """What the command line narrows the matrix to; ``None`` keeps the matrix's own choice."""

    matrix: str = DEFAULT_MATRIX
    runtimes: Sequence[str] | None = None
    hardware: Sequence[str] | None = None
    workloads: Sequence[str] | None = None
    size: str | None = None
    repeat: int | None = None
    warmup: int | None = None  # unmeasured executions per case (``--warmup``): the workloads' own when None


@dataclasses.dataclass(frozen=True)
class Plan:
    cases: list[PlannedCase]
    skipped: list[Skipped]

    def groups(self) -> list[tuple[Runtime, HardwareProfile, list[Case]]]:
        """Cases grouped by runtime and hardware, in declaration order: one environment, one cluster each."""
        grouped: dict[tuple[str, str], tuple[Runtime, HardwareProfile, list[Case]]] = {}
        for planned in self.cases:
            key = (planned.runtime.name, planned.hardware.name)
            grouped.setdefault(key, (planned.runtime, planned.hardware, []))[2].append(planned.case)
        return list(grouped.values())


def case_id(workload: Workload, grid_values: dict[str, Any]) -> str:
    """``groupby[by=id,npartitions=8]`` — stable, readable and unique within a workload."""
    if not grid_values:
        return workload.name
    inner = ",".join(f"{key}={_compact(value)}" for key, value in grid_values.items())
    return f"{workload.name}[{inner}]"


def _compact(value: Any) -> str:
    if isinstance(value, str) and not _needs_quotes(value):
        return value
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _needs_quotes(text: str) -> bool:
    """A string shown bare must not read as another value: '1' vs 1, 'true' vs true, 'a,b=c' vs two keys."""
    if any(char in text for char in ',=[]"') or text != text.strip():
        return True
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def expand_workload(workload: Workload, size: str | None) -> tuple[list[Case], str | None]:
    """The cases of one workload at a size, or no cases and the reason.

    A workload without sizes runs its params as declared; with sizes and none asked for, its first size.
    """
    size_params: dict[str, Any] = {}
    chosen = None
    if workload.sizes:
        chosen = size if size is not None else next(iter(workload.sizes))
        if chosen not in workload.sizes:
            return [], f"declares no size {chosen!r} (it has {', '.join(workload.sizes)})"
        size_params = workload.sizes[chosen]
    keys = list(workload.grid)
    cases = []
    for values in itertools.product(*(workload.grid[key] for key in keys)):
        grid_values = dict(zip(keys, values))
        params = {**workload.params, **size_params, **grid_values}
        cases.append(Case(workload, case_id(workload, grid_values), params, chosen))
    return cases, None


def selector_matches(selector: str, workload: Workload) -> bool:
    if selector == "*":
        return True
    if selector.startswith("tag:"):
        return selector[4:] in workload.tags
    return selector == workload.name


def rule_matches(rule: MatrixRule, runtime: str, hardware: str, workload: Workload) -> bool:
    return (
        (rule.runtime is None or rule.runtime == runtime)
        and (rule.hardware is None or rule.hardware == hardware)
        and (rule.workload is None or selector_matches(rule.workload, workload))
    )


def hardware_problem(workload: Workload, hardware: HardwareProfile) -> str | None:
    """Why a profile is too small for a workload, or None. Unknown sizes (remote clusters) are not held against it."""
    needs = workload.requires
    if needs.backends is not None and hardware.backend not in needs.backends:
        return f"needs backend {' or '.join(needs.backends)}, profile is {hardware.backend}"
    workers = hardware.n_workers
    if workers is not None and workers < needs.min_workers:
        return f"needs ≥ {needs.min_workers} workers, profile has {workers}"
    threads = hardware.threads_per_worker
    if threads is not None and threads < needs.min_threads_per_worker:
        return f"needs ≥ {needs.min_threads_per_worker} threads per worker, profile has {threads}"
    memory = hardware.memory_limit_per_worker
    if needs.min_memory_per_worker is not None and memory is not None and memory < needs.min_memory_per_worker:
        return (
            f"needs ≥ {needs.min_memory_per_worker.human_readable(decimal=False)} per worker,"
            f" profile has {memory.human_readable(decimal=False)}"
        )
    return None


def _check_names(names: Sequence[str], known: dict[str, Any], what: str) -> None:
    for name in names:
        if name not in known:
            raise SelectionError(near_miss(name, known, what))


def build_plan(catalog: Catalog, selection: Selection) -> Plan:
    """Matrix (narrowed by the selection) → the cases to run and the ones skipped, with reasons."""
    if selection.matrix not in catalog.matrices:
        raise SelectionError(near_miss(selection.matrix, catalog.matrices, "matrix"))
    matrix: Matrix = catalog.matrices[selection.matrix]
    runtimes = list(selection.runtimes) if selection.runtimes else matrix.runtimes
    hardware = list(selection.hardware) if selection.hardware else matrix.hardware
    selectors = list(selection.workloads) if selection.workloads else matrix.workloads
    _check_names(runtimes, catalog.runtimes, "runtime")
    _check_names(hardware, catalog.hardware, "hardware profile")
    for selector in selectors:
        problem = selector_problem(selector, catalog)
        if problem:
            raise SelectionError(problem)
    size = selection.size if selection.size is not None else matrix.size
    if size is not None and not any(size in w.sizes for w in catalog.workloads.values()):
        sizes = {s for w in catalog.workloads.values() for s in w.sizes}
        raise SelectionError(near_miss(size, sizes, "size"))

    combinations, skipped = _combinations(catalog, matrix, selection, runtimes, hardware, selectors)
    planned: list[PlannedCase] = []
    for runtime_name, profile_name, workload in combinations:
        profile = catalog.hardware[profile_name]
        if selection.repeat is not None:
            workload = workload.model_copy(update={"repeats": selection.repeat})
        if selection.warmup is not None:
            workload = workload.model_copy(update={"warmup": selection.warmup})
        problem = hardware_problem(workload, profile)
        if problem:
            skipped.append(Skipped(runtime_name, profile_name, workload.name, problem))
            continue
        cases, reason = expand_workload(workload, size)
        if reason:
            skipped.append(Skipped(runtime_name, profile_name, workload.name, reason))
        planned.extend(PlannedCase(catalog.runtimes[runtime_name], profile, case) for case in cases)
    return Plan(planned, skipped)


def _combinations(
    catalog: Catalog,
    matrix: Matrix,
    selection: Selection,
    runtimes: list[str],
    hardware: list[str],
    selectors: list[str],
) -> tuple[list[tuple[str, str, Workload]], list[Skipped]]:
    """(runtime, hardware, workload) triples: the product minus exclude rules, plus include rules."""
    workloads = [w for w in catalog.workloads.values() if any(selector_matches(s, w) for s in selectors)]
    combinations: list[tuple[str, str, Workload]] = []
    skipped: list[Skipped] = []
    for runtime, profile, workload in itertools.product(runtimes, hardware, workloads):
        excluded_by = next((r for r in matrix.exclude if rule_matches(r, runtime, profile, workload)), None)
        if excluded_by is None:
            combinations.append((runtime, profile, workload))
        else:
            shown = excluded_by.model_dump(exclude_none=True)
            skipped.append(Skipped(runtime, profile, workload.name, f"excluded by matrix rule {shown}"))
    for include in matrix.include:
        assert include.runtime is not None and include.hardware is not None  # required by the model
        # A narrower command line keeps only the includes inside what it asked for.
        if (selection.runtimes and include.runtime not in runtimes) or (
            selection.hardware and include.hardware not in hardware
        ):
            continue
        for workload in catalog.workloads.values():
            if selection.workloads and not any(selector_matches(s, workload) for s in selectors):
                continue
            combination = (include.runtime, include.hardware, workload)
            if rule_matches(include, include.runtime, include.hardware, workload) and combination not in combinations:
                combinations.append(combination)
    # An include overrides an exclude: what runs is not also reported as skipped.
    included = {(runtime, profile, workload.name) for runtime, profile, workload in combinations}
    skipped = [s for s in skipped if (s.runtime, s.hardware, s.case_id) not in included]
    return combinations, skipped
