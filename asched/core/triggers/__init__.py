"""Triggers: when a schedule fires next, as pure maths (see :mod:`.base`, :mod:`.cron`)."""

from __future__ import annotations

from asched.core.triggers.base import (
    TRIGGER_FORMAT_VERSION,
    DateTrigger,
    IntervalTrigger,
    Trigger,
    TriggerDict,
    fires_between,
    from_epoch,
    to_epoch,
)
from asched.core.triggers.cron import CronTrigger
from asched.core.triggers.records import trigger_from_dict

__all__ = [
    "TRIGGER_FORMAT_VERSION",
    "CronTrigger",
    "DateTrigger",
    "IntervalTrigger",
    "Trigger",
    "TriggerDict",
    "fires_between",
    "from_epoch",
    "to_epoch",
    "trigger_from_dict",
]
