"""Task records as Redis script arguments, signed when a key is set, and back."""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from asched.errors import TaskValidationError
from asched.model import Task
from asched.model.codec import encode_record
from asched.stores.base import Lease
from asched.stores.redis.records import decode_record

logger = logging.getLogger(__name__)

Arg = str | bytes | int


class RecordCodec:
    """Encodes tasks for the scripts and decodes what they return.

    With a signing key every record carries an HMAC-SHA256 (``h``); a record
    without a valid one was not written by a holder of the key and is refused.
    """

    __slots__ = ("_key", "max_payload_bytes")

    def __init__(self, signing_key: bytes | None, max_payload_bytes: int) -> None:
        self._key = signing_key
        self.max_payload_bytes = max_payload_bytes

    def sign(self, record: bytes) -> bytes:
        if self._key is None:
            return b""
        return hmac.new(self._key, record, hashlib.sha256).hexdigest().encode()

    def verify(self, record: bytes, mac: bytes | None) -> bool:
        if self._key is None:
            return True
        return mac is not None and hmac.compare_digest(self.sign(record), mac)

    def insert_args(self, tasks: Sequence[Task]) -> list[Arg]:
        """(id, state, due_s, priority, type, idempotency key, record, mac) per task."""
        args: list[Arg] = []
        limit = self.max_payload_bytes
        for task in tasks:
            if len(task.data_json) > limit:
                raise TaskValidationError(
                    "task_data", task.id, f"payload is {len(task.data_json)} bytes, over {limit}"
                )
            record = self._encode(task)
            args += (
                task.id,
                task.lifecycle.name,
                repr(task.due_s),
                task.priority.value,
                task.type,
                task.idempotency_key or "",
                record,
                self.sign(record),
            )
        return args

    def save_args(self, tasks: Sequence[Task], leases: Mapping[str, Lease] | None) -> list[Arg]:
        """(id, token, owner, state, due_s, priority, record, mac) per task; a task
        that cannot be encoded is logged and left out (its change is not saved)."""
        args: list[Arg] = []
        sign = self.sign
        for task in tasks:
            try:
                record = encode_record(task)
            except (ValueError, OverflowError, OSError):
                logger.exception("task %r cannot be stored; its state change is not saved", task.id)
                continue
            lease = leases.get(task.id) if leases else None
            args += (
                task.id,
                "" if lease is None else lease.token,
                "" if lease is None else lease.owner,
                task.lifecycle.name,
                repr(task.due_s),
                task.priority.value,
                record,
                sign(record),
            )
        return args

    def _encode(self, task: Task) -> bytes:
        try:
            return encode_record(task)
        except (ValueError, OverflowError, OSError) as exc:
            raise TaskValidationError("task", task.id, f"cannot be stored: {exc}") from exc

    def decode(self, task_id: str, record: bytes | None, mac: bytes | None) -> Task:
        """The task; raises ValueError when the record is missing, unsigned or unreadable."""
        if record is None:
            raise ValueError("no record")
        if not self.verify(record, mac):
            raise ValueError("bad or missing signature (written without the signing key?)")
        task = decode_record(record)
        if task.id != task_id:
            raise ValueError(f"record id {task.id!r} does not match {task_id!r}")
        return task


def encode_schedules(records: Sequence[Mapping[str, Any]]) -> dict[str, bytes]:
    encoded: dict[str, bytes] = {}
    for record in records:
        schedule_id = record.get("id")
        if not isinstance(schedule_id, str) or not schedule_id:
            raise TaskValidationError("schedule.id", schedule_id, "expected a non-empty string")
        try:
            encoded[schedule_id] = orjson.dumps(record)
        except TypeError as exc:
            raise TaskValidationError("schedule", schedule_id, f"not JSON ({exc})") from None
    return encoded
