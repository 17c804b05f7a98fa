"""When the alert manager speaks up: :class:`AlertThresholds`."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from asched.core.checks import require_int, require_number
from asched.errors import ConfigError


@dataclass(frozen=True, slots=True)
class AlertThresholds:
    #: how often events are read and conditions judged (seconds of the scheduler's clock)
    tick_s: float = 1.0
    #: an occurrence key (a task type's failures) notifies at most once per this
    repeat_s: float = 300.0
    #: alerts that open something, per minute, in all
    max_per_minute: int = 20
    #: RETRYING transitions within the window that make a retry storm
    retry_storm_count: int = 50
    retry_storm_window_s: float = 60.0
    #: failure rate: per bucket, against an EWMA baseline of past buckets
    failure_bucket_s: float = 60.0
    failure_rise: float = 0.3
    failure_min_volume: int = 20
    failure_alpha: float = 0.3
    failure_warmup: int = 2
    #: backlog (ready + waiting for limits), sampled from get_system_load_metrics()
    backlog_sample_s: float = 15.0
    backlog_window_s: float = 300.0
    backlog_growth_per_s: float = 1.0
    backlog_min: int = 100
    #: an attempt that started this late past its due time (None: not watched),
    #: judged when the attempt ends; resolved after a quiet spell
    lateness_s: float | None = 60.0
    lateness_clear_s: float = 120.0

    def __post_init__(self) -> None:
        for spec in fields(self):
            value = getattr(self, spec.name)
            if value is None and spec.name == "lateness_s":
                continue
            if spec.type == "int":
                require_int(spec.name, value, minimum=1, error=ConfigError)
            elif spec.name == "failure_alpha":
                require_number(spec.name, value, above=0, maximum=1, error=ConfigError)
            else:
                require_number(spec.name, value, above=0, error=ConfigError)

    def updated(self, **changes: Any) -> AlertThresholds:
        known = {spec.name for spec in fields(self)}
        for name, value in changes.items():
            if name not in known:
                raise ConfigError(name, value, "not an alert threshold")
        return replace(self, **changes)
