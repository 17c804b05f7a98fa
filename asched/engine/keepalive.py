"""The lease keep-alive thread of a shared store (see :mod:`asched.engine.shared`).

The loop renews its leases every ``lease_s / 3``, but a loop blocked by a
handler cannot.  So a thread also extends them every ``lease_s / 3``
(``Store.keep_alive``) -- but only while the loop is alive: the loop ticks a
timestamp, and once it has not ticked for the coordinator's ``stall_s`` the
thread stops renewing, so a truly wedged worker loses its tasks to the others.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import TYPE_CHECKING

from asched.clock import monotonic

if TYPE_CHECKING:
    from asched.engine.shared import SharedStoreCoordinator

# The coordinator's logger: keep-alive failures are reported under its name.
logger = logging.getLogger("asched.engine.shared")


class KeepAlive:
    """Extends the leases from a thread while the loop is alive (see the module
    docstring): a handler that blocks the loop for a while does not lose them."""

    def __init__(self, coordinator: SharedStoreCoordinator) -> None:
        self._coordinator = coordinator
        self._clock = coordinator._engine.clock
        self._store = coordinator._engine.store
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="asched-keepalive", daemon=True)
        self.last_tick_s = monotonic()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10.0)

    async def tick_forever(self) -> None:
        """The loop's sign of life for the watchdog."""
        interval_s = min(self._coordinator.lease_s / 6, 1.0)
        while True:
            self.last_tick_s = monotonic()
            await asyncio.sleep(interval_s)

    def _run(self) -> None:
        coordinator = self._coordinator
        period_s = coordinator.lease_s / 3
        while not self._stopped.wait(period_s):
            stalled_s = monotonic() - self.last_tick_s
            if stalled_s > coordinator.stall_s:
                continue  # the loop is wedged: let the leases run out
            try:
                extended = self._store.keep_alive(
                    coordinator.owner, self._clock.now(), coordinator.lease_s
                )
            except Exception as exc:
                logger.warning("lease keep-alive failed: %s", exc)
                continue
            if extended is None:
                return  # this store cannot do it; the loop's heartbeat alone renews
