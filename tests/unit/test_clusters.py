"""``framework.in_runtime.clusters`` without a cluster: Coiled arguments, missing credentials, and the environment a
remote cluster gets (``framework.in_runtime.runner._cluster_environ``)."""

from __future__ import annotations

import inspect
import time
from typing import Any

import dask
import pytest

from framework.config import load_catalog
from framework.in_runtime.backends import coiled_kwargs
from framework.in_runtime.clusters import ClusterSession, project_archive, scheduler_workers
from framework.in_runtime.errors import ClusterError
from framework.in_runtime.runner import _cluster_environ

GiB = 2**30
COILED_PROFILES = sorted(name for name, hw in load_catalog().hardware.items() if hw.backend == "coiled")


def coiled_profile(name: str) -> dict[str, Any]:
    """The profile as the runner gets it: ``HardwareProfile.model_dump(mode="json")``."""
    dumped: dict[str, Any] = load_catalog().hardware[name].model_dump(mode="json")
    return dumped


def test_the_catalog_declares_coiled_profiles():
    assert {"coiled-small", "coiled-parquet", "coiled-spill"} <= set(COILED_PROFILES)


@pytest.mark.parametrize("name", COILED_PROFILES)
def test_coiled_kwargs_are_parameters_of_coiled_cluster(name):
    import coiled

    hardware = coiled_profile(name)
    environ = {"DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION": "1.5", "MALLOC_TRIM_THRESHOLD_": "0"}

    kwargs = coiled_kwargs(hardware, environ)

    parameters = inspect.signature(coiled.Cluster).parameters
    unknown = sorted(set(kwargs) - set(parameters))
    assert not unknown, f"{name}: coiled.Cluster takes no {unknown}"
    assert kwargs["name"].startswith(f"dask-blessing-{name}-")
    assert kwargs["n_workers"] == hardware["n_workers"]
    assert kwargs["worker_vm_types"] == hardware["worker_vm_types"]
    assert kwargs["scheduler_vm_types"] == hardware["scheduler_vm_types"]
    assert kwargs["spot_policy"] == hardware["spot_policy"]
    assert kwargs["region"] == hardware["region"]
    assert kwargs["tags"] == hardware["tags"]
    assert kwargs["idle_timeout"] == hardware["idle_timeout"]
    assert kwargs["environ"] == environ
    assert kwargs["package_sync"] is True
    assert kwargs["shutdown_on_close"] is True
    if hardware["worker_disk_size"] is None:
        assert "worker_disk_size" not in kwargs
    else:
        assert kwargs["worker_disk_size"] == hardware["worker_disk_size"] // GiB
        assert isinstance(kwargs["worker_disk_size"], int)
    # No catalog profile overrides threads or memory: Coiled's defaults for the VM type apply.
    assert "worker_options" not in kwargs


def test_coiled_spill_asks_for_64_gib_disks():
    assert coiled_kwargs(coiled_profile("coiled-spill"), {})["worker_disk_size"] == 64


def test_coiled_threads_and_memory_go_to_worker_options():
    hardware = {
        **coiled_profile("coiled-small"),
        "threads_per_worker": 2,
        "memory_limit_per_worker": 6 * GiB,
        "worker_disk_size": 100 * GiB + 5,
        "workspace": "benchmarks",
    }

    kwargs = coiled_kwargs(hardware, {})

    assert kwargs["worker_options"] == {"nthreads": 2, "memory_limit": 6 * GiB}
    assert kwargs["worker_disk_size"] == 100
    assert kwargs["workspace"] == "benchmarks"


def test_coiled_without_credentials_says_to_log_in(monkeypatch):
    import coiled

    def must_not_be_called(**kwargs: Any) -> None:
        raise AssertionError("coiled.Cluster was called without credentials")

    monkeypatch.delenv("DASK_COILED__TOKEN", raising=False)
    monkeypatch.setattr(coiled, "Cluster", must_not_be_called)
    session = ClusterSession(coiled_profile("coiled-small"))

    started = time.monotonic()
    with dask.config.set({"coiled.token": None}), pytest.raises(ClusterError) as caught:
        session.start()

    assert time.monotonic() - started < 2
    message = str(caught.value)
    assert message.startswith("hardware coiled-small: no Coiled credentials")
    assert "`coiled login`" in message
    assert "DASK_COILED__TOKEN" in message
    assert session.client is None
    assert session.cluster is None


def test_cluster_environ_turns_dask_config_into_dask_variables():
    runtime = {
        "env": {"MALLOC_TRIM_THRESHOLD_": "0"},
        "dask_config": {
            "distributed.scheduler.worker-saturation": 1.5,
            "distributed.scheduler.work-stealing": False,
            "distributed.comm.timeouts.connect": "30s",
            "distributed.worker.memory": {"target": False, "spill": 0.8, "pause": None},
            "array.slicing.split-large-chunks": True,
        },
    }

    environ = _cluster_environ(runtime)

    assert environ == {
        "MALLOC_TRIM_THRESHOLD_": "0",
        "DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION": "1.5",
        "DASK_DISTRIBUTED__SCHEDULER__WORK_STEALING": "False",
        "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "30s",
        "DASK_DISTRIBUTED__WORKER__MEMORY": "{'target': False, 'spill': 0.8, 'pause': None}",
        "DASK_ARRAY__SLICING__SPLIT_LARGE_CHUNKS": "True",
    }
    # What the cluster's Dask makes of them: the runtime's config, values and types intact.
    collected = dask.config.collect_env(environ)
    for key, value in runtime["dask_config"].items():
        assert dask.config.get(key, config=collected) == value, key


def test_cluster_environ_of_a_runtime_without_settings_is_empty():
    assert _cluster_environ({"name": "bare"}) == {}


@pytest.mark.cluster
def test_scheduler_workers_lists_every_worker_however_many_there_are():
    from distributed import Client, LocalCluster

    with (
        LocalCluster(n_workers=7, threads_per_worker=1, processes=False, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        workers = scheduler_workers(client)
        shape = ClusterSession.shape(type("Session", (), {"client": client})())
        addresses = sorted(cluster.scheduler.workers)

    assert sorted(workers) == addresses and len(addresses) == 7
    assert all(info["nthreads"] == 1 for info in workers.values())
    assert shape["cluster_workers"] == 7 and shape["cluster_threads"] == 7


def fake_client(calls: list[dict[str, Any]], refuses_n_workers: bool) -> Any:
    """A client whose scheduler rpc records each ``identity`` call (refusing ``n_workers`` as before 2025.4)."""

    class Client:
        class scheduler:  # noqa: N801 - the rpc attribute's name
            @staticmethod
            def identity(**kwargs: Any) -> dict[str, Any]:
                calls.append(kwargs)
                if kwargs and refuses_n_workers:
                    raise TypeError("identity() got an unexpected keyword argument 'n_workers'")
                return {"workers": {"tcp://a:1": {"nthreads": 2}}}

        def sync(self, function: Any, **kwargs: Any) -> Any:
            return function(**kwargs)

    return Client()


def test_scheduler_workers_asks_releases_without_n_workers_plainly():
    calls: list[dict[str, Any]] = []

    assert scheduler_workers(fake_client(calls, refuses_n_workers=True)) == {"tcp://a:1": {"nthreads": 2}}
    assert calls == [{"n_workers": -1}, {}]


def test_scheduler_workers_does_not_offer_n_workers_to_a_release_without_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A refused call costs a traceback in the old scheduler's log (seen on every bless against 2024.12.1)."""
    import distributed

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(distributed, "__version__", "2025.3.1")
    assert scheduler_workers(fake_client(calls, refuses_n_workers=True)) == {"tcp://a:1": {"nthreads": 2}}
    monkeypatch.setattr(distributed, "__version__", "2025.4.0")
    scheduler_workers(fake_client(calls, refuses_n_workers=False))
    assert calls == [{}, {"n_workers": -1}]


def test_the_archive_a_remote_cluster_gets_holds_every_workload_module(tmp_path: Any) -> None:
    """A remote scheduler unpickles graphs whose functions travel by reference (``workloads.guards.x.f``): the
    module of every catalogue workload, and each package's ``__init__`` on its way, must be in the zip."""
    import zipfile

    with zipfile.ZipFile(project_archive(tmp_path)) as bundle:
        names = set(bundle.namelist())
    for workload in load_catalog().workloads.values():
        parts = workload.function.split(":")[0].split(".")
        assert "/".join(parts) + ".py" in names, workload.name
        for depth in range(1, len(parts)):
            assert "/".join(parts[:depth]) + "/__init__.py" in names, workload.name
    assert "framework/chaos/graphs.py" in names and not any("__pycache__" in name for name in names)


def test_every_backend_of_the_registry_has_a_hardware_model_and_no_model_lacks_one() -> None:
    """Adding a backend is one registry entry (framework/in_runtime/backends.py) plus one hardware model: both sides
    agree."""
    import typing

    from framework.in_runtime.backends import BACKEND_NAMES, BACKENDS
    from framework.models import HardwareProfile

    union = typing.get_args(HardwareProfile)[0]
    modelled = {typing.get_args(model.model_fields["backend"].annotation)[0] for model in typing.get_args(union)}
    assert modelled == set(BACKEND_NAMES) == set(BACKENDS)
    assert all(backend.settings_scope in ("cluster", "client only") for backend in BACKENDS.values())


def test_a_plan_naming_an_unknown_backend_is_a_cluster_error() -> None:
    from framework.in_runtime.backends import backend_for

    with pytest.raises(ClusterError, match=r"^hardware odd: unknown backend 'slurm' — known: local, address, coiled$"):
        backend_for({"name": "odd", "backend": "slurm"})


def test_a_local_cluster_asks_for_a_dashboard_only_where_bokeh_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """distributed 2022.10 refuses to start a LocalCluster asked for a dashboard without bokeh."""
    import importlib.util

    from framework.in_runtime import backends

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "bokeh" else real(name, *a))
    assert backends._dashboard_address() is None
    monkeypatch.setattr(importlib.util, "find_spec", real)
    assert backends._dashboard_address() == (":0" if real("bokeh") is not None else None)
