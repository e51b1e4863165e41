"""The backends a hardware profile can name, in one registry: what starting, recovering and feeding a cluster means.

A backend is one entry here plus one hardware model (``framework/models/hardware.py``) for its settings. The
cluster session (``framework/in_runtime/clusters.py``), the runner and the models' checks all dispatch through
``BACKENDS``; nothing else spells a backend's name. Runs inside runtime environments: standard library and the
runtime's own packages only (distributed, and coiled where a profile needs it).
"""

from __future__ import annotations

import abc
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from framework.in_runtime.deployment import own_version_check
from framework.in_runtime.errors import ClusterError

if TYPE_CHECKING:
    from framework.in_runtime.clusters import ClusterSession

ROOT = Path(__file__).resolve().parents[2]


class Backend(abc.ABC):
    """What the runner needs to know of a kind of cluster. Subclasses set the three facts and ``start``."""

    name: ClassVar[str]
    # Where a runtime's Dask config takes effect: on the whole cluster, or only in the client's process (a
    # scheduler someone else started keeps its own config).
    settings_scope: ClassVar[str]
    # Whether the cluster lacks this project: its code is sent (Client.upload_file, cloudpickle by value).
    ships_code: ClassVar[bool]
    # Whether the scheduler and workers have an environment of their own: their package versions are compared
    # with the client's on connect and after each restart (``framework/in_runtime/deployment.py``).
    workers_elsewhere: ClassVar[bool]

    @abc.abstractmethod
    def start(self, session: ClusterSession) -> None:
        """Set ``session.client`` (and ``session.cluster`` when this side owns the cluster), or raise ClusterError."""

    def recover(self, session: ClusterSession) -> None:
        """Make the cluster usable again after a case was stopped (timeout): free every worker slot."""
        session.client.restart(timeout=120)


class LocalBackend(Backend):
    """A ``distributed.LocalCluster`` on this machine, sized from the profile: the embedded default."""

    name = "local"
    settings_scope = "cluster"
    ships_code = False
    workers_elsewhere = False  # this process's children, in this very environment

    def start(self, session: ClusterSession) -> None:
        from distributed import Client, LocalCluster

        hw = session.hardware
        _outlast_lost_worker_timer()
        try:
            session.cluster = LocalCluster(
                n_workers=hw["n_workers"],
                threads_per_worker=hw["threads_per_worker"],
                memory_limit=hw["memory_limit_per_worker"],
                processes=hw.get("processes", True),
                dashboard_address=_dashboard_address(),
                scheduler_port=0,
                silence_logs=logging.ERROR,
            )
            session.client = Client(session.cluster)
        except Exception as error:
            session.close()
            about_memory = any(word in f"{type(error).__name__} {error}".lower() for word in ("memory", "byte"))
            hint = (
                " — check memory_limit_per_worker against this machine's memory"
                if about_memory
                else " — the run's log has the cluster's own output"
            )
            raise ClusterError(
                f"hardware {hw['name']}: LocalCluster did not start: {type(error).__name__}: {error}{hint}"
            ) from error

    def recover(self, session: ClusterSession) -> None:
        # Cheaper and surer than restarting: a hung task cannot hold a worker that no longer exists.
        session.close()
        self.start(session)


def _dashboard_address() -> str | None:
    """A dashboard on a free port where bokeh is installed; none where it is not: old releases (distributed
    2022.10) refuse to start a LocalCluster asked for a dashboard without bokeh."""
    import importlib.util

    return ":0" if importlib.util.find_spec("bokeh") is not None else None


class AddressBackend(Backend):
    """Any running scheduler, by address (``--address`` or the profile's), TLS included."""

    name = "address"
    settings_scope = "client only"
    ships_code = True
    workers_elsewhere = True

    def start(self, session: ClusterSession) -> None:
        from distributed import Client

        hw = session.hardware
        if not session.address:
            raise ClusterError(
                f"hardware {hw['name']}: no scheduler address — pass --address=tcp://HOST:PORT or set"
                f" 'address' in matrices/hardware.yaml"
            )
        security = self._security(session)  # raises a ClusterError that says what to fix: not to be wrapped below
        timeout = hw.get("connect_timeout", 30)
        try:
            with own_version_check(session.version_warnings):
                session.client = Client(session.address, security=security, timeout=timeout)
        except OSError as error:
            session.close()
            raise ClusterError(
                f"hardware {hw['name']}: cannot reach scheduler {session.address}: {error} — is it running, and is"
                " the address (and tls:// security) right?"
            ) from error
        except Exception as error:
            session.close()
            raise ClusterError(
                f"hardware {hw['name']}: scheduler {session.address}: {type(error).__name__}: {error}"
            ) from error
        if hw.get("n_workers"):
            # Apart from connecting: its timeout is an OSError too, yet the scheduler was reached.
            try:
                session.client.wait_for_workers(hw["n_workers"], timeout=timeout)
            except Exception as error:
                session.close()
                raise ClusterError(
                    f"hardware {hw['name']}: scheduler {session.address} is up, but n_workers={hw['n_workers']} workers"
                    f" did not join within {timeout:g} s ({type(error).__name__}: {error}) — start the workers, or"
                    " lower n_workers (or raise connect_timeout) in matrices/hardware.yaml"
                ) from error

    def _security(self, session: ClusterSession) -> Any:
        tls = session.hardware.get("security")
        if session.address and session.address.startswith("tls://") and not tls:
            raise ClusterError(
                f"hardware {session.hardware['name']}: {session.address} uses TLS but the profile has no 'security'"
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
                    f"hardware {session.hardware['name']}: security.{field}: {str(path)!r} does not exist"
                    " — fix the path"
                )
            paths[field] = str(path)
        return Security(
            tls_ca_file=paths["ca_file"],
            tls_client_cert=paths["cert_file"],
            tls_client_key=paths["key_file"],
            require_encryption=tls.get("require_encryption", True),
        )


class CoiledBackend(Backend):
    """A Coiled cluster, created for the run with this runtime's exact packages (package sync)."""

    name = "coiled"
    settings_scope = "cluster"
    ships_code = True
    workers_elsewhere = True  # package sync replicates the lock, as well as it can: checked all the same

    def start(self, session: ClusterSession) -> None:
        import dask

        hw = session.hardware
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
            session.cluster = coiled.Cluster(**coiled_kwargs(hw, session.environ))
            with own_version_check(session.version_warnings):
                session.client = Client(session.cluster)
        except Exception as error:
            session.close()
            raise ClusterError(
                f"hardware {hw['name']}: Coiled cluster did not start: {type(error).__name__}: {error}"
            ) from error


BACKENDS: dict[str, Backend] = {
    backend.name: backend for backend in (LocalBackend(), AddressBackend(), CoiledBackend())
}
BACKEND_NAMES = tuple(BACKENDS)


def backend_for(hardware: dict[str, Any]) -> Backend:
    """The backend of a hardware profile (plain data, as the runner gets it)."""
    name = hardware.get("backend")
    if name not in BACKENDS:  # the models allow no other value: a plan written by hand, or by another version
        raise ClusterError(
            f"hardware {hardware.get('name')}: unknown backend {name!r} — known: {', '.join(BACKEND_NAMES)}"
        )
    return BACKENDS[name]


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
