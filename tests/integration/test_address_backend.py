"""The ``address`` backend against real ``dask scheduler`` / ``dask worker`` processes, over TCP and TLS."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import ipaddress
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Optional

import psutil
import pytest

from framework.in_runtime import provenance
from framework.in_runtime.clusters import ClusterSession
from framework.in_runtime.deployment import DeploymentMismatchError
from framework.in_runtime.errors import ClusterError
from framework.in_runtime.runner import run_plan

DASK = Path(sys.executable).parent / "dask"
# With .pyc files written (PYTHONDONTWRITEBYTECODE unset) three processes connect in a few seconds.
CONNECT_TIMEOUT_S = 60.0
STOP_GRACE_S = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_listening(address: str, timeout: float) -> None:
    host, _, port = address.rpartition("/")[2].partition(":")
    give_up = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > give_up:
                raise
            time.sleep(0.1)


def write_tls_files(directory: Path) -> dict[str, str]:
    """A CA and one certificate it signed (for 127.0.0.1, server and client use): PEM files in ``directory``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dask-blessing test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = {
        "ca_file": (directory / "ca.pem", ca_cert.public_bytes(serialization.Encoding.PEM)),
        "cert_file": (directory / "cert.pem", cert.public_bytes(serialization.Encoding.PEM)),
        "key_file": (
            directory / "key.pem",
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        ),
    }
    for path, content in files.values():
        path.write_bytes(content)
    return {field: str(path) for field, (path, _) in files.items()}


@pytest.fixture
def dask_processes(tmp_path: Path, fixture_workloads: str) -> Iterator[Callable[..., str]]:
    """Start a ``dask scheduler`` and workers as separate processes; returns the scheduler's address.

    Teardown stops every process (each in its own session, with the workers its nanny spawned), SIGKILLs what
    is left after a grace period, and checks that all of them are gone.
    """
    started: list[subprocess.Popen[bytes]] = []
    # Like a Coiled cluster: the runtime's packages and the workloads, but not this project (``framework``).
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent)}

    def launch(args: list[str], log_name: str, python: Optional[str] = None) -> None:
        with (tmp_path / log_name).open("wb") as log:
            started.append(
                subprocess.Popen(
                    [*([python] if python else []), str(DASK), *args],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=tmp_path,
                    env=env,
                    start_new_session=True,
                )
            )

    def start(
        n_workers: int = 2, tls: Optional[dict[str, str]] = None, worker_pythons: Optional[dict[int, str]] = None
    ) -> str:
        """``worker_pythons``: worker index → the Python that runs it (another environment); else this one's."""
        port = free_port()
        protocol = "tls" if tls else "tcp"
        tls_args = (
            ["--tls-ca-file", tls["ca_file"], "--tls-cert", tls["cert_file"], "--tls-key", tls["key_file"]]
            if tls
            else []
        )
        address = f"{protocol}://127.0.0.1:{port}"
        scheduler = ["scheduler", "--host", "127.0.0.1", "--port", str(port), "--protocol", protocol]
        launch([*scheduler, "--no-dashboard", *tls_args], "scheduler.log")
        for index in range(n_workers):
            launch(
                [
                    "worker",
                    address,
                    "--host",
                    "127.0.0.1",
                    "--nthreads",
                    "1",
                    "--memory-limit",
                    "1GiB",
                    "--no-dashboard",
                    "--name",
                    f"test-worker-{index}",
                    # Should teardown miss a worker, it gives up on a scheduler that is gone.
                    "--death-timeout",
                    "30",
                    "--local-directory",
                    str(tmp_path / f"worker-{index}"),
                    *tls_args,
                ],
                f"worker-{index}.log",
                python=(worker_pythons or {}).get(index),
            )
        return address

    yield start

    processes: list[psutil.Process] = []
    for popen in started:
        try:
            processes += [psutil.Process(popen.pid), *psutil.Process(popen.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
    for popen in reversed(started):  # workers first, then the scheduler
        try:
            os.killpg(popen.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + STOP_GRACE_S
    for popen in started:
        try:
            popen.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(popen.pid, signal.SIGKILL)
            popen.wait(timeout=5)
    _, alive = psutil.wait_procs(processes, timeout=max(0.1, deadline - time.monotonic()))
    for process in alive:
        process.kill()
    assert not alive, f"still running after SIGTERM and {STOP_GRACE_S:g} s: {[p.pid for p in alive]}"


def address_profile(address: Optional[str] = None, **overrides: Any) -> dict[str, Any]:
    """An ``address`` hardware profile as ``HardwareProfile.model_dump(mode="json")`` gives it."""
    profile: dict[str, Any] = {
        "name": "address",
        "description": "",
        "backend": "address",
        "address": address,
        "n_workers": 2,
        "threads_per_worker": None,
        "memory_limit_per_worker": None,
        "security": None,
        "connect_timeout": CONNECT_TIMEOUT_S,
    }
    profile.update(overrides)
    return profile


def assert_ran_on_both_workers(rows: list[dict[str, Any]]) -> None:
    assert [(row["phase"], row["outcome"]) for row in rows] == [("warmup", "passed"), ("measure", "passed")], rows
    for row in rows:
        assert (row["cluster_workers"], row["cluster_threads"]) == (2, 2)
        assert row["cluster_memory_limit_bytes"] == 2 * 2**30
        assert row["settings_scope"] == "client only"
        # The scheduler and workers cannot import framework: the metrics' functions travel by value.
        # Every metric measured; only the machine's load is not the workers' (they run elsewhere), said so.
        elsewhere = "the workers run on other machines; this machine's load is not theirs"
        assert row["missing"] == dict.fromkeys(("load_avg_1m", "cpu_pressure", "cpu_steal", "overloaded"), elsewhere)
        assert row["tasks"] > 0
        assert row["wall_s"] > 0
        # The workers were asked which machine they run on (here: this one) — not the client's fingerprint assumed.
        assert row["machine_fingerprint"]["measured_on"] == "workers", row["machine_fingerprint"]
        assert row["machine_id"] == provenance.machine_id(provenance.machine_fingerprint())


@pytest.mark.cluster(deadline=45)
def test_runs_on_a_scheduler_given_by_address(dask_processes, make_plan, make_case, read_rows):
    address = dask_processes()
    case = make_case("fixtures_workloads:passes", warmup=1, repeats=1)
    plan = make_plan(address_profile(address), [case])

    assert run_plan(plan) == 0

    rows = read_rows(plan)
    assert_ran_on_both_workers(rows)
    # A matching deployment: what it runs is recorded on every row (the scheduler's versions, workers per version).
    dask_version = importlib.metadata.version("dask")
    for row in rows:
        assert row["worker_packages"]["workers"] == 2
        assert row["worker_packages"]["packages"]["dask"] == {dask_version: 2}
        assert row["worker_packages"]["scheduler"]["distributed"] == importlib.metadata.version("distributed")
        assert "unchecked" not in row["worker_packages"]


@pytest.mark.cluster(deadline=45)
def test_runs_over_tls_with_the_profile_security(dask_processes, make_plan, make_case, read_rows, tmp_path):
    tls = write_tls_files(tmp_path)
    address = dask_processes(tls=tls)
    assert address.startswith("tls://")
    case = make_case("fixtures_workloads:passes", warmup=1, repeats=1)
    # The address comes from the command line (--address) here, not from the profile.
    plan = make_plan(address_profile(security={**tls, "require_encryption": True}), [case], address=address)

    assert run_plan(plan) == 0

    rows = read_rows(plan)
    assert_ran_on_both_workers(rows)
    assert rows[0]["hardware_spec"]["security"]["ca_file"] == tls["ca_file"]


@pytest.mark.cluster(deadline=15)
def test_a_tls_address_without_security_says_to_add_it():
    address = f"tls://127.0.0.1:{free_port()}"
    session = ClusterSession(address_profile(address, connect_timeout=2.0))

    with pytest.raises(ClusterError) as caught:
        session.start()

    assert str(caught.value) == (
        f"hardware address: {address} uses TLS but the profile has no 'security'"
        " — add security: {ca_file, cert_file, key_file}"
    )
    assert session.client is None


@pytest.mark.cluster(deadline=15)
def test_a_missing_certificate_file_is_named(tmp_path):
    tls = {"ca_file": str(tmp_path / "nowhere" / "ca.pem"), "cert_file": "c.pem", "key_file": "k.pem"}
    session = ClusterSession(address_profile(f"tls://127.0.0.1:{free_port()}", security=tls))

    with pytest.raises(ClusterError) as caught:
        session.start()

    assert str(caught.value) == (
        f"hardware address: security.ca_file: {tls['ca_file']!r} does not exist — fix the path"
    )


@pytest.mark.cluster(deadline=20)
def test_an_unreachable_scheduler_fails_quickly_and_clearly():
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    session = ClusterSession(address_profile(address, connect_timeout=2.0))

    started = time.monotonic()
    with pytest.raises(ClusterError) as caught:
        session.start()
    elapsed = time.monotonic() - started

    assert elapsed < 10
    message = str(caught.value)
    assert message.startswith(f"hardware address: cannot reach scheduler {address}: ")
    assert "is it running" in message
    assert session.client is None


@pytest.mark.cluster(deadline=20)
def test_too_few_workers_says_so_rather_than_unreachable(dask_processes):
    address = dask_processes(n_workers=0)
    wait_until_listening(address, timeout=15)
    session = ClusterSession(address_profile(address, n_workers=1, connect_timeout=2.0))

    with pytest.raises(ClusterError) as caught:
        session.start()

    message = str(caught.value)
    assert message.startswith(f"hardware address: scheduler {address} is up, but n_workers=1 workers did not join")
    assert "start the workers, or lower n_workers" in message
    assert "cannot reach" not in message
    assert session.client is None


def worker_environment(directory: Path) -> tuple[str, Path]:
    """Another environment for a worker: a venv of its own that sees this one's packages (a ``.pth`` file).

    Returns its Python and its own site-packages, where a dist-info installed later takes precedence over this
    environment's (its directory comes first on ``sys.path``)."""
    import sysconfig
    import venv

    venv.EnvBuilder(with_pip=False).create(directory)
    python = directory / "bin" / "python"
    site_packages = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    (site_packages / "test-env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    return str(python), site_packages


def worker_address(log: Path) -> str:
    """The address a worker (its latest process, after restarts) said it listens at."""
    addresses = re.findall(r"Start worker at:\s+(\S+)", log.read_text(encoding="utf-8"))
    assert addresses, f"{log}: no worker started"
    return addresses[-1]


def install_metadata(site_packages: Path, name: str, version: str) -> None:
    """What an installer leaves of ``name==version`` for ``importlib.metadata`` (a dist-info; the code is this
    environment's, which is all the test needs: get_versions reads installed metadata)."""
    info = site_packages / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8")
    (info / "INSTALLER").write_text("test\n", encoding="utf-8")


@pytest.mark.cluster(deadline=60)
def test_a_worker_with_another_version_of_a_card_package_is_caught(
    dask_processes, make_plan, make_case, read_rows, tmp_path
):
    ours = importlib.metadata.version("pandas")
    theirs = "2.2.3"
    assert ours != theirs
    python, site_packages = worker_environment(tmp_path / "worker-venv")
    address = dask_processes(worker_pythons={1: python})  # test-worker-1 runs in the other environment
    runtime = {"name": "test-runtime", "spec": {"packages": {"dask[distributed]": "", "pandas": ""}}}
    session = ClusterSession(address_profile(address), runtime=runtime)

    # Same versions so far: connects, and records what the cluster runs.
    session.start()
    try:
        assert session.worker_packages is not None
        assert session.worker_packages["packages"]["pandas"] == {ours: 2}
        # The worker restarts into an environment that has changed meanwhile: checked again after the restart.
        install_metadata(site_packages, "pandas", theirs)
        version_there = subprocess.run(
            [python, "-c", "import importlib.metadata as m; print(m.version('pandas'))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert version_there == theirs
        with pytest.raises(DeploymentMismatchError) as caught:
            session.recover()
    finally:
        session.close()
    other = worker_address(tmp_path / "worker-1.log")  # restarted: a new address
    assert f"pandas {ours} here, {theirs} on worker {other} — install the runtime's lock" in str(caught.value)
    assert session.worker_packages["packages"]["pandas"] == {ours: 1, theirs: 1}

    # On connect: no case runs; every case is a setup error naming package, both versions and the worker.
    cases = [make_case("fixtures_workloads:passes"), make_case("fixtures_workloads:passes", case_id="again/tiny")]
    plan = make_plan(address_profile(address), cases)
    plan["runtime"]["spec"]["packages"] = runtime["spec"]["packages"]

    assert run_plan(plan) == 2

    rows = read_rows(plan)
    assert [(row["case_id"], row["phase"], row["outcome"]) for row in rows] == [
        ("passes/tiny", "setup", "error"),
        ("again/tiny", "setup", "error"),
    ]
    for row in rows:
        assert row["error"] == (
            f"hardware address: the cluster does not run runtime test-runtime's packages: pandas {ours} here, {theirs}"
            f" on worker {other} — install the runtime's lock on the scheduler and every worker (nox -s export --"
            " --runtime=test-runtime, or the blessed lock) and restart them"
        )
        assert row["worker_packages"]["packages"]["pandas"] == {ours: 1, theirs: 1}
        assert row["worker_packages"]["scheduler"]["pandas"] == ours
