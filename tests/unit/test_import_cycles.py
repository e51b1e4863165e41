"""tests/tools/import_cycles.py: framework/ has no import cycle, and a planted one is named with where it is.

Also the layering the cycle check alone would miss (it leaves out the parent package an import runs): features
never import the command lines.
"""

from __future__ import annotations

from pathlib import Path

import import_cycles
import pytest


def package(root: Path, files: dict[str, str]) -> Path:
    """A package ``pkg`` under ``root`` with these modules (relative paths → source)."""
    for name, source in {"__init__.py": "", **files}.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
    return root / "pkg"


def test_framework_has_no_import_cycle(capsys: pytest.CaptureFixture[str]) -> None:
    code = import_cycles.main([])
    assert code == 0, capsys.readouterr().err
    assert "no import cycle among the" in capsys.readouterr().out


def test_no_feature_imports_the_command_lines() -> None:
    edges = import_cycles.import_edges(import_cycles.DEFAULT_PACKAGE)
    into_cli = [
        f"{edge.source} imports {edge.target} ({edge.path.name}:{edge.line})"
        for edge in edges
        if edge.target.startswith("framework.cli") and not edge.source.startswith("framework.cli")
    ]
    assert not into_cli, "only framework/cli/ parses command lines, features take arguments: " + "; ".join(into_cli)


def test_a_cycle_through_a_deferred_import_is_named_with_its_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = package(
        tmp_path,
        {
            "a.py": "from pkg.b import helper\n",
            "b.py": "def helper():\n    from pkg import a  # deferred: still a cycle\n    return a\n",
            "c.py": "import pkg.a\n",
        },
    )
    assert import_cycles.main([str(root)]) == 1
    err = capsys.readouterr().err
    assert "import cycle: pkg.a → pkg.b → pkg.a" in err
    assert "pkg.a imports pkg.b at pkg/a.py:1" in err
    assert "pkg.b imports pkg.a at pkg/b.py:2" in err
    assert "1 import cycle(s) in pkg/" in err


@pytest.mark.parametrize(
    ("files", "knots"),
    [
        pytest.param(
            {
                "sub/__init__.py": "from .x import name\n",
                "sub/x.py": "from ..top import value\nname = value\n",
                "top.py": "from pkg.sub import name\nvalue = 1\n",
                "late.py": "import importlib\nimportlib.import_module('pkg.later')\n",
                "later.py": "from pkg import late\n",
            },
            [{"pkg.late", "pkg.later"}, {"pkg.sub", "pkg.sub.x", "pkg.top"}],
            id="relative-subpackage-import_module",
        ),
        pytest.param(
            {
                "__init__.py": "import importlib\n",
                "a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.b import B\n",
                "b.py": "from pkg.a import A\nimport pkg\n",
            },
            [],
            id="type-checking-and-parent-packages-close-none",
        ),
    ],
)
def test_which_imports_close_a_cycle(tmp_path: Path, files: dict[str, str], knots: list[set[str]]) -> None:
    cycles = import_cycles.find_cycles(import_cycles.import_edges(package(tmp_path, files)))
    assert [cycle.modules for cycle in cycles] == knots
