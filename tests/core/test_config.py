from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest

from asched.config import SchedulerConfig
from asched.errors import AschedError, ConfigError


def test_defaults_are_valid() -> None:
    config = SchedulerConfig()
    assert config.store_url == "memory://"
    assert config.max_concurrency == 1000
    assert config.key_concurrency == 1
    assert config.default_max_retries == 3
    assert config.default_backoff_factor == 2.0
    assert config.default_timeout_s is None
    assert config.timezone is None
    assert config.thread_pool_size >= 1
    assert config.process_pool_size >= 1
    assert config.strict_task_types is True


def test_is_frozen() -> None:
    config = SchedulerConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.max_concurrency = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("store_url", "bot.db"),
        ("store_url", 5),
        ("max_concurrency", 0),
        ("max_concurrency", -3),
        ("max_concurrency", 1.5),
        ("max_concurrency", "10"),
        ("max_concurrency", True),
        ("key_concurrency", 0),
        ("thread_pool_size", 0),
        ("process_pool_size", None),
        ("default_max_retries", -1),
        ("default_max_retries", 2.0),
        ("default_max_retries", False),
        ("default_backoff_factor", 0.5),
        ("default_backoff_factor", "2"),
        ("default_backoff_factor", True),
        ("default_backoff_factor", math.nan),
        ("default_timeout_s", 0),
        ("default_timeout_s", -1.0),
        ("default_timeout_s", "30"),
        ("default_timeout_s", math.nan),
        ("grace_period_s", -0.1),
        ("grace_period_s", None),
        ("timezone", "Mars/Olympus_Mons"),
        ("timezone", "../etc/passwd"),
        ("timezone", 3),
        ("strict_task_types", 1),
        ("use_uvloop", "yes"),
    ],
)
def test_each_bad_field_is_named(field: str, value: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        SchedulerConfig(**{field: value})
    error = caught.value
    assert isinstance(error, AschedError)
    assert isinstance(error, ValueError)
    assert error.field == field
    if not (isinstance(value, float) and math.isnan(value)):
        assert error.value == value
    assert field in str(error)
    assert repr(value) in str(error)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("store_url", "sqlite:///bot.db"),
        ("max_concurrency", 1),
        ("default_max_retries", 0),
        ("default_backoff_factor", 1),
        ("default_backoff_factor", 1.0),
        ("default_timeout_s", 0.001),
        ("default_timeout_s", 5),
        ("grace_period_s", 0),
        ("timezone", "Europe/Madrid"),
        ("timezone", "UTC"),
        ("strict_task_types", False),
    ],
)
def test_boundary_values_are_accepted(field: str, value: Any) -> None:
    assert getattr(SchedulerConfig(**{field: value}), field) == value


def test_replace_changes_a_copy() -> None:
    config = SchedulerConfig()
    changed = config.replace(max_concurrency=10, timezone="Asia/Tokyo")
    assert (changed.max_concurrency, changed.timezone) == (10, "Asia/Tokyo")
    assert config.max_concurrency == 1000
    assert changed.key_concurrency == config.key_concurrency


def test_replace_validates() -> None:
    with pytest.raises(ConfigError) as caught:
        SchedulerConfig().replace(key_concurrency=0)
    assert caught.value.field == "key_concurrency"


def test_replace_rejects_an_unknown_key() -> None:
    with pytest.raises(ConfigError) as caught:
        SchedulerConfig().replace(max_concurency=5, zzz=1)
    assert caught.value.field == "max_concurency"
    assert caught.value.value == 5
    assert "unknown" in str(caught.value)


# -- from_env ----------------------------------------------------------------------


def test_from_env_with_nothing_set_gives_defaults() -> None:
    assert SchedulerConfig.from_env({}) == SchedulerConfig()


def test_from_env_reads_every_kind() -> None:
    env = {
        "ASCHED_STORE_URL": "sqlite:///jobs.db",
        "ASCHED_MAX_CONCURRENCY": " 200 ",
        "ASCHED_KEY_CONCURRENCY": "3",
        "ASCHED_DEFAULT_MAX_RETRIES": "0",
        "ASCHED_DEFAULT_BACKOFF_FACTOR": "1.5",
        "ASCHED_DEFAULT_TIMEOUT_S": "12.5",
        "ASCHED_GRACE_PERIOD_S": "4",
        "ASCHED_TIMEZONE": "Europe/Madrid",
        "ASCHED_THREAD_POOL_SIZE": "7",
        "ASCHED_PROCESS_POOL_SIZE": "2",
        "ASCHED_STRICT_TASK_TYPES": "off",
        "ASCHED_USE_UVLOOP": "FALSE",
        "OTHER_MAX_CONCURRENCY": "1",
        "asched_max_concurrency": "1",
    }
    config = SchedulerConfig.from_env(env)
    assert config == SchedulerConfig(
        store_url="sqlite:///jobs.db",
        max_concurrency=200,
        key_concurrency=3,
        default_max_retries=0,
        default_backoff_factor=1.5,
        default_timeout_s=12.5,
        grace_period_s=4.0,
        timezone="Europe/Madrid",
        thread_pool_size=7,
        process_pool_size=2,
        strict_task_types=False,
        use_uvloop=False,
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("true", True), ("Yes", True), (" on ", True), ("0", False), ("no", False)],
)
def test_from_env_bools(raw: str, expected: bool) -> None:
    assert SchedulerConfig.from_env({"ASCHED_USE_UVLOOP": raw}).use_uvloop is expected


@pytest.mark.parametrize("raw", ["", "none", "None"])
def test_from_env_optional_timeout_can_be_unset(raw: str) -> None:
    env = {"ASCHED_DEFAULT_TIMEOUT_S": raw}
    assert SchedulerConfig.from_env(env).default_timeout_s is None


def test_from_env_empty_timezone_means_local() -> None:
    assert SchedulerConfig.from_env({"ASCHED_TIMEZONE": ""}).timezone is None


def test_from_env_overrides_win() -> None:
    env = {"ASCHED_MAX_CONCURRENCY": "200"}
    assert SchedulerConfig.from_env(env, max_concurrency=5).max_concurrency == 5


@pytest.mark.parametrize(
    ("variable", "raw", "field"),
    [
        ("ASCHED_MAX_CONCURRENCY", "lots", "max_concurrency"),
        ("ASCHED_MAX_CONCURRENCY", "2.5", "max_concurrency"),
        ("ASCHED_MAX_CONCURRENCY", "0", "max_concurrency"),
        ("ASCHED_DEFAULT_MAX_RETRIES", "-2", "default_max_retries"),
        ("ASCHED_DEFAULT_BACKOFF_FACTOR", "fast", "default_backoff_factor"),
        ("ASCHED_DEFAULT_BACKOFF_FACTOR", "0.1", "default_backoff_factor"),
        ("ASCHED_DEFAULT_TIMEOUT_S", "1m", "default_timeout_s"),
        ("ASCHED_GRACE_PERIOD_S", "none", "grace_period_s"),
        ("ASCHED_TIMEZONE", "Nowhere/City", "timezone"),
        ("ASCHED_STRICT_TASK_TYPES", "maybe", "strict_task_types"),
        ("ASCHED_USE_UVLOOP", "2", "use_uvloop"),
        ("ASCHED_STORE_URL", "jobs.db", "store_url"),
    ],
)
def test_from_env_bad_values_are_named(variable: str, raw: str, field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        SchedulerConfig.from_env({variable: raw})
    assert caught.value.field == field
    assert field in str(caught.value)
