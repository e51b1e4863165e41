"""The fault suite: each test is an attack a hostile, careless or unlucky user could make, asserting the guarantee
that holds against it (nothing lost, nothing leaked, one clear line). Every test here is marked ``faults``."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).resolve().is_relative_to(HERE):
            item.add_marker(pytest.mark.faults)
