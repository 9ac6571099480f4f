"""`accessbot reconcile [--fix]`: the comparison as a table on stdout, and its exit status."""

from __future__ import annotations

from datetime import timedelta

from bot.aws.errors import AwsError
from bot.catalog import load_catalog
from bot.config import Settings
from bot.errors import ConfigError
from bot.reconcile.reconciler import Reconciler
from bot.wiring import aws_clients, build_granters, identity_center, open_database


def command(settings: Settings, *, fix: bool) -> int:
    """`accessbot reconcile [--fix]`: print a table; exit 1 while drift remains, 0 when there is none."""
    catalog = load_catalog(settings.accessbot_catalog)
    engine = open_database(settings.database_url)
    try:
        aws = aws_clients()
        margin = timedelta(seconds=settings.accessbot_iam_propagation_seconds)
        granters = build_granters(aws, identity_center(aws, catalog), engine=engine, margin=margin)
        reconciler = Reconciler(engine=engine, catalog=catalog, granters=granters, iam=aws.iam, kms=aws.kms)
        try:
            report = reconciler.check()
        except AwsError as exc:
            raise ConfigError(f"AWS: cannot list what exists: {exc}") from None
        if fix and report.drift:
            report = reconciler.fix(report)
    finally:
        engine.dispose()
    if report.drift:
        print(report.table())
    print(report.summary())
    return 1 if report.unresolved else 0
