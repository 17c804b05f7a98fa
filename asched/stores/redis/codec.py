"""Task records as Redis script arguments, signed when a key is set, and back."""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import orjson

from asched.errors import TaskValidationError
from asched.model import Task
from asched.model.codec import encode_result, encode_state
from asched.stores.base import Lease
from asched.stores.redis.records import decode_record

logger = logging.getLogger(__name__)

Arg = str | bytes | int
EMPTY_DATA = b"{}"


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

    def sign_part(self, part: bytes, task_id: str, value: bytes) -> bytes:
        """The HMAC of a task's data or result: bound to the task and the field, so
        one cannot be moved to another task or field."""
        if self._key is None:
            return b""
        return self.sign(part + b"\0" + task_id.encode() + b"\0" + value)

    def insert_args(self, tasks: Sequence[Task]) -> list[Arg]:
        """(id, state, due_s, priority, type, idempotency key, record, mac, data, mac,
        result, mac) per task; the record is the state, the data (none for ``{}``)
        and the result go apart."""
        args: list[Arg] = []
        limit = self.max_payload_bytes
        for task in tasks:
            data = task.data_json
            if len(data) > limit:
                raise TaskValidationError(
                    "task_data", task.id, f"payload is {len(data)} bytes, over {limit}"
                )
            record = self._encode(task)
            result = encode_result(task) or b""
            if data == EMPTY_DATA:
                data = b""
            args += (
                task.id,
                task.lifecycle.name,
                repr(task.due_s),
                task.priority.value,
                task.type,
                task.idempotency_key or "",
                record,
                self.sign(record),
                data,
                self.sign_part(b"D", task.id, data) if data else b"",
                result,
                self.sign_part(b"R", task.id, result) if result else b"",
            )
        return args

    def save_args(
        self,
        tasks: Sequence[Task],
        leases: Mapping[str, Lease] | None,
        with_data: Collection[str] = (),
    ) -> list[Arg]:
        """(id, token, owner, state, due_s, priority, record, mac, result, mac, data,
        mac, finished_s) per task; the data only for ``with_data`` (tasks an older
        asched stored whole); the finish time ('' if none) indexes it for purging.
        A task that cannot be encoded is logged and left out."""
        args: list[Arg] = []
        sign, sign_part = self.sign, self.sign_part
        for task in tasks:
            try:
                record = encode_state(task)
                result = encode_result(task) or b""
            except (ValueError, OverflowError, OSError, TypeError, RecursionError):
                logger.exception("task %r cannot be stored; its state change is not saved", task.id)
                continue
            data = task.data_json if task.id in with_data else b""
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
                result,
                sign_part(b"R", task.id, result) if result else b"",
                data,
                sign_part(b"D", task.id, data) if data else b"",
                "" if task.finished_s is None else repr(task.finished_s),
            )
        return args

    def _encode(self, task: Task) -> bytes:
        try:
            return encode_state(task)
        except (ValueError, OverflowError, OSError) as exc:
            raise TaskValidationError("task", task.id, f"cannot be stored: {exc}") from exc

    def decode(self, task_id: str, stored: Sequence[bytes | None]) -> Task:
        """The task from its six stored fields (record, mac, data, mac, result, mac);
        raises ValueError when the record is missing, unsigned or unreadable."""
        record, mac, data, data_mac, result, result_mac = stored
        if record is None:
            raise ValueError("no record")
        if not self.verify(record, mac):
            raise ValueError("bad or missing signature (written without the signing key?)")
        for part, value, part_mac in ((b"D", data, data_mac), (b"R", result, result_mac)):
            if value is not None and self._key is not None:
                expected = self.sign_part(part, task_id, value)
                if part_mac is None or not hmac.compare_digest(expected, part_mac):
                    raise ValueError(f"bad or missing signature on field {part.decode()}")
        task = decode_record(record, data, result)
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
