"""The `accessbot` command: serve, worker, migrate, check-config, reconcile."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import TYPE_CHECKING

from bot import ops, ops_outbox, policies
from bot import ops_activity as activity_commands
from bot.catalog import Catalog, load_catalog
from bot.config import Settings, load_settings
from bot.demo import demo
from bot.errors import ConfigError
from bot.logs import setup_logging

if TYPE_CHECKING:
    from bot.aws.accounts import MemberAccounts
    from bot.aws.checks import Check

EXIT_CONFIG = 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; configuration problems exit 2 with one line naming the setting."""
    parser = argparse.ArgumentParser(prog="accessbot", description="Time-limited AWS access through Slack.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="the Slack app over HTTP (or Socket Mode) plus the expiry scheduler")
    sub.add_parser("worker", help="the expiry scheduler alone")
    sub.add_parser("migrate", help="upgrade the database schema to the newest revision")
    checking = sub.add_parser("check-config", help="validate the settings and the catalog, and check AWS")
    checking.add_argument("--no-aws", action="store_true", help="validate offline: skip the AWS checks")
    checking.add_argument(
        "--simulate", action="store_true", help="also ask IAM's policy simulator about the policies the bot writes"
    )
    sub.add_parser("demo", help="play a short story offline: the real app, a stand-in Slack and moto")
    drift = sub.add_parser("reconcile", help="compare the database with AWS; exit 1 on drift")
    drift.add_argument("--fix", action="store_true", help="remove orphans and re-apply missing grants")
    ops.add_commands(sub)
    ops_outbox.add_command(sub)
    activity_commands.add_commands(sub)
    policies.add_command(sub)
    args = parser.parse_args(argv)
    if args.command == "iam-policy":
        try:
            return policies.run(args)  # needs no settings: it is read before the bot is set up
        except ConfigError as exc:
            print(f"accessbot: {exc}", file=sys.stderr)
            return EXIT_CONFIG
    try:
        settings = load_settings()
        setup_logging(settings.log_level_number, settings.log_format, secrets=settings.secret_values())
        if args.command in ops.COMMANDS:
            return ops.run(args, settings)
        if args.command in activity_commands.COMMANDS:
            return activity_commands.run(args, settings)
        if args.command == "outbox":
            return ops_outbox.run(args, settings)
        if args.command == "reconcile":
            from bot.reconcile import command as reconcile

            return reconcile(settings, fix=args.fix)
        if args.command == "check-config":
            return check_config(settings, aws=not args.no_aws, simulate=args.simulate)
        handler = {"serve": serve, "worker": worker, "migrate": migrate, "demo": demo}
        return handler[args.command](settings)
    except ConfigError as exc:
        print(f"accessbot: {exc}", file=sys.stderr)
        return EXIT_CONFIG


def migrate(settings: Settings) -> int:
    """`alembic upgrade head` on DATABASE_URL."""
    from bot.wiring import migrate_schema

    migrate_schema(settings.database_url)
    print("database schema is up to date")
    return 0


def check_config(settings: Settings, *, aws: bool = True, simulate: bool = False) -> int:
    """Validate the catalog, then check each resource and static identity in AWS; one line each.

    Exits 0 when nothing is wrong, 1 when AWS disagrees with the catalog, 2 when the catalog itself
    is invalid or AWS cannot be asked at all. `aws=False` validates the catalog file alone (offline);
    `simulate=True` adds the policy simulator's decisions on the documents the bot writes (a mismatch is a problem).
    """
    catalog = load_catalog(settings.accessbot_catalog)
    where = f"catalog {settings.accessbot_catalog}: {len(catalog.resources)} resource(s)"
    if simulate and not aws:
        raise ConfigError("check-config: --simulate asks AWS's policy simulator, so it cannot go with --no-aws")
    if not aws:
        for account, member in catalog.accounts.items():
            print(f"ok   accounts.{account}: the bot assumes {member.role_arn}")
        for name, resource in catalog.resources.items():
            print(f"ok   {name}: {resource.kind.value} {resource.target}")
        for line in _ticket_lines(catalog):
            print(line)
        print(f"{where}, no problems (AWS not checked)")
        return 0

    from bot.aws.account_checks import check_accounts
    from bot.aws.checks import Outcome, caller_account, caller_principal, check_catalog
    from bot.aws.errors import AwsError
    from bot.wiring import aws_clients

    clients = aws_clients(catalog)
    try:
        account = caller_account(clients.sts)
    except AwsError as exc:
        raise ConfigError(f"AWS: cannot check the catalog against AWS: {exc}") from None
    results = check_accounts(catalog, clients.members, account) + check_catalog(
        catalog,
        iam=clients.iam,
        kms=clients.kms,
        account=account,
        sso_admin=clients.sso_admin,
        identitystore=clients.identitystore,
        members=clients.members,
        principal=caller_principal(clients.sts),
    )
    results += activity_checks(settings, clients.members)
    for result in results:
        print(result.line)
    for line in _ticket_lines(catalog):
        print(line)
    problems = sum(r.outcome is Outcome.PROBLEM for r in results) + _on_call_problems(settings, catalog)
    if simulate:
        from bot.aws.simulate import simulate_catalog

        cases = simulate_catalog(catalog, clients.iam, account)
        for case in cases:
            print(case.line)
        problems += sum(not case.ok for case in cases)
    if problems:
        print(f"{where}: {problems} problem(s) in AWS account {account}")
        return 1
    print(f"{where}, no problems in AWS account {account}")
    return 0


def activity_checks(settings: Settings, members: MemberAccounts | None = None) -> list[Check]:
    """The CloudTrail lines: LookupEvents allowed in every Region activity reports read, here and in each listed
    account."""
    from bot.activity.checks import lookup_checks, member_lookup_checks
    from bot.activity.wiring import cloudtrail_clients, member_trails

    client_for, own = cloudtrail_clients()
    regions = settings.activity_regions(own)
    listed = members.listed if members is not None else []
    return lookup_checks(client_for, regions) + member_lookup_checks(member_trails(members), listed, regions)


def _on_call_problems(settings: Settings, catalog: Catalog) -> int:
    """Print the on-call checks (PagerDuty token, schedules, policies); the number of problems."""
    from bot.oncall.checks import check_on_call
    from bot.oncall.pagerduty import PagerDuty

    token, url = settings.accessbot_pagerduty_token, settings.accessbot_pagerduty_url
    checks = check_on_call(catalog, PagerDuty(url, token) if token else None)
    for check in checks:
        print(check.line)
    return sum(not c.ok for c in checks)


def _ticket_lines(catalog: Catalog) -> list[str]:
    """One line per resource whose reason needs a ticket reference (validated when the catalog loaded)."""
    return [
        f"ok   {name}.reason_pattern: {r.reason_pattern}" + (f", linked to {r.ticket_url}" if r.ticket_url else "")
        for name, r in catalog.resources.items()
        if r.reason_pattern
    ]


def serve(settings: Settings) -> int:
    """The Slack app over HTTP on 0.0.0.0:$PORT, or over a Socket Mode WebSocket with SLACK_APP_TOKEN.

    Either way it runs until SIGTERM or SIGINT, then stops cleanly: no new work, the work under way finished.
    """
    from bot.runtime import Runtime

    runtime = Runtime.build(settings, http=True)
    try:
        if settings.slack_app_token:
            runtime.start_socket_mode(settings.slack_app_token)
        else:
            runtime.start(host="0.0.0.0")
        _wait_for_signal()
    finally:
        runtime.stop()
    return 0


def worker(settings: Settings) -> int:
    """The scheduler alone, no HTTP."""
    from bot.runtime import Runtime

    runtime = Runtime.build(settings, http=False, scheduler=True)
    assert runtime.scheduler is not None
    runtime.outbox.start()  # it posts what its grants and ends owe, and resends what Slack refused
    runtime.scheduler.start()
    if runtime.activity is not None:
        runtime.activity.start()  # the activity reports owed after ends
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
