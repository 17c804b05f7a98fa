"""The ``asched`` command: ``run`` a worker, inspect a store, or try the ``demo``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from asched import __version__
from asched.cli.app import DEFAULT_WORKER_STORE
from asched.cli.demo import DEMO_STORE
from asched.cli.format import SafeOutput, printable
from asched.errors import AschedError
from asched.model import TaskLifecycle

OPS_STORE = DEFAULT_WORKER_STORE
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

RUN_EPILOG = """\
store: --store wins; else the app's own store when it is not memory://;
else sqlite:///asched.db in the current directory.

startup hook: if APP's module defines `async def on_start(scheduler)`, it is
awaited once the scheduler has started (a good place for schedule_recurring
calls with a fixed schedule_id, which are idempotent).

stopping: the first SIGTERM/SIGINT stops taking work and gives running tasks
the grace period to finish; what is still running then is cancelled and handed
back as QUEUED for the next worker.  A second signal ends the grace period at
once.  Either way the exit code is 0.
"""


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, not {value}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, not {text}")
    return value


def _hours(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, not {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asched",
        description="asched: an asyncio task-scheduling engine.",
    )
    parser.add_argument("--version", action="version", version=f"asched {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_demo(commands)
    _add_run(commands)
    _add_worker(commands)
    _add_workers(commands)
    _add_ops(commands)
    _add_dashboard(commands)
    return parser


def _add_worker(commands: Any) -> None:
    worker = commands.add_parser(
        "worker",
        help="run APP's distributed handlers from a RabbitMQ broker (needs no store)",
        description="Consume the tasks APP's schedulers publish (executor='distributed').",
    )
    worker.add_argument("app", metavar="APP", help="module:attribute, e.g. mybot.worker:scheduler")
    worker.add_argument("--broker", help="amqp:// URL (default: the app's broker, ASCHED_BROKER)")
    worker.add_argument("--concurrency", type=_positive_int, help="tasks at once (default 16)")
    worker.add_argument("--prefetch", type=_positive_int, help="unacked messages (default 2x)")
    worker.add_argument("--grace", type=_seconds, metavar="SECONDS", help="drain time on stop")
    worker.add_argument(
        "--log-level", type=str.upper, choices=LOG_LEVELS, default="INFO", help="default INFO"
    )


def _add_demo(commands: Any) -> None:
    demo = commands.add_parser(
        "demo",
        help="run a small content-bot scenario and print what happened",
        description=(
            "Schedules videos for several channels with mixed priorities, a flaky upload "
            "that is retried, a dependency chain and a cancellation, then prints a summary. "
            f"The default store {DEMO_STORE} is deleted and recreated on each run."
        ),
    )
    demo.add_argument("--store", default=DEMO_STORE, help=f"store URL (default: {DEMO_STORE})")
    demo.add_argument("--channels", type=int, default=4, help="number of channels (default 4)")


def _add_run(commands: Any) -> None:
    run = commands.add_parser(
        "run",
        help="run a worker for the Scheduler APP names, until SIGTERM/SIGINT",
        description="Run the tasks of the Scheduler that APP (module:attribute) names.",
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("app", metavar="APP", help="module:attribute, e.g. mybot.worker:scheduler")
    run.add_argument("--store", help="store URL (see 'store' below)")
    run.add_argument(
        "--concurrency", type=_positive_int, help="tasks running at once (default: the app's)"
    )
    run.add_argument(
        "--grace",
        type=_seconds,
        metavar="SECONDS",
        help="how long running tasks may finish after a stop signal (default: the app's, 30)",
    )
    run.add_argument(
        "--until-idle",
        action="store_true",
        help="stop (gracefully, exit 0) once no task is left unfinished",
    )
    run.add_argument(
        "--shared",
        action="store_true",
        help="no effect (kept for old scripts): a durable store is always shared",
    )
    run.add_argument(
        "--log-level", type=str.upper, choices=LOG_LEVELS, default="INFO", help="default INFO"
    )
    run.add_argument(
        "--dashboard",
        type=_positive_int,
        metavar="PORT",
        help="also serve the dashboard on 127.0.0.1:PORT (token: $ASCHED_DASHBOARD_TOKEN)",
    )
    run.add_argument(
        "--metrics-port",
        type=_positive_int,
        metavar="PORT",
        help="serve Prometheus metrics on PORT (needs the metrics extra)",
    )
    run.add_argument(
        "--metrics-host", default="127.0.0.1", help="the address to serve them on (127.0.0.1)"
    )


def _add_dashboard(commands: Any) -> None:
    board = commands.add_parser(
        "dashboard",
        help="serve the web dashboard of a store",
        description=(
            "Serves the dashboard of the store (reads it; actions run under leases). "
            "Binds 127.0.0.1 unless --host says otherwise."
        ),
    )
    board.add_argument("--store", default=OPS_STORE, help=f"store URL (default: {OPS_STORE})")
    board.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1")
    board.add_argument("--port", type=_positive_int, default=8900, help="default 8900")
    board.add_argument(
        "--token", help="required on every API call (default: $ASCHED_DASHBOARD_TOKEN)"
    )


def _add_workers(commands: Any) -> None:
    workers = commands.add_parser(
        "workers", help="list the workers of a store (or, with --broker, of a broker)"
    )
    workers.add_argument("--store", help=f"store URL (default: {OPS_STORE})")
    workers.add_argument("--broker", help="amqp:// URL (default: ASCHED_BROKER)")
    workers.add_argument("--prefix", help="broker_prefix (default: ASCHED_BROKER_PREFIX, asched)")
    workers.add_argument("--listen", type=_seconds, default=6.0, help="seconds to listen (6)")


def _add_ops(commands: Any) -> None:
    store_help = f"store URL (default: {OPS_STORE})"
    status = commands.add_parser("status", help="show one task and its history")
    status.add_argument("task_id", metavar="ID")
    lister = commands.add_parser("list", help="list tasks by due time")
    lister.add_argument("--status", type=str.upper, choices=[s.name for s in TaskLifecycle])
    lister.add_argument("--type", dest="task_type", help="only this task type")
    lister.add_argument("--limit", type=_positive_int, default=50, help="default 50")
    cancel = commands.add_parser(
        "cancel",
        help="cancel a task, running or not, wherever it is",
        description=(
            "Cancels a task that is not running under a lease, so that no worker "
            "starts it; a running task is cancelled by the worker that runs it."
        ),
    )
    cancel.add_argument("task_id", metavar="ID")
    cancel.add_argument("--reason", default="cancelled by an operator")
    audit = commands.add_parser(
        "audit", help="who created a task, from where, and every change since"
    )
    audit.add_argument("task_id", metavar="ID")
    audit.add_argument("--json", action="store_true", help="one JSON object per line")
    commands.add_parser("schedules", help="list recurring schedules")
    forecast = commands.add_parser("forecast", help="what is expected to run, as a timeline")
    forecast.add_argument("--hours", type=_hours, default=24.0, help="look-ahead (default 24)")
    forecast.add_argument(
        "--bucket", choices=("minute", "hour", "day"), default="hour", help="default hour"
    )
    forecast.add_argument("--type", dest="task_type", help="only this task type")
    purge = commands.add_parser(
        "purge",
        help="delete finished tasks older than a number of seconds",
        description=(
            "Deletes COMPLETED, FAILED and CANCELLED tasks that finished more than "
            "--older-than seconds ago (workers also do this on their own, after "
            "result_ttl_s).  Unfinished tasks are never touched."
        ),
    )
    purge.add_argument("--older-than", type=_seconds, required=True, metavar="SECONDS")
    purge.add_argument("--type", dest="task_type", help="only this task type")
    for command in (status, lister, cancel, audit, commands.choices["schedules"], forecast, purge):
        command.add_argument("--store", default=OPS_STORE, help=store_help)


def _demo(args: argparse.Namespace) -> int:
    from asched.cli.demo import run_demo

    return run_demo(store=args.store, channels=args.channels)


def _run(args: argparse.Namespace) -> int:
    from asched.cli.app import AppError, choose_store, load_app
    from asched.cli.run import run_worker

    try:
        app = load_app(args.app)
        url = choose_store(args.store, app.scheduler)
        if url is not None:
            app.scheduler.use_store(url)
        if args.concurrency is not None:
            app.scheduler.set_max_concurrency(args.concurrency)
        if args.shared:
            app.scheduler.share_store()
        if args.metrics_port is not None:
            app.scheduler.serve_metrics(args.metrics_port, args.metrics_host)
    except (AppError, AschedError) as exc:
        print(f"asched run: error: {printable(str(exc))}", file=sys.stderr)
        return 2
    return run_worker(app, args.grace, args.log_level, args.until_idle, args.dashboard)


def _dashboard(args: argparse.Namespace) -> int:
    import logging
    import os

    try:
        from asched.dashboard.serve import run_dashboard
    except ImportError as exc:
        print(f"asched dashboard: install the extra: pip install 'asched[dashboard]' ({exc})")
        return 2
    logging.basicConfig(level="INFO", format="%(levelname)s %(name)s: %(message)s")
    token = args.token or os.environ.get("ASCHED_DASHBOARD_TOKEN") or None
    try:
        run_dashboard(args.store, args.host, args.port, token)
    except AschedError as exc:
        print(f"asched dashboard: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


def _worker(args: argparse.Namespace) -> int:
    from asched.broker.command import options_for, serve_worker
    from asched.cli.app import AppError, load_app

    try:
        app = load_app(args.app)
    except AppError as exc:
        print(f"asched worker: error: {exc}", file=sys.stderr)
        return 2
    grace = args.grace
    options = options_for(app.scheduler, args.broker, args.concurrency, args.prefetch, grace)
    if isinstance(options, str):
        print(f"asched worker: error: {options}", file=sys.stderr)
        return 2
    return serve_worker(app.scheduler, options, args.log_level)


def _workers(args: argparse.Namespace) -> int:
    from asched.broker.inspect import format_workers, listen_for_workers
    from asched.config import SchedulerConfig

    config = SchedulerConfig.from_env()
    url = args.broker or config.broker
    if url is None or args.store is not None:
        return _store_workers(args.store or OPS_STORE)
    prefix = args.prefix or config.broker_prefix
    try:
        beats = asyncio.run(listen_for_workers(url, prefix, args.listen, config.broker_secret))
    except Exception as exc:  # aiormq's connection errors share no narrower base
        print(
            f"asched workers: error: cannot reach the broker ({type(exc).__name__})",
            file=sys.stderr,
        )
        return 1
    print(format_workers(beats))
    return 0


def _store_workers(url: str) -> int:
    from asched.cli import ops
    from asched.cli.store_workers import show_workers

    try:
        asyncio.run(show_workers(ops.existing_store(url)))
    except ops.OpsError as exc:
        print(f"asched workers: {printable(str(exc))}", file=sys.stderr)
        return exc.code
    except AschedError as exc:
        print(f"asched workers: error: {printable(str(exc))}", file=sys.stderr)
        return 1
    return 0


def _ops(args: argparse.Namespace) -> int:
    from asched.cli import ops
    from asched.cli.purge import purge_finished
    from asched.stores import Store

    try:
        sys.stdout = SafeOutput(sys.stdout)  # a TextIO look-alike
        store = ops.existing_store(args.store)

        def writable() -> Store:
            return ops.existing_store(args.store, read_only=False)

        work: Callable[[], Coroutine[Any, Any, None]] = {
            "status": lambda: ops.show_status(store, args.task_id),
            "list": lambda: ops.list_tasks(store, args.status, args.task_type, args.limit),
            "schedules": lambda: ops.list_schedules(store),
            "cancel": lambda: ops.cancel_task(writable(), args.task_id, args.reason),
            "purge": lambda: purge_finished(writable(), args.older_than, args.task_type),
            "audit": lambda: ops.show_audit(store, args.task_id, args.json),
            "forecast": lambda: ops.show_forecast(store, args.hours, args.bucket, args.task_type),
        }[args.command]
        asyncio.run(work())
    except ops.OpsError as exc:
        print(f"asched {args.command}: {printable(str(exc))}", file=sys.stderr)
        return exc.code
    except AschedError as exc:
        print(f"asched {args.command}: error: {printable(str(exc))}", file=sys.stderr)
        return 1
    finally:
        if isinstance(sys.stdout, SafeOutput):
            sys.stdout = sys.stdout.stream
    return 0


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "demo": _demo,
    "run": _run,
    "worker": _worker,
    "workers": _workers,
    "status": _ops,
    "list": _ops,
    "schedules": _ops,
    "forecast": _ops,
    "cancel": _ops,
    "audit": _ops,
    "dashboard": _dashboard,
    "purge": _ops,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command = _COMMANDS.get(args.command)
    if command is None:
        parser.print_help()
        return 0
    try:
        return command(args)
    except KeyboardInterrupt:
        print(f"asched {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        # Whatever went wrong, one line and a non-zero exit, never a traceback;
        # --log-level DEBUG on `run` shows the details of worker errors.
        what = printable(f"{type(exc).__name__}: {exc}")
        print(f"asched {args.command}: unexpected error: {what}", file=sys.stderr)
        return 1
