"""``asched run APP --metrics-port N`` serves Prometheus metrics on 127.0.0.1."""

from __future__ import annotations

import signal
import socket
import urllib.error
import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

APP = """\
from asched import Scheduler

scheduler = Scheduler()

@scheduler.task("quick")
async def quick(n: int) -> int:
    return n * 2
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _scrape(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            body: bytes = response.read()
    except (urllib.error.URLError, ConnectionError):
        return None
    return body.decode()


def test_run_serves_prometheus_metrics(cli: Any, until: Any) -> None:
    cli.write("app.py", APP)
    ids = cli.produce(
        [{"task_type": "quick", "task_data": {"n": n}, "delay": 1.0} for n in range(3)]
    )
    port = _free_port()
    worker = cli.spawn("run", "app:scheduler", "--store", cli.url, "--metrics-port", str(port))
    url = f"http://127.0.0.1:{port}/metrics"
    until(lambda: set(cli.states().values()) == {"COMPLETED"}, "the tasks to finish", child=worker)

    def counted() -> bool:
        text = _scrape(url)
        if text is None:
            return False
        families = {f.name: f for f in text_string_to_metric_families(text)}
        outcomes = families.get("asched_task_outcomes")
        return outcomes is not None and sum(s.value for s in outcomes.samples) == len(ids)

    until(counted, "the metrics to count the tasks", child=worker)
    worker.send_signal(signal.SIGTERM)
    _, err = worker.communicate(timeout=15)
    assert worker.returncode == 0, err
    assert f"prometheus metrics on http://127.0.0.1:{port}/metrics" in err
