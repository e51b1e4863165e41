"""The one place that reads YAML files into models. Every error names the file, the field, the value and the fix."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from framework.in_runtime.backends import BACKEND_NAMES
from framework.in_runtime.errors import ConfigError, closest, near_miss
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
from framework.signatures import SignatureError, read_signature

if TYPE_CHECKING:
    from framework.findings import Finding

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RESULTS = ROOT / "results"  # the results directory of every command without --results

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
    "less_than": "use a smaller value",
    "less_than_equal": "use a smaller value",
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
    "date_type": "use a date like 2025-01-15",
    "float_type": "use a number",
    "bool_type": "use true or false",
    "int_from_float": "use a whole number",
    "string_too_long": "shorten it",
    "string_too_short": "write some text",
    "too_long": "give fewer entries",
}
# Any other kind of problem: where the fix is spelt out.
_SCHEMA_FIX = "see matrices/schemas/ for what the field takes"

# string_pattern_mismatch: the fix depends on which kind of string it is.
_PATTERN_FIXES = {
    NAME_PATTERN: "use letters, digits, '_', '.', '+' and '-'",
    TAG_PATTERN: "use lower-case letters, digits, '_' and '-'",
    FUNCTION_PATTERN: "use 'workloads.module:function', e.g. 'workloads.dataframes:groupby_agg'",
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
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, f"a key is a {type(key).__name__} (keys are plain names)", key_node.start_mark
            ) from None
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first on line {seen[key] + 1})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


MAX_NESTING = 32  # levels of mappings and lists: no config needs more, and deeper ones exhaust the parser's stack


def read_yaml(path: Path) -> Any:
    """Parse one YAML file; syntax errors become one ConfigError line with the file and line."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ConfigError(f"{_show(path)}: cannot read ({error.strerror}) — check the path") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise ConfigError(
            f"{_show(path)}: line {line}: not UTF-8 text ({error.reason}) — save the file as UTF-8"
        ) from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.reader.ReaderError as error:
        line = text[: error.position].count("\n") + 1
        character = chr(error.character) if isinstance(error.character, int) else error.character
        raise ConfigError(
            f"{_show(path)}: line {line}: invalid YAML: character {character!r} is not allowed"
            " — remove it (or write it as an escape in a double-quoted string)"
        ) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "(top level)"
        problem = getattr(error, "problem", None) or str(error)
        context, context_mark = getattr(error, "context", None), getattr(error, "context_mark", None)
        if context and context_mark is not None and mark is not None and context_mark.line != mark.line:
            # An unclosed bracket or quote is reported where the file ends; say where it was opened.
            problem += f" ({context} started on line {context_mark.line + 1})"
        raise ConfigError(
            f"{_show(path)}: {where}: invalid YAML: {_one_line(problem)} — fix the syntax there"
        ) from None
    except RecursionError:
        raise ConfigError(
            f"{_show(path)}: (top level): nested too deeply to read — flatten it (at most {MAX_NESTING} levels)"
        ) from None
    except ValueError as error:  # a value YAML cannot build: an integer of over 4300 digits, a date like 2025-02-30
        if "digits" in str(error):
            problem = "a number has more than 4300 digits — write a smaller one"
        else:
            problem = (
                f"a value cannot be read ({_one_line(str(error))[:100]}) — fix it, e.g. a date that does not exist"
            )
        raise ConfigError(f"{_show(path)}: (top level): {problem}") from None
    problem = _nesting_problem(data)
    if problem:
        raise ConfigError(f"{_show(path)}: {problem}")
    return data


def _nesting_problem(data: Any) -> str | None:
    """Refuse a value that contains itself (an alias inside its own anchor) or nests deeper than MAX_NESTING."""
    pending: list[tuple[Any, tuple[str, ...], frozenset[int]]] = [(data, (), frozenset())]
    while pending:
        node, path, ancestors = pending.pop()
        if not isinstance(node, (dict, list)):
            continue
        where = _one_line(".".join(path[:6]) + (".…" if len(path) > 6 else "")) or "(top level)"
        if id(node) in ancestors:
            return f"{where}: contains itself (a YAML alias inside its own anchor) — write the value out"
        if len(path) >= MAX_NESTING:
            return f"{where}: nested more than {MAX_NESTING} levels deep — flatten it"
        items = node.items() if isinstance(node, dict) else enumerate(node)
        inner = ancestors | {id(node)}
        pending.extend((value, (*path, str(key)), inner) for key, value in items)
    return None


_LINE_BREAKS = str.maketrans({char: repr(char)[1:-1] for char in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"})


def _one_line(text: str) -> str:
    """``text`` with every character that would break the line (keys may hold them) shown escaped."""
    return text.translate(_LINE_BREAKS)


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
        # A parameter's problem shows its value already; the input would be the whole params or sizes mapping.
        if problem["type"] not in ("missing", "unknown_field", "quantity", "scaled_parameter") and "input" in problem:
            line += f" (got {_short(problem['input'])})"
        fix = _FIXES.get(problem["type"])
        if problem["type"] == "string_pattern_mismatch":
            fix = _PATTERN_FIXES.get(str(problem.get("ctx", {}).get("pattern")), "use the documented form")
        if "—" not in message:
            line += f" — {fix or _SCHEMA_FIX}"
        lines.append(_one_line(line))
    return "\n".join(lines)


_UNKNOWN = object()


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
        if part in BACKEND_NAMES and at_branch and not branch_dropped:
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
    _check_parameters(catalog, root)
    load_findings(catalog, root)  # a ledger naming a guard that is not there fails every command, like any file
    return catalog


def load_findings(catalog: Catalog | None = None, root: Path = ROOT) -> dict[str, Finding]:
    """The findings ledger (``matrices/findings.yaml``, empty when there is none), checked against the catalogue and
    the reproducers on disk."""
    from framework.findings import FINDINGS_FILE, FindingsFile, findings_problems  # here: it needs pyarrow

    path = root / FINDINGS_FILE
    if not path.exists():
        return {}
    findings = load_file(path, FindingsFile).findings
    if catalog is not None:
        problems = findings_problems(findings, catalog, root, _show(path))
        if problems:
            raise ConfigError("\n".join(problems))
    return findings


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
        # A name without a near miss: the known names are the fix.
        raise ConfigError("\n".join(p if " — " in p else p.replace(" known: ", " — known: ", 1) for p in problems))


def _check_parameters(catalog: Catalog, root: Path) -> None:
    """Each workload's params, grid and sizes against its function's signature, read from source (not imported).

    Functions are looked up in ``root/workloads/`` first, then in this project's (a copy of the YAML files elsewhere
    still runs the project's functions).
    """
    package_dirs = list(dict.fromkeys([root / "workloads", ROOT / "workloads"]))
    problems = []
    for name, workload in catalog.workloads.items():
        where = f"{_show(catalog.workload_files[name])}: workloads.{name}"
        problems += [_one_line(line) for line in _parameter_problems(workload, where, package_dirs)]
    if problems:
        raise ConfigError("\n".join(problems))


def _parameter_problems(workload: Workload, where: str, package_dirs: list[Path]) -> list[str]:
    """Unknown keywords (with the near miss) and missing ones, one line each; ``where`` is ``file: workloads.NAME``."""
    problems = []
    try:
        signature = read_signature(workload.function, package_dirs)
    except SignatureError as error:
        return [f"{where}.function: {error}"]
    # What the fixture yields is passed too; None: it cannot be read, so nothing can be called missing.
    from_fixture: frozenset[str] | None = frozenset()
    if workload.fixture:
        try:
            fixture = read_signature(workload.fixture, package_dirs)
        except SignatureError as error:
            problems.append(f"{where}.fixture: {error}")
            fixture = None
        from_fixture = fixture.yields if fixture else None
        if fixture and (fixture.required or fixture.positional_only):
            needs = ", ".join(sorted(fixture.required | fixture.positional_only))
            problems.append(
                f"{where}.fixture: {workload.fixture} needs {needs} — a fixture is called without arguments;"
                " give them defaults"
            )
    if signature is None:
        return problems  # decorated or assigned: its source does not say what it accepts
    function, accepted = workload.function, signature.parameters
    listed = f"parameters: {', '.join(accepted) or '(none)'}"
    if not signature.any_keyword:
        declared = [(f"params.{key}", key) for key in workload.params]
        declared += [(f"grid.{key}", key) for key in workload.grid]
        declared += [(f"sizes.{size}.{key}", key) for size, values in workload.sizes.items() for key in values]
        for field, key in declared:
            if key not in accepted:
                same_but_case = [name for name in accepted if name.lower() == key.lower()]
                close = same_but_case[0] if same_but_case else closest(key, accepted)
                hint = f"did you mean {close!r}? " if close else "remove it or add it to the function; "
                problems.append(f"{where}.{field}: unknown parameter {key!r} of {function} — {hint}{listed}")
        yielded = sorted((from_fixture or frozenset()) - set(accepted))
        if yielded:
            problems.append(
                f"{where}.fixture: {workload.fixture} yields {', '.join(map(repr, yielded))}, which {function}"
                f" does not take — add {'it' if len(yielded) == 1 else 'them'} to the function's parameters"
            )
    if signature.positional_only:
        names = ", ".join(map(repr, sorted(signature.positional_only)))
        problems.append(
            f"{where}.function: {function} takes {names} positional-only, and cases are called with keywords"
            " — drop the '/' from its signature"
        )
    if from_fixture is None:
        return problems
    given = set(workload.params) | set(workload.grid) | from_fixture
    sizes: dict[str, dict[str, Any]] = workload.sizes or {"": {}}
    for key in sorted(signature.required - given):
        lacking = [size for size, values in sizes.items() if key not in values]
        if len(lacking) == len(sizes):
            also = "grid or every size" if workload.sizes else "or grid"
            problems.append(
                f"{where}.params: missing parameter {key!r} of {function} (it has no default) — add {key} to params"
                f"{', ' if workload.sizes else ' '}{also}"
            )
            continue
        giving = ", ".join(size for size in sizes if size not in lacking)
        for size in lacking:
            problems.append(
                f"{where}.sizes.{size}: missing parameter {key!r} of {function} (it has no default; {giving}"
                f" give{'s' if ',' not in giving else ''} it) — add {key} to sizes.{size} or to params"
            )
    return problems


def selector_problem(selector: str, catalog: Catalog) -> str | None:
    """Why a workload selector ('name', 'tag:TAG' or '*') matches nothing, or None."""
    if selector == "*":
        return None
    if selector.startswith("tag:"):
        tag = selector[4:]
        return None if tag in catalog.tags else near_miss(tag, catalog.tags, "tag")
    return None if selector in catalog.workloads else near_miss(selector, catalog.workloads, "workload")
