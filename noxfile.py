"""dask-blessing's sessions: one per user verb. Thin: each installs what it needs and calls ``framework``.

nox -s matrix -- --runtime=latest      run workloads for runtimes × hardware, write results, print a summary
nox -s stability -- --runtime=latest   chaos fuzzing under faults; --replay=ID re-runs a recorded failure
nox -s compare -- --baseline=stable --candidate=latest   A/B, interleaved, with confidence intervals
nox -s regressions                     change points over history; Markdown summary; exit 1 on a new regression
nox -s bisect -- --package=dask --good=V --bad=V --workload=NAME --metric=peak_memory   first bad release
nox -s bless -- --runtime=latest --baseline=stable   run what is missing, decide blessed or not (exit 0 = blessed)
nox -s report [-- --out=DIR]          a static site of the results (opens offline, from disk)
nox -s sql -- "SELECT ..."             read-only SQL over all results (no query: list the views)
nox -s merge -- SRC... --into=DIR      copy several stores (shards, artifacts, URLs) into one; idempotent
nox -s export -- --runtime=latest      a runtime's lock as a file to install (requirements with hashes, or pylock)
nox -s reproduce -- --run=RUN_ID       rebuild a recorded run's environment from its lock, re-run, recorded vs now
nox -s guard -- --from=RUN_ID:CASE_ID  a failed case (or a stability FAILURE_ID) becomes a guard + reproducer + finding
nox -s schema                          write JSON Schemas of the YAML files (matrices/schemas/)
nox -s tests                           the test suite (pass -- -m "not environment" to skip env builds)
nox -s lint                            ruff, mypy and the import-cycle check
nox -s bench -- overhead               benchmarks that print figures (overhead, calibration, report, scale, …)
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["tests", "lint"]

# Let first imports write .pyc files: with bytecode writes off, every worker process re-compiles dask.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


def _controller(session: nox.Session) -> None:
    """The controller: plans runs, builds runtime environments, writes and queries results."""
    session.install("-e", ".")


@nox.session(venv_backend="uv")
def matrix(session: nox.Session) -> None:
    """Run the matrix: nox -s matrix -- --runtime=latest [--hardware=NAME] [--workload=NAME|tag:TAG] [--tag=TAG]
    [--repeat=N] [--shard=K/N --run-group=ID] [--dry-run] [--json]."""
    _controller(session)
    session.run("python", "-m", "framework.cli", "matrix", *session.posargs)


@nox.session(venv_backend="uv")
def sql(session: nox.Session) -> None:
    """Read-only SQL over all results: nox -s sql -- "SELECT workload, median(wall_s) FROM cases GROUP BY 1"."""
    _controller(session)
    session.run("python", "-m", "framework.cli", "sql", *session.posargs)


@nox.session(venv_backend="uv")
def stability(session: nox.Session) -> None:
    """Chaos fuzzing: nox -s stability -- --runtime=latest [--profile=ci|nightly] [--examples=N] [--replay=ID]
    [--dry-run] [--json]."""
    _controller(session)
    session.run("python", "-m", "framework.cli", "stability", *session.posargs)


@nox.session(venv_backend="uv")
def compare(session: nox.Session) -> None:
    """A/B: nox -s compare -- --baseline=stable --candidate=latest [--rounds=N|--until-decided] [--from-results]
    [--dry-run] [--json]."""
    _controller(session)
    session.run("python", "-m", "framework.cli", "compare", *session.posargs)


@nox.session(venv_backend="uv")
def regressions(session: nox.Session) -> None:
    """Change points over history: nox -s regressions [-- --along=version --package=dask] [--fail-on=new|open]
    [--tag=TAG] [--json]."""
    _controller(session)
    session.run("python", "-m", "framework.cli", "regressions", *session.posargs)


@nox.session(venv_backend="uv")
def bisect(session: nox.Session) -> None:
    """First bad release: nox -s bisect -- --package=dask --good=V --bad=V --workload=NAME --metric=peak_memory
    [--repeat=N] [--dry-run]."""
    _controller(session)
    session.run("python", "-m", "framework.cli", "bisect", *session.posargs)


@nox.session(venv_backend="uv")
def attribute(session: nox.Session) -> None:
    """Which package did it: nox -s attribute -- --baseline=stable --candidate=latest --workload=CASE --metric=wall
    [--budget=N] [--bisect] [--dry-run]."""
    _controller(session)
    session.run("python", "-m", "framework.cli", "attribute", *session.posargs)


@nox.session(venv_backend="uv")
def bless(session: nox.Session) -> None:
    """Blessed or not: nox -s bless -- --runtime=latest --baseline=stable [--criteria=NAME] [--dry-run] [--json]
    (exit 0 = blessed)."""
    _controller(session)
    session.run("python", "-m", "framework.cli", "bless", *session.posargs)


@nox.session(venv_backend="uv")
def export(session: nox.Session) -> None:
    """A lock to install: nox -s export -- --runtime=latest [--format=requirements|pylock] [--out=PATH] [--run=ID]."""
    _controller(session)
    session.run("python", "-m", "framework.cli", "export", *session.posargs)


@nox.session(venv_backend="uv")
def reproduce(session: nox.Session) -> None:
    """Run a recorded run again in its exact environment: nox -s reproduce -- --run=RUN_ID [--case=ID] [--repeat=N]
    [--dry-run] [--json]."""
    _controller(session)
    session.run("python", "-m", "framework.cli", "reproduce", *session.posargs)


@nox.session(venv_backend="uv")
def report(session: nox.Session) -> None:
    """The benchmarks site from the results store: nox -s report [-- --out=DIR] (default results/report/)."""
    session.install("-e", ".[report]")
    session.run("python", "-m", "framework.cli", "report", *session.posargs)


@nox.session(venv_backend="uv")
def guard(session: nox.Session) -> None:
    """A finding becomes a guard: nox -s guard -- --from=RUN_ID:CASE_ID | --from=FAILURE_ID [--name=NAME]."""
    _controller(session)
    session.run("python", "-m", "framework.cli", "guard", *session.posargs)


@nox.session(venv_backend="uv")
def compact(session: nox.Session) -> None:
    """Merge each month's result files into one (a long history reads faster); safe while others query."""
    _controller(session)
    session.run("python", "-m", "framework.cli", "compact", *session.posargs)


@nox.session(venv_backend="uv")
def merge(session: nox.Session) -> None:
    """Copy result files of several stores into one: nox -s merge -- SRC... [--into=DIR|URL] [--allow-partial]."""
    _controller(session)
    session.run("python", "-m", "framework.cli", "merge", *session.posargs)


@nox.session(venv_backend="uv")
def workloads(session: nox.Session) -> None:
    """The workload catalogue with tags, sizes and descriptions: nox -s workloads [-- --tag=TAG] [--workload=NAME]
    [--json]."""
    _controller(session)
    session.run("python", "-m", "framework.cli", "workloads", *session.posargs)


@nox.session(venv_backend="uv")
def schema(session: nox.Session) -> None:
    """Write JSON Schemas for runtimes.yaml, hardware.yaml, matrix.yaml and workloads/*.yaml."""
    _controller(session)
    session.run("python", "-m", "framework.cli", "schema", *session.posargs)


@nox.session(venv_backend="uv")
def tests(session: nox.Session) -> None:
    """The test suite: unit tests, cluster tests and end-to-end nox runs (markers: cluster, environment)."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session(venv_backend="uv")
def lint(session: nox.Session) -> None:
    """ruff over everything, mypy (strict) over framework/, no import cycle between framework's modules, and the
    GitHub workflows valid against GitHub's schema."""
    session.install("-e", ".[lint]")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", "--diff", ".")
    session.run("mypy")
    session.run("python", "tests/tools/import_cycles.py", "framework")
    session.run("check-jsonschema", "--builtin-schema", "vendor.github-workflows", *_workflows())


def _workflows() -> list[str]:
    return sorted(str(path) for path in Path(__file__).parent.glob(".github/workflows/*.yml"))


@nox.session(venv_backend="uv")
def bench(session: nox.Session) -> None:
    """Benchmarks that print figures (never timed assertions): nox -s bench -- overhead | calibration | report ..."""
    session.install("-e", ".[test]")
    names = [arg for arg in session.posargs if not arg.startswith("-")] or ["overhead"]
    options = [arg for arg in session.posargs if arg.startswith("-")]
    for name in names:
        script = Path(__file__).parent / "tests" / "benchmarks" / f"bench_{name.replace('-', '_')}.py"
        if not script.is_file():
            scripts = script.parent.glob("bench_*.py")
            known = sorted(path.stem.removeprefix("bench_").replace("_", "-") for path in scripts)
            session.error(f"nox -s bench -- {name}: no such benchmark — use one of {', '.join(known)}")
        session.run("python", str(script.relative_to(Path(__file__).parent)), *options)
