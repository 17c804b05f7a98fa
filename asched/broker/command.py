"""``asched worker APP --broker URL``: run an app's distributed handlers.

The first SIGTERM/SIGINT stops taking tasks and gives the ones it holds the grace
period; what still runs then is cancelled and left unacknowledged, so RabbitMQ
hands it to another worker.  A second signal ends the grace period at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from asched.broker.worker import WorkerOptions, run_worker
from asched.cli.eventloop import new_event_loop
from asched.scheduler import Scheduler

logger = logging.getLogger("asched.cli")

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def options_for(
    scheduler: Scheduler,
    broker: str | None,
    concurrency: int | None,
    prefetch: int | None,
    grace_s: float | None,
) -> WorkerOptions | str:
    """The worker's options from the command line and the app's config, or why not."""
    config = scheduler.config
    url = broker or config.broker
    if url is None:
        return "no broker: pass --broker URL or set ASCHED_BROKER (or the app's broker=)"
    if not url.startswith(("amqp://", "amqps://")):
        return "--broker must be an amqp:// or amqps:// URL"
    return WorkerOptions(
        url=url,
        prefix=config.broker_prefix,
        concurrency=concurrency or 16,
        prefetch=prefetch,
        secret=config.broker_secret,
        grace_s=config.grace_period_s if grace_s is None else grace_s,
    )


async def _serve(scheduler: Scheduler, options: WorkerOptions) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    hurry = asyncio.Event()

    def on_signal(sig: signal.Signals) -> None:
        if not stop.is_set():
            logger.info("%s received: draining (grace %gs)", sig.name, options.grace_s)
            stop.set()
        else:
            logger.warning("%s: a second stop signal; ending the grace period", sig.name)
            hurry.set()

    for sig in _SIGNALS:
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        await run_worker(scheduler, options, stop, hurry)
    finally:
        for sig in _SIGNALS:
            loop.remove_signal_handler(sig)


def serve_worker(scheduler: Scheduler, options: WorkerOptions, log_level: str) -> int:
    logging.basicConfig(
        level=log_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    loop = new_event_loop(use_uvloop=scheduler.config.use_uvloop)
    try:
        loop.run_until_complete(_serve(scheduler, options))
    finally:
        loop.close()
    return 0
