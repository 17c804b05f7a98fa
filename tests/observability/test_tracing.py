"""OpenTelemetry spans around task runs, and none without opentelemetry-api."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from asched import Scheduler
from asched.testing import FakeClock


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


async def test_each_attempt_is_a_span_with_its_outcome(
    make_scheduler: Callable[..., Scheduler],
    clock: FakeClock,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    s = make_scheduler()
    tracer = s.trace_tasks(provider)
    attempts = 0
    release = asyncio.Event()

    @s.task("send", max_retries=1, backoff_factor=5.0)
    async def send() -> str:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise ConnectionError("refused")
        await release.wait()
        return "sent"

    async with s:
        start = clock.now()
        tid = await s.schedule_task("send", priority="HIGH")
        await clock.advance(5)  # the retry starts
        await clock.advance(2)
        release.set()
        await clock.advance(0)
        assert await s.wait_for(tid, timeout=1) == "sent"
    assert tracer.enabled and tracer.open_spans == 0
    spans = exporter.get_finished_spans()
    assert [span.name for span in spans] == ["run send", "run send"]
    failed, done = spans
    assert failed.status.status_code is StatusCode.ERROR
    assert "refused" in (failed.status.description or "")
    assert failed.attributes is not None and failed.attributes["asched.task.outcome"] == "RETRYING"
    assert done.status.status_code is StatusCode.OK
    assert done.attributes == {
        "asched.task.id": tid,
        "asched.task.type": "send",
        "asched.task.priority": "HIGH",
        "asched.task.outcome": "COMPLETED",
    }
    assert failed.start_time == int(start * 1e9)
    assert done.end_time is not None and done.start_time is not None
    assert (done.end_time - done.start_time) / 1e9 == pytest.approx(2.0)


async def test_closing_the_tracer_stops_the_spans(
    make_scheduler: Callable[..., Scheduler],
    clock: FakeClock,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    s = make_scheduler()
    tracer = s.trace_tasks(provider)

    @s.task("echo")
    async def echo(n: int) -> int:
        return n

    async with s:
        await s.schedule_task("echo", {"n": 1})
        await clock.advance(0)
        tracer.close()
        await s.schedule_task("echo", {"n": 2})
        await clock.advance(0)
    assert len(exporter.get_finished_spans()) == 1


async def test_without_opentelemetry_tracing_is_a_no_op(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # import now raises ImportError
    s = make_scheduler()
    tracer = s.trace_tasks()

    @s.task("echo")
    async def echo(n: int) -> int:
        return n

    async with s:
        tid = await s.schedule_task("echo", {"n": 3})
        await clock.advance(0)
        assert await s.wait_for(tid, timeout=1) == 3
    assert not tracer.enabled and tracer.open_spans == 0
