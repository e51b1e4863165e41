"""A runtime's lock as a file a production user installs: requirements with hashes, or PEP 751 ``pylock.toml``.

    nox -s export -- --runtime=latest                   exports/latest-requirements.txt (resolved today)
    nox -s export -- --runtime=latest --format=pylock   exports/pylock.latest.toml
    nox -s export -- --run=RUN_ID                       the lock that run recorded, not today's resolution

The requirements file is the lock itself (``uv pip compile --generate-hashes``): ``uv pip sync FILE`` or ``pip
install --require-hashes -r FILE`` installs exactly it. The pylock file is uv's PEP 751 rendering of the very same
pins (``uv pip compile --no-deps --format pylock.toml`` of the lock's ``name==version`` lines), checked to hold
exactly the lock's versions; a recorded lock without hashes (older runs stored ``uv pip freeze``) gets its hashes
the same way. A blessed verdict writes both beside itself, in ``results/blessed/`` (:func:`export_blessed`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Sequence
from pathlib import Path

from framework.environments import (
    BuiltEnvironment,
    describe_changes,
    find_python,
    lock_changes,
    parse_lock,
    run_uv,
)
from framework.in_runtime.errors import EnvironmentBuildError, ResultsError, SelectionError
from framework.in_runtime.redaction import redact_text
from framework.models import Runtime

FORMATS = {"requirements": "requirements with hashes", "pylock": "PEP 751 pylock.toml"}
EXPORTS_DIR = "exports"
BLESSED_DIR = "blessed"  # under the results directory, beside results/verdicts/
# PEP 751: "pylock.toml" or "pylock.<name>.toml" with no dot in <name>; uv refuses to install anything else.
_PYLOCK_NAME = re.compile(r"^pylock\.([^.]+\.)?toml$")


@dataclasses.dataclass(frozen=True)
class Export:
    """One written file: whose lock, in which format, where, and from what (today's resolution or a run)."""

    runtime: str
    format: str
    path: Path
    packages: dict[str, str]
    source: str  # "resolved today (2026-12-06)" or "the lock recorded by run 20261206T040520Z-e881d3 (…)"
    note: str | None = None  # what resolution had to steer (a lockstep family), in one line

    def install_command(self, cwd: Path | None = None) -> str:
        return install_command(self.path, cwd)


def shown_path(path: Path, cwd: Path | None = None) -> str:
    """The path as a user types it: relative to the working directory when it lies under it."""
    base = (cwd or Path.cwd()).resolve()
    try:
        return str(path.resolve().relative_to(base))
    except ValueError:
        return str(path)


def install_command(path: Path, cwd: Path | None = None) -> str:
    """``uv pip sync exports/latest-requirements.txt``: installs exactly the file into the active environment."""
    return f"uv pip sync {shown_path(path, cwd)}"


def pylock_name(label: str) -> str:
    """``pylock.<label>.toml`` with the label's dots replaced: PEP 751 names have none (``dask-2022.10.1``)."""
    return f"pylock.{label.replace('.', '_')}.toml"


def default_path(runtime: str, fmt: str, root: Path, run_id: str | None = None) -> Path:
    """``exports/<runtime>-requirements.txt`` / ``exports/pylock.<runtime>.toml`` (with ``-<run_id>`` for a run's)."""
    label = f"{runtime}-{run_id}" if run_id else runtime
    name = f"{label}-requirements.txt" if fmt == "requirements" else pylock_name(label)
    return root / EXPORTS_DIR / name


def check_format(fmt: str, out: Path | None = None) -> None:
    """Refuse an unknown format, and a pylock file name that uv would not install."""
    if fmt not in FORMATS:
        raise SelectionError(f"--format={fmt}: unknown format — use --format=requirements or --format=pylock")
    if fmt == "pylock" and out is not None and not _PYLOCK_NAME.match(out.name):
        raise SelectionError(
            f"--out={out}: a PEP 751 lock file is named pylock.toml or pylock.<name>.toml (no dot in <name>)"
            f" — uv installs no other name; use e.g. --out={out.with_name('pylock.production.toml')}"
        )


def pins(lock: str) -> str:
    """The lock's ``name==version`` lines, sorted: what the pylock rendering (and hashing) compiles."""
    return "".join(f"{name}=={version}\n" for name, version in sorted(parse_lock(lock).items()))


def has_hashes(lock: str) -> bool:
    return "--hash=" in lock


def pylock_packages(text: str) -> dict[str, str]:
    """{normalised name: version} of a pylock.toml's ``[[packages]]`` (their top-level name and version keys)."""
    found: dict[str, str] = {}
    current: dict[str, str] | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            if current is not None and "name" in current and "version" in current:
                found[current["name"]] = current["version"]
            current = {} if stripped == "[[packages]]" else None
            continue
        match = re.match(r'^(name|version)\s*=\s*"([^"]*)"\s*$', stripped)
        if current is not None and match and match.group(1) not in current:
            value = match.group(2)
            current[match.group(1)] = re.sub(r"[-_.]+", "-", value).lower() if match.group(1) == "name" else value
    if current is not None and "name" in current and "version" in current:
        found[current["name"]] = current["version"]
    return found


def render(runtime: Runtime, lock: str, fmt: str, command: str) -> str:
    """The file's text: the lock itself (requirements with hashes), or uv's rendering of its pins.

    Either way the file is checked to pin exactly the lock's versions; ``command`` is what its header says made it.
    """
    check_format(fmt)
    if not parse_lock(lock):
        raise EnvironmentBuildError(f"runtime {runtime.name}: the lock pins no package — nothing to export")
    if fmt == "requirements" and has_hashes(lock):
        text = lock
    else:
        python = find_python(runtime.python, runtime.name)
        args = [
            "pip", "compile", "-", "--quiet", "--no-deps", "--generate-hashes", "--python", str(python),
            "--custom-compile-command", command,
        ]  # fmt: skip
        if fmt == "pylock":
            args += ["--format", "pylock.toml"]
        text = run_uv(args, runtime, f"exporting its lock as {FORMATS[fmt]}", stdin=pins(lock))
    written = pylock_packages(text) if fmt == "pylock" else parse_lock(text)
    changes = lock_changes(parse_lock(lock), written)
    if changes:
        raise EnvironmentBuildError(
            f"runtime {runtime.name}: uv's {FORMATS[fmt]} differs from the lock ({describe_changes(changes)})"
            " — export --format=requirements, which is the lock itself"
        )
    return text


def write(runtime: Runtime, lock: str, fmt: str, path: Path, source: str, command: str) -> Export:
    """Render the lock in ``fmt`` and write it to ``path`` atomically, with a first line saying where it is from."""
    text = render(runtime, lock, fmt, command)
    header = f"# dask-blessing: runtime {runtime.name}, {source}; install with `uv pip sync {path.name}`\n"
    _write_atomic(path, header + text)
    return Export(runtime.name, fmt, path, parse_lock(lock), source)


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(redact_text(text), encoding="utf-8")  # an index URL's password never reaches the file
    partial.replace(path)


# --------------------------------------------------------------------------------------------------
# The command's two sources: today's resolution, or a recorded run


def export_runtime(runtime: Runtime, root: Path, fmt: str = "requirements", out: Path | None = None) -> Export:
    """Resolve the runtime today (an ``as_of`` runtime reuses its kept lock) and export that lock."""
    from framework.resolution import resolve

    check_format(fmt, out)
    resolution = resolve(runtime, root)
    if runtime.as_of is not None:  # resolves the same way every day: its kept lock
        source = f"resolved as of {runtime.as_of.isoformat()}"
    else:
        source = f"resolved today ({dt.datetime.now(dt.timezone.utc).date().isoformat()})"
    command = f"nox -s export -- --runtime={runtime.name}" + (f" --format={fmt}" if fmt != "requirements" else "")
    path = out or default_path(runtime.name, fmt, root)
    exported = write(runtime, resolution.lock, fmt, path, source, command)
    return dataclasses.replace(exported, note=resolution.note)


def export_run(
    results_dir: Path,
    run_id: str,
    root: Path,
    fmt: str = "requirements",
    out: Path | None = None,
    runtime_name: str | None = None,
) -> Export:
    """Export the lock a recorded run ran with (found by the run's env_hash), whatever today's spec says."""
    from framework.query import Results
    from framework.reproduce import load_run

    check_format(fmt, out)
    with Results(results_dir) as results:
        recorded = load_run(results, run_id)
    groups = recorded.groups
    if runtime_name is not None:
        groups = [group for group in groups if group.runtime.name == runtime_name]
        if not groups:
            ran = ", ".join(sorted({group.runtime.name for group in recorded.groups}))
            raise SelectionError(
                f"--runtime={runtime_name}: run {run_id} did not run it (it ran {ran}) — drop --runtime"
            )
    environments = {group.env_hash: group for group in groups}
    if len(environments) > 1:
        names = ", ".join(sorted({group.runtime.name for group in groups}))
        raise SelectionError(f"run {run_id} ran several runtimes ({names}) — add --runtime=NAME to choose one")
    group = groups[0]
    source = f"the lock recorded by run {run_id} (env_hash {group.env_hash}; {group.lock_source})"
    command = f"nox -s export -- --run={run_id}" + (f" --format={fmt}" if fmt != "requirements" else "")
    path = out or default_path(group.runtime.name, fmt, root, run_id)
    return write(group.runtime, group.lock, fmt, path, source, command)


# --------------------------------------------------------------------------------------------------
# A blessed runtime


def export_blessed(environment: BuiltEnvironment, results_dir: Path, day: dt.date) -> Sequence[Export]:
    """Both formats of a blessed environment's lock, beside the verdict: ``results/blessed/<runtime>-<day>.txt`` and
    ``pylock.<runtime>-<day>.toml``. Blessed again the same day with another lock: ``-2``, ``-3`` … are added."""
    runtime, lock = environment.runtime, environment.lock
    directory = results_dir / BLESSED_DIR
    command = f"nox -s bless -- --runtime={runtime.name}"
    source = f"blessed {day.isoformat()} (env_hash {environment.env_hash})"
    texts = {fmt: render(runtime, lock, fmt, command) for fmt in FORMATS}
    label = f"{runtime.name}-{day.isoformat()}"
    for attempt in range(1, 100):
        candidate = label if attempt == 1 else f"{label}-{attempt}"
        paths = {"requirements": directory / f"{candidate}.txt", "pylock": directory / pylock_name(candidate)}
        if all(_free_or_same(paths[fmt], texts[fmt]) for fmt in FORMATS):
            break
    else:
        raise ResultsError(f"{directory}: 99 exports of {label} already — move old ones away")
    exports = []
    for fmt, path in paths.items():
        header = f"# dask-blessing: runtime {runtime.name}, {source}; install with `uv pip sync {path.name}`\n"
        _write_atomic(path, header + texts[fmt])
        exports.append(Export(runtime.name, fmt, path, parse_lock(lock), source))
    return exports


def _free_or_same(path: Path, text: str) -> bool:
    """Nothing there yet, or the very same lock (blessed twice in a day): never overwrite another verdict's file."""
    if not path.exists():
        return True
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    return "".join(lines[1:]) == text
