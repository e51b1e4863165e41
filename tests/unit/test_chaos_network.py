"""The chaos fuzzer's TCP proxy (``framework.chaos.network``), on plain sockets: bytes flow both ways, latency is
applied, a drop closes both ends, ``clear`` restores, connections are held until the target listens, and
``close`` leaves no thread and no socket."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from framework.chaos import network
from framework.chaos.network import Network, Stopped, host_port


class Echo:
    """A TCP echo server on 127.0.0.1 (one thread per connection)."""

    def __init__(self, port: int = 0) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(16)
        self.address = f"tcp://127.0.0.1:{self.sock.getsockname()[1]}"
        self.peers: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.peers.append(conn)
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                conn.sendall(data)

    def close(self) -> None:
        self.sock.close()
        for peer in self.peers:
            peer.close()


@pytest.fixture
def echo() -> Iterator[Echo]:
    server = Echo()
    yield server
    server.close()


@pytest.fixture
def net() -> Iterator[Network]:
    layer = Network()
    yield layer
    layer.close()


def connect(address: str, timeout: float = 10.0) -> socket.socket:
    return socket.create_connection(host_port(address), timeout=timeout)


def ended_by_peer(sock: socket.socket) -> bool:
    """The other end closed (EOF) or aborted (reset) the connection, within 10 s."""
    sock.settimeout(10)
    try:
        return sock.recv(10) == b""
    except ConnectionResetError:
        return True


def round_trip(sock: socket.socket, payload: bytes) -> tuple[bytes, float]:
    started = time.monotonic()
    sock.sendall(payload)
    received = b""
    while len(received) < len(payload):
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    return received, time.monotonic() - started


def test_bytes_flow_both_ways(net: Network, echo: Echo) -> None:
    link = net.open("w", echo.address)
    payload = os.urandom(300_000)
    with connect(link.address) as sock:
        received, _ = round_trip(sock, payload)
    assert received == payload
    assert link.connections == 1


def test_latency_delays_each_direction_and_clear_restores_it(net: Network, echo: Echo) -> None:
    link = net.open("w", echo.address)
    net.slow("w", 150, seed=3)
    with connect(link.address) as sock:
        received, slow_s = round_trip(sock, b"ping")
        assert received == b"ping"
        # 150 ms each way, at least: through the proxy to the echo server and back
        assert slow_s >= 0.3
        net.clear()
        received, _ = round_trip(sock, b"pong")
        assert received == b"pong"
    assert link.ms == 0


def test_the_jitter_is_drawn_from_the_steps_seed(net: Network, echo: Echo) -> None:
    link = net.open("w", echo.address)
    net.slow("w", 100, seed=7)
    first = [link.rng.random() for _ in range(5)]
    net.slow("w", 100, seed=7)
    assert [link.rng.random() for _ in range(5)] == first
    net.slow("w", 100, seed=8)
    assert [link.rng.random() for _ in range(5)] != first


def test_drop_closes_both_ends_and_refuses_for_a_window(net: Network, echo: Echo) -> None:
    link = net.open("w", echo.address)
    with connect(link.address) as sock:
        assert round_trip(sock, b"x")[0] == b"x"
        assert net.drop("w", refuse_ms=1000) == 2  # the client's socket and the proxy's to the target
        assert ended_by_peer(sock)
    # the target's end of the forwarded connection was closed too
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(peer.fileno() != -1 and not _closed(peer) for peer in echo.peers):
        time.sleep(0.05)
    assert all(_closed(peer) for peer in echo.peers)
    # refused (accepted, then aborted) during the window
    with connect(link.address) as refused:
        assert ended_by_peer(refused)
    net.clear()
    with connect(link.address) as again:
        assert round_trip(again, b"back")[0] == b"back"


def _closed(peer: socket.socket) -> bool:
    """The echo server's end: the proxy closed it (the echo thread then closes it, or a recv shows EOF)."""
    if peer.fileno() == -1:
        return True
    try:
        peer.setblocking(False)
        return peer.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_drop_scope_peers_spares_the_scheduler_link(net: Network, echo: Echo) -> None:
    net.open("w", echo.address)
    to_scheduler = net.open("w", echo.address, "to_scheduler")
    with connect(net.links["w"][0].address) as inbound, connect(to_scheduler.address) as outbound:
        assert round_trip(inbound, b"a")[0] == b"a"
        assert round_trip(outbound, b"b")[0] == b"b"
        assert net.drop("w", scope="peers") == 2
        assert round_trip(outbound, b"still")[0] == b"still"


def test_a_connection_waits_for_its_target_to_be_known(net: Network) -> None:
    known: dict[str, str] = {}
    link = net.open("w", lambda: known.get("address"))
    with connect(link.address) as sock:
        time.sleep(0.3)
        server = Echo()  # the in-process worker starts listening only now
        known["address"] = server.address
        try:
            assert round_trip(sock, b"late")[0] == b"late"
        finally:
            server.close()


def test_fixed_ports_lie_outside_the_kernels_ephemeral_range() -> None:
    low, high = (int(part) for part in Path(network.EPHEMERAL_PORTS).read_text().split())
    port = network.free_fixed_port()
    assert not low <= port <= high
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))  # free


def test_a_connection_to_a_refusing_target_fails_at_once(net: Network) -> None:
    link = net.open("w", f"tcp://127.0.0.1:{network.free_fixed_port()}")  # nothing listens there
    started = time.monotonic()
    with connect(link.address) as sock:
        assert ended_by_peer(sock)
    assert time.monotonic() - started < network.HOLD_S  # failed, as the refusal would have, not held


def test_close_leaves_no_thread_and_no_socket(echo: Echo) -> None:
    layer = Network()
    link = layer.open("w", echo.address)
    sock = connect(link.address)
    assert round_trip(sock, b"x")[0] == b"x"
    layer.close()
    assert not layer.thread.is_alive()
    assert not any(thread.name == "blessing-net" for thread in threading.enumerate())
    assert link.sock.fileno() == -1
    assert not link.transports
    assert ended_by_peer(sock)
    sock.close()
    with pytest.raises(OSError):
        connect(link.address, timeout=2)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGSTOP is POSIX")
def test_stopped_processes_are_continued() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stopped = Stopped()
        assert stopped.stop(child.pid)
        assert _wait_for_state(child.pid, lambda state: state == "T") == "T"
        stopped.continue_all()
        assert not stopped.pids
        assert _wait_for_state(child.pid, lambda state: state != "T") != "T"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()


def _wait_for_state(pid: int, wanted: Callable[[str], bool]) -> str:
    """The process's state once ``wanted`` (a signal is delivered asynchronously), or after 10 s."""
    deadline = time.monotonic() + 10
    state = _state(pid)
    while not wanted(state) and time.monotonic() < deadline:
        time.sleep(0.02)
        state = _state(pid)
    return state


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
