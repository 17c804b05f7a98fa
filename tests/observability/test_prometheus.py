"""Prometheus exposition: scrape the endpoint over HTTP and parse it."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from collections.abc import Callable

import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families

from asched import ConfigError, Scheduler, SchedulerStateError
from asched.observability.prometheus import SchedulerCollector, flatten, metric_name
from asched.testing import FakeClock


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        body: bytes = response.read()
    return body.decode()


async def test_the_endpoint_serves_load_gauges_and_outcome_counters(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock
) -> None:
    s = make_scheduler()
    exporter = s.serve_metrics(port=0)

    @s.task("send", max_retries=1, backoff_factor=1.0)
    async def send(n: int) -> int:
        if n < 2:
            raise ConnectionError(n)
        return n

    @s.task("render")
    async def render() -> str:
        return "ok"

    async with s:
        assert exporter.url.startswith("http://127.0.0.1:") and exporter.port > 0
        for n in range(5):
            await s.schedule_task("send", {"n": n})
        await s.schedule_task("render")
        await s.schedule_task("render", delay=3600)
        await clock.advance(10)
        await exporter.refresh()
        text = await asyncio.to_thread(scrape, exporter.url)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    outcomes = {
        (x.labels["task_type"], x.labels["outcome"]): x.value
        for x in families["asched_task_outcomes"].samples
    }
    assert outcomes == {
        ("render", "completed"): 1,
        ("send", "completed"): 3,
        ("send", "retried"): 2,
        ("send", "failed"): 2,
    }
    assert families["asched_task_outcomes"].type == "counter"
    assert families["asched_scheduled"].samples[0].value == 1
    assert families["asched_running"].samples[0].value == 0
    assert families["asched_max_concurrency"].type == "gauge"
    assert families["asched_completed_1h"].samples[0].value == 4


async def test_the_server_stops_with_the_scheduler(
    make_scheduler: Callable[..., Scheduler],
) -> None:
    s = make_scheduler()
    exporter = s.serve_metrics(port=0)
    async with s:
        url = exporter.url
        assert "asched_running" in await asyncio.to_thread(scrape, url)
        with pytest.raises(SchedulerStateError):
            s.serve_metrics(port=0)
    with pytest.raises(urllib.error.URLError):
        await asyncio.to_thread(scrape, url)


def test_nested_figures_become_labelled_samples() -> None:
    figures = {"by_state": {"queued": 3, "running": 1}, "duration": {"send": {"p50": 0.5}}}
    assert list(flatten(figures["by_state"])) == [(("queued",), 3), (("running",), 1)]
    assert list(flatten(figures["duration"])) == [(("send", "p50"), 0.5)]
    assert list(flatten("open")) == [((), "open")] and list(flatten(None)) == []
    assert metric_name("lateness_p95.s") == "asched_lateness_p95_s"


def test_new_nested_keys_are_exported_without_a_change() -> None:
    collector = SchedulerCollector()
    collector.publish(
        {
            "queue_depth": {"HIGH": 2, "LOW": 5},
            "duration_s": {"send": {"p50": 0.25, "p95": 1}},
            "breakers": {"smtp": "open"},
            "note": "text",
            "ok": True,
        }
    )
    registry = prometheus_client.CollectorRegistry()
    registry.register(collector)
    text = prometheus_client.generate_latest(registry).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    depth = {s.labels["key"]: s.value for s in families["asched_queue_depth"].samples}
    assert depth == {"HIGH": 2, "LOW": 5}
    durations = {
        (s.labels["key"], s.labels["key_2"]): s.value for s in families["asched_duration_s"].samples
    }
    assert durations == {("send", "p50"): 0.25, ("send", "p95"): 1}
    assert families["asched_ok"].samples[0].value == 1
    breakers = families["asched_breakers"].samples
    assert [(b.labels, b.value) for b in breakers] == [({"key": "smtp", "state": "open"}, 1)]
    assert families["asched_note"].samples[0].labels == {"state": "text"}


def test_the_port_is_checked(make_scheduler: Callable[..., Scheduler]) -> None:
    with pytest.raises(ConfigError, match="metrics_port"):
        make_scheduler().serve_metrics(port=70_000)
