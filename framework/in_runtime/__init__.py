"""The runner side: what runs inside a runtime's environment, not the controller's.

The runner (``python -m framework.in_runtime.runner PLAN.json``), the cluster session and its backends, what is
measured around a case (metrics, memory), parameter scaling, provenance, workload checks, errors and redaction.
Each module here imports only the standard library, the runtime's own packages (distributed, lazily) and other
modules of this package — never pydantic, pyarrow, duckdb or rich, and nothing of the controller — so old
runtimes and other Pythons can run it. ``tests/unit/test_runtime_side.py`` imports every module of it on the
oldest Python the runtimes declare with those packages blocked; the controller may import from here, never the
reverse.
"""
