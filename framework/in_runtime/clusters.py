"""Hardware profile → a running cluster and a client, through the backend registry (``backends.py``).

The session's life cycle (start, recover after a timeout, close), what the cluster really is (its shape as the
scheduler sees it), and sending this project to a cluster that lacks it. Runs inside runtime environments, so it
takes the profile as plain data (the JSON the controller wrote) and imports nothing from pydantic.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Optional

from framework.in_runtime import deployment
from framework.in_runtime.backends import backend_for
from framework.in_runtime.errors import ClusterError

ROOT = Path(__file__).resolve().parents[2]


def project_archive(directory: Path) -> Path:
    """A zip of ``framework`` and ``workloads`` — subpackages too (workloads/guards, framework/chaos, ...): a
    guard's tasks are module-level functions of ``workloads.guards.<name>``, pickled by reference when the standard
    pickle can, and a scheduler without them cannot even read the graph (``No module named 'workloads.guards'``)."""
    import zipfile

    archive = directory / "dask_blessing_project.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
        for package in ("framework", "workloads"):
            for source in sorted((ROOT / package).rglob("*.py")):
                bundle.write(source, source.relative_to(ROOT).as_posix())
    return archive


class ClusterSession:
    """A client on the profile's cluster, able to start afresh after a case hangs."""

    def __init__(
        self,
        hardware: dict[str, Any],
        address: Optional[str] = None,
        environ: Optional[dict[str, str]] = None,
        runtime: Optional[dict[str, Any]] = None,
    ):
        self.hardware = hardware
        self.address = address or hardware.get("address")
        self.environ = environ or {}
        self.runtime = runtime or {"name": "unnamed"}
        self.cluster: Any = None
        self.client: Any = None
        # What a cluster with an environment of its own runs (deployment.record); None on a local cluster.
        self.worker_packages: Optional[dict[str, Any]] = None
        # Distributed's own version warnings from connecting, held until the check has spoken (deployment.py).
        self.version_warnings: list[warnings.WarningMessage] = []

    # -- life cycle ------------------------------------------------------------------------------------
    def __enter__(self) -> ClusterSession:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(self) -> None:
        backend = backend_for(self.hardware)
        backend.start(self)
        if backend.ships_code:
            self._ship_project()
        if backend.workers_elsewhere:  # after shipping: an old cluster runs one of this project's functions
            self._check_deployment()

    def _check_deployment(self) -> None:
        """Compare the scheduler's and workers' versions with this environment's; a mismatch closes the client."""
        try:
            self.worker_packages = deployment.check(
                self.client,
                deployment.checked_packages(self.runtime),
                self.hardware["name"],
                self.runtime["name"],
            )
        except deployment.DeploymentMismatchError as error:
            self.worker_packages = error.record
            self.version_warnings.clear()  # the error says what matters, in one line
            self.close()
            raise
        except ClusterError:
            self.close()
            raise
        deployment.release(self.version_warnings)

    def _ship_project(self) -> None:
        """Make ``framework`` and ``workloads`` importable on a cluster that has only the runtime's packages.

        Pickling by value is not enough: distributed pickles task graphs with the standard pickle first, which
        refers to module-level workload functions by name. ``Client.upload_file`` puts a zip of both packages
        on the scheduler's and every worker's path, workers that join later included.
        """
        import tempfile

        with tempfile.TemporaryDirectory(prefix="dask-blessing-") as directory:
            archive = project_archive(Path(directory))
            try:
                self.client.upload_file(str(archive))
            except Exception as error:
                self.close()
                raise ClusterError(
                    f"hardware {self.hardware['name']}: could not send this project's workloads to the cluster:"
                    f" {type(error).__name__}: {error}"
                ) from error

    def close(self) -> None:
        client, cluster = self.client, self.cluster
        self.client = self.cluster = None
        if client is not None:
            try:
                client.close(timeout=10)
            except Exception:
                pass
        if cluster is not None:
            try:
                cluster.close(timeout=20)
            except Exception:
                pass

    def recover(self) -> None:
        """Make the cluster usable again after a case was stopped (timeout): free every worker slot.

        Workers restarted elsewhere may come back in another environment: checked again."""
        backend = backend_for(self.hardware)
        backend.recover(self)
        if backend.workers_elsewhere:
            self._check_deployment()

    # -- what the cluster really is ---------------------------------------------------------------------
    def shape(self) -> dict[str, Any]:
        """Workers, threads and memory as the scheduler sees them (a remote cluster may differ from its profile)."""
        workers = scheduler_workers(self.client).values()
        return {
            "cluster_workers": len(workers),
            "cluster_threads": sum(int(w.get("nthreads", 0)) for w in workers),
            "cluster_memory_limit_bytes": sum(int(w.get("memory_limit") or 0) for w in workers) or None,
        }


def scheduler_workers(client: Any) -> dict[str, dict[str, Any]]:
    """Every worker's info (name, nanny, nthreads, memory_limit …), asked of the scheduler now.

    Not ``client.scheduler_info()["workers"]``: distributed 2025.4–2025.5 list 5 workers by default, and from 2026
    the client's periodic refresh (which asks for no workers) can replace the answer before it is returned."""
    if _identity_takes_n_workers():
        try:
            identity = client.sync(client.scheduler.identity, n_workers=-1)
        except TypeError:  # a scheduler older than this client: it lists every worker anyway
            identity = client.sync(client.scheduler.identity)
    else:  # not asked with n_workers at all: an old scheduler would log the refused call's traceback
        identity = client.sync(client.scheduler.identity)
    workers: dict[str, dict[str, Any]] = identity.get("workers", {})
    return workers


def _identity_takes_n_workers() -> bool:
    """``Scheduler.identity(n_workers=...)`` exists from distributed 2025.4.0 (judged by this client's version)."""
    import re

    import distributed

    numbers = re.findall(r"\d+", distributed.__version__)[:2]
    return tuple(int(number) for number in numbers) >= (2025, 4)
