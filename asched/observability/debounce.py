"""Which alerts go out: debouncing per key and a global rate limit.

Two sorts of alert share one key space:

* a **condition** (a circuit is open, a retry storm, an anomaly, a lost worker)
  notifies once when it starts and once (``resolved=True``) when it ends, however
  often it is seen in between;
* an **occurrence** (a task failed for good) notifies at once the first time,
  then at most once per ``repeat_s`` per key: the ones in between are counted
  and go out as one summary (``suppressed=N``).

On top, at most ``max_per_minute`` alerts that open something go out per minute
in all; the rest are dropped and counted.  Resolutions are not limited, and a
condition whose opening alert was dropped is not resolved (it will be raised
again the next time it is seen).
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

from asched.observability.alerts import Alert

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class _Occurrences:
    last_sent_s: float
    latest: Alert | None = None
    suppressed: int = 0


class AlertGate:
    def __init__(self, repeat_s: float, max_per_minute: int) -> None:
        self.repeat_s = repeat_s
        self.max_per_minute = max_per_minute
        #: keys of the conditions now open, with when each opened
        self.open: dict[str, float] = {}
        self._occurrences: dict[str, _Occurrences] = {}
        self._sent_s: deque[float] = deque()
        #: alerts dropped by the global rate limit
        self.dropped = 0

    def _budget(self, now_s: float) -> bool:
        sent = self._sent_s
        while sent and sent[0] <= now_s - 60.0:
            sent.popleft()
        if len(sent) >= self.max_per_minute:
            self.dropped += 1
            return False
        sent.append(now_s)
        return True

    def opens(self, key: str, now_s: float) -> bool:
        """Condition ``key`` is seen: True if this is news to send."""
        if key in self.open:
            return False
        if not self._budget(now_s):
            logger.warning("alert rate limit reached: dropped %s", key)
            return False
        self.open[key] = now_s
        return True

    def closes(self, key: str) -> bool:
        """Condition ``key`` is over: True if its resolution should be sent."""
        return self.open.pop(key, None) is not None

    def occurs(self, alert: Alert, now_s: float) -> Alert | None:
        """An occurrence: the alert to send now, or None when it is folded."""
        book = self._occurrences.get(alert.key)
        if book is not None and now_s - book.last_sent_s < self.repeat_s:
            book.latest = alert
            book.suppressed += 1
            return None
        if not self._budget(now_s):
            return None
        self._occurrences[alert.key] = _Occurrences(now_s)
        return alert

    def summaries(self, now_s: float) -> list[Alert]:
        """Folded occurrences whose key may notify again: one alert per key."""
        due: list[Alert] = []
        for key, book in list(self._occurrences.items()):
            if now_s - book.last_sent_s < self.repeat_s:
                continue
            if book.latest is None:
                del self._occurrences[key]  # quiet for a whole period: forget it
                continue
            if not self._budget(now_s):
                break
            due.append(_with_suppressed(book.latest, book.suppressed))
            self._occurrences[key] = _Occurrences(now_s)
        return due


def _with_suppressed(alert: Alert, suppressed: int) -> Alert:
    title = f"{alert.title} (and {suppressed - 1} more like it)" if suppressed > 1 else alert.title
    return Alert(
        alert.kind,
        alert.severity,
        title,
        alert.key,
        alert.at,
        alert.details,
        alert.resolved,
        suppressed,
    )
