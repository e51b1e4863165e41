"""Task graphs as plain data, the one function every chaos task runs, and the pure-Python oracle.

A graph is drawn as a few parameters (kind, size, seed, faults) and expanded here, deterministically, into
nodes ``{"key", "deps", "salt", "ms", ...}``. Keys are ``<group>-<i>`` so all nodes of a fan-out share one task
group (what makes the scheduler treat them as root-ish and queue them). A node's value depends on its
dependencies *in order*, so a swapped, stale or missing input changes the answer the oracle expects.
"""

from __future__ import annotations

import os
import random
import time
import zlib
from pathlib import Path
from typing import Any, Optional

MODULUS = 1_000_000_007
KINDS = ("chain", "tree", "fanout", "dag", "nested", "spill")
# A gated task waits for its Event at most this long, so a forgotten gate can never hang a run by itself.
GATE_TIMEOUT_S = 60.0


class ChaosTaskError(Exception):
    """Raised on purpose by a task told to fail (on some attempts, or on some workers)."""


def payload(seed: int, nbytes: int) -> bytes:
    """``nbytes`` of incompressible bytes determined by ``seed`` (spilled data must really hit the disk)."""
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - every runtime has numpy; this is ~10x slower but the same idea
        return random.Random(seed).getrandbits(8 * nbytes).to_bytes(nbytes, "little") if nbytes else b""
    return bytes(np.random.default_rng(seed).bytes(nbytes))


def fingerprint(value: Any) -> int:
    """An int standing for a node's value: itself, or the CRC of a payload."""
    if isinstance(value, (bytes, bytearray)):
        return zlib.crc32(value) + len(value)
    return int(value)


def node_value(node: dict[str, Any], deps: list[Any], children: list[int]) -> Any:
    """The value of ``node`` given its dependencies' values (in order) and its nested children's values."""
    acc = int(node["salt"])
    for position, value in enumerate(deps, start=1):
        acc = (acc * 31 + position * fingerprint(value)) % MODULUS
    for value in children:
        acc = (acc * 37 + value) % MODULUS
    if node.get("bytes"):
        return payload(acc, int(node["bytes"]))
    return acc


def child_key(node: dict[str, Any], index: int) -> str:
    """Children of a fan-out's nodes share one task group too (``fan3c``), so they queue like their parents."""
    group, _, position = node["key"].rpartition("-")
    return f"{group}c-{position}-{index}"


def child_value(key: str) -> int:
    """What a nested child returns: a pure function of its key."""
    return zlib.crc32(key.encode()) % MODULUS


def run_child(key: str, ms: int) -> int:
    if ms:
        time.sleep(ms / 1000)
    return child_value(key)


def _claim_attempt(scratch: str, key: str) -> int:
    """This execution's attempt number for ``key`` (0, 1, …), counted in files: works across worker processes."""
    directory = Path(scratch) / "attempts"
    directory.mkdir(parents=True, exist_ok=True)
    attempt = 0
    while True:
        try:
            fd = os.open(directory / f"{zlib.crc32(key.encode()):08x}.{attempt}", os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            attempt += 1
            continue
        os.close(fd)
        return attempt


def wait_for_event(name: str) -> None:
    """Wait for a ``distributed.Event``, but give up when this task's worker closes (or after GATE_TIMEOUT_S):
    a task thread must not outlive its cluster just because nobody will ever set the event."""
    from distributed import Event, get_worker

    worker = get_worker()
    event = Event(name)
    deadline = time.monotonic() + GATE_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            if event.wait(timeout=0.5):
                return
        except Exception:
            return  # the scheduler is gone
        if "clos" in str(getattr(worker, "status", "")):
            return


class WorkerClosing(Exception):  # noqa: N818 - what happened, not an error of the program
    """The task's worker is closing: stop waiting, so the task thread does not outlive its worker."""


def gather_while_alive(client: Any, futures: list[Any]) -> list[int]:
    """``client.gather(futures)``, giving up once this task's worker closes (a forgotten parent's children may
    never run; a thread blocked on them would hold up the worker's close for its whole timeout)."""
    from distributed import get_worker

    worker = get_worker()
    while not all(future.done() for future in futures):
        if "clos" in str(getattr(worker, "status", "")):
            raise WorkerClosing(f"worker {worker.name} is closing")
        time.sleep(0.05)
    return [int(v) for v in client.gather(futures)]


def run_node(node: dict[str, Any], scratch: str, *deps: Any) -> Any:
    """The task: wait at a gate, fail or reschedule when told, sleep, secede, spawn children, return the value."""
    from distributed import Event, Reschedule, get_client, get_worker, rejoin, secede, worker_client

    attempt = _claim_attempt(scratch, node["key"])
    sibling = node.get("sibling")
    if sibling and sibling["setter"]:
        Event(sibling["event"]).set()  # first, so no fault below can strand the siblings waiting for it
    elif sibling:
        # Secede and wait until a sibling of the same (queued) group runs: a healthy scheduler gives the freed
        # slot to a queued task (distributed#7223 did not).
        secede()
        wait_for_event(sibling["event"])
        rejoin()
    if node.get("gate"):
        wait_for_event(node["gate"])
    fail = node.get("fail")
    if fail:
        mode, times = fail["mode"], int(fail["times"])
        if mode == "attempts" and attempt < times:
            raise ChaosTaskError(f"{node['key']}: failing attempt {attempt} of the first {times}")
        if mode == "reschedule" and attempt < times:
            raise Reschedule()
        if mode == "worker" and zlib.crc32(str(get_worker().name).encode()) % 2 == times % 2 and attempt < 3:
            raise ChaosTaskError(f"{node['key']}: failing on worker {get_worker().name}")
    if node.get("ms"):
        time.sleep(node["ms"] / 1000)
    if node.get("secede"):
        secede()
        time.sleep(0.005)
        rejoin()
    children: list[int] = []
    if node.get("nest") and node.get("nest_mode") == "submit_secede":
        # Submit while still holding the thread, give the scheduler time to queue the children, then secede
        # and wait for them (the shape of distributed#7223's reproducer).
        client = get_client()
        futures = [
            client.submit(run_child, child_key(node, j), node.get("ms", 0), key=child_key(node, j), pure=False)
            for j in range(int(node["nest"]))
        ]
        time.sleep(int(node.get("hold_ms", 0)) / 1000)
        secede()
        children = gather_while_alive(client, futures)
        rejoin()
    elif node.get("nest"):
        with worker_client() as client:
            futures = [
                client.submit(run_child, child_key(node, j), node.get("ms", 0), key=child_key(node, j), pure=False)
                for j in range(int(node["nest"]))
            ]
            children = gather_while_alive(client, futures)
    value = node_value(node, list(deps), children)
    if node.get("corrupt"):  # only the oracle's own tests set this: a wrong answer the result check must catch
        value = (value + 1) % MODULUS if isinstance(value, int) else value[:-1]
    return value


def build_graph(params: dict[str, Any], gid: int, memory_limit: int) -> list[dict[str, Any]]:
    """Expand drawn parameters into nodes, in a topological order. Deterministic: same params, same graph.

    ``params``: kind, n, seed, ms_max, faults ([{"index", "mode", "times"}]), retries, gated (node indices),
    secede (bool), nest (children per node), nest_mode ("worker_client" | "submit_secede"), hold_ms (how long
    a submit_secede parent holds its thread), sibling_wait (fan-out tasks secede and wait for the last one),
    shared_dep, spill_fraction (payload as a fraction of a worker's memory limit), outputs ("sinks" | "all").
    """
    kind, n, rng = params["kind"], max(1, int(params["n"])), random.Random(params["seed"])
    group = f"{kind}{gid}"

    def node(i: int, deps: list[str]) -> dict[str, Any]:
        ms_max = int(params.get("ms_max", 0))
        return {"key": f"{group}-{i}", "deps": deps, "salt": rng.randrange(MODULUS), "ms": rng.randint(0, ms_max)}

    nodes: list[dict[str, Any]] = []
    if kind == "chain":
        for i in range(n):
            nodes.append(node(i, [f"{group}-{i - 1}"] if i else []))
    elif kind == "tree":
        level = [node(i, []) for i in range(n)]
        nodes.extend(level)
        index = n
        while len(level) > 1:
            parents = []
            for start in range(0, len(level), 2):
                parent = node(index, [child["key"] for child in level[start : start + 2]])
                index += 1
                parents.append(parent)
            nodes.extend(parents)
            level = parents
    elif kind in ("fanout", "nested"):
        shared = params.get("shared_dep", False)
        if shared:
            nodes.append({**node(n, []), "key": f"{group}src-0"})
        for i in range(n):
            nodes.append(node(i, [f"{group}src-0"] if shared else []))
    elif kind == "dag":
        for i in range(n):
            candidates = [f"{group}-{j}" for j in range(i)]
            deps = rng.sample(candidates, k=min(len(candidates), rng.randint(0, 3)))
            nodes.append(node(i, deps))
    elif kind == "spill":
        nbytes = max(1, int(memory_limit * float(params.get("spill_fraction", 0.2))))
        for i in range(n):
            nodes.append({**node(i, []), "bytes": nbytes})
        nodes.append({**node(n, [f"{group}-{i}" for i in range(n)]), "key": f"{group}sum-0"})
    else:
        raise ValueError(f"unknown graph kind {kind!r}; known: {', '.join(KINDS)}")
    _decorate(nodes, params, group, kind, n)
    return nodes


def _decorate(nodes: list[dict[str, Any]], params: dict[str, Any], group: str, kind: str, n: int) -> None:
    """Faults, gates, seceding, nesting and sibling waits, on the nodes a graph's parameters name."""
    by_index = {int(item["key"].rsplit("-", 1)[1]): item for item in nodes if item["key"].startswith(group + "-")}
    for fault in params.get("faults", []):
        target = by_index.get(int(fault["index"]) % n)
        if target is not None:
            target["fail"] = {"mode": fault["mode"], "times": int(fault["times"])}
    for index in params.get("gated", []):
        target = by_index.get(int(index) % n)
        if target is not None:
            target["gate"] = f"gate-{group}-{int(index) % n}"
    for item in nodes:
        item["retries"] = int(params.get("retries", 0))
        if params.get("secede") and not item["deps"]:
            item["secede"] = True
        if kind == "nested" and item["key"].startswith(group + "-"):
            item["nest"] = int(params.get("nest", 1))
            item["nest_mode"] = params.get("nest_mode", "worker_client")
            item["hold_ms"] = int(params.get("hold_ms", 0))
    if params.get("sibling_wait") and kind in ("fanout", "nested"):
        last = by_index[n - 1]["key"]
        for index in range(n):
            by_index[index]["sibling"] = {"event": f"sibling-{group}", "setter": by_index[index]["key"] == last}
    if params.get("corrupt"):
        nodes[-1]["corrupt"] = True


def outputs(nodes: list[dict[str, Any]], which: str = "sinks") -> list[str]:
    """The keys a client holds futures for: every node, or only those nothing else depends on."""
    if which == "all":
        return [item["key"] for item in nodes]
    needed = {dep for item in nodes for dep in item["deps"]}
    return [item["key"] for item in nodes if item["key"] not in needed]


def evaluate(nodes: list[dict[str, Any]]) -> dict[str, int]:
    """The oracle: every node's fingerprint, computed in plain Python (no dask)."""
    values: dict[str, Any] = {}
    for item in nodes:
        children = [child_value(child_key(item, j)) for j in range(int(item.get("nest", 0)))]
        values[item["key"]] = node_value(item, [values[d] for d in item["deps"]], children)
    return {key: fingerprint(value) for key, value in values.items()}


def ancestors(nodes: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Key → the keys it depends on, directly or not (itself included)."""
    result: dict[str, set[str]] = {}
    for item in nodes:
        found = {item["key"]}
        for dep in item["deps"]:
            found |= result[dep]
        result[item["key"]] = found
    return result


def faulty(nodes: list[dict[str, Any]]) -> set[str]:
    """Keys that may legitimately end in ChaosTaskError: a failing node or anything downstream of one."""
    failing = {item["key"] for item in nodes if item.get("fail") and item["fail"]["mode"] != "reschedule"}
    return {key for key, above in ancestors(nodes).items() if above & failing}


def gates(nodes: list[dict[str, Any]]) -> list[str]:
    return [item["gate"] for item in nodes if item.get("gate")]


def sibling_events(nodes: list[dict[str, Any]]) -> list[str]:
    return sorted({item["sibling"]["event"] for item in nodes if item.get("sibling")})


def describe(nodes: list[dict[str, Any]], limit: Optional[int] = None) -> str:
    shown = nodes if limit is None else nodes[:limit]
    return ", ".join(f"{item['key']}<-{item['deps']}" for item in shown)


def p2p_support() -> tuple[bool, str]:
    """Whether this runtime has a usable P2P shuffle (dask ≥ 2023.3 with pandas and pyarrow)."""
    try:
        import dask
        import dask.dataframe
        import pyarrow  # noqa: F401
    except ImportError as error:
        return False, f"P2P shuffle needs dask.dataframe and pyarrow: {error}"
    major, minor = (int(part) for part in dask.__version__.split(".")[:2])
    if (major, minor) < (2023, 3):
        return False, f"P2P shuffle in dask {dask.__version__} predates its support for worker churn (2023.3)"
    return True, ""


def submit_p2p_shuffle(client: Any, rows: int, partitions: int) -> list[Any]:
    """A P2P shuffle of ``rows`` rows (17 keys) in ``partitions`` partitions: one future per output partition."""
    import dask
    import dask.dataframe as dd
    import pandas as pd

    frame = pd.DataFrame({"k": [i % 17 for i in range(rows)], "v": list(range(rows))})
    ddf = dd.from_pandas(frame, npartitions=partitions)
    try:
        shuffled = ddf.shuffle("k", shuffle_method="p2p")
    except TypeError:  # dask before 2024 named it `shuffle`
        shuffled = ddf.shuffle("k", shuffle="p2p")
    with dask.config.set({"dataframe.shuffle.method": "p2p"}):
        return list(client.compute(shuffled.to_delayed()))


def check_p2p_partitions(partitions: list[Any], rows: int) -> Optional[str]:
    """A P2P shuffle's output: every input row exactly once, and each key ``k`` in exactly one partition."""
    seen: list[int] = []
    owner: dict[int, int] = {}
    for index, part in enumerate(partitions):
        seen.extend(int(v) for v in part["v"])
        for k in {int(k) for k in part["k"]}:
            if k in owner:
                return f"P2P shuffle: key {k} in partitions {owner[k]} and {index} (a shuffle puts each key in one)"
            owner[k] = index
    if sorted(seen) != list(range(rows)):
        return f"P2P shuffle: {len(seen)} rows out ({len(set(seen))} distinct) for {rows} rows in"
    return None
