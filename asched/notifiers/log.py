"""A notifier that writes alerts to a logger."""

from __future__ import annotations

import logging

from asched.observability.alerts import Alert, Severity

_LEVELS = {
    Severity.INFO: logging.INFO,
    Severity.WARNING: logging.WARNING,
    Severity.CRITICAL: logging.ERROR,
}


class LoggingNotifier:
    """Logs each alert (resolutions at INFO) to ``logger`` (default: this module's)."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger(__name__)

    async def notify(self, alert: Alert) -> None:
        level = logging.INFO if alert.resolved else _LEVELS[alert.severity]
        state = "resolved" if alert.resolved else alert.severity.value
        self.logger.log(
            level, "alert %s [%s] %s %s", alert.key, state, alert.title, dict(alert.details)
        )

    def __repr__(self) -> str:
        return f"LoggingNotifier({self.logger.name!r})"
