"""Read commands work on a store file nobody may write, and write commands refuse it
in one line naming the file.

The commands run in a child process that really cannot write the file.  As an
ordinary user, a file mode of 0444 does that.  Root ignores file modes, so as
root the child runs without the capability that lets it (``setpriv`` drops
``CAP_DAC_OVERRIDE`` from its bounding set): the kernel then refuses it every
write the modes forbid, as it would any user, while it can still read the
Python, the package and the file wherever they are.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from asched import Scheduler

PROBE = "import os, sys; print(os.access(sys.argv[1], os.W_OK))"


def without_write_rights(argv: list[str]) -> list[str]:
    """``argv`` run so that it obeys file modes, whoever runs the tests."""
    if os.geteuid() != 0:
        return argv
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        if os.environ.get("CI") == "true":
            pytest.fail("running as root without setpriv: cannot take away write access")
        pytest.skip("running as root without setpriv (util-linux)")
    return [setpriv, "--bounding-set", "-dac_override", *argv]


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        without_write_rights([sys.executable, *argv]),
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def snapshot(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


async def _make(path: Path) -> list[str]:
    s = Scheduler(f"sqlite:///{path}")

    @s.task("job")
    async def job(n: int) -> dict[str, int]:
        return {"twice": 2 * n}

    async with s:
        done = await s.schedule_task("job", {"n": 21})
        await s.wait_for(done, timeout=10)
        later = await s.schedule_task("job", {"n": 1}, delay=3600)
    return [done, later]


@pytest.fixture(params=["read-only file", "read-only file and folder"])
def locked(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Path, list[str]]]:
    folder = tmp_path / "store"
    path = folder / "bot.db"
    ids = asyncio.run(_make(path))
    path.chmod(0o444)
    if request.param == "read-only file and folder":
        folder.chmod(0o555)
    try:
        yield path, ids
    finally:
        folder.chmod(0o700)
        path.chmod(0o600)


def test_the_child_really_cannot_write(locked: tuple[Path, list[str]]) -> None:
    path, _ = locked
    probe = run("-c", PROBE, str(path))
    assert (probe.returncode, probe.stdout.strip()) == (0, "False"), probe.stderr


def test_read_commands_work_and_change_nothing(locked: tuple[Path, list[str]]) -> None:
    path, (done, later) = locked
    before = snapshot(path.parent)
    listed = run("-m", "asched", "list", "--store", f"sqlite:///{path}")
    assert listed.returncode == 0, listed.stderr
    assert done in listed.stdout and later in listed.stdout
    status = run("-m", "asched", "status", done, "--store", f"sqlite:///{path}")
    assert status.returncode == 0, status.stderr
    assert "COMPLETED" in status.stdout and "twice" in status.stdout
    assert snapshot(path.parent) == before


def test_a_write_command_refuses_in_one_line_naming_the_file(
    locked: tuple[Path, list[str]],
) -> None:
    path, (_, later) = locked
    before = snapshot(path.parent)
    cancel = run("-m", "asched", "cancel", later, "--store", f"sqlite:///{path}")
    assert cancel.returncode == 1
    lines = cancel.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0], cancel.stderr
    assert "Traceback" not in cancel.stderr
    assert snapshot(path.parent) == before


STORE_API = """
import asyncio, sys
from asched import StoreError
from asched.stores.sqlite import SQLiteStore

async def main(path):
    reader = SQLiteStore(path, read_only=True)
    await reader.open()
    tasks = await reader.list_tasks()
    await reader.close()
    print(sorted((t.id, t.lifecycle.name, t.data["n"], t.result) for t in tasks))
    writer = SQLiteStore(path)
    try:
        await writer.open()
        await writer.insert([])
    except StoreError as exc:
        print("refused:", exc)
    finally:
        await writer.close()

asyncio.run(main(sys.argv[1]))
"""


def test_the_store_reads_it_and_refuses_to_open_it_for_writing(
    locked: tuple[Path, list[str]],
) -> None:
    path, (done, later) = locked
    before = snapshot(path.parent)
    child = run("-c", STORE_API, str(path))
    assert child.returncode == 0, child.stderr
    listed, refused = child.stdout.strip().splitlines()
    assert listed == str(
        sorted([(done, "COMPLETED", 21, {"twice": 42}), (later, "QUEUED", 1, None)])
    )
    assert refused.startswith("refused: sqlite store ") and str(path) in refused
    assert "read-only" in refused
    assert snapshot(path.parent) == before
