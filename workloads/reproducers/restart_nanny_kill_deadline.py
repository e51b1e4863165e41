"""Client.restart(timeout=120) fails after about 5 s when a nanny is held up for a second while killing its worker.

Scheduler.restart_workers asks every nanny to kill its worker with Nanny.kill's own default of 5 s; it does not pass
on the restart's timeout (on purpose, says its comment). The nanny waits 4 s for the worker to close, SIGKILLs it,
then joins it for whatever is left of the 5 s. A worker busy in a task does not close within 4 s, so the kill is
needed; if the nanny's process gets no CPU for about a second around then (a loaded machine: the stability fuzzer met
this on 2026.3.0 at a load of 7 on 2 cores), nothing is left of the 5 s, the join times out, and the whole restart
raises "1/N nanny worker(s) did not shut down within 120s" — after 5 s, not 120.

Here the load is one stall made on purpose: the scheduler and two workers are separate processes (`dask scheduler`,
`dask worker` with its nanny), each worker runs a task that sleeps, and this script stops one nanny with SIGSTOP from
3.5 s to 5.5 s after the restart began. The same restart without the stall is run first, as the control. Up to three
attempts, since the kill's join races the kernel reaping the worker. Exit 1 if a stalled restart fails well before
its timeout (the behaviour is present), 0 if all finish, 2 on any other error (the control failing included).
"""

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import distributed
from distributed import Client

RESTART_TIMEOUT_S = 120
STALL_FROM_S, STALL_UNTIL_S = 3.5, 5.5  # the nanny's kill: 4 s to close, SIGKILL, join until 5 s
BALLAST = 1 << 30  # bytes a busy worker holds, as a worker holding data does


def busy():
    held = b"x" * BALLAST  # written page by page (no huge pages): a process that takes ~0.1 s to die once killed
    # A thread that is not a daemon keeps the worker's process from exiting when its close gives up on the task after
    # 4 s, so the nanny must SIGKILL it — as it must a worker slow to close on a loaded machine.
    threading.Thread(target=time.sleep, args=(60,), daemon=False).start()
    time.sleep(60)
    return len(held)


def executing(dask_worker):
    return bool(getattr(dask_worker, "state", dask_worker).executing)


class Deployment:
    """`dask scheduler` and two `dask worker` processes (each a nanny with its worker process as a child)."""

    def __init__(self, scratch):
        self.file = scratch / "scheduler.json"
        self.file.unlink(missing_ok=True)  # the last attempt's
        self.processes = []
        python = [sys.executable, "-m"]
        self.log = (scratch / "cluster.log").open("a")  # the scheduler's and nannies' logs, every attempt
        quiet = {"stdout": subprocess.DEVNULL, "stderr": self.log}
        scheduler = [*python, "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0"]
        self.processes.append(
            subprocess.Popen([*scheduler, "--no-dashboard", "--scheduler-file", str(self.file)], **quiet)
        )
        deadline = time.monotonic() + 60
        while not self.file.exists() or not self.file.read_text().strip():
            if time.monotonic() > deadline:
                raise RuntimeError("set-up: the scheduler wrote no scheduler file within 60 s")
            time.sleep(0.1)
        worker = [*python, "distributed.cli.dask_worker", "--scheduler-file", str(self.file), "--nthreads", "1"]
        self.nannies = [
            subprocess.Popen([*worker, "--no-dashboard", "--name", f"w{i}", "--host", "127.0.0.1"], **quiet)
            for i in range(2)
        ]
        self.processes += self.nannies

    def close(self):
        """Nannies first (a nanny that exits on SIGTERM closes its worker process), then the scheduler."""
        for process in [*self.nannies, self.processes[0]]:
            try:
                process.send_signal(signal.SIGCONT)
                process.terminate()
                process.wait(20)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        self.log.close()


def stall(pid, started):
    """SIGSTOP the nanny from STALL_FROM_S to STALL_UNTIL_S after the restart began: a CPU it does not get."""
    time.sleep(max(0.0, started + STALL_FROM_S - time.monotonic()))
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(max(0.0, started + STALL_UNTIL_S - time.monotonic()))
    finally:
        os.kill(pid, signal.SIGCONT)


def restart_once(scratch, stalled):
    deployment = Deployment(scratch)
    try:
        with Client(scheduler_file=str(deployment.file), timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
            workers = list(client.scheduler_info()["workers"])
            futures = [client.submit(busy, workers=[address], pure=False) for address in workers]
            deadline = time.monotonic() + 30
            while sum(len(tasks) for tasks in client.processing().values()) < 2 or not all(
                client.run(executing, workers=workers).values()
            ):
                if time.monotonic() > deadline:
                    raise RuntimeError("set-up: the busy tasks did not start within 30 s")
                time.sleep(0.1)
            del futures
            started = time.monotonic()
            staller = None
            if stalled:
                staller = threading.Thread(target=stall, args=(deployment.nannies[0].pid, started), daemon=True)
                staller.start()
            try:
                client.restart(timeout=RESTART_TIMEOUT_S)
                outcome = None
            except Exception as error:  # what it raised is the finding
                outcome = f"{type(error).__name__}: {str(error)[:100]}"
            elapsed = time.monotonic() - started
            if staller is not None:
                staller.join()
            return outcome, elapsed
    finally:
        deployment.close()


def main(attempts=3):
    scratch = Path(tempfile.mkdtemp(prefix="restart-kill-deadline-"))
    control, elapsed = restart_once(scratch, stalled=False)
    if control is not None:
        print(f"distributed {distributed.__version__}: the control restart (no stall) failed: {control}")
        return 2
    print(f"control: Client.restart(timeout={RESTART_TIMEOUT_S}) without a stall finished in {elapsed:.1f} s")
    for attempt in range(1, attempts + 1):
        outcome, elapsed = restart_once(scratch, stalled=True)
        if outcome is not None and elapsed < RESTART_TIMEOUT_S / 2:
            print(
                f"distributed {distributed.__version__}: PRESENT (attempt {attempt}) — one nanny stalled"
                f" {STALL_UNTIL_S - STALL_FROM_S:.0f} s while killing its worker; Client.restart(timeout="
                f"{RESTART_TIMEOUT_S}) raised after {elapsed:.1f} s: {outcome} (logs: {scratch / 'cluster.log'})"
            )
            return 1
        print(f"attempt {attempt}: the stalled restart {'finished' if outcome is None else outcome} in {elapsed:.1f} s")
    print(
        f"distributed {distributed.__version__}: ok — {attempts} restarts with a nanny stalled"
        f" {STALL_UNTIL_S - STALL_FROM_S:.0f} s finished within their {RESTART_TIMEOUT_S} s"
    )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(*map(int, sys.argv[1:2])))
    except Exception:
        traceback.print_exc()
        sys.exit(2)
