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

    nox -s bench -- scale [--part=s3] [--rows=100000] [--repeats=5] [--builds=2] [--keep=DIR]
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


PARTS: dict[str, Callable[[Path, int, int, int], dict[str, Any]]] = {"s3": bench_s3}


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
    return 0


if __name__ == "__main__":
    sys.exit(main())
