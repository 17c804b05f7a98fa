"""``asched workers --store URL``: the workers registered in a store."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from asched.cli import main
from asched.stores.sqlite.store import SQLiteStore


async def _register(path: Path, *workers: tuple[str, float]) -> None:
    store = SQLiteStore(path)
    await store.open()
    try:
        for worker_id, beat_s in workers:
            await store.register_worker(
                {
                    "id": worker_id,
                    "host": "box",
                    "pid": 4242,
                    "started_s": beat_s - 5,
                    "heartbeat_s": beat_s,
                    "running": 3,
                    "version": "9.9",
                    "lease_s": 30.0,
                }
            )
    finally:
        await store.close()


def test_workers_lists_live_and_lost(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "bot.db"
    now = time.time()
    asyncio.run(_register(db, ("box:1:a", now), ("box:2:b", now - 120)))
    assert main(["workers", "--store", f"sqlite:///{db}"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == [
        "ID", "STATUS", "HOST", "PID", "STARTED", "LAST", "HEARTBEAT", "RUNNING", "VERSION"
    ]  # fmt: skip
    rows = {line.split()[0]: line.split() for line in out[1:-1]}
    assert rows["box:1:a"][1:4] == ["live", "box", "4242"]
    assert rows["box:1:a"][-2:] == ["3", "9.9"]
    assert rows["box:2:b"][1] == "lost"
    assert out[-1] == "1 live, 1 lost"


def test_no_workers_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "bot.db"
    asyncio.run(_register(db))
    assert main(["workers", "--store", f"sqlite:///{db}"]) == 0
    assert "no workers registered" in capsys.readouterr().out
