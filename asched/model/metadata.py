"""Who created a task and from where: the spec's TaskMetadata."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

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
