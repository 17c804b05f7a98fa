"""Alerts on a virtual clock: each rule, debouncing, resolutions, notifier isolation."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from asched import (
    Alert,
    AlertKind,
    ConfigError,
    Scheduler,
    SchedulerStateError,
    TaskLifecycle,
)
from asched.testing import FakeClock, settle


class RecordingNotifier:
    """Keeps every alert it is given."""

    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    async def notify(self, alert: Alert) -> None:
        self.alerts.append(alert)

    def of(self, kind: AlertKind) -> list[Alert]:
        return [a for a in self.alerts if a.kind is kind]

    def states(self, kind: AlertKind) -> list[bool]:
        """The ``resolved`` flags of the alerts of ``kind``, in order."""
        return [a.resolved for a in self.of(kind)]


QUIET = {"retry_storm_count": 10_000, "backlog_min": 10_000}


async def run_minute(s: Scheduler, clock: FakeClock, tasks: int) -> None:
    for n in range(tasks):
        await s.schedule_task("job", {"n": n})
    await clock.advance(60)


async def test_a_failure_spike_raises_one_alert_and_recovery_resolves_it(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock
) -> None:
    s = make_scheduler()
    notifier = RecordingNotifier()
    s.add_notifier(notifier, failure_min_volume=10, failure_rise=0.3, repeat_s=300.0, **QUIET)
    broken = False

    @s.task("job", max_retries=0)
    async def job(n: int) -> int:
        if broken and n % 10 != 0:  # 90% fail during the outage
            raise ConnectionError("upstream down")
        return n

    async with s:
        for _ in range(3):
            await run_minute(s, clock, 20)
        assert notifier.alerts == []
        broken = True
        for _ in range(3):
            await run_minute(s, clock, 20)
        assert s.state_count(TaskLifecycle.FAILED) == 54
        assert notifier.states(AlertKind.FAILURE_RATE) == [False]
        spike = notifier.of(AlertKind.FAILURE_RATE)[0]
        assert spike.details["failure_rate"] == 0.9 and spike.details["baseline"] == 0.0
        broken = False
        for _ in range(2):
            await run_minute(s, clock, 20)
    assert notifier.states(AlertKind.FAILURE_RATE) == [False, True]
    # 54 tasks failed for good: the first is told at once, the other 53 fold into
    # one summary when the five-minute repeat period is over.
    failed = notifier.of(AlertKind.TASK_FAILED)
    assert [(a.key, a.suppressed) for a in failed] == [
        ("task_failed:job", 0),
        ("task_failed:job", 53),
    ]


async def test_failed_task_alerts_are_folded_into_a_summary_per_repeat_period(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock
) -> None:
    s = make_scheduler()
    notifier = RecordingNotifier()
    s.add_notifier(notifier, repeat_s=60.0, failure_min_volume=10_000, **QUIET)

    @s.task("job", max_retries=0)
    async def job(n: int) -> int:
        raise ValueError(n)

    async with s:
        await run_minute(s, clock, 25)
        await clock.advance(1)
    failed = notifier.of(AlertKind.TASK_FAILED)
    assert [a.suppressed for a in failed] == [0, 24]
    assert failed[1].title.endswith("(and 23 more like it)")


async def test_a_retry_storm_raises_one_alert_and_resolves_when_it_dies_down(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock
) -> None:
    s = make_scheduler()
    notifier = RecordingNotifier()
    s.add_notifier(
        notifier, retry_storm_count=20, retry_storm_window_s=60.0, failure_min_volume=10_000
    )
    healthy = False

    @s.task("flaky", max_retries=3, backoff_factor=2.0)
    async def flaky(n: int) -> int:
        if not healthy:
            raise ConnectionError("503")
        return n

    async with s:
        ids = [await s.schedule_task("flaky", {"n": n}) for n in range(30)]
        await clock.advance(10)  # the storm is told on the first tick, after 30 retries
        assert notifier.states(AlertKind.RETRY_STORM) == [False]
        assert notifier.of(AlertKind.RETRY_STORM)[0].details["by_type"] == {"flaky": 30}
        healthy = True
        await clock.advance(120)
        assert [await s.wait_for(tid, timeout=1) for tid in ids] == list(range(30))
    assert notifier.states(AlertKind.RETRY_STORM) == [False, True]


async def test_an_open_circuit_raises_an_alert_and_its_closing_resolves_it(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock
) -> None:
    s = make_scheduler()
    s.configure_breaker("smtp", failure_threshold=2, recovery_s=30)
    notifier = RecordingNotifier()
    s.add_notifier(notifier, **QUIET)
    healthy = False

    @s.task("mail", breaker="smtp", max_retries=0)
    async def mail(n: int) -> int:
        if not healthy:
            raise ConnectionError("smtp down")
        return n

    async with s:
        for n in range(2):
            await s.schedule_task("mail", {"n": n})
        await clock.advance(1)
        opened = notifier.of(AlertKind.CIRCUIT_OPEN)
        assert [(a.key, a.resolved) for a in opened] == [("circuit_open:smtp", False)]
        healthy = True
        await s.schedule_task("mail", {"n": 3})
        await clock.advance(31)
    assert notifier.states(AlertKind.CIRCUIT_OPEN) == [False, True]


async def test_late_starts_raise_a_lateness_alert_resolved_after_a_quiet_spell(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock
) -> None:
    s = make_scheduler(max_concurrency=1)
    notifier = RecordingNotifier()
    s.add_notifier(notifier, lateness_s=30.0, lateness_clear_s=60.0, backlog_min=10_000)
    gate = asyncio.Event()

    @s.task("slow")
    async def slow(n: int) -> int:
        if n == 0:
            await gate.wait()
        return n

    async with s:
        first = await s.schedule_task("slow", {"n": 0})
        second = await s.schedule_task("slow", {"n": 1})
        await clock.advance(45)
        assert notifier.of(AlertKind.LATENESS) == []
        gate.set()
        await clock.advance(1)
        assert await s.wait_for(first, timeout=1) == 0 and await s.wait_for(second) == 1
        late = notifier.of(AlertKind.LATENESS)
        assert [a.key for a in late] == ["lateness:slow"] and late[0].details["late_s"] >= 45
        await clock.advance(61)
    assert notifier.states(AlertKind.LATENESS) == [False, True]


@pytest.mark.parametrize(("thresholds", "alerted"), [({}, True), ({"lateness_s": None}, False)])
async def test_lateness_is_watched_by_default_from_a_minute_late(
    make_scheduler: Callable[..., Scheduler],
    clock: FakeClock,
    thresholds: dict[str, Any],
    alerted: bool,
) -> None:
    s = make_scheduler(max_concurrency=1)
    notifier = RecordingNotifier()
    s.add_notifier(notifier, backlog_min=10_000, **thresholds)
    gates = {0: asyncio.Event(), 10: asyncio.Event()}

    @s.task("slow")
    async def slow(n: int) -> int:
        if n in gates:
            await gates[n].wait()
        return n

    async def start_late_by(blocker: int, late_s: float) -> None:
        await s.schedule_task("slow", {"n": blocker})
        waiting = await s.schedule_task("slow", {"n": blocker + 1})
        await clock.advance(late_s)
        gates[blocker].set()
        await clock.advance(1)
        assert await s.wait_for(waiting) == blocker + 1

    async with s:
        await start_late_by(0, 45)
        assert notifier.of(AlertKind.LATENESS) == []
        await start_late_by(10, 75)
        opened = [a.key for a in notifier.of(AlertKind.LATENESS) if not a.resolved]
    assert opened == (["lateness:slow"] if alerted else [])


async def test_a_backlog_growing_faster_than_it_drains_raises_an_alert(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock
) -> None:
    s = make_scheduler(max_concurrency=1)
    notifier = RecordingNotifier()
    s.add_notifier(
        notifier,
        backlog_sample_s=5.0,
        backlog_window_s=60.0,
        backlog_growth_per_s=0.5,
        backlog_min=20,
    )
    gate = asyncio.Event()

    @s.task("work")
    async def work(n: int) -> int:
        await gate.wait()
        return n

    async with s:
        for _ in range(12):  # 10 tasks every 5 s against none finishing: 2 a second
            for n in range(10):
                await s.schedule_task("work", {"n": n})
            await clock.advance(5)
        growth = notifier.of(AlertKind.BACKLOG_GROWTH)
        assert [a.resolved for a in growth] == [False]
        assert growth[0].details["growth_per_s"] >= 1.5
        gate.set()
        await clock.advance(40)
        assert s.state_count(TaskLifecycle.COMPLETED) == 120
    assert notifier.states(AlertKind.BACKLOG_GROWTH) == [False, True]


async def test_worker_lost_is_raised_once_and_resolved_when_it_is_back(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock
) -> None:
    s = make_scheduler()
    notifier = RecordingNotifier()
    alerts = s.add_notifier(notifier)
    async with s:
        assert alerts.worker_lost("w2", "lease expired") is True
        assert alerts.worker_lost("w2", "lease expired") is False
        await clock.advance(1)
        assert alerts.worker_back("w2") is True
        await clock.advance(1)
    lost = notifier.of(AlertKind.WORKER_LOST)
    assert [(a.key, a.resolved) for a in lost] == [
        ("worker_lost:w2", False),
        ("worker_lost:w2", True),
    ]
    assert lost[0].details == {"worker_id": "w2", "reason": "lease expired"}


class BrokenNotifier:
    async def notify(self, alert: Alert) -> None:
        raise RuntimeError("notifier bug")


class StuckNotifier:
    def __init__(self) -> None:
        self.calls = 0

    async def notify(self, alert: Alert) -> None:
        self.calls += 1
        await asyncio.Event().wait()


async def test_a_broken_or_stuck_notifier_holds_up_neither_the_scheduler_nor_the_others(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    s = make_scheduler()
    good, stuck = RecordingNotifier(), StuckNotifier()
    s.add_notifier(BrokenNotifier())
    s.add_notifier(stuck, outbox_size=2)
    alerts = s.add_notifier(good)

    @s.task("job", max_retries=0)
    async def job(n: int) -> int:
        raise ValueError(n)

    async with s:
        for n in range(5):
            alerts.worker_lost(f"w{n}")
        ids = [await s.schedule_task("job", {"n": n}) for n in range(50)]
        await clock.advance(1)
        assert all([await s.get_task_status(t) is TaskLifecycle.FAILED for t in ids])
    assert len(good.of(AlertKind.WORKER_LOST)) == 5 and len(good.of(AlertKind.TASK_FAILED)) == 1
    assert stuck.calls == 1
    broken, outbox_stuck, outbox_good = alerts.outboxes
    assert broken.failed == 6 and outbox_good.sent == 6
    # one alert in delivery, two queued: the other three were dropped, oldest first
    assert outbox_stuck.sent == 0 and outbox_stuck.dropped == 3
    assert "notifier bug" in caplog.text


async def test_the_global_rate_limit_caps_opening_alerts_per_minute(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock
) -> None:
    s = make_scheduler()
    notifier = RecordingNotifier()
    alerts = s.add_notifier(notifier, max_per_minute=3)
    async with s:
        sent = [alerts.worker_lost(f"w{n}") for n in range(5)]
        await clock.advance(61)
        assert alerts.worker_lost("w4") is True
        await clock.advance(1)
    assert sent == [True, True, True, False, False]
    assert [a.key for a in notifier.alerts] == [
        "worker_lost:w0",
        "worker_lost:w1",
        "worker_lost:w2",
        "worker_lost:w4",
    ]
    assert alerts.gate.dropped == 2


async def test_thresholds_are_checked_by_name(make_scheduler: Callable[..., Scheduler]) -> None:
    s = make_scheduler()
    with pytest.raises(ConfigError, match="retry_storm_cnt"):
        s.add_notifier(RecordingNotifier(), retry_storm_cnt=5)
    with pytest.raises(ConfigError, match="failure_rise"):
        s.add_notifier(RecordingNotifier(), failure_rise=0)
    async with s:
        with pytest.raises(SchedulerStateError):
            s.add_notifier(RecordingNotifier(), tick_s=5.0)


async def test_a_notifier_added_while_running_starts_at_once(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock
) -> None:
    s = make_scheduler()
    notifier = RecordingNotifier()

    @s.task("job", max_retries=0)
    async def job() -> Any:
        raise ValueError("no")

    async with s:
        s.add_notifier(notifier)
        await s.schedule_task("job")
        await clock.advance(1)
        await settle()
        assert [a.kind for a in notifier.alerts] == [AlertKind.TASK_FAILED]


async def test_the_logging_notifier_logs_alerts_and_resolutions(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from asched import LoggingNotifier

    s = make_scheduler()
    alerts = s.add_notifier(LoggingNotifier(logging.getLogger("ops")))
    with caplog.at_level(logging.INFO, logger="ops"):
        async with s:
            alerts.worker_lost("w1", "no heartbeat")
            alerts.worker_back("w1")
            await clock.advance(1)
    logged = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "ops"]
    assert logged == [
        (
            "ERROR",
            "alert worker_lost:w1 [critical] worker w1 lost "
            "{'worker_id': 'w1', 'reason': 'no heartbeat'}",
        ),
        ("INFO", "alert worker_lost:w1 [resolved] worker w1 is back {'worker_id': 'w1'}"),
    ]
