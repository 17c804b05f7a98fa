"""WebhookNotifier against local HTTP servers on 127.0.0.1 (real clock)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from asched import Alert, AlertKind, ConfigError, Scheduler, TaskLifecycle, WebhookNotifier
from asched.notifiers.webhook import WebhookError
from asched.observability.alerts import Severity, alert_time


class Hook(ThreadingHTTPServer):
    """Answers each POST with the next status of ``statuses`` (then 200), keeping
    the JSON bodies."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.bodies: list[dict[str, Any]] = []
        super().__init__(("127.0.0.1", 0), _HookHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/alerts"


class _HookHandler(BaseHTTPRequestHandler):
    server: Hook

    def do_POST(self) -> None:
        length = int(self.headers["content-length"])
        self.server.bodies.append(json.loads(self.rfile.read(length)))
        status = self.server.statuses.pop(0) if self.server.statuses else 200
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve(statuses: list[int]) -> tuple[Hook, threading.Thread]:
    hook = Hook(statuses)
    thread = threading.Thread(target=hook.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    return hook, thread


def shut(hook: Hook, thread: threading.Thread) -> None:
    hook.shutdown()
    hook.server_close()
    thread.join(timeout=5)


@pytest.fixture
def hook() -> Iterator[Hook]:
    server, thread = serve([503])
    yield server
    shut(server, thread)


@pytest.fixture
def down_url() -> str:
    """The address of a webhook server that was started and has been stopped."""
    server, thread = serve([])
    url = server.url
    shut(server, thread)
    return url


@pytest.fixture
def hanging_url() -> Iterator[str]:
    """A server that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/alerts"


def sample_alert() -> Alert:
    return Alert(
        AlertKind.WORKER_LOST,
        Severity.CRITICAL,
        "worker w1 lost",
        "worker_lost:w1",
        alert_time(1_800_000_000.0),
        {"worker_id": "w1"},
    )


async def test_the_webhook_posts_the_alert_as_json_and_retries_a_503(hook: Hook) -> None:
    notifier = WebhookNotifier(hook.url, backoff_s=0.01)
    await notifier.notify(sample_alert())
    assert len(hook.bodies) == 2  # the 503, then the retry that got through
    assert hook.bodies[1] == {
        "kind": "worker_lost",
        "severity": "critical",
        "title": "worker w1 lost",
        "key": "worker_lost:w1",
        "at": "2027-01-15T08:00:00+00:00",
        "details": {"worker_id": "w1"},
        "resolved": False,
        "suppressed": 0,
    }


async def test_a_client_error_is_not_retried() -> None:
    server, thread = serve([404])
    try:
        with pytest.raises(WebhookError, match="HTTP 404"):
            await WebhookNotifier(server.url, backoff_s=0.01).notify(sample_alert())
        assert len(server.bodies) == 1
    finally:
        shut(server, thread)


async def test_a_down_server_fails_after_every_attempt(down_url: str) -> None:
    with pytest.raises(WebhookError, match="3 attempts"):
        await WebhookNotifier(down_url, backoff_s=0.01).notify(sample_alert())


def test_the_webhook_checks_its_settings() -> None:
    with pytest.raises(ConfigError, match="attempts"):
        WebhookNotifier("http://127.0.0.1:9/x", attempts=0)


async def poll(condition: Callable[[], bool], deadline_s: float) -> bool:
    end = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > end:
            return False
        await asyncio.sleep(0.02)
    return True


@pytest.mark.parametrize("server", ["down", "hanging"])
async def test_a_webhook_that_is_down_does_not_slow_the_scheduler(
    server: str, down_url: str, hanging_url: str
) -> None:
    # Were delivery on the scheduler's path, one alert would hold it up for
    # attempts x timeout = 6 s against a hanging server.
    url = down_url if server == "down" else hanging_url
    s = Scheduler()
    alerts = s.add_notifier(WebhookNotifier(url, timeout_s=2.0, attempts=3, backoff_s=0.05))

    @s.task("job", max_retries=0)
    async def job(n: int) -> int:
        if n % 2:
            raise ValueError(n)
        return n

    async with s:
        started = time.monotonic()
        for n in range(20):
            alerts.worker_lost(f"w{n}")
        ids = [await s.schedule_task("job", {"n": n}) for n in range(400)]
        done = asyncio.gather(*(s.wait_for(t, timeout=5) for t in ids), return_exceptions=True)
        await asyncio.wait_for(done, timeout=5)
        took = time.monotonic() - started
        assert s.state_count(TaskLifecycle.COMPLETED) == 200
        assert s.state_count(TaskLifecycle.FAILED) == 200
        outbox = alerts.outboxes[0]
        if server == "down":
            assert await poll(lambda: outbox.failed >= 1, deadline_s=5)
        assert outbox.sent == 0
    assert took < 1.5, took
