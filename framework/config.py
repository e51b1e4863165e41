"""The one place that reads YAML files into models. Every error names the file, the field, the value and the fix."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from framework.errors import ConfigError, near_miss
from framework.models import (
    FUNCTION_PATTERN,
    NAME_PATTERN,
    PYTHON_PATTERN,
    SELECTOR_PATTERN,
    TAG_PATTERN,
    HardwareFile,
    HardwareProfile,
    MatricesFile,
    Matrix,
    Runtime,
    RuntimesFile,
    Workload,
    WorkloadFile,
)

ROOT = Path(__file__).resolve().parent.parent

_FIXES = {
    "missing": "add it",
    "string_type": "quote it as a string",
    "int_type": "use a whole number",
    "int_parsing": "use a whole number",
    "float_parsing": "use a number",
    "bool_parsing": "use true or false",
    "byte_size": "use e.g. '4GiB' or '512MB'",
    "byte_size_unit": "use a unit such as B, KiB, MiB, GiB, MB or GB",
    "greater_than": "use a larger value",
    "greater_than_equal": "use a larger value",
    "too_short": "give at least one entry",
    "literal_error": "use one of the listed values",
    "dict_type": "write a mapping (key: value)",
    "model_type": "write a mapping (key: value)",
    "model_attributes_type": "write a mapping (key: value)",
    "list_type": "write a list ([a, b] or '- a' lines)",
    "union_tag_invalid": "set backend to local, address or coiled",
    "union_tag_not_found": "add 'backend: local', 'backend: address' or 'backend: coiled'",
    "date_from_datetime_parsing": "use a date like 2025-01-15",
    "date_parsing": "use a date like 2025-01-15",
}

# string_pattern_mismatch: the fix depends on which kind of string it is.
_PATTERN_FIXES = {
    NAME_PATTERN: "use letters, digits, '_', '.', '+' and '-'",
    TAG_PATTERN: "use lower-case letters, digits, '_' and '-'",
    FUNCTION_PATTERN: "use 'workloads.module:function', e.g. 'workloads.dataframe:groupby_agg'",
    SELECTOR_PATTERN: "use a workload name, 'tag:TAG' or '*'",
    PYTHON_PATTERN: "use a Python version such as '3.11'",
}

M = TypeVar("M", bound=BaseModel)


class _UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that refuses duplicate keys instead of silently keeping the last one."""


def _mapping_without_duplicates(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first on line {seen[key] + 1})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def read_yaml(path: Path) -> Any:
    """Parse one YAML file; syntax errors become one ConfigError line with the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{_show(path)}: cannot read ({error.strerror}) — check the path") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "?"
        problem = getattr(error, "problem", None) or str(error)
        context, context_mark = getattr(error, "context", None), getattr(error, "context_mark", None)
        if context and context_mark is not None and mark is not None and context_mark.line != mark.line:
            # An unclosed bracket or quote is reported where the file ends; say where it was opened.
            problem += f" ({context} started on line {context_mark.line + 1})"
        raise ConfigError(f"{_show(path)}: {where}: invalid YAML: {problem} — fix the syntax there") from None


def _show(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def format_validation_error(path: Path, error: ValidationError, data: Any = None) -> str:
    """One line per problem: ``file: field.path: message (got value) — fix``. ``data`` is what was validated."""
    lines = []
    for problem in error.errors(include_url=False):
        location = _field_path(problem["loc"], _UNKNOWN if data is None else data)
        message = problem["msg"]
        if problem["type"] in ("value_error", "assertion_error"):
            message = message.removeprefix("Value error, ")
        line = f"{_show(path)}: {location or '(top level)'}: {message}"
        if problem["type"] not in ("missing", "unknown_field") and "input" in problem:
            line += f" (got {_short(problem['input'])})"
        fix = _FIXES.get(problem["type"])
        if problem["type"] == "string_pattern_mismatch":
            fix = _PATTERN_FIXES.get(str(problem.get("ctx", {}).get("pattern")), "use the documented form")
        if fix and "—" not in message:
            line += f" — {fix}"
        lines.append(line)
    return "\n".join(lines)


_UNKNOWN = object()
_BACKENDS = ("local", "address", "coiled")


def _field_path(loc: tuple[int | str, ...], data: Any) -> str:
    """The location as the file spells it, e.g. ``hardware.local.n_workers``.

    A discriminated union adds its branch tag after the profile's key (``hardware.local.local.n_workers``). Only
    that tag is dropped — found by walking the data — so a profile or a field named 'local' or 'address' stays.
    """
    parts = []
    node, branch_dropped = data, False
    for part in loc:
        if isinstance(part, str) and part.startswith("function-"):
            continue  # a validator's name, not a field
        at_branch = node is _UNKNOWN or (isinstance(node, dict) and node.get("backend") == part)
        if part in _BACKENDS and at_branch and not branch_dropped:
            branch_dropped = True
            continue
        parts.append(str(part))
        branch_dropped = False
        node = _child(node, part)
    return ".".join(parts)


def _child(node: Any, part: int | str) -> Any:
    if isinstance(node, dict) and part in node:
        return node[part]
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return _UNKNOWN


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def load_file(path: Path, model: type[M]) -> M:
    data = read_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{_show(path)}: (top level): expected a mapping, got {type(data).__name__} — see README")
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise ConfigError(format_validation_error(path, error, data)) from None


@dataclasses.dataclass(frozen=True)
class Catalog:
    """Everything declared: the input of matrix expansion."""

    runtimes: dict[str, Runtime]
    hardware: dict[str, HardwareProfile]
    workloads: dict[str, Workload]
    matrices: dict[str, Matrix]
    workload_files: dict[str, Path]

    def runtime(self, name: str) -> Runtime:
        if name not in self.runtimes:
            raise ConfigError(near_miss(name, self.runtimes, "runtime"))
        return self.runtimes[name]

    def hardware_profile(self, name: str) -> HardwareProfile:
        if name not in self.hardware:
            raise ConfigError(near_miss(name, self.hardware, "hardware profile"))
        return self.hardware[name]

    @property
    def tags(self) -> set[str]:
        return {tag for workload in self.workloads.values() for tag in workload.tags}


def load_catalog(root: Path = ROOT) -> Catalog:
    """Read ``matrices/*.yaml`` and ``workloads/*.yaml`` under ``root``, validate, and cross-check names."""
    matrices_dir = root / "matrices"
    runtimes = load_file(matrices_dir / "runtimes.yaml", RuntimesFile).runtimes
    hardware = load_file(matrices_dir / "hardware.yaml", HardwareFile).hardware
    matrices_path = matrices_dir / "matrix.yaml"
    matrices = load_file(matrices_path, MatricesFile).matrices if matrices_path.exists() else {}

    workloads: dict[str, Workload] = {}
    workload_files: dict[str, Path] = {}
    for path in sorted((root / "workloads").glob("*.yaml")):
        for name, workload in load_file(path, WorkloadFile).workloads.items():
            if name in workloads:
                raise ConfigError(
                    f"{_show(path)}: workloads.{name}: already declared in {_show(workload_files[name])}"
                    " — rename one of them"
                )
            workloads[name] = workload
            workload_files[name] = path

    catalog = Catalog(runtimes, hardware, workloads, matrices, workload_files)
    _check_references(catalog, matrices_path)
    return catalog


def _check_references(catalog: Catalog, matrices_path: Path) -> None:
    problems = []
    for matrix in catalog.matrices.values():
        where = f"{_show(matrices_path)}: matrices.{matrix.name}"
        for index, name in enumerate(matrix.runtimes):
            if name not in catalog.runtimes:
                problems.append(f"{where}.runtimes.{index}: {near_miss(name, catalog.runtimes, 'runtime')}")
        for index, name in enumerate(matrix.hardware):
            if name not in catalog.hardware:
                problems.append(f"{where}.hardware.{index}: {near_miss(name, catalog.hardware, 'hardware profile')}")
        for index, selector in enumerate(matrix.workloads):
            problem = selector_problem(selector, catalog)
            if problem:
                problems.append(f"{where}.workloads.{index}: {problem}")
        for kind, rules in (("exclude", matrix.exclude), ("include", matrix.include)):
            for index, rule in enumerate(rules):
                if rule.runtime is not None and rule.runtime not in catalog.runtimes:
                    problems.append(
                        f"{where}.{kind}.{index}.runtime: {near_miss(rule.runtime, catalog.runtimes, 'runtime')}"
                    )
                if rule.hardware is not None and rule.hardware not in catalog.hardware:
                    problems.append(
                        f"{where}.{kind}.{index}.hardware: "
                        f"{near_miss(rule.hardware, catalog.hardware, 'hardware profile')}"
                    )
                if rule.workload is not None:
                    problem = selector_problem(rule.workload, catalog)
                    if problem:
                        problems.append(f"{where}.{kind}.{index}.workload: {problem}")
    if problems:
        raise ConfigError("\n".join(problems))


def selector_problem(selector: str, catalog: Catalog) -> str | None:
    """Why a workload selector ('name', 'tag:TAG' or '*') matches nothing, or None."""
    if selector == "*":
        return None
    if selector.startswith("tag:"):
        tag = selector[4:]
        return None if tag in catalog.tags else near_miss(tag, catalog.tags, "tag")
    return None if selector in catalog.workloads else near_miss(selector, catalog.workloads, "workload")
