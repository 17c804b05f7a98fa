"""Build a Scheduler's engine and the collaborators around it from its settings."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

from asched.config import SchedulerConfig
from asched.engine.admission import Admission
from asched.engine.intake import TaskIntake
from asched.engine.loop import Engine
from asched.engine.policies import Policies
from asched.engine.registry import DISTRIBUTED
from asched.engine.schedules import ScheduleRunner
from asched.errors import ConfigError
from asched.middleware.audit import AuditMiddleware
from asched.middleware.audit_file import AuditFile
from asched.observability import insight
from asched.observability.metrics import OUTCOME_STATES, LoadMetrics
from asched.stores import Store
from asched.strategies.priority import FairShare, PriorityStrategy


@dataclass(frozen=True, slots=True)
class Parts:
    engine: Engine
    policies: Policies
    intake: TaskIntake
    admission: Admission
    schedules: ScheduleRunner
    metrics: LoadMetrics


def assemble(
    config: SchedulerConfig,
    store: Store,
    clock: Any,
    rng: random.Random | None,
    priority_strategy: PriorityStrategy | None,
    fair_share: FairShare | bool,
) -> Parts:
    """The engine, with the schedule runner and the metrics subscriber attached."""
    fair = FairShare() if fair_share is True else (fair_share or None)
    policies = Policies(rng)
    engine = Engine(config, store, clock, policies, priority_strategy, fair)
    intake = TaskIntake(config, engine.registry)
    schedules = ScheduleRunner(engine, intake, rng or random.Random())
    engine.attach(schedules)
    metrics = LoadMetrics()
    engine.subscribe(metrics.hear, OUTCOME_STATES)
    engine.attach(metrics)
    engine.worker_figures = partial(insight.worker_figures, engine, metrics)
    return Parts(engine, policies, intake, Admission(engine, intake), schedules, metrics)


def use_middleware(
    engine: Engine, audit: bool, audit_file: str | None, links: Iterable[Any]
) -> None:
    """Auditing (on unless ``audit=False``; also to ``audit_file`` as JSON lines),
    then the application's own middleware, in order."""
    log = None if audit_file is None else AuditFile(audit_file)
    if log is not None:
        engine.attach(log)
        engine.subscribe(log.hear)
    if audit or log is not None:
        engine.middleware.add(AuditMiddleware(log))
    for link in links:
        engine.middleware.add(link)


def use_broker(engine: Engine, config: SchedulerConfig) -> None:
    """Tasks with ``executor="distributed"`` go to broker workers (the amqp extra)."""
    if config.broker is None:
        return
    try:
        from asched.executors.distributed import DistributedExecutor
    except ImportError as exc:  # the amqp extra is not installed
        reason = f"needs the amqp extra (pip install 'asched[amqp]'): {exc}"
        raise ConfigError("broker", "amqp://...", reason) from None
    remote = DistributedExecutor(
        config.broker,
        config.broker_prefix,
        secret=config.broker_secret,
        report_grace_s=config.broker_report_grace_s,
    )
    remote.on_availability = lambda up, why: engine.set_executor_available(DISTRIBUTED, up, why)
    for name in DISTRIBUTED:
        engine.attempts.executors[name] = remote


def check_startable(engine: Engine, config: SchedulerConfig) -> None:
    """Refuse to start when a task type needs broker workers and no broker is set."""
    registry = engine.registry
    remote = [d.name for d in registry.definitions.values() if d.executor in DISTRIBUTED]
    if remote and config.broker is None:
        reason = f"task type {remote[0]!r} runs on broker workers (executor='distributed')"
        raise ConfigError("broker", None, reason)
