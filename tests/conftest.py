from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from asched import Scheduler
from asched.testing import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def make_scheduler(clock: FakeClock) -> AsyncIterator[Callable[..., Scheduler]]:
    """Build schedulers on the virtual clock; each is stopped after the test."""
    made: list[Scheduler] = []

    def make(**settings: Any) -> Scheduler:
        settings.setdefault("clock", clock)
        scheduler = Scheduler(**settings)
        made.append(scheduler)
        return scheduler

    yield make
    for scheduler in made:
        await scheduler.stop(grace_s=0)
