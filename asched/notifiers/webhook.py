"""A notifier that POSTs each alert as JSON to a URL (needs ``httpx``: the
``notify`` extra)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import orjson

from asched.core.checks import require_int, require_number, require_text
from asched.errors import AschedError, ConfigError
from asched.observability.alerts import Alert

logger = logging.getLogger(__name__)


class WebhookError(AschedError, RuntimeError):
    """A webhook refused an alert, or could not be reached after every attempt."""


class WebhookNotifier:
    """POST ``alert.to_dict()`` as JSON to ``url``.

    Each request may take ``timeout_s``; a connection error, a timeout, a 429 or a
    5xx answer is retried up to ``attempts`` times in all, waiting ``backoff_s``,
    then twice that, and so on.  Other 4xx answers are not retried.  The alert
    manager runs this in the notifier's own task with its own deadline, so a slow
    hook never holds up the scheduler.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 5.0,
        attempts: int = 3,
        backoff_s: float = 0.5,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.url = require_text("url", url, error=ConfigError)
        self.timeout_s = require_number("timeout_s", timeout_s, above=0, error=ConfigError)
        self.attempts = require_int("attempts", attempts, minimum=1, error=ConfigError)
        self.backoff_s = require_number("backoff_s", backoff_s, minimum=0, error=ConfigError)
        self.headers = {"content-type": "application/json", **(headers or {})}
        try:
            import httpx
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ConfigError(
                "WebhookNotifier", url, "needs httpx: pip install 'asched[notify]'"
            ) from exc
        self._httpx: Any = httpx

    async def notify(self, alert: Alert) -> None:
        body = orjson.dumps(alert.to_dict(), default=str)
        httpx = self._httpx
        async with httpx.AsyncClient(timeout=self.timeout_s) as client:
            for attempt in range(1, self.attempts + 1):
                problem = await self._post(client, body)
                if problem is None:
                    return
                if attempt == self.attempts:
                    raise WebhookError(f"webhook {self.url}: {problem} ({attempt} attempts)")
                logger.info("webhook %s: %s; retrying", self.url, problem)
                await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1))

    async def _post(self, client: Any, body: bytes) -> str | None:
        """None when delivered; what went wrong when worth retrying."""
        try:
            response = await client.post(self.url, content=body, headers=self.headers)
        except self._httpx.TransportError as exc:
            return f"{type(exc).__name__}: {exc}"
        status: int = response.status_code
        if status < 300:
            return None
        if status == 429 or status >= 500:
            return f"HTTP {status}"
        raise WebhookError(f"webhook {self.url} refused the alert: HTTP {status}")

    def __repr__(self) -> str:
        return f"WebhookNotifier({self.url!r})"
