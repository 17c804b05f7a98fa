"""Who created a task and from where: the spec's TaskMetadata."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from asched.clock import utc_now


@dataclass(slots=True)
class TaskMetadata:
    """Who created a task and from where, plus free-form tags and an audit trail."""

    created_at: datetime = field(default_factory=utc_now)
    created_by: str = "system"
    source_ip: str | None = None
    source_component: str | None = None
    tags: list[str] = field(default_factory=list)
    audit_trail: list[dict[str, Any]] = field(default_factory=list)

    def fields(self) -> dict[str, Any]:
        """The fields as a record holds them (the lists themselves, not copies)."""
        return {
            "created_at": self.created_at,
            "created_by": self.created_by,
            "source_ip": self.source_ip,
            "source_component": self.source_component,
            "tags": self.tags,
            "audit_trail": self.audit_trail,
        }


class Origin(NamedTuple):
    """Where a task was scheduled from, and by whom."""

    actor: str
    module: str
    function: str
    file: str
    line: int
    host: str
    pid: int

    def as_dict(self) -> dict[str, Any]:
        return self._asdict()
