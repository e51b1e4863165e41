"""Network faults for chaos programs: a TCP proxy on 127.0.0.1 in front of each worker, and SIGSTOP.

A program whose cluster config says ``"network": true`` starts its workers through ``Network.worker_class``:
each worker gets two *links*, small TCP proxies in this (the runner's) process —

- ``inbound``: the worker's ``contact_address``. The worker listens where it always does, but tells the
  scheduler the proxy's address, so the scheduler's connections to it, its peers' (data transfers, P2P) and
  the client's all pass through the proxy;
- ``to_scheduler`` (process tier): the scheduler address the nanny and its worker are given, so the worker's
  own stream to the scheduler (task assignments, results, heartbeats) passes through a proxy too. Not in the
  in-process tier: there a worker whose scheduler address differs from the runner's client's opens a client of
  its own for ``worker_client``/``get_client``, and distributed closes that client without stopping its loop
  runner, so the cluster's "IO loop" thread outlives the close (measured on 2026.8: every example with nested
  tasks failed the teardown check) — a leak the proxy would cause, not the program.

A link forwards bytes both ways. ``slow`` delays every chunk by ``ms`` plus a jitter of up to a quarter of it,
per direction, in order, drawn from a ``random.Random`` seeded by the step; ``drop`` aborts every connection
through a worker's links (both sockets) and may refuse new ones (accepted, then aborted) for a short window;
``clear`` ends every fault: no latency, connections accepted. A connection that arrives before an in-process
worker listens is held until it does (up to ``HOLD_S``); one whose target refuses (the worker gone, or a nanny
between two worker processes) is aborted at once, as the refusal would have failed it.

Every link runs on one event loop in one thread (``blessing-net``), closed with its sockets by ``close`` before
the teardown's leak check, so the check neither counts it nor needs to allow it.

``Stopped`` pauses worker processes with SIGSTOP and continues them (``SIGCONT``); ``continue_all`` at
every settle and at teardown, so no example leaves a process stopped.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import random
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional, Union

HOLD_S = 20.0  # as long as the executor's ``distributed.comm.timeouts.connect``
CHUNK = 65536
EPHEMERAL_PORTS = "/proc/sys/net/ipv4/ip_local_port_range"

Target = Union[str, Callable[[], Optional[str]]]


def host_port(address: str) -> tuple[str, int]:
    """``tcp://127.0.0.1:4321`` → ``("127.0.0.1", 4321)``."""
    rest = address.split("://", 1)[-1]
    host, _, port = rest.rpartition(":")
    return host.strip("[]"), int(port)


class Link:
    """One proxy: listens on 127.0.0.1, forwards to ``target`` (an address, or a callable that knows it)."""

    def __init__(self, name: str, target: Target, role: str = "inbound") -> None:
        self.name = name
        self.role = role
        self.target = target
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.address = f"tcp://127.0.0.1:{self.sock.getsockname()[1]}"
        self.ms = 0.0
        self.rng = random.Random(0)
        self.refuse_until = 0.0
        self.transports: set[asyncio.WriteTransport] = set()
        self.server: Optional[asyncio.AbstractServer] = None
        self.connections = 0  # accepted and forwarded, for tests and the step table

    def delay_s(self) -> float:
        if self.ms <= 0:
            return 0.0
        return (self.ms + self.rng.uniform(0, self.ms / 4)) / 1000

    def resolve(self) -> Optional[str]:
        return self.target() if callable(self.target) else self.target

    def __repr__(self) -> str:
        return f"Link({self.name!r}, {self.role}, {self.address})"


class Network:
    """The links of one program, on one event loop in its own thread."""

    def __init__(self) -> None:
        self.links: dict[str, list[Link]] = collections.defaultdict(list)  # worker name → its links
        self.loop = asyncio.new_event_loop()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        self.thread = threading.Thread(target=self._run, name="blessing-net", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def _call(self, function: Callable[[], Any], timeout: float = 30.0) -> Any:
        """Run ``function`` on the network's loop and wait for it (never called from that loop)."""

        async def wrapped() -> Any:
            return function()

        return asyncio.run_coroutine_threadsafe(wrapped(), self.loop).result(timeout)

    # -- links ----------------------------------------------------------------------------------------------

    def open(self, name: str, target: Target, role: str = "inbound") -> Link:
        """A new link of worker ``name`` (``role``: ``inbound`` or ``to_scheduler``); it accepts at once
        (connections wait in the backlog until it serves them)."""
        if self._closed:
            raise RuntimeError("the network layer is closed")
        if isinstance(target, str) and not target.startswith("tcp://"):
            raise ValueError(f"link {name!r}: the proxy forwards TCP only, not {target!r} (use protocol='tcp://')")
        link = Link(name, target, role)
        self.links[name].append(link)

        async def serve() -> None:
            link.server = await asyncio.start_server(
                lambda reader, writer: self._spawn(self._handle(link, reader, writer)), sock=link.sock
            )

        asyncio.run_coroutine_threadsafe(serve(), self.loop)
        return link

    def _spawn(self, coroutine: Any) -> None:
        task = self.loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self, link: Link) -> Optional[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
        """The target, once known (an in-process worker not yet listening: waited for up to ``HOLD_S``).

        A target that refuses (its worker gone, or a nanny's worker between two processes) fails the connection
        at once, as the refusal would have: holding it would make every caller wait out its own connect timeout
        (a worker's client reconnecting to a closed scheduler kept the cluster's loop thread alive past the
        teardown check, measured)."""
        deadline = time.monotonic() + HOLD_S
        address = link.resolve()
        while address is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            address = link.resolve()
        if address is None:
            return None
        host, port = host_port(address)
        try:
            return await asyncio.open_connection(host, port)
        except OSError:
            return None

    async def _handle(self, link: Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = writer.transport
        if time.monotonic() < link.refuse_until:
            client.abort()
            return
        link.transports.add(client)
        upstream: Optional[asyncio.WriteTransport] = None
        try:
            connected = await self._connect(link)
            if connected is None or client.is_closing():
                return
            up_reader, up_writer = connected
            upstream = up_writer.transport
            link.transports.add(upstream)
            link.connections += 1
            await asyncio.gather(self._pump(link, reader, up_writer), self._pump(link, up_reader, writer))
        finally:
            for transport in (client, upstream):
                if transport is not None:
                    link.transports.discard(transport)
                    transport.abort()

    async def _pump(self, link: Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy one direction, each chunk delivered ``link.delay_s()`` after it arrived, in order."""
        queue: collections.deque[tuple[float, bytes]] = collections.deque()
        arrived = asyncio.Event()
        ended = False
        loop = asyncio.get_running_loop()

        async def deliver() -> None:
            while True:
                while not queue:
                    if ended:
                        return
                    arrived.clear()
                    await arrived.wait()
                due, chunk = queue.popleft()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(chunk)
                await writer.drain()

        delivery = loop.create_task(deliver())
        last_due = 0.0
        try:
            while not delivery.done():
                chunk = await reader.read(CHUNK)
                if not chunk:
                    break
                last_due = max(last_due, loop.time() + link.delay_s())
                queue.append((last_due, chunk))
                arrived.set()
        except (OSError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            delivery.cancel()
            raise
        finally:
            ended = True
            arrived.set()
        with contextlib.suppress(OSError, ConnectionError):
            await delivery
        # One side ended: end the connection (distributed's comms never half-close).
        writer.transport.abort()

    # -- faults ---------------------------------------------------------------------------------------------

    def worker_links(self, name: str) -> list[Link]:
        return list(self.links.get(str(name), []))

    def reaches_scheduler(self, name: str) -> bool:
        """Whether worker ``name``'s own stream to the scheduler passes through a link (process tier)."""
        return any(link.role == "to_scheduler" for link in self.worker_links(name))

    def slow(self, name: str, ms: float, seed: int) -> None:
        """Every chunk through worker ``name``'s links, both ways, waits ``ms`` (+ up to ms/4 of jitter)."""

        def apply() -> None:
            for index, link in enumerate(self.worker_links(name)):
                link.ms = float(ms)
                link.rng = random.Random(seed * 1009 + index)

        self._call(apply)

    def drop(self, name: str, refuse_ms: float = 0.0, scope: str = "all") -> int:
        """Abort every connection through worker ``name``'s links (``scope="peers"``: only those made to it,
        not its own stream to the scheduler); refuse new ones for ``refuse_ms``. Returns how many sockets."""

        def apply() -> int:
            aborted = 0
            for link in self.worker_links(name):
                if scope == "peers" and link.role == "to_scheduler":
                    continue
                link.refuse_until = time.monotonic() + refuse_ms / 1000
                for transport in list(link.transports):
                    transport.abort()
                    aborted += 1
                link.transports.clear()
            return aborted

        return int(self._call(apply))

    def clear(self) -> None:
        """Faults stop: no latency, new connections accepted."""
        if self._closed:
            return

        def apply() -> None:
            for links in self.links.values():
                for link in links:
                    link.ms = 0.0
                    link.refuse_until = 0.0

        self._call(apply)

    # -- the workers' side ----------------------------------------------------------------------------------

    def worker_class(self, processes: bool) -> Callable[..., Any]:
        """What LocalCluster calls as ``worker_class(scheduler_address, **options)``: a Worker (or Nanny) whose
        contact address and scheduler address are this network's links."""
        from distributed import Nanny, Worker

        def make(scheduler_address: str, **options: Any) -> Any:
            name = str(options.get("name"))
            if processes:
                to_scheduler = self.open(name, scheduler_address, "to_scheduler")
                # The worker process is the nanny's to restart: listen on a fixed port, found free, so the link
                # knows where each incarnation listens.
                port = free_fixed_port()
                inbound = self.open(name, f"tcp://127.0.0.1:{port}")
                return Nanny(to_scheduler.address, contact_address=inbound.address, worker_port=port, **options)
            box: dict[str, Any] = {}
            inbound = self.open(name, lambda: listen_address(box.get("worker")))
            worker = Worker(scheduler_address, contact_address=inbound.address, **options)
            box["worker"] = worker
            return worker

        return make

    # -- end ------------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Close every link, abort every connection, stop the loop and join its thread."""
        if self._closed:
            return
        self._closed = True

        async def shut() -> None:
            for links in self.links.values():
                for link in links:
                    if link.server is not None:
                        link.server.close()
                    for transport in list(link.transports):
                        transport.abort()
                    link.sock.close()
            tasks = [task for task in self._tasks if not task.done()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shut(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        if not self.thread.is_alive():
            self.loop.close()
        for links in self.links.values():
            for link in links:
                link.sock.close()


def listen_address(worker: Any) -> Optional[str]:
    """Where an in-process worker really listens (its ``address`` is the proxy's), once it does."""
    listener = getattr(worker, "listener", None)
    if listener is None:
        return None
    try:
        return str(listener.listen_address)
    except Exception:
        return None


def fixed_ports() -> range:
    """Ports the kernel never hands out by itself (outside its ephemeral range, Linux's default 32768–60999): a
    port found free there stays free for a nanny's worker, across its restarts."""
    try:
        low, high = (int(part) for part in Path(EPHEMERAL_PORTS).read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    if low - 10000 >= 1024:
        return range(low - 10000, low)
    if high + 1000 <= 65535:
        return range(high + 1, 65536)
    return range(1024, low)  # hardly any room outside the range: the probe below still finds a free port


def free_fixed_port() -> int:
    """A free port outside the kernel's ephemeral range (``fixed_ports``)."""
    ports = fixed_ports()
    span = len(ports)
    start = (os.getpid() * 7919 + time.monotonic_ns()) % span
    for step in range(span):
        port = ports[(start + step * 613) % span]
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise OSError(f"no free port in {ports.start}–{ports.stop - 1} on 127.0.0.1")


class Stopped:
    """Worker processes paused with SIGSTOP; each is continued by ``resume`` or, at the latest, ``continue_all``."""

    def __init__(self) -> None:
        self.pids: set[int] = set()

    def stop(self, pid: int) -> bool:
        try:
            os.kill(pid, signal.SIGSTOP)
        except ProcessLookupError:
            return False
        self.pids.add(pid)
        return True

    def resume(self, pid: int) -> None:
        self.pids.discard(pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)

    def continue_all(self) -> None:
        for pid in sorted(self.pids):
            self.resume(pid)
