"""Scale figures of issue 18. A benchmark that prints figures; it asserts nothing (it refuses to time two queries
that disagree).

Part ``s3`` — a history on object storage against the same history on local disk:

1. **History** — ``history_synth.synthesize``: N case rows (default 100,000) in the store's real layout, one Parquet
   file per nightly run × runtime, plus environments and decision records.
2. **Upload** — ``nox -s merge -- DIR --into=s3://…`` into moto's S3 server on 127.0.0.1, started in its own process
   (as a server elsewhere would be: it does not share this process's interpreter), timed; then merged again (timed:
   nothing to copy).
3. **Regression scan query** — the series points ``nox -s regressions`` reads (``bench_report.POINTS_DUCKDB``), over
   ``framework.query.Results`` on the directory and on the URL store (read in place through DuckDB's registered
   fsspec filesystem). The answers are checked equal; the opening of each (for the URL: its check, a new session,
   the listing, footer checks and views — what a new verb process pays) and the query are timed, alternating;
   medians and the ratio are printed (goal: URL ≤ 3× disk).
4. **Report** — ``framework.report.build_site`` from each, alternating; medians and the ratio.

Part ``shards`` — the tiny catalogue on ``latest`` (one measured repeat a case) run unsharded, then as 2 and 4
shards, each shard a separate ``python -m framework.cli matrix --shard=K/N`` process, the shards of one split started
at once; each split's stores merged (``nox -s merge``) into one. Printed per split: wall time, merge time, rows,
cases, cases run twice, cases missing or extra against the unsharded run (each must be 0: the exit is 1 otherwise).

    nox -s bench -- scale [--part=s3|shards] [--rows=100000] [--repeats=5] [--builds=2] [--splits=1,2,4] [--keep=DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench_report import POINTS_DUCKDB

from framework import locations, object_store
from framework.merge import merge
from framework.query import Results

_SERVER = """
import contextlib, sys
from workloads.s3 import s3_server
with contextlib.contextmanager(s3_server)() as provided:
    print(provided["endpoint_url"], provided["bucket"], provided["key"], provided["secret"], flush=True)
    sys.stdin.read()  # until the benchmark closes it
"""


@contextmanager
def s3_server_process() -> Iterator[dict[str, str]]:
    """moto's S3 server (``workloads.s3.s3_server``) in a process of its own; stopped when the block ends."""
    server = subprocess.Popen(
        [sys.executable, "-c", _SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=Path.cwd()
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline().split()
        if len(line) != 4:
            raise SystemExit(f"moto's S3 server did not start (exit {server.poll()}) — is moto[server] installed?")
        endpoint, bucket, key, secret = line
        yield {"endpoint_url": endpoint, "bucket": bucket, "key": key, "secret": secret}
    finally:
        if server.stdin is not None:
            server.stdin.close()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = function()
    return time.perf_counter() - started, value


def _median(values: list[float]) -> str:
    return f"median {statistics.median(values):.3f} s (range {min(values):.3f}–{max(values):.3f})"


def bench_s3(work: Path, rows: int, repeats: int, builds: int) -> dict[str, Any]:
    from bench_report import prepare_history

    root, figures = prepare_history(work, rows)
    with s3_server_process() as server:
        os.environ.update(
            AWS_ACCESS_KEY_ID=server["key"],
            AWS_SECRET_ACCESS_KEY=server["secret"],
            AWS_ENDPOINT_URL=server["endpoint_url"],
            AWS_DEFAULT_REGION="us-east-1",
        )
        os.environ[object_store.STORES_VARIABLE] = str(work / "stores")
        url = f"s3://{server['bucket']}/history"
        seconds, report = timed(lambda: merge([str(root)], url))
        figures["upload_s"] = seconds
        copied = sum(report.copied.values())
        print(f"upload: nox -s merge -- {root} --into={url}: {copied:,} files in {seconds:.1f} s")
        seconds, report = timed(lambda: merge([str(root)], url))
        copied, skipped = sum(report.copied.values()), sum(report.skipped.values())
        print(f"merge again: {copied} copied, {skipped:,} skipped in {seconds:.1f} s")
        figures["remerge_s"] = seconds
        remote_root = object_store.open_store(url, writes=False)
        stores = {"disk": root, "s3": remote_root}

        def cold(store: Path) -> Results:
            """A verb's first read: for the URL, its check and opening (a new session) as a new process would."""
            if store == remote_root:
                locations._CHECKED.clear()
                object_store._OPEN.pop(remote_root).release()
                object_store.open_store(url, writes=False)
            return Results(store)

        # A machine that never read this store: every small file is fetched (then kept in the work directory's
        # .cache/, so the timings below are of a machine that read it before, fetching only what is new).
        shutil.rmtree(remote_root / ".cache", ignore_errors=True)
        first_open, results = timed(lambda: cold(remote_root))
        with results:
            first_query, _ = timed(lambda: results.sql(POINTS_DUCKDB))
        figures["first_scan_s_s3"] = first_open + first_query
        print(f"first read of the store on this machine (no cache): open {first_open:.3f} s, query {first_query:.3f} s")
        opened: dict[str, list[float]] = {label: [] for label in stores}
        queried: dict[str, list[float]] = {label: [] for label in stores}
        answers: dict[str, list[tuple[Any, ...]]] = {}
        for index in range(repeats):
            for label, store in stores.items():  # alternating: drift hits both alike
                seconds, results = timed(lambda store=store: cold(store))
                opened[label].append(seconds)
                with results:
                    seconds, (_, points) = timed(lambda results=results: results.sql(POINTS_DUCKDB))
                queried[label].append(seconds)
                if index == 0:
                    answers[label] = points
        if answers["disk"] != answers["s3"]:
            first = next((i for i, (a, b) in enumerate(zip(answers["disk"], answers["s3"])) if a != b), None)
            raise SystemExit(
                f"the two stores' answers differ ({len(answers['disk'])} vs {len(answers['s3'])} points; first"
                f" difference at {first}) — not timed"
            )
        print(f"regression scan points: {len(answers['disk']):,} rows, equal from disk and from s3")
        for label in stores:
            print(f"open ({label}): {_median(opened[label])}; query ({label}): {_median(queried[label])}")
            figures[f"open_s_{label}"] = statistics.median(opened[label])
            figures[f"query_s_{label}"] = statistics.median(queried[label])
        for what in ("open", "query"):
            ratio = figures[f"{what}_s_s3"] / figures[f"{what}_s_disk"]
            figures[f"{what}_ratio"] = ratio
        total = {label: figures[f"open_s_{label}"] + figures[f"query_s_{label}"] for label in stores}
        figures["scan_ratio"] = total["s3"] / total["disk"]
        figures["first_scan_ratio"] = figures["first_scan_s_s3"] / total["disk"]
        print(
            f"regression scan, first read (no cache): s3 {figures['first_scan_s_s3']:.3f} s —"
            f" ratio {figures['first_scan_ratio']:.2f}× disk"
        )
        print(
            f"regression scan (open + query): disk {total['disk']:.3f} s, s3 {total['s3']:.3f} s —"
            f" ratio {figures['scan_ratio']:.2f}× (goal ≤ 3×: {'met' if figures['scan_ratio'] <= 3 else 'NOT met'})"
        )
        figures |= _report(stores, work, builds)
    return figures


def _report(stores: dict[str, Path], work: Path, builds: int) -> dict[str, Any]:
    from framework.report import build_site

    times: dict[str, list[float]] = {label: [] for label in stores}
    for index in range(builds):
        for label, root in stores.items():
            out = work / f"site-{label}-{index}"
            shutil.rmtree(out, ignore_errors=True)
            seconds, summary = timed(lambda out=out, root=root: build_site(root, out))
            times[label].append(seconds)
            print(f"report build {index + 1}/{builds} ({label}): {seconds:.2f} s, {summary.pages} pages")
            shutil.rmtree(out, ignore_errors=True)
    figures = {f"report_s_{label}": statistics.median(values) for label, values in times.items()}
    figures["report_ratio"] = figures["report_s_s3"] / figures["report_s_disk"]
    print(f"report: disk {_median(times['disk'])}, s3 {_median(times['s3'])} — ratio {figures['report_ratio']:.2f}×")
    return figures


CLI = [sys.executable, "-m", "framework.cli"]
SPLITS = (1, 2, 4)


def run_split(work: Path, shards: int, selection: Sequence[str]) -> dict[str, Any]:
    """The selection as ``shards`` processes at once (one unsharded process for 1), merged; the merged store's facts."""
    split = work / f"split-{shards}"
    group = f"bench-{shards}-{os.getpid()}"
    started = time.perf_counter()
    processes = []
    for k in range(1, shards + 1):
        sharding = [f"--shard={k}/{shards}", f"--run-group={group}", "--balance=count"] if shards > 1 else []
        command = [*CLI, "matrix", *selection, *sharding, f"--results={split / f'shard-{k}'}"]
        processes.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [process.communicate()[0] for process in processes]
    wall = time.perf_counter() - started
    for process, output in zip(processes, outputs):
        if process.returncode not in (0, 1):  # 1: a case did not pass — a result, shown in the table's rows
            raise SystemExit(f"a shard of {shards} exited {process.returncode}:\n{output[-3000:]}")
    merged = split / "merged"
    merge_s, _ = timed(lambda: merge([str(split / f"shard-{k}") for k in range(1, shards + 1)], str(merged)))
    with Results(merged) as results:
        _, [(rows, not_passed)] = results.sql("SELECT count(*), count(*) FILTER (WHERE outcome <> 'passed') FROM rows")
        _, counted = results.sql(
            "SELECT runtime, hardware, case_id, size, count(DISTINCT run_id) FROM rows GROUP BY ALL"
        )
    keys = {tuple(row[:4]) for row in counted}
    twice = sum(1 for row in counted if row[4] > 1)
    return {
        "shards": shards,
        "wall_s": wall,
        "merge_s": merge_s,
        "rows": rows,
        "not_passed": not_passed,
        "keys": keys,
        "twice": twice,
    }


def bench_shards(work: Path, rows: int, repeats: int, builds: int) -> dict[str, Any]:
    selection = ["--runtime=latest", "--size=tiny", "--workload=*", "--repeat=1"]
    print(f"shards: matrix {' '.join(selection)} as {', '.join(map(str, SPLITS))} shard(s)", flush=True)
    splits = [run_split(work, shards, selection) for shards in SPLITS]
    reference = splits[0]["keys"]
    figures: dict[str, Any] = {}
    for split in splits:
        missing, extra = len(reference - split["keys"]), len(split["keys"] - reference)
        n = split["shards"]
        print(
            f"{n} shard(s): {split['wall_s']:.0f} s, merged in {split['merge_s']:.1f} s — {split['rows']} rows"
            f" ({split['not_passed']} not passed), {len(split['keys'])} cases, {split['twice']} run twice,"
            f" {missing} missing and {extra} extra against the unsharded run"
        )
        figures |= {f"wall_s_{n}": split["wall_s"], f"rows_{n}": split["rows"], f"cases_{n}": len(split["keys"])}
        figures[f"wrong_{n}"] = split["twice"] + missing + extra
    return figures


PARTS: dict[str, Callable[[Path, int, int, int], dict[str, Any]]] = {"s3": bench_s3, "shards": bench_shards}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nox -s bench -- scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", action="append", choices=sorted(PARTS), help="parts to run (default: all)")
    parser.add_argument("--rows", type=int, default=100_000, help="case rows in the history (default 100,000)")
    parser.add_argument("--repeats", type=int, default=5, help="timings of each query (default 5)")
    parser.add_argument("--builds", type=int, default=2, help="report builds from each store (default 2)")
    parser.add_argument("--keep", type=Path, help="work here and keep the stores (reused)")
    args = parser.parse_args(argv)
    if min(args.rows, args.repeats, args.builds) < 1:
        parser.error("--rows, --repeats and --builds must each be ≥ 1")
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as temporary:
        work = (args.keep or Path(temporary)).resolve()
        work.mkdir(parents=True, exist_ok=True)
        print(f"work directory: {work}" + ("" if args.keep else " (removed at the end; --keep=DIR keeps it)"))
        for part in args.part or sorted(PARTS):
            print(f"\n== {part} ==")
            figures = PARTS[part](work / part, args.rows, args.repeats, args.builds)
            print(
                f"figures ({part}): "
                + ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items())
            )
            wrong = {key: value for key, value in figures.items() if key.startswith("wrong_") and value}
            if wrong:
                print(f"FAILED: a split ran a case twice, or lost or added one: {wrong}", file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
