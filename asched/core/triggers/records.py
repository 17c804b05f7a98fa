"""Triggers from their stored records (:meth:`Trigger.to_dict` output)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from asched.core.checks import is_number
from asched.core.triggers.base import TRIGGER_FORMAT_VERSION, DateTrigger, IntervalTrigger, Trigger
from asched.core.triggers.cron import CronTrigger
from asched.errors import TaskValidationError

# --- persistence ---------------------------------------------------------------


def trigger_from_dict(data: Mapping[str, object]) -> Trigger:
    """Rebuild a trigger from :meth:`Trigger.to_dict` output (e.g. decoded JSON).

    Raises ``TaskValidationError`` (field ``"trigger"``, or the field the trigger
    itself rejects) for an unknown kind or version, missing or extra keys, or bad
    values; a store reading its own records may wrap that in ``StoreCorruptError``.
    """
    if not isinstance(data, Mapping):
        raise TaskValidationError("trigger", data, "must be a mapping")
    kind, version = data.get("kind"), data.get("version")
    if not isinstance(kind, str) or kind not in _BUILDERS:
        raise TaskValidationError("trigger", data, f"unknown kind {kind!r}")
    if type(version) is not int or version != TRIGGER_FORMAT_VERSION:
        raise TaskValidationError(
            "trigger", data, f"unsupported version {version!r} (this asched reads 1)"
        )
    keys, build = _BUILDERS[kind]
    expected = {"kind", "version", *keys}
    if set(data) != expected:
        raise TaskValidationError(
            "trigger", data, f"{kind} triggers need exactly {sorted(expected)}"
        )
    return build(data)


def _str_field(data: Mapping[str, object], key: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise TaskValidationError("trigger", data, f"{key!r} must be a string")
    return value


def _number_field(data: Mapping[str, object], key: str) -> float:
    value = data[key]
    if not is_number(value):
        raise TaskValidationError("trigger", data, f"{key!r} must be a number")
    return float(value)


def _optional_number_field(data: Mapping[str, object], key: str) -> float | None:
    return None if data[key] is None else _number_field(data, key)


_BUILDERS: dict[str, tuple[tuple[str, ...], Callable[[Mapping[str, object]], Trigger]]] = {
    "cron": (
        ("expression", "timezone", "start", "end"),
        lambda d: CronTrigger(
            _str_field(d, "expression"),
            _str_field(d, "timezone"),
            start=_optional_number_field(d, "start"),
            end=_optional_number_field(d, "end"),
        ),
    ),
    "interval": (
        ("seconds", "start", "end"),
        lambda d: IntervalTrigger(
            _number_field(d, "seconds"),
            start=_optional_number_field(d, "start"),
            end=_optional_number_field(d, "end"),
        ),
    ),
    "date": (("at",), lambda d: DateTrigger(_number_field(d, "at"))),
}
