"""SQLiteStore's settings: the URL, lock waits, durability mode and extra PRAGMAs."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from asched.errors import ConfigError

SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")
_URL_OPTIONS = {"synchronous": str, "busy_timeout_ms": int, "busy_deadline_s": float}
_PRAGMA_NAME = re.compile(r"[a-z_]+")
_PRAGMA_VALUE = re.compile(r"-?\d+|[A-Za-z_]+")


def parse_url(url: str) -> tuple[str, dict[str, Any]]:
    """``sqlite:///relative.db`` or ``sqlite:////abs.db`` (+ ``?option=value``) to
    (path, options)."""
    scheme, sep, rest = url.partition(":///")
    if not sep or scheme.lower() != "sqlite":
        raise ConfigError("store_url", url, "expected sqlite:///relative.db or sqlite:////abs.db")
    path, _, query = rest.partition("?")
    options: dict[str, Any] = {}
    for name, raw in parse_qsl(query, keep_blank_values=True):
        kind = _URL_OPTIONS.get(name)
        if kind is None:
            known = ", ".join(_URL_OPTIONS)
            raise ConfigError("store_url", url, f"unknown option {name!r}; one of {known}")
        try:
            options[name] = kind(raw)
        except ValueError:
            raise ConfigError("store_url", url, f"bad value for {name}: {raw!r}") from None
    if not path:
        raise ConfigError("store_url", url, "missing the database file path")
    return path, options


def check_busy(timeout_ms: Any, deadline_s: Any) -> tuple[int, float]:
    if isinstance(timeout_ms, bool) or not isinstance(timeout_ms, int) or timeout_ms < 0:
        raise ConfigError("busy_timeout_ms", timeout_ms, "expected an integer >= 0")
    if isinstance(deadline_s, bool) or not isinstance(deadline_s, int | float):
        raise ConfigError("busy_deadline_s", deadline_s, "expected a number >= 0")
    if not deadline_s >= 0:
        raise ConfigError("busy_deadline_s", deadline_s, "expected a number >= 0")
    return timeout_ms, float(deadline_s)


def check_synchronous(value: Any) -> str:
    mode = value.upper() if isinstance(value, str) else value
    if mode not in SYNCHRONOUS_MODES:
        raise ConfigError("synchronous", value, f"one of {', '.join(SYNCHRONOUS_MODES)}")
    return str(mode)


def check_pragmas(pragmas: Mapping[str, int | str]) -> dict[str, str]:
    checked: dict[str, str] = {}
    for name, value in pragmas.items():
        text = str(value)
        if not _PRAGMA_NAME.fullmatch(name) or not _PRAGMA_VALUE.fullmatch(text):
            raise ConfigError("pragmas", {name: value}, "expected a name and an int or word")
        checked[name] = text
    return checked
