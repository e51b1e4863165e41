"""The stability controller without a cluster: regression files, failure records, runtimes, the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from framework.cli import main
from framework.in_runtime.errors import ConfigError
from framework.models import Runtime
from framework.stability import (
    REGRESSIONS_DIR,
    StabilityError,
    _check_runtime,
    failure_record,
    load_regressions,
    save_regression,
)

PROGRAM = [
    {"op": "start", "config": {"tier": "inprocess", "workers": 1, "threads": 1, "memory_limit": 2**28}},
    {"op": "submit", "graph": {"kind": "chain", "n": 2, "seed": 1}},
]


def record(failure_id: str = "20261126T000000Z-abcdef-latest-inprocess") -> dict[str, Any]:
    return {
        "failure_id": failure_id,
        "created_at": "2026-11-26T00:00:00+00:00",
        "tier": "inprocess",
        "kind": "liveness",
        "error": "liveness: LivenessError: 3 future(s) neither finished …",
        "program": PROGRAM,
        "settle_s": 20.0,
        "runtime": "latest",
        "runtime_spec": {"python": "3.11", "packages": {"distributed": "", "hypothesis": ""}},
        "versions": {"distributed": "2026.8.0"},
        "run_id": "20261126T000000Z-abcdef",
    }


def write_regression(root: Path, name: str, content: str) -> Path:
    path = root / REGRESSIONS_DIR / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    return path


def test_a_saved_regression_loads_back_and_is_never_overwritten(tmp_path: Path) -> None:
    saved = save_regression(record(), hits=4, runs=5, runtime="latest", root=tmp_path)
    assert saved.name == "20261126T000000Z-abcdef-latest-inprocess.json"
    [case] = load_regressions(tmp_path)
    assert case.program == PROGRAM
    assert case.reproduced["hits"] == 4
    assert case.found["versions"] == {"distributed": "2026.8.0"}
    before = saved.read_text()
    save_regression({**record(), "error": "something else"}, hits=1, runs=5, runtime="latest", root=tmp_path)
    assert saved.read_text() == before


def test_broken_regression_files_are_named_with_the_fix(tmp_path: Path) -> None:
    write_regression(tmp_path, "bad.json", "{not json")
    with pytest.raises(ConfigError, match=r"workloads/regressions/bad.json: not valid JSON .* fix or delete it"):
        load_regressions(tmp_path)
    write_regression(tmp_path, "bad.json", json.dumps({"id": "x", "tier": "gpu", "program": PROGRAM}))
    with pytest.raises(ConfigError, match=r"bad.json: tier: .*got 'gpu'.* restore or delete it"):
        load_regressions(tmp_path)
    write_regression(tmp_path, "bad.json", json.dumps({"id": "x", "tier": "inprocess", "program": PROGRAM[1:]}))
    with pytest.raises(ConfigError, match=r"bad.json: program\[0\]: must be the 'start' step"):
        load_regressions(tmp_path)


def test_an_unknown_failure_id_suggests_the_near_miss(tmp_path: Path) -> None:
    known = tmp_path / "stability" / "failures" / "20261126T000000Z-abcdef-latest-process"
    known.mkdir(parents=True)
    (known / "failure.json").write_text(json.dumps(record()))
    with pytest.raises(StabilityError, match="did you mean '20261126T000000Z-abcdef-latest-process'"):
        failure_record(tmp_path, "20261126T000000Z-abcdef-latest-proces")
    assert failure_record(tmp_path, known.name)["kind"] == "liveness"


def test_a_runtime_without_hypothesis_cannot_fuzz() -> None:
    runtime = Runtime(name="bare", python="3.11", packages={"dask[distributed]": "", "distributed": ""})
    with pytest.raises(StabilityError, match=r"runtimes.bare.packages: no hypothesis .* add `hypothesis: \"\"`"):
        _check_runtime(runtime)
    _check_runtime(Runtime(name="ok", python="3.11", packages={"distributed": "", "Hypothesis": "==6.1"}))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--profile=weekly"], "--profile=weekly: unknown profile — use one of ci, nightly"),
        (["--tier=inproc"], "unknown tier 'inproc' — did you mean 'inprocess'?"),
        (["--runtime=lastest"], "unknown runtime 'lastest' — did you mean 'latest'?"),
        (["--examples=0"], "0 is not ≥ 1"),
        (["--exampels=3"], "did you mean --examples?"),
        (["--replay=nope", "--results=/nonexistent"], "unknown failure id 'nope'"),
    ],
)
def test_bad_command_lines_get_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as raised:
        code = main(["stability", *argv])
        raise SystemExit(code)
    assert raised.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err
    assert len(err.splitlines()) == 1, err
