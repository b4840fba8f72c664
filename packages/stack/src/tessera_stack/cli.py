"""The `tessera` command: run the whole system on this machine, migrate, seed.

tessera up        PostgreSQL + NATS (external when DATABASE_URL / NATS_URL
                  answer, else embedded), migrations, demo data, services
tessera migrate   apply the catalog migrations to --database-url
tessera seed      load the demo data into an empty catalog database
tessera trace     the waterfall of one trace the services of `tessera up` kept
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import asyncpg

from tessera_stack.local.console import say, warn
from tessera_stack.local.runner import DEFAULT_DATA_DIR, UpOptions, up
from tessera_stack.local.services import trace_dir
from tessera_stack.local.supervisor import RestartPolicy
from tessera_stack.postgres import redact
from tessera_stack.process import run_sync
from tessera_stack.trace_view import show_trace

DEFAULT_PORTS = {"gateway": 8000, "catalog": 8001, "inference": 8002}
_DATABASE_ENV = ("DATABASE_URL", "CATALOG_DATABASE_URL")
# The waterfall's width when stdout is not a terminal (a pipe, a file).
_DEFAULT_COLUMNS = 120


def _add_data_dir(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help=f"{help_text} (default: {DEFAULT_DATA_DIR})",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tessera", description="Run and manage Tessera locally.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "up",
        help="run everything on this machine until Ctrl-C",
        description=(
            "Start PostgreSQL (DATABASE_URL if set and reachable, else embedded) and NATS "
            "(NATS_URL likewise), apply migrations and demo data, and run the services."
        ),
    )
    _add_data_dir(run, "embedded servers' data and the services' spans, kept between runs")
    run.add_argument("--host", default="127.0.0.1", help="address the services listen on")
    for name, port in DEFAULT_PORTS.items():
        run.add_argument(
            f"--{name}-port", type=int, default=port, metavar="PORT", help=f"default: {port}"
        )
    run.add_argument(
        "--ready-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long each service may take to become ready (default: 60)",
    )
    defaults = RestartPolicy()
    restarts = run.add_argument_group(
        "restarts",
        "Once everything is ready, a service that exits is restarted on its own (only that "
        "one), after a delay that doubles while it keeps exiting. During the first start-up "
        "a failing service stops everything instead.",
    )
    for flag, default, help_text in (
        ("--restart-delay", defaults.first_delay_s, "wait before the first restart"),
        ("--restart-delay-max", defaults.max_delay_s, "the doubling stops at this delay"),
        (
            "--restart-reset-after",
            defaults.reset_after_s,
            "a service ready this long is back to the first delay",
        ),
    ):
        restarts.add_argument(
            flag,
            type=float,
            default=default,
            metavar="SECONDS",
            help=f"{help_text} (default: {default:g})",
        )

    trace = commands.add_parser(
        "trace",
        help="print one trace of a local run as a waterfall",
        description=(
            "Print the spans of one trace, across the services, as a waterfall: those "
            "`tessera up` keeps under <data-dir>/traces when no OTLP endpoint is set."
        ),
    )
    wanted = trace.add_mutually_exclusive_group(required=True)
    wanted.add_argument(
        "id",
        nargs="?",
        metavar="TRACE_ID|REQUEST_ID",
        help="a trace id (32 hex digits, or a whole traceparent) or an X-Request-ID",
    )
    wanted.add_argument("--last", action="store_true", help="the trace whose root span ended last")
    _add_data_dir(trace, "the data directory of `tessera up`")

    for name, help_text in (
        ("migrate", "apply the catalog's pending migrations"),
        ("seed", "load the demo data into an empty catalog database"),
    ):
        command = commands.add_parser(name, help=help_text, description=help_text)
        command.add_argument(
            "--database-url",
            help="PostgreSQL DSN (default: $DATABASE_URL, else $CATALOG_DATABASE_URL)",
        )
        # Usage errors are then reported with this command's own usage line.
        command.set_defaults(command_parser=command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "up":
        return up(
            UpOptions(
                data_dir=args.data_dir.resolve(),
                host=args.host,
                ports={name: getattr(args, f"{name}_port") for name in DEFAULT_PORTS},
                ready_timeout_s=args.ready_timeout,
                database_url=os.environ.get("DATABASE_URL") or None,
                nats_url=os.environ.get("NATS_URL") or None,
                restart=RestartPolicy(
                    first_delay_s=args.restart_delay,
                    max_delay_s=args.restart_delay_max,
                    reset_after_s=args.restart_reset_after,
                    ready_timeout_s=args.ready_timeout,
                ),
            )
        )
    if args.command == "trace":
        columns = shutil.get_terminal_size((_DEFAULT_COLUMNS, 24)).columns
        return show_trace(
            trace_dir(args.data_dir), args.id, columns=columns, color=sys.stdout.isatty()
        )
    database_url = args.database_url or next(
        (os.environ[name] for name in _DATABASE_ENV if os.environ.get(name)), None
    )
    if database_url is None:
        # No embedded fallback here: migrating a throwaway server helps nobody.
        command_parser: argparse.ArgumentParser = args.command_parser
        command_parser.error(
            f"no database given: pass --database-url or set {' or '.join(_DATABASE_ENV)}"
        )
    return _migrate(database_url) if args.command == "migrate" else _seed(database_url)


def _migrate(database_url: str) -> int:
    from tessera_catalog.db.migrate import migrate_and_report

    return run_sync(migrate_and_report(database_url, program="tessera migrate"))


def _seed(database_url: str) -> int:
    from tessera_catalog.db.seed import seed_if_empty

    try:
        rows = run_sync(seed_if_empty(database_url))
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
        warn(f"tessera seed: cannot seed {redact(database_url)}: {e}")
        return 1
    say(f"loaded {rows} rows of demo data" if rows else "the database has data: nothing loaded")
    return 0


if __name__ == "__main__":
    sys.exit(main())
