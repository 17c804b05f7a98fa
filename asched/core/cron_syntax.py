"""Checks on the text of a cron expression, field by field, before croniter reads it.

croniter parses and expands the fields, but it reads some spellings in ways a
stored schedule must not depend on, so these are refused first with a
:class:`~asched.errors.TaskValidationError` that names the field and the part:

* hashed or random values (``H``, ``R``): a schedule must mean the same everywhere;
* ``W`` (nearest weekday) in the day of month;
* a range whose two ends are the same value, however spelled (``5-5``, ``jan-1``,
  ``mon-1``, ``0-sun``, ``7-0``): croniter reads each as the whole field. The ends
  are compared as values (names mapped to numbers, and ``7`` is Sunday like
  ``0`` in the day of week); ``0-7`` and ``sun-7`` are the whole week, as written;
* a step outside ``1`` to the width of its field (``*/0``, ``*/9999999``).

A ``*`` inside a list (``*,5``) is accepted: it means every value of the field,
and the field then counts as unrestricted, exactly like a lone ``*``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from asched.errors import TaskValidationError

__all__ = ["FIELDS", "CronField", "check_fields"]


@dataclass(frozen=True, slots=True)
class CronField:
    """One position of a cron expression: its name, value range and spelled names."""

    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()  # names[i] is the value low + i (or 0 + i for weekdays)

    @property
    def width(self) -> int:
        return self.high - self.low + 1

    def value(self, text: str) -> int | None:
        """The number ``text`` spells in this field, or None if it is not a plain value."""
        if text.isdigit():
            return int(text)
        if text in self.names:
            return self.names.index(text) + (0 if self.name == "day-of-week" else self.low)
        return None

    def same_value(self, first: int, second: int) -> bool:
        if self.name == "day-of-week":
            # 0 and 7 are both Sunday; 0-7 is the whole week and reads as such.
            return first % 7 == second % 7 and (first, second) != (0, 7)
        return first == second


_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")

#: the fields in order; the sixth (seconds) is croniter's optional last field
FIELDS = (
    CronField("minute", 0, 59),
    CronField("hour", 0, 23),
    CronField("day-of-month", 1, 31),
    CronField("month", 1, 12, _MONTHS),
    CronField("day-of-week", 0, 6, _WEEKDAYS),  # 7 is also Sunday
    CronField("second", 0, 59),
)

_HASHED_VALUE = re.compile(r"^[hr](?:$|[(/])")
_RANGE = re.compile(r"^([^-/]+)-([^-/]+)")
_STEP = re.compile(r"/([0-9]+)$")


def check_fields(fields: Sequence[str], invalid: Callable[[str], TaskValidationError]) -> None:
    """Refuse the spellings listed in the module docstring; ``fields`` are 5 or 6 texts."""
    for field, text in zip(FIELDS, fields, strict=False):
        if field.name == "day-of-month" and "w" in text.lower():
            raise invalid("nearest-weekday days (W) are not supported")
        for part in text.lower().split(","):
            reason = _part_problem(field, part)
            if reason is not None:
                raise invalid(f"{field.name} field {part!r}: {reason}")


def _part_problem(field: CronField, part: str) -> str | None:
    if _HASHED_VALUE.match(part):
        return "hashed/random values (H, R) are not supported"
    step = _STEP.search(part)
    if step is not None and not 1 <= int(step.group(1)) <= field.width:
        return f"not a valid cron step: it must be 1 to {field.width}"
    bounds = _RANGE.match(part)
    if bounds is not None:
        low, high = (field.value(end) for end in bounds.groups())
        if low is not None and high is not None and field.same_value(low, high):
            return "an equal range reads as the whole field; write the single value"
    return None
