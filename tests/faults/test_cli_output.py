"""What the ``asched`` command prints: inert text, one-line errors, no tracebacks."""

from __future__ import annotations

import json

import pytest
from fault_procs import AschedProcess

from asched import AschedError
from asched.cli.app import AppError
from asched.cli.ops import OpsError

ESC = "\x1b"
TITLE = "\x1b]0;owned\x07"  # sets the terminal's title when printed raw
HOSTILE_ID = f"id{TITLE}\x1b[2J"
HOSTILE_TYPE = "type\x1b[31mred\u202eevil"

PRODUCER = """\
import asyncio, json, sys
from asched import Scheduler

async def main(url, specs):
    scheduler = Scheduler(url, strict_task_types=False)
    async with scheduler:
        ids = [await scheduler.schedule_task(**spec) for spec in specs]
    print(json.dumps(ids))

asyncio.run(main(sys.argv[1], json.loads(sys.argv[2])))
"""


def _produce(proc: AschedProcess) -> None:
    specs = [
        {
            "task_type": HOSTILE_TYPE,
            "task_id": HOSTILE_ID,
            "task_data": {"note": f"line one\nline two {TITLE}", TITLE: 1},
            "delay": 3600,
            "concurrency_key": f"key{TITLE}",
        }
    ]
    done = proc.python(PRODUCER, proc.url, json.dumps(specs))
    assert done.returncode == 0, done.stderr


def _assert_inert(text: str) -> None:
    assert ESC not in text and "\x07" not in text and "\u202e" not in text


def test_list_escapes_ids_types_and_data(proc: AschedProcess) -> None:
    _produce(proc)
    listed = proc.run("list", "--store", proc.url)
    assert listed.returncode == 0, listed.stderr
    _assert_inert(listed.stdout)
    assert "id\\x1b]0;owned\\x07" in listed.stdout
    assert "\\u202eevil" in listed.stdout


def test_status_escapes_every_field(proc: AschedProcess) -> None:
    _produce(proc)
    shown = proc.run("status", HOSTILE_ID, "--store", proc.url)
    assert shown.returncode == 0, shown.stderr
    _assert_inert(shown.stdout)
    assert "line one\\nline two" in shown.stdout
    data_lines = [line for line in shown.stdout.splitlines() if line.startswith("data")]
    assert len(data_lines) == 1


def test_errors_that_quote_an_id_are_escaped_too(proc: AschedProcess) -> None:
    _produce(proc)
    missing = proc.run("status", f"nope{TITLE}", "--store", proc.url)
    assert missing.returncode == 1
    _assert_inert(missing.stderr)
    cancelled = proc.run("cancel", HOSTILE_ID, "--store", proc.url)
    assert cancelled.returncode == 0, cancelled.stderr
    _assert_inert(cancelled.stdout)
    assert "cancelled id\\x1b" in cancelled.stdout


@pytest.mark.parametrize("limit", ["99999999999999999999", "1000001"])
def test_a_huge_limit_is_one_line(proc: AschedProcess, limit: str) -> None:
    _produce(proc)
    listed = proc.run("list", "--limit", limit, "--store", proc.url)
    assert listed.returncode == 2
    assert listed.stdout == ""
    assert listed.stderr.count("\n") == 1, listed.stderr
    assert "--limit must be at most 1,000,000" in listed.stderr


def test_an_unexpected_error_is_one_line_and_exit_1(proc: AschedProcess) -> None:
    proc.db.write_bytes(b"\x00" * 4096 + b"not a database at all" * 100)
    for command in ("list", "schedules", "forecast"):
        done = proc.run(command, "--store", proc.url)
        assert done.returncode == 1, (command, done.stderr)
        assert "Traceback" not in done.stderr
        assert done.stderr.count("\n") == 1, done.stderr
        assert done.stderr.startswith(f"asched {command}: ")


def test_an_app_that_fails_to_import_is_one_line(proc: AschedProcess) -> None:
    proc.write("broken.py", "raise RuntimeError('no \\x1b[31mluck')\n")
    done = proc.run("run", "broken:scheduler", "--store", proc.url)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    _assert_inert(done.stderr)


def test_cli_errors_are_asched_errors() -> None:
    assert issubclass(OpsError, AschedError)
    assert issubclass(AppError, AschedError)
