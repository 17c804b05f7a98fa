"""The ``asched`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from asched import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asched",
        description="asched: an asyncio task-scheduling engine.",
    )
    parser.add_argument("--version", action="version", version=f"asched {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="run a small content-bot scenario and print what happened",
        description=(
            "Schedules videos for several channels with mixed priorities, a flaky upload "
            "that is retried, a dependency chain and a cancellation, then prints a summary."
        ),
    )
    demo.add_argument("--store", default="memory://", help="store URL (default: memory://)")
    demo.add_argument("--channels", type=int, default=4, help="number of channels (default 4)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        from asched.demo import run_demo

        return run_demo(store=args.store, channels=args.channels)
    parser.print_help()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
