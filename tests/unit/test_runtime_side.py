"""The runner side stays runnable inside any runtime: every module of ``framework/in_runtime/`` imports on the oldest
Python the runtimes declare with the standard library only (pydantic, pyarrow, duckdb and rich blocked), and none of
them imports the controller."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

from framework.config import load_catalog
from framework.environments import find_python

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "framework" / "in_runtime"
BLOCKED = ("pydantic", "pyarrow", "duckdb", "rich")

SCRIPT = """
import importlib, importlib.abc, sys
blocked = {blocked!r}

class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ImportError(name + " is blocked: the runner side runs in runtimes that may not have it")
        return None

sys.meta_path.insert(0, Blocker())
sys.path.insert(0, {root!r})
for module in {modules!r}:
    importlib.import_module(module)
print(".".join(map(str, sys.version_info[:2])), len({modules!r}))
"""


def runtime_side_modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def oldest_runtime_python() -> str:
    versions = {runtime.python for runtime in load_catalog().runtimes.values()}
    return min(versions, key=lambda version: tuple(int(part) for part in version.split(".")))


def test_every_runtime_side_module_imports_on_the_oldest_python_with_the_standard_library_only() -> None:
    version = oldest_runtime_python()
    python = find_python(version, "the oldest runtime")  # raises, saying how to install it, when it is missing
    modules = runtime_side_modules()
    assert "framework.in_runtime.runner" in modules and "framework.in_runtime.backends" in modules

    # -S: no site-packages at all, so not even distributed; the blocker names a controller package reached anyway
    result = subprocess.run(
        [str(python), "-S", "-c", SCRIPT.format(blocked=BLOCKED, root=str(ROOT), modules=modules)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == [version, str(len(modules))]


def test_the_runner_side_imports_nothing_of_the_controller() -> None:
    """Module level or inside a function: a runner-side module may import ``framework.in_runtime.*`` only."""
    reached = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] if node.module != "framework" else [f"framework.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                if name.split(".")[0] == "framework" and not name.startswith("framework.in_runtime"):
                    reached.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
    assert not reached, "the runner side must not import the controller:\n" + "\n".join(reached)
