"""``asched demo`` runs on a fresh SQLite file in the current directory."""

from __future__ import annotations

from typing import Any


def test_demo_starts_clean_and_prints_its_summary(cli: Any) -> None:
    stale = cli.root / "asched-demo.db"
    stale.write_text("left over from an older run, not even a database")
    (cli.root / "asched-demo.db-wal").write_text("stale")

    done = cli.run("demo")

    assert done.returncode == 0, done.stderr
    rows = done.stdout.splitlines()
    assert any(r.startswith("render_video") and "COMPLETED" in r for r in rows)
    assert any(r.startswith("long_render") and "CANCELLED" in r for r in rows)
    assert any("succeeded after 2 retries" in r for r in rows)
    assert stale.stat().st_size > 0 and not stale.read_bytes().startswith(b"left over")
    listed = cli.run("list", "--store", "sqlite:///asched-demo.db")
    assert listed.returncode == 0, listed.stderr
    assert "15 tasks" in listed.stdout
