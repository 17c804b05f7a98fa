"""A real RabbitMQ on 127.0.0.1:5672 (guest/guest), a fresh ``broker_prefix`` per
test, and everything that prefix created deleted afterwards.  Without a broker
the tests skip, except under CI=true, where they fail."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiormq
import pytest
from broker_helpers import Processes

BROKER_URL = os.environ.get("ASCHED_TEST_BROKER", "amqp://guest:guest@127.0.0.1:5672/")


def _reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def broker_url() -> str:
    if not _reachable():
        message = "RabbitMQ is not reachable on 127.0.0.1:5672"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return BROKER_URL


def _queues_named(prefix: str) -> list[str]:
    if shutil.which("rabbitmqctl") is None:
        return []
    out = subprocess.run(
        ["rabbitmqctl", "list_queues", "name", "-q", "--no-table-headers"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    ).stdout
    return [name for name in out.split() if name.startswith(prefix + ".")]


async def _delete(url: str, prefix: str, queues: list[str]) -> None:
    connection = await aiormq.connect(url)
    try:
        channel = await connection.channel()
        for queue in {f"{prefix}.tasks", *queues}:
            await channel.queue_delete(queue)
        for exchange in (f"{prefix}.control", f"{prefix}.heartbeats"):
            await channel.exchange_delete(exchange)
    finally:
        await connection.close()


@pytest.fixture
def broker_prefix(broker_url: str) -> Iterator[str]:
    prefix = f"asched-test-{uuid.uuid4().hex[:10]}"
    yield prefix
    asyncio.run(_delete(broker_url, prefix, _queues_named(prefix)))


@pytest.fixture
def processes(tmp_path: Path, broker_url: str, broker_prefix: str) -> Iterator[Processes]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), env.get("PYTHONPATH")]))
    env["ASCHED_BROKER"] = broker_url
    env["ASCHED_BROKER_PREFIX"] = broker_prefix
    made = Processes(tmp_path, env)
    yield made
    for child in made.children:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)
