"""Where a result came from: machine, Python, installed packages, environment variable names, git commit.

Machine facts are read inside the runtime environment (by the runner); the git commit by the controller.
Standard library only.

The machine *fingerprint* is what makes timings comparable: CPU model, cores, memory (whole GiB, so two copies of
one VM type whose kernels reserve a little more or less stay one machine), kernel, a virtualisation hint and the
architecture — never the host name (a CI runner has a new one every job). ``machine_id`` is its short hash.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Optional

from framework.in_runtime.redaction import ENV_VALUE_ALLOW_LIST, is_secret_key

# Environment variables whose *names* are recorded when set: they change how Dask behaves or performs.
RECORDED_PREFIXES = (
    "DASK_",
    "MALLOC_",
    "OMP_",
    "MKL_",
    "OPENBLAS_",
    "PYTHON",
    "UV_",
    "COILED_",
    "AWS_",
    "ARROW_",
)
# Values are recorded only for these names (exact) — tuning knobs, never credentials.
VALUE_ALLOW_LIST = ENV_VALUE_ALLOW_LIST


def environment_variables(
    declared: dict[str, str], environ: Optional[dict[str, str]] = None
) -> dict[str, Optional[str]]:
    """Names of the relevant variables set, each with its value only when allow-listed (else None)."""
    environ = dict(os.environ if environ is None else environ)
    names = {name for name in environ if name.startswith(RECORDED_PREFIXES)} | set(declared)
    return {
        name: (environ.get(name, declared.get(name)) if name in VALUE_ALLOW_LIST and not is_secret_key(name) else None)
        for name in sorted(names)
    }


def installed_packages() -> dict[str, str]:
    """Every distribution installed in this Python, name → version (the environment's lock, as seen at run time)."""
    from importlib import metadata

    packages = {}
    for distribution in metadata.distributions():
        name = distribution.metadata["Name"]
        if name:
            packages[re.sub(r"[-_.]+", "-", name).lower()] = distribution.version
    return dict(sorted(packages.items()))


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_bytes() -> Optional[int]:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def machine() -> dict[str, Any]:
    """Facts about the machine and interpreter the runner (client side) runs on."""
    return {
        "python_version": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "os": platform.platform(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "ram_bytes": _ram_bytes(),
        "hostname": socket.gethostname(),
        "executable": sys.executable,
    }


FINGERPRINT_FIELDS = ("cpu_model", "cores", "memory_gib", "kernel", "virtualisation", "arch")
GIB = 2**30


def memory_gib(ram_bytes: Optional[int]) -> Optional[int]:
    """RAM in whole GiB (what identical machines share; the bytes a kernel reserves differ between boots)."""
    return None if ram_bytes is None else round(ram_bytes / GIB)


def _read(path: str) -> Optional[str]:
    try:
        return Path(path).read_text(errors="replace").strip() or None
    except OSError:
        return None


def virtualisation_hint() -> Optional[str]:
    """What this machine says about running virtualised: the VM's vendor and product (DMI), the CPU's
    ``hypervisor`` flag, container marks (``/.dockerenv``, cgroup names). ``"none seen"`` when the CPU flags were
    readable and nothing was seen (likely bare metal); None when nothing could be read (unknown, not bare metal).
    Stable across runs: identifiers of one container or VM instance are never part of it."""
    hints = []
    vendor, product = _read("/sys/class/dmi/id/sys_vendor"), _read("/sys/class/dmi/id/product_name")
    cpuinfo = _read("/proc/cpuinfo")
    hypervisor = cpuinfo is not None and any(
        line.startswith("flags") and "hypervisor" in line.split(":", 1)[-1].split() for line in cpuinfo.splitlines()
    )
    if vendor or product:
        hints.append("dmi: " + " ".join(part for part in (vendor, product) if part))
    if hypervisor:
        hints.append("hypervisor flag")
    containers = []
    if Path("/.dockerenv").exists():
        containers.append("docker")
    if Path("/run/.containerenv").exists():
        containers.append("podman")
    cgroup = _read("/proc/1/cgroup") or ""
    for mark in ("kubepods", "docker", "containerd", "lxc"):
        if mark in cgroup and mark not in containers:
            containers.append(mark)
    if containers:
        hints.append("container: " + ", ".join(containers))
    if hints:
        return "; ".join(hints)
    return "none seen" if cpuinfo is not None or vendor is not None else None


def machine_fingerprint() -> dict[str, Any]:
    """The facts that make one machine's timings comparable with another's (see the module docstring)."""
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": memory_gib(_ram_bytes()),
        "kernel": platform.release() or None,
        "virtualisation": virtualisation_hint(),
        "arch": platform.machine() or None,
    }


def machine_id(fingerprint: dict[str, Any]) -> str:
    """A short stable hash of a fingerprint's facts (12 hex digits); notes about where it was read are left out."""
    if "machines" in fingerprint:
        facts: Any = sorted(machine_id(each) for each in fingerprint["machines"])
    else:
        facts = {name: fingerprint.get(name) for name in FINGERPRINT_FIELDS}
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:12]


def identity(fingerprint: dict[str, Any], measured_on: str, note: Optional[str] = None) -> dict[str, Any]:
    """The two row columns: ``machine_fingerprint`` (with where it was read — ``runner``: the machine of the runner,
    whose local cluster's workers run there too; ``workers``: a remote cluster's workers; ``controller``: a row the
    controller wrote for a runner that could not — and a note when that is a fallback) and ``machine_id``."""
    recorded = {**fingerprint, "measured_on": measured_on}
    if note:
        recorded["note"] = note
    return {"machine_fingerprint": recorded, "machine_id": machine_id(fingerprint)}


def workers_identity(client: Any, timeout_s: float = 30.0) -> dict[str, Any]:
    """The identity of the machines a remote cluster's workers run on (``Client.run`` of :func:`machine_fingerprint`
    on every worker): one machine's fingerprint, or ``{"machines": [...]}`` when the workers run on several kinds.
    When the workers cannot be asked, this machine's, with a note saying so."""
    asked: dict[str, Any] = {}

    def ask() -> None:
        try:
            asked["answers"] = client.run(machine_fingerprint)
        except Exception as error:
            asked["error"] = f"{type(error).__name__}: {error}"

    thread = threading.Thread(target=ask, name="blessing-fingerprint", daemon=True)
    thread.start()
    thread.join(timeout_s)  # a worker that never answers must not hold the run: the note says so instead
    if "answers" not in asked:
        why = asked.get("error") or f"no answer within {timeout_s:g} s"
        note = f"the workers' machines could not be read ({why}); this is the client's"
        return identity(machine_fingerprint(), "runner", note[:300])
    answers = asked["answers"]
    distinct = {json.dumps(answer, sort_keys=True): answer for answer in answers.values()}
    if not distinct:
        return identity(machine_fingerprint(), "runner", "the cluster had no workers to ask; this is the client's")
    if len(distinct) == 1:
        return identity(next(iter(distinct.values())), "workers")
    machines = [distinct[key] for key in sorted(distinct)]
    note = f"{len(answers)} workers on {len(machines)} kinds of machine"
    return identity({"machines": machines}, "workers", note)


def git_commit(root: Path) -> dict[str, Any]:
    """The project's commit and whether the working tree had changes; None values outside a checkout."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": None, "git_dirty": None}
    return {"git_commit": commit, "git_dirty": bool(status.strip())}
