from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from dashboard_helpers import Populated, populate


@pytest.fixture
def populated(tmp_path: Path) -> Populated:
    """Built on its own loop, so sync tests (TestClient, Playwright) can use it."""
    return asyncio.run(populate(f"sqlite:///{tmp_path / 'board.db'}"))
