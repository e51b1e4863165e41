"""``framework/in_runtime/deployment.py``: which packages are checked, how the cluster's answer is compared and
recorded, and the one line a mismatch is. The real cluster is ``tests/integration/test_address_backend.py``'s."""

from __future__ import annotations

import importlib.metadata
import warnings
from typing import Any, Optional

import pytest

from framework.in_runtime import deployment
from framework.in_runtime.errors import ClusterError

Versions = dict[str, Optional[str]]


def versions(**packages: Optional[str]) -> Versions:
    return {"python": "3.11.7", "dask": "2026.3.0", "distributed": "2026.3.0", **packages}


def answer(python: str = "3.11.7.final.0", **packages: Optional[str]) -> dict[str, Any]:
    """One process's part of a ``Client.get_versions`` answer."""
    return {"host": {"python": python}, "packages": {"python": python.rsplit(".", 2)[0], **packages}}


def test_checked_packages_are_the_card_without_extras_plus_what_every_deployment_shares() -> None:
    runtime = {"spec": {"packages": {"dask[dataframe,array]": "==2026.3.0", "Scikit_Learn": "", "moto[server]": ""}}}

    assert deployment.checked_packages(runtime) == ["cloudpickle", "dask", "distributed", "moto", "scikit-learn"]
    assert deployment.checked_packages({}) == ["cloudpickle", "dask", "distributed"]


def test_a_matching_cluster_has_no_difference_and_python_compares_on_major_minor() -> None:
    ours = versions(pandas="3.0.2")
    workers = {"tcp://w1:1": versions(pandas="3.0.2", python="3.11.9"), "tcp://w2:1": versions(pandas="3.0.2")}

    assert deployment.compare(ours, versions(pandas="3.0.2"), workers) == []


def test_every_difference_names_package_both_versions_and_where() -> None:
    ours = versions(pandas="3.0.2", cloudpickle="3.1.1")
    scheduler = versions(pandas="3.0.2", cloudpickle="3.1.1", python="3.10.4")
    workers = {
        "tcp://w1:1": versions(pandas="2.2.3", cloudpickle="3.1.1"),
        "tcp://w2:1": versions(pandas="2.2.3", cloudpickle=None),
        "tcp://w3:1": versions(pandas="3.0.2", cloudpickle="3.1.1"),
    }

    differences = deployment.compare(ours, scheduler, workers)

    assert differences == [
        ("cloudpickle", "3.1.1", None, ["tcp://w2:1"]),
        ("pandas", "3.0.2", "2.2.3", ["tcp://w1:1", "tcp://w2:1"]),
        ("python", "3.11.7", "3.10.4", ["scheduler"]),
    ]
    message = deployment.mismatch_message("address", "stable", differences, n_workers=3)
    assert message == (
        "hardware address: the cluster does not run runtime stable's packages:"
        " cloudpickle 3.1.1 here, not installed on worker tcp://w2:1;"
        " pandas 3.0.2 here, 2.2.3 on 2 of 3 workers (tcp://w1:1, tcp://w2:1);"
        " python 3.11.7 here, 3.10.4 on the scheduler"
        " — install the runtime's lock on the scheduler and every worker (nox -s export -- --runtime=stable, or the"
        " blessed lock) and restart them"
    )
    assert "\n" not in message


def test_many_workers_are_counted_not_all_listed() -> None:
    workers = {f"tcp://w{index}:1": versions(dask="2026.1.0") for index in range(10)}
    differences = deployment.compare(versions(), versions(), workers)

    message = deployment.mismatch_message("address", "latest", differences, n_workers=10)

    assert "dask 2026.3.0 here, 2026.1.0 on 10 of 10 workers (tcp://w0:1, tcp://w1:1, tcp://w2:1 and 7 more)" in message
    assert "distributed" not in message


def test_the_record_counts_workers_per_version_and_keeps_the_schedulers() -> None:
    workers = {"tcp://w1:1": versions(pandas="3.0.2"), "tcp://w2:1": versions(pandas=None)}

    found = deployment.record(versions(pandas="3.0.2"), versions(pandas="3.0.2"), workers)

    assert found == {
        "workers": 2,
        "scheduler": {"python": "3.11.7", "dask": "2026.3.0", "distributed": "2026.3.0", "pandas": "3.0.2"},
        "packages": {
            "dask": {"2026.3.0": 2},
            "distributed": {"2026.3.0": 2},
            "pandas": {"3.0.2": 1, "not installed": 1},
            "python": {"3.11.7": 2},
        },
    }


def test_a_package_the_client_cannot_read_is_listed_as_unchecked() -> None:
    found = deployment.record(versions(xgboost=None), versions(xgboost=None), {"tcp://w1:1": versions(xgboost=None)})

    assert found["unchecked"] == ["xgboost"]


class FakeClient:
    """Answers ``get_versions`` as distributed does; records what it was asked. ``run`` and ``run_on_scheduler``
    call the function here, as a worker and the scheduler (each with its own versions) would."""

    def __init__(self, result: Any, metadata: Optional[dict[str, dict[str, Optional[str]]]] = None) -> None:
        self.result = result
        self.metadata = metadata or {}
        self.asked: list[Any] = []

    def get_versions(self, check: bool = False, packages: Any = None) -> Any:
        self.asked.append((check, packages))
        if isinstance(self.result, Exception):
            raise self.result
        return self.result

    def _there(self, where: str, function: Any, packages: list[str]) -> Any:
        self.asked.append((where, function.__name__, packages))
        answer = function(packages)
        answer["packages"].update(self.metadata.get(where, {}))
        return answer

    def run_on_scheduler(self, function: Any, packages: list[str]) -> Any:
        return self._there("scheduler", function, packages)

    def run(self, function: Any, packages: list[str]) -> Any:
        return {"tcp://w:1": self._there("tcp://w:1", function, packages)}


def test_check_raises_a_mismatch_carrying_the_record() -> None:
    ours = answer(cloudpickle="3.1.1", dask="2026.3.0", distributed="2026.3.0", pandas="3.0.2")
    bad = answer(cloudpickle="3.1.1", dask="2026.3.0", distributed="2026.3.0", pandas="9.9.9")
    client = FakeClient({"client": ours, "scheduler": ours, "workers": {"tcp://good:1": ours, "tcp://bad:1": bad}})
    packages = ["cloudpickle", "dask", "distributed", "pandas"]

    with pytest.raises(deployment.DeploymentMismatchError) as caught:
        deployment.check(client, packages, "address", "latest")

    assert client.asked == [(False, packages)]
    assert "pandas 3.0.2 here, 9.9.9 on worker tcp://bad:1 — install the runtime's lock" in str(caught.value)
    assert caught.value.record["packages"]["pandas"] == {"3.0.2": 1, "9.9.9": 1}
    assert isinstance(caught.value, ClusterError)  # so the runner writes a setup row for every case


def test_check_returns_the_record_of_a_matching_cluster() -> None:
    ours = answer(cloudpickle="3.1.1", dask="2026.3.0", distributed="2026.3.0")
    client = FakeClient({"client": ours, "scheduler": ours, "workers": {"tcp://w:1": ours}})

    found = deployment.check(client, ["cloudpickle", "dask", "distributed"], "address", "latest")

    assert found["packages"]["dask"] == {"2026.3.0": 1}
    assert found["scheduler"]["python"] == "3.11.7"


def test_a_cluster_that_cannot_say_is_a_cluster_error_not_a_pass() -> None:
    client = FakeClient(OSError("connection closed"))

    with pytest.raises(ClusterError) as caught:
        deployment.check(client, ["dask"], "address", "latest")

    assert not isinstance(caught.value, deployment.DeploymentMismatchError)
    assert str(caught.value).startswith(
        "hardware address: could not read the cluster's package versions (Client.get_versions): OSError: connection"
    )


def test_distributeds_own_version_warning_is_held_until_the_check_has_spoken() -> None:
    from distributed.versions import VersionMismatchWarning

    held: list[warnings.WarningMessage] = []
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        with deployment.own_version_check(held):
            warnings.warn(VersionMismatchWarning("Mismatched versions found ..."), stacklevel=1)
            warnings.warn(UserWarning("not about versions"), stacklevel=1)
        assert [str(warning.message) for warning in shown] == ["not about versions"]

        deployment.release(held)  # the check found no difference of its own: distributed's warning is shown

    assert [str(warning.message) for warning in shown] == ["not about versions", "Mismatched versions found ..."]
    assert held == []


def test_the_scheduler_and_workers_together_are_each_named() -> None:
    workers = {"tcp://w1:1": versions(dask="2026.1.0"), "tcp://w2:1": versions()}
    differences = deployment.compare(versions(), versions(dask="2026.1.0"), workers)

    message = deployment.mismatch_message("coiled-small", "latest", differences, n_workers=2)

    assert "dask 2026.3.0 here, 2026.1.0 on the scheduler and worker tcp://w1:1 — install" in message


def here(*packages: str) -> dict[str, Any]:
    """This process's get_versions answer for ``packages`` (read from installed metadata, as distributed does)."""
    import sys
    from importlib import metadata

    return {
        "packages": {
            "python": ".".join(map(str, sys.version_info)),
            **{package: metadata.version(package) for package in packages},
        }
    }


def test_before_distributed_2025_4_get_versions_is_asked_only_what_is_imported_and_metadata_gives_the_rest() -> None:
    basics = here("cloudpickle", "dask", "distributed")
    client = FakeClient(
        {"client": basics, "scheduler": basics, "workers": {"tcp://w:1": basics}},
        metadata={"tcp://w:1": {"scikit-learn": "1.5.0"}},
    )
    packages = ["cloudpickle", "dask", "distributed", "scikit-learn"]

    with pytest.raises(deployment.DeploymentMismatchError) as caught:
        deployment.check(client, packages, "address", "previous", distributed_version="2024.12.1")

    # No package names for get_versions: it would import each of them in the scheduler and every worker.
    assert client.asked == [
        (False, None),
        ("scheduler", "installed_versions", packages),
        ("tcp://w:1", "installed_versions", packages),
    ]
    ours = importlib.metadata.version("scikit-learn")
    assert f"scikit-learn {ours} here, 1.5.0 on worker tcp://w:1 — install" in str(caught.value)
    assert caught.value.record["scheduler"]["scikit-learn"] == ours


def test_before_distributed_2025_4_a_basic_difference_is_reported_without_running_code_there() -> None:
    other = here("cloudpickle", "dask", "distributed")
    other["packages"]["python"] = "3.10.4.final.0"  # this process's functions would not unpickle there
    ours = here("cloudpickle", "dask", "distributed")
    client = FakeClient({"client": ours, "scheduler": ours, "workers": {"tcp://w:1": other}})

    with pytest.raises(deployment.DeploymentMismatchError) as caught:
        deployment.check(client, ["cloudpickle", "dask", "distributed", "pandas"], "address", "previous", "2024.12.1")

    assert client.asked == [(False, None)]
    assert "here, 3.10.4 on worker tcp://w:1" in str(caught.value)


def test_a_worker_whose_distributed_reads_versions_by_import_is_not_said_to_lack_a_package() -> None:
    ours = answer(cloudpickle="3.1.2", dask="2026.3.0", distributed="2026.3.0", **{"scikit-learn": "1.8.0"})
    old = answer(cloudpickle="3.1.1", dask="2024.12.1", distributed="2024.12.1", **{"scikit-learn": None})
    client = FakeClient({"client": ours, "scheduler": ours, "workers": {"tcp://old:1": old}})

    with pytest.raises(deployment.DeploymentMismatchError) as caught:
        deployment.check(client, ["cloudpickle", "dask", "distributed", "scikit-learn"], "address", "stable")

    message = str(caught.value)
    assert "distributed 2026.3.0 here, 2024.12.1 on worker tcp://old:1" in message
    assert "scikit-learn 1.8.0 here, unknown (its distributed 2024.12.1 reads versions by importing)" in message
    assert "not installed" not in message
