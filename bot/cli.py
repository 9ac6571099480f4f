"""The `accessbot` command: serve, worker, migrate, check-config."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from bot.catalog import load_catalog
from bot.config import Settings, load_settings
from bot.errors import ConfigError
from bot.logs import setup_logging

EXIT_CONFIG = 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; configuration problems exit 2 with one line naming the setting."""
    parser = argparse.ArgumentParser(prog="accessbot", description="Time-limited AWS access through Slack.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="the Slack app over HTTP (or Socket Mode) plus the expiry scheduler")
    sub.add_parser("worker", help="the expiry scheduler alone")
    sub.add_parser("migrate", help="upgrade the database schema to the newest revision")
    sub.add_parser("check-config", help="validate the settings and the catalog")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        setup_logging(settings.log_level_number, settings.log_format)
        handler = {"serve": serve, "worker": worker, "migrate": migrate, "check-config": check_config}
        return handler[args.command](settings)
    except ConfigError as exc:
        print(f"accessbot: {exc}", file=sys.stderr)
        return EXIT_CONFIG


def migrate(settings: Settings) -> int:
    """`alembic upgrade head` on DATABASE_URL."""
    from sqlalchemy.exc import SQLAlchemyError

    from bot.store import schema
    from bot.store.db import make_engine

    engine = make_engine(settings.database_url)
    try:
        schema.upgrade(engine)
    except SQLAlchemyError as exc:
        raise ConfigError(f"DATABASE_URL: cannot migrate: {type(getattr(exc, 'orig', None) or exc).__name__}") from None
    print("database schema is up to date")
    return 0


def check_config(settings: Settings) -> int:
    """Validate the catalog file; print one line per resource."""
    catalog = load_catalog(settings.accessbot_catalog)
    for name, resource in catalog.resources.items():
        print(f"ok  {name}: {resource.kind.value} {resource.target}")
    print(f"catalog {settings.accessbot_catalog}: {len(catalog.resources)} resource(s), no problems")
    return 0


def serve(settings: Settings) -> int:
    """The Slack app over HTTP on 0.0.0.0:$PORT, or Socket Mode with SLACK_APP_TOKEN."""
    from bot.runtime import Runtime

    runtime = Runtime.build(settings, http=True)
    if settings.slack_app_token:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        if runtime.scheduler is not None:
            runtime.scheduler.start()
        try:
            SocketModeHandler(runtime.bolt, settings.slack_app_token).start()  # type: ignore[no-untyped-call]
        finally:
            runtime.stop()
        return 0
    runtime.start(host="0.0.0.0")
    _wait_for_signal()
    runtime.stop()
    return 0


def worker(settings: Settings) -> int:
    """The scheduler alone, no HTTP."""
    from bot.runtime import Runtime

    runtime = Runtime.build(settings, http=False, scheduler=True)
    assert runtime.scheduler is not None
    runtime.scheduler.start()
    _wait_for_signal()
    runtime.stop()
    return 0


def _wait_for_signal() -> None:
    stop = threading.Event()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    stop.wait()
