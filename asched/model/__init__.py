"""The task model: lifecycle states and their transition table, the Task, its
metadata, the one record codec, and the readers of model values.

``states`` and ``metadata`` depend on nothing else here; ``validation`` reads
values; ``codec`` reads and writes records; ``task`` builds on all of them.
"""

from __future__ import annotations

from asched.model.codec import RECORD_VERSION, decode_record, encode_record
from asched.model.metadata import TaskMetadata
from asched.model.states import (
    TERMINAL_STATES,
    TRANSITIONS,
    TaskLifecycle,
    TaskPriority,
    Transition,
    can_transition,
)
from asched.model.task import Task, new_task_id, to_utc_datetime
from asched.model.validation import (
    encode_json,
    parse_lifecycle,
    parse_priority,
    parse_timestamp,
)

__all__ = [
    "RECORD_VERSION",
    "TERMINAL_STATES",
    "TRANSITIONS",
    "Task",
    "TaskLifecycle",
    "TaskMetadata",
    "TaskPriority",
    "Transition",
    "can_transition",
    "decode_record",
    "encode_json",
    "encode_record",
    "new_task_id",
    "parse_lifecycle",
    "parse_priority",
    "parse_timestamp",
    "to_utc_datetime",
]
