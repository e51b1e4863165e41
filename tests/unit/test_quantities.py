"""Sane quantities in the YAML files: negative and absurd sizes, counts and durations are refused with the fix.

Found by a probe: ``-4GiB`` and ``99999999PiB`` in a workload's params or sizes were accepted silently.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from framework.config import load_file
from framework.in_runtime.errors import ConfigError
from framework.in_runtime.scaling import scale_problem
from framework.models import HardwareFile, WorkloadFile

WORKLOAD = "workloads:\n  w:\n    description: x\n    function: workloads.dataframes:groupby_agg\n"


def refusal(tmp_path: Path, text: str, model: type = WorkloadFile) -> str:
    path = tmp_path / "file.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_file(path, model)
    [line] = str(raised.value).splitlines()
    assert line.startswith(f"{path}: ")
    return line.removeprefix(f"{path}: ")


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            "    params: {chunk_bytes: -4GiB}\n",
            "workloads.w.params: chunk_bytes: '-4GiB' is a negative size — use a positive one such as '64MiB'",
        ),
        (
            "    sizes: {tiny: {chunk_bytes: 99999999PiB}}\n",
            "workloads.w.sizes: tiny.chunk_bytes: '99999999PiB' is more than 1 EiB — use a size such as '128MiB', or"
            " {fraction_of_cluster_memory: 0.5}",
        ),
        (
            "    sizes: {tiny: {days: -4}}\n",
            "workloads.w.sizes: tiny.days: -4 is negative, and sizes are counts and amounts — use a positive number",
        ),
        (
            "    grid: {chunk_bytes: [1GiB, -1 KB]}\n",
            "workloads.w.grid: chunk_bytes: '-1 KB' is a negative size — use a positive one such as '64MiB'",
        ),
        (
            "    params: {days: 100000000000000000000}\n",
            "workloads.w.params: days: 100000000000000000000 is beyond a 64-bit integer — use a smaller number",
        ),
        (
            "    sizes: {large: {target_bytes: {fraction_of_cluster_memory: 1000}}}\n",
            "workloads.w.sizes: large.target_bytes: fraction_of_cluster_memory is at most 100, got 1000 — write e.g.",
        ),
        ("    repeats: 99999999999\n", "workloads.w.repeats: Input should be less than or equal to 1000"),
        ("    warmup: 101\n", "workloads.w.warmup: Input should be less than or equal to 100"),
        ("    timeout: .inf\n", "workloads.w.timeout: Input should be less than or equal to 86400"),
        (
            "    requires: {min_memory_per_worker: 99999999PiB}\n",
            "workloads.w.requires.min_memory_per_worker: 112589989558362493157376 B is more than 1 EiB — use e.g.",
        ),
    ],
    ids=[
        "negative-bytes",
        "absurd-bytes",
        "negative-size",
        "grid-bytes",
        "huge-int",
        "huge-fraction",
        "repeats",
        "warmup",
        "timeout",
        "requirement",
    ],
)
def test_workload_quantities(tmp_path: Path, fields: str, expected: str) -> None:
    line = refusal(tmp_path, WORKLOAD + fields)
    assert line.startswith(expected)
    assert " — " in line


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("-4GiB", "hardware.local.memory_limit_per_worker: '-4GiB' is a negative size — use e.g. '4GiB'"),
        ("-1", "hardware.local.memory_limit_per_worker: -1 is a negative size — use e.g. '4GiB'"),
        ("99999999PiB", "hardware.local.memory_limit_per_worker: 112589989558362493157376 B is more than 1 EiB"),
    ],
)
def test_hardware_byte_sizes(tmp_path: Path, value: str, expected: str) -> None:
    text = f"hardware:\n  local:\n    backend: local\n    n_workers: 1\n    memory_limit_per_worker: {value}\n"
    line = refusal(tmp_path, text, HardwareFile)
    assert line.startswith(expected)
    assert " — use e.g. '4GiB'" in line


def test_sane_quantities_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "file.yaml"
    path.write_text(
        WORKLOAD + "    params: {chunk_bytes: 128MiB, freq: 1s, offset: -3}\n"
        "    sizes: {tiny: {days: 2, target_bytes: {fraction_of_cluster_memory: 1.5}}, large: {days: 0}}\n"
        "    repeats: 1000\n    timeout: 24h\n"
    )
    workload = load_file(path, WorkloadFile).workloads["w"]
    assert workload.params["offset"] == -3  # a parameter may be negative; a size may not
    assert workload.timeout == 86_400


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"per_worker": 2_000_000}, None),  # rows per worker (ml.yaml)
        ({"per_worker": 1e13}, "per_worker is at most 1e+12, got 10000000000000.0"),
        ({"per_thread": 0}, "per_thread needs a positive number, got 0"),
        ({"fraction_of_cluster_memory": 100}, None),
        ({"fraction_of_cluster_memory": 100.5}, "fraction_of_cluster_memory is at most 100, got 100.5"),
    ],
)
def test_scale_factors_are_bounded(value: dict[str, float], problem: str | None) -> None:
    assert scale_problem(value) == problem


def test_a_parameter_problem_shows_its_value_not_the_whole_mapping(tmp_path: Path) -> None:
    line = refusal(tmp_path, WORKLOAD + "    sizes: {tiny: {days: 2, freq: 10s}, small: {days: -4, freq: 1s}}\n")
    assert line == (
        "workloads.w.sizes: small.days: -4 is negative, and sizes are counts and amounts — use a positive number"
    )
