"""Fail when modules of a package import each other in a cycle: ``python tests/tools/import_cycles.py [PACKAGE_DIR]``.

Every ``import`` counts — at module level and inside functions (a deferred import only hides a cycle until the
function runs) — except under ``if TYPE_CHECKING:``, which never runs. ``from framework import compare`` is an edge
to ``framework.compare`` when that is a module, else to the package's ``__init__``. Importing a submodule also runs
its parent packages' ``__init__``; those implicit edges are left out: a package's front door re-exports its
submodules on purpose (lazily, in framework/__init__.py). Standard library only: `nox -s lint` runs it.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Container
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PACKAGE = Path(__file__).resolve().parents[2] / "framework"


@dataclass(frozen=True)
class Edge:
    """``source`` imports ``target`` at ``path:line``."""

    source: str
    target: str
    path: Path
    line: int


def module_names(package_dir: Path) -> dict[str, Path]:
    """Dotted name → file, for every module under ``package_dir`` (a package is named by its ``__init__.py``)."""
    names = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = [package_dir.name, *path.relative_to(package_dir).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _targets(node: ast.AST, module: str, is_package: bool, modules: Container[str]) -> set[str]:
    """The package's modules an import statement (or ``importlib.import_module("...")``) runs."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name in modules}
    if isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:  # relative: from the module's package, one level up per dot after the first
            anchor = module.split(".")[: len(module.split(".")) - node.level + is_package]
            base = ".".join([*anchor, base] if base else anchor)
        submodules = {name for name in (f"{base}.{alias.name}" for alias in node.names) if name in modules}
        names_from_base = len(submodules) < len(node.names)  # some names are the module's own attributes
        return submodules | ({base} if names_from_base and base in modules else set())
    if isinstance(node, ast.Call) and node.args:  # importlib.import_module("framework.x"), with a literal name
        called = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
        first = node.args[0]
        if called == "import_module" and isinstance(first, ast.Constant) and first.value in modules:
            return {str(first.value)}
    return set()


def _type_checking_only(tree: ast.Module) -> set[int]:
    """Ids of the import nodes under ``if TYPE_CHECKING:`` (never executed)."""
    skipped = set()
    for node in ast.walk(tree):
        test = node.test if isinstance(node, ast.If) else None
        guarded = isinstance(test, ast.Name) and test.id == "TYPE_CHECKING"
        guarded |= isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
        if isinstance(node, ast.If) and guarded:
            skipped |= {id(inner) for statement in node.body for inner in ast.walk(statement)}
    return skipped


def import_edges(package_dir: Path) -> list[Edge]:
    """The imports between modules of the package, one edge per import statement and target."""
    modules = module_names(package_dir)
    edges = []
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        skipped = _type_checking_only(tree)
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            for target in sorted(_targets(node, module, path.name == "__init__.py", modules)):
                if target != module:
                    edges.append(Edge(module, target, path, getattr(node, "lineno", 0)))
    return edges


@dataclass(frozen=True)
class Cycle:
    """Modules that all import each other, through one another; ``edges`` is the shortest way round."""

    modules: frozenset[str]
    edges: tuple[Edge, ...]


def find_cycles(edges: list[Edge]) -> list[Cycle]:
    """One cycle per strongly connected group of modules (Tarjan's algorithm, then a breadth-first walk)."""
    graph: dict[str, dict[str, Edge]] = {}
    for edge in edges:
        graph.setdefault(edge.source, {}).setdefault(edge.target, edge)
        graph.setdefault(edge.target, {})
    cycles = [
        Cycle(frozenset(group), tuple(_shortest_cycle(graph, min(group), group)))
        for group in _strongly_connected(graph)
        if len(group) > 1
    ]
    return sorted(cycles, key=lambda cycle: min(cycle.modules))


def _strongly_connected(graph: dict[str, dict[str, Edge]]) -> list[set[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            successor = next(successors, None)
            if successor is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.add(member)
                        if member == node:
                            break
                    groups.append(group)
            elif successor not in index:
                index[successor] = low[successor] = len(index)
                stack.append(successor)
                on_stack.add(successor)
                work.append((successor, iter(sorted(graph[successor]))))
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
    return groups


def _shortest_cycle(graph: dict[str, dict[str, Edge]], start: str, group: set[str]) -> list[Edge]:
    came_from: dict[str, Edge] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target, edge in sorted(graph[node].items()):
                if target not in group or target in came_from:
                    continue
                came_from[target] = edge
                if target == start:
                    path = [edge]
                    while path[0].source != start:
                        path.insert(0, came_from[path[0].source])
                    return path
                following.append(target)
        frontier = following
    raise AssertionError(f"{start} is in a strongly connected group but on no cycle")


def describe(cycle: Cycle, root: Path) -> str:
    """``a → b → a``, where each import is, and the other modules caught in the same knot."""
    chain = " → ".join([cycle.edges[0].source, *(edge.target for edge in cycle.edges)])
    lines = [f"import cycle: {chain}"]
    lines += [f"    {e.source} imports {e.target} at {_shown(e.path, root)}:{e.line}" for e in cycle.edges]
    others = sorted(cycle.modules - {edge.source for edge in cycle.edges})
    if others:
        lines.append(f"    also in this knot: {', '.join(others)}")
    return "\n".join(lines)


def _shown(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def main(argv: list[str]) -> int:
    package_dir = Path(argv[0]).resolve() if argv else DEFAULT_PACKAGE
    if not (package_dir / "__init__.py").is_file():
        print(
            f"{package_dir}: not a package (no __init__.py) — pass a package directory, e.g. framework", file=sys.stderr
        )
        return 2
    cycles = find_cycles(import_edges(package_dir))
    for cycle in cycles:
        print(describe(cycle, package_dir.parent), file=sys.stderr)
    if cycles:
        fix = "move what both need into a module both import, or pass it in as an argument"
        print(f"{len(cycles)} import cycle(s) in {package_dir.name}/ — {fix}", file=sys.stderr)
        return 1
    print(f"no import cycle among the {len(module_names(package_dir))} modules of {package_dir.name}/")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
