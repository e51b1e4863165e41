"""Hardware profile → a running cluster and a client: ``local``, ``address`` or ``coiled``.

The only module that knows LocalCluster, scheduler addresses and Coiled. Runs inside runtime environments,
so it takes the profile as plain data (the JSON the controller wrote) and imports nothing from pydantic.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Optional

from framework.errors import ClusterError

ROOT = Path(__file__).resolve().parent.parent


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
    ):
        self.hardware = hardware
        self.address = address or hardware.get("address")
        self.environ = environ or {}
        self.cluster: Any = None
        self.client: Any = None

    # -- life cycle ------------------------------------------------------------------------------------
    def __enter__(self) -> ClusterSession:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(self) -> None:
        backend = self.hardware["backend"]
        if backend == "local":
            self._start_local()
        elif backend == "address":
            self._connect()
        elif backend == "coiled":
            self._start_coiled()
        else:  # the models allow no other value
            raise ClusterError(f"hardware {self.hardware['name']}: unknown backend {backend!r}")
        if backend != "local":
            self._ship_project()

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
        """Make the cluster usable again after a case was stopped (timeout): free every worker slot."""
        if self.hardware["backend"] == "local":
            # Cheaper and surer than restarting: a hung task cannot hold a worker that no longer exists.
            self.close()
            self.start()
        else:
            self.client.restart(timeout=120)

    # -- backends --------------------------------------------------------------------------------------
    def _start_local(self) -> None:
        from distributed import Client, LocalCluster

        hw = self.hardware
        _outlast_lost_worker_timer()
        try:
            self.cluster = LocalCluster(
                n_workers=hw["n_workers"],
                threads_per_worker=hw["threads_per_worker"],
                memory_limit=hw["memory_limit_per_worker"],
                processes=hw.get("processes", True),
                dashboard_address=":0",
                scheduler_port=0,
                silence_logs=logging.ERROR,
            )
            self.client = Client(self.cluster)
        except Exception as error:
            self.close()
            raise ClusterError(
                f"hardware {hw['name']}: LocalCluster did not start: {type(error).__name__}: {error}"
                " — check memory_limit_per_worker against this machine's memory"
            ) from error

    def _connect(self) -> None:
        from distributed import Client

        hw = self.hardware
        if not self.address:
            raise ClusterError(
                f"hardware {hw['name']}: no scheduler address — pass --address=tcp://HOST:PORT or set"
                f" 'address' in matrices/hardware.yaml"
            )
        security = self._security()  # raises a ClusterError that says what to fix: not to be wrapped below
        timeout = hw.get("connect_timeout", 30)
        try:
            self.client = Client(self.address, security=security, timeout=timeout)
        except OSError as error:
            self.close()
            raise ClusterError(
                f"hardware {hw['name']}: cannot reach scheduler {self.address}: {error} — is it running, and is"
                " the address (and tls:// security) right?"
            ) from error
        except Exception as error:
            self.close()
            raise ClusterError(
                f"hardware {hw['name']}: scheduler {self.address}: {type(error).__name__}: {error}"
            ) from error
        if hw.get("n_workers"):
            # Apart from connecting: its timeout is an OSError too, yet the scheduler was reached.
            try:
                self.client.wait_for_workers(hw["n_workers"], timeout=timeout)
            except Exception as error:
                self.close()
                raise ClusterError(
                    f"hardware {hw['name']}: scheduler {self.address} is up, but n_workers={hw['n_workers']} workers"
                    f" did not join within {timeout:g} s ({type(error).__name__}: {error}) — start the workers, or"
                    " lower n_workers (or raise connect_timeout) in matrices/hardware.yaml"
                ) from error

    def _security(self) -> Any:
        tls = self.hardware.get("security")
        if self.address and self.address.startswith("tls://") and not tls:
            raise ClusterError(
                f"hardware {self.hardware['name']}: {self.address} uses TLS but the profile has no 'security'"
                " — add security: {ca_file, cert_file, key_file}"
            )
        if not tls:
            return None
        from distributed.security import Security

        paths = {}
        for field in ("ca_file", "cert_file", "key_file"):
            path = Path(tls[field])
            path = path if path.is_absolute() else ROOT / path
            if not path.exists():
                raise ClusterError(
                    f"hardware {self.hardware['name']}: security.{field}: {str(path)!r} does not exist — fix the path"
                )
            paths[field] = str(path)
        return Security(
            tls_ca_file=paths["ca_file"],
            tls_client_cert=paths["cert_file"],
            tls_client_key=paths["key_file"],
            require_encryption=tls.get("require_encryption", True),
        )

    def _start_coiled(self) -> None:
        import dask

        hw = self.hardware
        if not (dask.config.get("coiled.token", None) or os.environ.get("DASK_COILED__TOKEN")):
            raise ClusterError(
                f"hardware {hw['name']}: no Coiled credentials — run `coiled login` (or set DASK_COILED__TOKEN)"
                " in the environment that runs the matrix"
            )
        try:
            import coiled
        except ImportError as error:
            raise ClusterError(
                f"hardware {hw['name']}: coiled is not installed in this runtime — add 'coiled' to its packages"
            ) from error
        from distributed import Client

        try:
            self.cluster = coiled.Cluster(**coiled_kwargs(hw, self.environ))
            self.client = Client(self.cluster)
        except Exception as error:
            self.close()
            raise ClusterError(
                f"hardware {hw['name']}: Coiled cluster did not start: {type(error).__name__}: {error}"
            ) from error

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


def coiled_kwargs(hardware: dict[str, Any], environ: dict[str, str]) -> dict[str, Any]:
    """Map a coiled hardware profile onto ``coiled.Cluster`` keyword arguments (checked against its signature)."""
    kwargs: dict[str, Any] = {
        "name": f"dask-blessing-{hardware['name']}-{os.getpid()}",
        "n_workers": hardware["n_workers"],
        "worker_vm_types": list(hardware["worker_vm_types"]),
        "scheduler_vm_types": list(hardware["scheduler_vm_types"]),
        "spot_policy": hardware.get("spot_policy", "on-demand"),
        "idle_timeout": hardware.get("idle_timeout", "1 hour"),
        "tags": dict(hardware.get("tags") or {}),
        "environ": dict(environ),
        # Replicate this runtime's exact packages on the cluster.
        "package_sync": True,
        "wait_for_workers": True,
        "shutdown_on_close": True,
    }
    if hardware.get("region"):
        kwargs["region"] = hardware["region"]
    if hardware.get("workspace"):
        kwargs["workspace"] = hardware["workspace"]
    if hardware.get("worker_disk_size"):
        kwargs["worker_disk_size"] = max(1, int(hardware["worker_disk_size"]) // 2**30)  # GiB
    worker_options = {}
    if hardware.get("threads_per_worker"):
        worker_options["nthreads"] = hardware["threads_per_worker"]
    if hardware.get("memory_limit_per_worker"):
        worker_options["memory_limit"] = hardware["memory_limit_per_worker"]
    if worker_options:
        kwargs["worker_options"] = worker_options
    return kwargs


def _outlast_lost_worker_timer() -> None:
    """distributed#8534: a LocalCluster closes a lost worker's nanny for good when no worker of its name is back
    within ``distributed.deploy.lost-worker-timeout`` (15 s) — which a later ``Client.restart`` can hit, leaving
    the cluster with no workers. The embedded cluster is the harness, not the thing under test: give it an hour,
    unless the runtime's own Dask config chose a value."""
    import dask

    key = "distributed.deploy.lost-worker-timeout"
    if dask.config.get(key, None) in (None, "15s"):
        dask.config.set({key: "1h"})
