"""A config fuzzer: mutated copies of the shipped YAML files, loaded as the controller loads them.

Each example takes one of runtimes.yaml, hardware.yaml, matrix.yaml or a workloads/*.yaml file, mutates it (keys
dropped or misspelt, values of the wrong type, negative and huge numbers, bad byte sizes, unknown parameters, unicode,
deep nesting, duplicate keys, broken syntax, bytes that are not UTF-8) and loads the project's configuration from a
temporary copy with ``load_catalog``. The guarantee: the file is accepted, or refused with a ``ConfigError`` whose every
line names a file, a location and the fix (``file: field.path: message — fix``). Nothing else escapes.

Budgets are named hypothesis settings profiles, chosen by ``DASK_BLESSING_FUZZ``: ``dev`` (50 files per kind), ``ci``
(200, the default; derandomized so CI is repeatable) and ``nightly`` (5000).
"""

from __future__ import annotations

import copy
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import framework.config
from framework.config import ROOT, load_catalog
from framework.in_runtime.errors import ConfigError
from framework.matrix import expand_workload

_COMMON = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
}
settings.register_profile("config-fuzz-dev", max_examples=50, **_COMMON)
settings.register_profile("config-fuzz-ci", max_examples=200, derandomize=True, database=None, **_COMMON)
settings.register_profile("config-fuzz-nightly", max_examples=5000, **_COMMON)
BUDGET = settings.get_profile(f"config-fuzz-{os.environ.get('DASK_BLESSING_FUZZ', 'ci')}")

KINDS = {
    "runtimes": ["matrices/runtimes.yaml"],
    "hardware": ["matrices/hardware.yaml"],
    "matrix": ["matrices/matrix.yaml"],
    "workloads": sorted(str(path.relative_to(ROOT)) for path in (ROOT / "workloads").glob("*.yaml")),
    "findings": ["matrices/findings.yaml"],  # checked with the catalogue: every command loads it
}

# Values a careless edit leaves behind: each is wrong somewhere.
BAD_VALUES = [
    None, True, False, 0, -1, -4, 1.5, -0.5, 10**30, -(10**30), 1e308, float("inf"), float("nan"),
    "", " ", "-4GiB", "99999999PiB", "4 gigs", "0B", "1e30GiB", "-1", "lots", "5m", "-5m", "1e9h", "3.11", "3.999",
    "==2024.13.1", ">=", "tag:", "tag:Nope", "*", "workloads.nope:nothing", "workloads.dataframes:groupby_agg",
    "ünïcødé", "🙂", "a\nb", "x" * 300, "\x1c", "\u2028", "{", "[", "&a", "*a", "!!binary", "local", "coiled",
    [], {}, [None], [[]], {"": None}, ["-4GiB"], {"fraction_of_cluster_memory": -1}, {"per_worker": "a"},
    {"fraction_of_cluster_memory": 1e9}, {"per_thread": 10**20}, {"per_worker": 1, "per_thread": 1},
]  # fmt: skip
UNKNOWN_KEYS = ["shufle", "rowz", "zzz", "days ", "Name", "ünïcødé", "a.b", "a: b", "a\nb", "", "0", "_private"]
GARBAGE = [
    "\t",
    ":",
    " :",
    "- ",
    "[",
    "{",
    "}",
    "]",
    "&a ",
    "*a",
    "!!set ",
    "? ",
    "%YAML 1.1\n",
    "\x00",
    "\xa0",
    "#",
    "'",
    '"',
]

scalars = st.one_of(
    st.sampled_from(BAD_VALUES).map(copy.deepcopy),  # a copy: a mutation must not change the pool
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=12),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.text(st.characters(exclude_categories=("Cs",)), max_size=6), inner, max_size=3),
    ),
    max_leaves=8,
)


def _typo(key: str, draw: Callable[[Any], Any]) -> str:
    if not key:
        return "x"
    index = draw(st.integers(0, len(key) - 1))
    how = draw(st.sampled_from(["drop", "double", "swap", "upper", "other"]))
    if how == "drop":
        return key[:index] + key[index + 1 :] or "x"
    if how == "double":
        return key[:index] + key[index] + key[index:]
    if how == "swap" and len(key) > 1:
        index = min(index, len(key) - 2)
        return key[:index] + key[index + 1] + key[index] + key[index + 2 :]
    if how == "upper":
        return key.upper() if key.upper() != key else key + "_"
    return draw(st.sampled_from(UNKNOWN_KEYS))


def _containers(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """Every mapping and list in ``node`` with its path."""
    if isinstance(node, (dict, list)):
        yield path, node
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            yield from _containers(value, (*path, key))


def _mutate_tree(data: Any, draw: Callable[[Any], Any]) -> Any:
    containers = list(_containers(data))
    _, node = draw(st.sampled_from(containers))
    keys = list(node) if isinstance(node, dict) else list(range(len(node)))
    operations = ["set", "nest", "retype", "add"] + (["drop", "rename"] if isinstance(node, dict) and keys else [])
    operation = draw(st.sampled_from(operations))
    key = draw(st.sampled_from(keys)) if keys else None
    if operation == "add" or key is None:
        if isinstance(node, dict):
            node[draw(st.sampled_from(UNKNOWN_KEYS))] = draw(values)
        else:
            node.append(draw(values))
    elif operation == "set":
        node[key] = draw(values)
    elif operation == "nest":
        depth = draw(st.integers(1, 60))
        value = node[key]
        for _ in range(depth):
            value = [value] if draw(st.booleans()) else {"a": value}
        node[key] = value
    elif operation == "retype":
        value = node[key]
        node[key] = (
            list(value.values()) if isinstance(value, dict) else {"x": value} if isinstance(value, list) else [value]
        )
    elif operation == "drop":
        del node[key]
    else:
        node[_typo(str(key), draw)] = node.pop(key)
    return data


def _mutate_workload(data: Any, draw: Callable[[Any], Any]) -> Any:
    """What a workload author gets wrong: parameters the function does not take, lacks, or cannot use."""
    workloads = data.get("workloads") if isinstance(data, dict) else None
    if not isinstance(workloads, dict) or not workloads:
        return data
    workload = workloads[draw(st.sampled_from(sorted(workloads)))]
    if not isinstance(workload, dict):
        return data
    sizes = workload.get("sizes")
    targets = [("params", workload.setdefault("params", {}))]
    if isinstance(sizes, dict):
        targets += [(f"sizes.{name}", size) for name, size in sizes.items() if isinstance(size, dict)]
    _, target = draw(st.sampled_from(targets))
    if not isinstance(target, dict):
        return data
    operation = draw(st.sampled_from(["typo", "unknown", "drop", "bad_size", "function"]))
    if operation == "typo" and target:
        key = draw(st.sampled_from(sorted(target)))
        target[_typo(key, draw)] = target.pop(key)
    elif operation == "drop" and target:
        del target[draw(st.sampled_from(sorted(target)))]
    elif operation == "bad_size" and target:
        target[draw(st.sampled_from(sorted(target)))] = draw(st.sampled_from(["-4GiB", "99999999PiB", -4, 10**20]))
    elif operation == "function":
        workload["function"] = draw(
            st.sampled_from(
                ["workloads.dataframes:groupby_agg", "workloads.arrays:mean_var_reduction", "workloads.s3:s3_server"]
            )
        )
    else:
        target[draw(st.sampled_from(UNKNOWN_KEYS))] = draw(scalars)
    return data


def _mutate_text(text: str, draw: Callable[[Any], Any]) -> bytes:
    lines = text.splitlines(keepends=True) or [""]
    operation = draw(st.sampled_from(["duplicate", "truncate", "garbage", "not_utf8", "cycle"]))
    index = draw(st.integers(0, len(lines) - 1))
    if operation == "duplicate":  # a line twice: often a duplicate key
        lines.insert(index, lines[index])
    elif operation == "truncate":
        cut = draw(st.integers(0, len(text)))
        return text[:cut].encode()
    elif operation == "garbage":
        line = lines[index]
        at = draw(st.integers(0, len(line)))
        lines[index] = line[:at] + draw(st.sampled_from(GARBAGE)) + line[at:]
    elif operation == "not_utf8":
        return "".join(lines[:index]).encode() + b"\xff\xfe" + "".join(lines[index:]).encode()
    else:  # an alias inside its own anchor
        lines.append("cycle: &loop [*loop]\n")
    return "".join(lines).encode("utf-8", "surrogatepass")


def _check_refusal(message: str, files: list[str]) -> None:
    lines = message.splitlines()
    assert lines, "an empty ConfigError"
    for line in lines:
        file = next((name for name in files if line.startswith(f"{name}: ")), None)
        assert file is not None, f"names no file of the project: {line!r}"
        location, separator, rest = line[len(file) + 2 :].partition(": ")
        assert separator and location.strip(), f"names no field or line: {line!r}"
        assert " — " in rest, f"gives no fix: {line!r}"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A copy of matrices/ and workloads/*.yaml; files parsed unchanged are served from a cache (speed only)."""
    root = tmp_path_factory.mktemp("fuzzed")
    shutil.copytree(ROOT / "matrices", root / "matrices")
    (root / "workloads").mkdir()
    for path in (ROOT / "workloads").glob("*.yaml"):
        shutil.copy(path, root / "workloads" / path.name)
    shutil.copytree(ROOT / "workloads" / "reproducers", root / "workloads" / "reproducers")  # the ledger names them
    read_yaml = framework.config.read_yaml
    cache: dict[tuple[Path, bytes], Any] = {}

    def cached(path: Path) -> Any:
        key = (path, path.read_bytes())
        if key not in cache:
            cache[key] = read_yaml(path)  # a refusal is raised, never cached
        return copy.deepcopy(cache[key])

    framework.config.read_yaml = cached  # type: ignore[assignment]
    try:
        yield root
    finally:
        framework.config.read_yaml = read_yaml


@pytest.mark.parametrize("kind", sorted(KINDS))
@settings(BUDGET)
@given(data=st.data())
def test_a_mutated_config_file_is_accepted_or_refused_in_clean_lines(project: Path, kind: str, data: Any) -> None:
    relative = data.draw(st.sampled_from(KINDS[kind]), label="file")
    path = project / relative
    original = (ROOT / relative).read_text(encoding="utf-8")
    tree = yaml.safe_load(original)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        if kind == "workloads" and data.draw(st.booleans()):
            tree = _mutate_workload(tree, data.draw)
        else:
            tree = _mutate_tree(tree, data.draw)
    text = yaml.safe_dump(tree, allow_unicode=True, sort_keys=False)
    content = _mutate_text(text, data.draw) if data.draw(st.integers(0, 4)) == 0 else text.encode()
    files = [str(path) for path in sorted(project.rglob("*.yaml"))]
    path.write_bytes(content)
    try:
        catalog = load_catalog(project)
    except ConfigError as error:
        event("refused")
        _check_refusal(str(error), files)
    else:
        event("accepted")
        for workload in catalog.workloads.values():  # an accepted catalogue also plans
            for size in [None, *workload.sizes]:
                expand_workload(workload, size)
    finally:
        path.write_text(original, encoding="utf-8")


@pytest.mark.parametrize(
    ("relative", "text"),
    [
        ("matrices/runtimes.yaml", "runtimes:\n  [a, b]: 1\n"),
        ("matrices/runtimes.yaml", "runtimes: " + "[" * 3000 + "]" * 3000 + "\n"),
        ("matrices/hardware.yaml", "hardware: " + "{a: " * 400 + "1" + "}" * 400 + "\n"),
        ("matrices/hardware.yaml", "hardware:\n  local:\n    n_workers: " + "9" * 5000 + "\n"),
        ("matrices/matrix.yaml", "matrices: &x\n  default: [*x]\n"),
        ("matrices/runtimes.yaml", "runtimes:\n  latest:\n    as_of: 2025-02-30\n"),
        ("workloads/smoke.yaml", "workloads:\n  w:\n    description: \x00\n"),
        ("workloads/smoke.yaml", "workloads:\n  w:\n    params: {'a\\nb': 1}\n"),
    ],
    ids=["list-key", "deep-list", "deep-map", "huge-int", "cycle", "no-such-date", "nul", "newline-key"],
)
def test_hostile_files_are_refused_in_clean_lines(project: Path, relative: str, text: str) -> None:
    path = project / relative
    original = path.read_bytes()
    files = [str(path) for path in sorted(project.rglob("*.yaml"))]
    path.write_text(text, encoding="utf-8")
    try:
        with pytest.raises(ConfigError) as refused:
            load_catalog(project)
        _check_refusal(str(refused.value), files)
    finally:
        path.write_bytes(original)
