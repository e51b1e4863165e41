"""What a workload function accepts, read from its source with ``ast`` — never imported: the controller has no Dask.

``workloads.dataframes:groupby_agg`` is the ``def groupby_agg(...)`` of ``workloads/dataframes.py``: its keyword
parameters, which of them have no default, whether it takes ``**kwargs``, and — for a fixture — the keys of the
mappings it yields. Standard library only.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
from collections.abc import Sequence
from pathlib import Path

from framework.in_runtime.errors import closest

PACKAGE = "workloads"
_MAX_REEXPORTS = 5  # ``from workloads.a import f`` chains followed before giving up


class SignatureError(Exception):
    """The function a path names cannot be found; the message says what is missing and the fix."""


@dataclasses.dataclass(frozen=True)
class Signature:
    parameters: tuple[str, ...]  # passable by keyword, in order
    required: frozenset[str]  # keyword parameters without a default
    positional_only: frozenset[str]  # without a default: the runner's ``function(**params)`` cannot fill them
    any_keyword: bool  # ``**kwargs``
    yields: frozenset[str] | None  # keys of the yielded mappings; None if not literal (or nothing is yielded)


def read_signature(function: str, package_dirs: Sequence[Path]) -> Signature | None:
    """The signature of ``workloads.module:function``, or None when its source cannot say (decorated, assigned).

    ``package_dirs`` are the ``workloads/`` directories to look in, first match wins.
    """
    module, _, name = function.partition(":")
    for _ in range(_MAX_REEXPORTS):
        path = _module_file(module, package_dirs)
        stat = path.stat()
        found = _lookup(str(path), stat.st_mtime_ns, stat.st_size, module, name)
        if not isinstance(found, tuple):
            return found
        module, name = found  # re-exported: ``from workloads.other import name``
    return None


@functools.lru_cache(maxsize=256)
def _lookup(path: str, mtime_ns: int, size: int, module: str, name: str) -> Signature | tuple[str, str] | None:
    """``name`` in the module file at ``path`` (as it is at ``mtime_ns``, ``size``): its signature, or where it is
    imported from, or None when the source cannot say."""
    tree = _parse_cached(path, mtime_ns, size)
    found = _top_level(tree, name)
    if isinstance(found, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return None if found.decorator_list else _signature(found)
    if isinstance(found, ast.ImportFrom):
        source = _imported_module(found, module, Path(path))
        if source is None:
            return None  # imported from outside the package: nothing to read
        alias = next(alias for alias in found.names if (alias.asname or alias.name) == name)
        return source, alias.name
    if found is not None:
        return None  # an assignment or a class: its call signature is not in the source
    functions = sorted(
        node.name
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_")
    )
    close = closest(name, functions)
    hint = f"did you mean '{module}:{close}'? " if close else ""
    raise SignatureError(
        f"{_shown(module)} defines no function {name!r} — {hint}functions: {', '.join(functions) or '(none)'}"
    )


def _module_file(module: str, package_dirs: Sequence[Path]) -> Path:
    parts = module.split(".")[1:]
    for directory in package_dirs:
        for candidate in (directory.joinpath(*parts).with_suffix(".py"), directory.joinpath(*parts, "__init__.py")):
            if candidate.is_file():
                return candidate
    raise SignatureError(f"no module {_shown(module)} — create it, or fix the module part of the path")


def _shown(module: str) -> str:
    return "/".join(module.split(".")) + ".py"


@functools.lru_cache(maxsize=64)
def _parse_cached(path: str, mtime_ns: int, size: int) -> ast.Module:
    del mtime_ns, size  # the cache key: an edited file is parsed again
    try:
        return ast.parse(Path(path).read_bytes(), filename=path)
    except SyntaxError as error:
        raise SignatureError(
            f"{path}: line {error.lineno}: invalid Python: {error.msg} — fix the syntax there"
        ) from None
    except (OSError, ValueError) as error:
        raise SignatureError(f"{path}: cannot read ({error}) — check the file") from None


def _top_level(tree: ast.Module, name: str) -> ast.stmt | None:
    """The last top-level statement that binds ``name`` (as Python does: the last binding wins)."""
    found: ast.stmt | None = None
    for node in tree.body:
        if name in _bound_names(node):
            found = node
    return found


def _bound_names(node: ast.stmt) -> set[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {alias.asname or alias.name.split(".")[0] for alias in node.names}
    if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return {target.id for target in targets if isinstance(target, ast.Name)}
    return set()


def _imported_module(node: ast.ImportFrom, module: str, path: Path) -> str | None:
    """The dotted module ``from X import f`` reads from, when it is inside the package."""
    if node.level:
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        if node.level - 1 > len(package) - 1:
            return None
        base = package[: len(package) - (node.level - 1)]
        source = ".".join([*base, *([node.module] if node.module else [])])
    else:
        source = node.module or ""
    return source if source.split(".")[0] == PACKAGE and "." in source else None


def _signature(node: ast.FunctionDef | ast.AsyncFunctionDef) -> Signature:
    arguments = node.args
    positional = [*arguments.posonlyargs, *arguments.args]
    # Defaults belong to the last positional parameters.
    with_default = {arg.arg for arg in positional[len(positional) - len(arguments.defaults) :]}
    keyword_only = {arg.arg: default is not None for arg, default in zip(arguments.kwonlyargs, arguments.kw_defaults)}
    parameters = tuple(arg.arg for arg in arguments.args) + tuple(keyword_only)
    required = {arg.arg for arg in arguments.args if arg.arg not in with_default}
    required |= {name for name, has_default in keyword_only.items() if not has_default}
    positional_only = {arg.arg for arg in arguments.posonlyargs if arg.arg not in with_default}
    return Signature(
        parameters=parameters,
        required=frozenset(required),
        positional_only=frozenset(positional_only),
        any_keyword=arguments.kwarg is not None,
        yields=_yielded_keys(node),
    )


def _yielded_keys(node: ast.FunctionDef | ast.AsyncFunctionDef) -> frozenset[str] | None:
    """Keys of every ``yield {...}`` in the function's own body; None unless each is a literal mapping."""
    keys: set[str] = set()
    found = False
    pending: list[ast.AST] = list(node.body)
    while pending:
        child = pending.pop()
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue  # another function's yields
        if isinstance(child, (ast.Yield, ast.YieldFrom)):
            found = True
            value = child.value
            if isinstance(child, ast.YieldFrom) or not isinstance(value, ast.Dict):
                return None
            for key in value.keys:
                if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
                    return None  # ``**other`` or a computed key
                keys.add(key.value)
        pending.extend(ast.iter_child_nodes(child))
    return frozenset(keys) if found else None
