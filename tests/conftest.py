from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from hypothesis import settings
from redis_service import RedisService

from asched import Scheduler
from asched.testing import FakeClock

pytest_plugins = ["watchdog"]

# No per-example deadline (a busy 2-core machine is not a slow algorithm), and in
# CI the same examples every run, so a red build always reproduces.
settings.register_profile("dev", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") == "true" else "dev")


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


@pytest.fixture(scope="session")
def redis_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisService]:
    """A private redis-server for the whole session (see ``redis_service.py``)."""
    service = RedisService(tmp_path_factory.mktemp("redis"))
    service.start()
    yield service
    service.stop()


@pytest.fixture
def redis_url(redis_service: RedisService, request: pytest.FixtureRequest) -> str:
    """The private Redis with a key prefix of this test's own."""
    prefix = "t" + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:12]
    return f"{redis_service.url}?prefix={prefix}"
