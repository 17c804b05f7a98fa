"""``asched status / list / schedules / forecast`` read a prepared store."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from asched import Scheduler, TaskPriority
from asched.cli import main
from asched.errors import AschedError


async def _prepare(url: str) -> dict[str, str]:
    scheduler = Scheduler(url, default_backoff_factor=1.0)

    @scheduler.task("render")
    async def render(channel_id: str) -> str:
        return f"{channel_id}.mp4"

    @scheduler.task("upload", max_retries=0)
    async def upload() -> None:
        raise ConnectionError("upload API returned 503")

    async with scheduler:
        ids = {
            "done": await scheduler.schedule_task("render", {"channel_id": "c1"}),
            "failed": await scheduler.schedule_task("upload"),
            "later": await scheduler.schedule_task(
                "render", {"channel_id": "c2"}, priority=TaskPriority.HIGH, delay=1800
            ),
            "cancelled": await scheduler.schedule_task("render", {"channel_id": "c3"}, delay=60),
        }
        await scheduler.cancel_task(ids["cancelled"], "no longer needed")
        await scheduler.schedule_recurring("upload", interval=600, schedule_id="uploads")
        await scheduler.schedule_recurring("render", cron="0 9 * * *", schedule_id="morning")
        for task_id in (ids["done"], ids["failed"]):
            with contextlib.suppress(AschedError):
                await scheduler.wait_for(task_id, timeout=10)
    return ids


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, str]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('ops') / 'bot.db'}"
    return url, asyncio.run(_prepare(url))


def test_status_shows_fields_and_history(
    store: tuple[str, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    url, ids = store
    assert main(["status", ids["failed"], "--store", url]) == 0
    out = capsys.readouterr().out
    assert f"task        {ids['failed']}" in out
    assert "state       FAILED" in out
    assert "error       ConnectionError: upload API returned 503" in out
    assert "retries     0 (max 0)" in out
    assert "RUNNING    FAILED     ConnectionError: upload API returned 503" in out

    assert main(["status", ids["cancelled"], "--store", url]) == 0
    assert "no longer needed" in capsys.readouterr().out


def test_list_filters_by_status_type_and_limit(
    store: tuple[str, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    url, ids = store
    assert main(["list", "--store", url]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:4] == ["id", "type", "priority", "state"]
    assert all(task_id in out for task_id in ids.values())
    assert "4 tasks" in out

    assert main(["list", "--store", url, "--status", "queued", "--type", "render"]) == 0
    out = capsys.readouterr().out
    assert ids["later"] in out and "HIGH" in out
    assert ids["done"] not in out and "1 task" in out

    assert main(["list", "--store", url, "--limit", "1"]) == 0
    assert "more match" in capsys.readouterr().out


def test_schedules_lists_triggers_and_next_fires(
    store: tuple[str, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = store
    assert main(["schedules", "--store", url]) == 0
    lines = capsys.readouterr().out.splitlines()
    uploads = next(line for line in lines if line.startswith("uploads "))
    morning = next(line for line in lines if line.startswith("morning "))
    assert "every 600s" in uploads and "active" in uploads
    assert "cron 0 9 * * *" in morning
    assert lines.index(uploads) < lines.index(morning)  # sooner next fire first


def test_forecast_counts_tasks_and_schedule_fires(
    store: tuple[str, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    url, ids = store
    assert main(["forecast", "--store", url, "--hours", "2", "--bucket", "hour"]) == 0
    out = capsys.readouterr().out
    # 12 upload fires in two hours, the later render, and maybe one morning fire.
    assert out.splitlines()[0].split()[0] in ("13", "14")
    assert "upload:" in out and "busy" not in out
    assert ids["later"] in out and "schedule:uploads" in out

    assert main(["forecast", "--store", url, "--hours", "1", "--type", "render"]) == 0
    out = capsys.readouterr().out
    assert "upload" not in out and ids["later"] in out


def test_an_unknown_id_exits_1(
    store: tuple[str, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = store
    assert main(["status", "nope", "--store", url]) == 1
    assert "no task with id 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["status", "x"], ["list"], ["schedules"], ["forecast"]])
def test_a_missing_database_exits_1_and_is_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    missing = tmp_path / "nothing-here.db"
    assert main([*command, "--store", f"sqlite:///{missing}"]) == 1
    assert f"no database at {missing}" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_memory_store_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--store", "memory://"]) == 2
    assert "memory://" in capsys.readouterr().err
