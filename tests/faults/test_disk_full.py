"""Nothing lost when the disk fills or turns read-only: one line naming the path and the fix, exit 2, the rows
written so far kept in staging and published (with the cut-short case ``interrupted``) by the next run.

The results directory is a small tmpfs mounted in a private mount namespace (``unshare``; as root, or as a user
with user namespaces); a probe case fills it from inside the runner after two measured repeats, so the runner's
next row hits a real ENOSPC. Where no tmpfs can be mounted, the probe instead points the runner's rows file at
``/dev/full`` (the same ENOSPC, injected at the system call). About 40 s.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from project_copy import environ, make_project, rows, run

pytestmark = pytest.mark.cluster(deadline=90)  # measured 6 and 18 s

MODULE = """\
import os
from pathlib import Path

import dask

_calls = {"n": 0}


def fills(target: str, after: int) -> None:
    \"\"\"A small task; on call number ``after``, fill the disk under ``target`` (or point the rows at /dev/full).\"\"\"
    dask.delayed(sum)([1, 2]).compute()
    _calls["n"] += 1
    if _calls["n"] != after:
        return
    if target == "/dev/full":
        full = os.open("/dev/full", os.O_WRONLY)
        for fd in os.listdir("/proc/self/fd"):
            try:
                if os.readlink(f"/proc/self/fd/{fd}").endswith(".jsonl"):
                    os.dup2(full, int(fd))
            except OSError:
                pass
        return
    with Path(target).open("wb") as handle:
        try:
            while True:
                handle.write(b"\\0" * 65536)
                handle.flush()
        except OSError:
            pass
"""
WORKLOADS = """\
workloads:
  fault_fill:
    description: Fills the results disk after two measured repeats; the runner's next row cannot be written.
    function: workloads.fault_probe:fills
    params: {{target: {target}, after: 3}}
    sizes: {{tiny: {{}}}}
    warmup: 0
    repeats: 5
    timeout: 1m
  fault_quick:
    description: A quick case, for the runs after the disk filled.
    function: workloads.fault_probe:fills
    params: {{target: none, after: 0}}
    sizes: {{tiny: {{}}}}
    warmup: 0
    repeats: 1
    timeout: 1m
"""
MATRIX = """\
matrices:
  default:
    runtimes: [stable]
    hardware: [local-inprocess]
    workloads: [fault_quick]
    size: tiny
"""
# Inside the namespace: mount, fill, run, look, free, run again, turn read-only, run again; copy what is seen out.
SCRIPT = """\
set -u
results=$1 out=$2 python=$3
mount -t tmpfs -o size=16m tmpfs "$results"
"$python" -m framework.cli matrix --results="$results" --workload=fault_fill > "$out/first.txt" 2>&1
echo $? > "$out/first.rc"
cp -a "$results" "$out/after-first"
rm -f "$results/filler"
"$python" -m framework.cli matrix --results="$results" > "$out/second.txt" 2>&1
echo $? > "$out/second.rc"
cp -a "$results" "$out/after-second"
mount -o remount,ro "$results"
"$python" -m framework.cli matrix --results="$results" > "$out/third.txt" 2>&1
echo $? > "$out/third.rc"
"""


def namespace() -> list[str] | None:
    """An ``unshare`` prefix in which a tmpfs can be mounted here, or None."""
    probe = 'd=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs "$d" && umount "$d" && rmdir "$d"'
    if shutil.which("unshare") is None:
        return None
    for prefix in (
        ["unshare", "--mount", "--propagation", "private"],
        ["unshare", "--user", "--map-root-user", "--mount"],
    ):
        done = subprocess.run([*prefix, "sh", "-c", probe], capture_output=True, check=False, timeout=30)
        if done.returncode == 0:
            return prefix
    return None


def test_a_disk_that_fills_mid_run_costs_no_row_and_says_so_in_one_line(tmp_path: Path) -> None:
    prefix = namespace()
    results, out = tmp_path / "results", tmp_path / "seen"
    results.mkdir()
    out.mkdir()
    target = str(results / "filler") if prefix else "/dev/full"
    root = make_project(tmp_path / "project", WORKLOADS.format(target=target), MODULE, MATRIX)
    (root / "fill.sh").write_text(SCRIPT)
    if prefix:
        subprocess.run(
            [*prefix, "bash", str(root / "fill.sh"), str(results), str(out), sys.executable],
            cwd=root,
            env=environ(root),
            check=True,
            timeout=400,
        )
    else:  # injected: the same three runs, the disk "full" only for the rows file, then never read-only
        first = run(root, "matrix", f"--results={results}", "--workload=fault_fill")
        (out / "first.txt").write_text(first.stdout)
        (out / "first.rc").write_text(f"{first.returncode}\n")
        shutil.copytree(results, out / "after-first")
        second = run(root, "matrix", f"--results={results}")
        (out / "second.txt").write_text(second.stdout)
        (out / "second.rc").write_text(f"{second.returncode}\n")
        shutil.copytree(results, out / "after-second")
    seen = {
        name: (out / f"{name}.txt").read_text()
        for name in ("first", "second", "third")
        if (out / f"{name}.rc").exists()
    }
    codes = {name: int((out / f"{name}.rc").read_text()) for name in seen}

    # The full disk: one line naming the rows file and the fix, exit 2, no traceback.
    assert codes["first"] == 2, seen["first"][-3000:]
    assert "Traceback" not in seen["first"]
    assert "No space left on device" not in "".join(seen["first"].strip().splitlines(keepends=True)[:-1])  # once
    last = seen["first"].strip().splitlines()[-1]
    assert re.fullmatch(
        rf"{re.escape(str(results))}/\.staging/\d+__\S+__stable__local-inprocess\.jsonl: No space left on device"
        r" — free space on that disk, or pass --results on another one; rows written so far stay in the results"
        r" directory's \.staging/ and the next run publishes them",
        last,
    ), last
    staged = list((out / "after-first" / ".staging").glob("*.jsonl"))
    assert len(staged) == 1 and len(list((out / "after-first" / ".staging").glob("*.plan.json"))) == 1
    whole = [line for line in staged[0].read_text().splitlines(keepends=True) if line.endswith("\n")]
    assert len(whole) == 2, "the two rows written before the disk filled"

    # The next run (space freed) publishes them, the case cut short recorded as interrupted; its own case passes.
    assert codes["second"] == 0, seen["second"][-3000:]
    assert "recovered 1 result file(s) left by an interrupted run" in seen["second"]
    found = rows(out / "after-second")
    filled = [row for row in found if row["case_id"] == "fault_fill"]
    assert [row["outcome"] for row in filled] == ["passed", "passed", "interrupted"], filled
    assert filled[-1]["error"].endswith("at measured repeat 3 of 5 (2 measured)")
    assert [row["outcome"] for row in found if row["case_id"] == "fault_quick"] == ["passed"]
    assert not list((out / "after-second" / ".staging").iterdir())

    if prefix:  # read-only: refused before anything runs, in one line
        assert codes["third"] == 2
        assert seen["third"].strip().splitlines()[-1] == (
            f"nox -s matrix --: --results={results}: is on a read-only file system — remount it read-write, or pass"
            " --results on a writable one"
        ), seen["third"]


def test_a_file_where_the_staging_directory_goes_is_one_line_and_exit_2(tmp_path: Path) -> None:
    root = make_project(tmp_path / "project", WORKLOADS.format(target="none"), MODULE, MATRIX)
    results = tmp_path / "results"
    results.mkdir()
    (results / ".staging").write_text("not a directory")
    done = run(root, "matrix", f"--results={results}")
    assert done.returncode == 2, done.stdout[-3000:]
    last = done.stdout.strip().splitlines()[-1]
    assert re.fullmatch(
        rf"{re.escape(str(results))}/\.staging/\S+\.plan\.json\.partial: Not a directory — a part of that path is a"
        r" file, not a directory: move the file, or pass another --results; rows written so far stay in the results"
        r" directory's \.staging/ and the next run publishes them",
        last,
    ), last
    assert "Traceback" not in done.stdout
    assert (results / ".staging").read_text() == "not a directory"
