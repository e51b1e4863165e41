"""A writer of a URL store, run as its own process by tests/unit/test_object_store.py (two at once, killed …).

python tests/unit/store_writer.py URL RUN FILES [--kill-before-upload=K] [--built-at=ISO] [--pause=S]

Opens the store as a verb would, records the shared environment, writes FILES case files of run RUN (each uploaded as
written), a log file the way stability logs are written (uploaded at the end), then closes the store. With
``--kill-before-upload=K`` the process SIGKILLs itself when its K-th upload is about to start: the file is complete in
the work directory and not in the store, as after a writer killed between its write and its PUT.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import time

from framework import object_store
from framework.records import write_record
from framework.results import ResultsStore, case_table, write_atomic


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("run")
    parser.add_argument("files", type=int)
    parser.add_argument("--kill-before-upload", type=int, default=0)
    parser.add_argument("--built-at", default="2026-01-01T00:00:00+00:00")
    parser.add_argument("--pause", type=float, default=0.0)
    args = parser.parse_args()
    if args.kill_before_upload:
        upload = object_store.RemoteStore.upload
        calls = []

        def killed(self: object_store.RemoteStore, path: object) -> str | None:
            calls.append(path)
            if len(calls) == args.kill_before_upload:
                os.kill(os.getpid(), signal.SIGKILL)
            return upload(self, path)  # type: ignore[arg-type]

        object_store.RemoteStore.upload = killed  # type: ignore[method-assign]
    root = object_store.open_store(args.url)
    store = ResultsStore(root)
    store.record_environment(
        {
            "env_hash": "e" * 16,
            "runtime": "latest",
            "runtime_hash": "r" * 16,
            "python": "3.11",
            "built_at": dt.datetime.fromisoformat(args.built_at),
            "requirements": ["dask"],
            "lock": "dask==2026.1.0\ndistributed==2026.1.0",
        }
    )
    secret = os.environ.get("AWS_SECRET_ACCESS_KEY", "")
    for index in range(args.files):
        run_id = f"{args.run}-{index:03d}"
        row = {
            "schema_version": 3,
            "run_id": run_id,
            "run_started_at": "2026-01-01T00:00:00+00:00",
            "workload": "groupby_agg",
            "case_id": "groupby_agg[by=id]",
            "size": "tiny",
            "phase": "measure",
            "outcome": "failed",
            "wall_s": 1.0,
            "runtime": "latest",
            "hardware": "local",
            "env_hash": "e" * 16,
            "env_vars": {"AWS_SECRET_ACCESS_KEY": secret},
            "error": f"a message that quotes the secret {secret}",
        }
        write_atomic(case_table([row]), store.cases_dir / f"{run_id}__latest__local.parquet")
        time.sleep(args.pause)
    write_record(root, "health", f"{args.run}__latest", [{"run_id": args.run, "usable": True, "note": secret}])
    log = root / "stability" / "logs" / f"{args.run}__latest.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(f"run {args.run} logged\n", encoding="utf-8")
    object_store.close_all()


if __name__ == "__main__":
    main()
