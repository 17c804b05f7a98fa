"""Fixtures for the fault tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fault_procs import AschedProcess


@pytest.fixture
def proc(tmp_path: Path) -> Iterator[AschedProcess]:
    helper = AschedProcess(tmp_path)
    yield helper
    helper.close()
