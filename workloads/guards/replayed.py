"""A guard made from a stability failure (``nox -s guard -- --from=FAILURE_ID``): its program, replayed.

The program and the invariant it broke are kept in ``workloads/guards/programs/<failure id>.json``; the guard
replays it with the stability fuzzer's executor (its own clusters) and fails when any try breaks that invariant
again — the bug is still there.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from framework.in_runtime.checks import WorkloadCheckFailed

PROGRAMS = Path(__file__).resolve().parent / "programs"


def replay_program(program: str, tries: int) -> dict[str, float]:
    """Replay the saved program ``program`` up to ``tries`` times; WorkloadCheckFailed if it fails as recorded."""
    from framework.chaos.run import fails_like

    record = json.loads((PROGRAMS / f"{program}.json").read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory(prefix="blessing-guard-") as work:
        present = fails_like(record["program"], record["kind"], record.get("settle_s") or 30.0, tries, Path(work))
    if present:
        raise WorkloadCheckFailed(
            f"stability failure {record['failure_id']} reproduces: the program breaks {record['kind']} again"
            f" ({record['error'][:300]})"
        )
    return {"tries": float(tries)}
