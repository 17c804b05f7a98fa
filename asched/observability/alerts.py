"""What a notifier receives: :class:`Alert`, and the :class:`Notifier` protocol."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class AlertKind(StrEnum):
    TASK_FAILED = "task_failed"
    CIRCUIT_OPEN = "circuit_open"
    RETRY_STORM = "retry_storm"
    FAILURE_RATE = "failure_rate"
    BACKLOG_GROWTH = "backlog_growth"
    LATENESS = "lateness"
    WORKER_LOST = "worker_lost"


@dataclass(frozen=True, slots=True)
class Alert:
    """One notification.  ``key`` names the condition (``"circuit_open:smtp"``):
    alerts are debounced per key, and a condition's recovery is an alert with the
    same key and ``resolved=True``."""

    kind: AlertKind
    severity: Severity
    title: str
    key: str
    at: datetime
    details: Mapping[str, Any] = field(default_factory=dict)
    resolved: bool = False
    #: similar alerts folded into this one since the key's last notification
    suppressed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: enums as their values, ``at`` as ISO 8601."""
        return {
            "kind": self.kind.value,
            "severity": self.severity.value,
            "title": self.title,
            "key": self.key,
            "at": self.at.isoformat(),
            "details": dict(self.details),
            "resolved": self.resolved,
            "suppressed": self.suppressed,
        }


def alert_time(at_s: float) -> datetime:
    return datetime.fromtimestamp(at_s, UTC)


@runtime_checkable
class Notifier(Protocol):
    """Receives alerts.  Each notifier gets its own queue and task, so a slow or
    failing one holds up nothing; what it raises is logged."""

    async def notify(self, alert: Alert) -> None: ...
