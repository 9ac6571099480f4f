"""The operator CLI: requests, show, grants, revoke, and the audit subcommands, as readable tables."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from bot import audit
from bot.clock import utcnow
from bot.config import Settings
from bot.domain.lifecycle import Status
from bot.durations import format_duration
from bot.errors import ConfigError, UserError
from bot.store import queries
from bot.store.db import session_scope
from bot.store.models import AccessRequest
from bot.wiring import open_database
from bot.workflow.base import OPERATOR_PREFIX

COMMANDS = frozenset({"requests", "show", "grants", "revoke", "audit"})
REASON_WIDTH = 48


def add_commands(sub: Any) -> None:
    """Register the operator subcommands on the `accessbot` parser."""
    found = sub.add_parser("requests", help="list requests (newest first), filtered")
    found.add_argument("--status", choices=[s.value for s in Status])
    found.add_argument("--user", help="the requester's Slack user ID")
    found.add_argument("--resource", help="a catalog resource name")
    found.add_argument("--since", help="overlapping this time or later: 2026-11-24, 2026-11-24T09:30, or 7d ago")
    found.add_argument("--until", help="overlapping times before this (same forms as --since)")
    found.add_argument("--granted", action="store_true", help="only requests that became active; times then mean held")
    found.add_argument("--limit", type=int, default=200)
    show = sub.add_parser("show", help="one request and its whole timeline from the audit trail")
    show.add_argument("request_id", type=_request_id)
    sub.add_parser("grants", help="what is active now, with time left")
    revoke = sub.add_parser("revoke", help="end an active grant now: AWS first, then the requester is told")
    revoke.add_argument("request_id", type=_request_id)
    revoke.add_argument("--reason", required=True, help="why (recorded in the audit trail and sent to the requester)")
    revoke.add_argument("--as", dest="operator", default=None, help="operator name (default: your login)")
    trail = sub.add_parser("audit", help="verify or export the audit trail")
    what = trail.add_subparsers(dest="audit_command", required=True)
    verify = what.add_parser("verify", help="walk the hash chain; exit 1 naming the first broken event")
    verify.add_argument("--file", type=argparse.FileType("r", encoding="utf-8"), help="verify an export instead")
    verify.add_argument("--format", choices=audit.FORMATS, default="jsonl", help="the --file's format")
    export = what.add_parser("export", help="write audit events to stdout")
    export.add_argument("--since", help="from this time (inclusive): 2026-11-24, 2026-11-24T09:30, or 7d ago")
    export.add_argument("--until", help="up to this time (exclusive)")
    export.add_argument("--format", choices=audit.FORMATS, default="jsonl")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run one operator subcommand; 1 when the thing asked about is missing or broken."""
    if args.command == "revoke":
        return revoke(settings, args.request_id, reason=args.reason, operator=args.operator)
    engine = open_database(settings.database_url, migrate=False)  # operator commands never migrate
    try:
        if args.command == "requests":
            return list_requests(engine, args)
        if args.command == "show":
            return show(engine, args.request_id)
        if args.command == "grants":
            return grants(engine)
        if args.audit_command == "verify":
            if args.file is None:
                return audit.verify_command(engine, file=None, fmt=args.format, say=print)
            with args.file:
                return audit.verify_command(engine, file=args.file, fmt=args.format, say=print)
        now = utcnow()
        since = audit.parse_moment(args.since, now=now) if args.since else None
        until = audit.parse_moment(args.until, now=now) if args.until else None
        audit.write_export(engine, sys.stdout, fmt=args.format, since=since, until=until)
        return 0
    finally:
        engine.dispose()


def list_requests(engine: Engine, args: argparse.Namespace) -> int:
    """`accessbot requests`: one row per request."""
    now = utcnow()
    with session_scope(engine) as session:
        rows = queries.find_requests(
            session=session,
            status=args.status,
            requester=args.user,
            resource=args.resource,
            since=audit.parse_moment(args.since, now=now) if args.since else None,
            until=audit.parse_moment(args.until, now=now) if args.until else None,
            granted=args.granted,
            limit=args.limit,
        )
    headers = ["ID", "STATUS", "RESOURCE", "REQUESTER", "IAM USER", "FILED", "ACTIVE FROM", "UNTIL", "APPROVED BY"]
    print(
        table(
            [*headers, "REASON"],
            [
                [
                    f"#{r.id}",
                    r.status,
                    r.resource,
                    r.requester_id,
                    r.iam_user,
                    stamp(r.created_at),
                    stamp(r.activated_at),
                    stamp(r.ended_at or r.expires_at),
                    approved_by(r),
                    clip(r.reason, REASON_WIDTH),
                ]
                for r in rows
            ],
        )
    )
    print(f"{len(rows)} request(s)")
    return 0


def show(engine: Engine, request_id: int) -> int:
    """`accessbot show <id>`: the request, then every audit event about it in order."""
    with session_scope(engine) as session:
        request = queries.get_request(request_id, session=session)
        events = list(queries.audit_trail(request_id, session=session))
    if request is None:
        print(f"accessbot: request #{request_id} does not exist", file=sys.stderr)
        return 1
    facts = [
        ("request", f"#{request.id} {request.status}"),
        ("resource", f"{request.resource} ({request.kind} {request.target})"),
        ("requester", f"{request.requester_id} as IAM user {request.iam_user}"),
        *([("filed by", f"{request.filed_by} on the requester's behalf")] if request.filed_by else []),
        ("duration", format_duration(timedelta(seconds=request.duration_seconds))),
        ("reason", request.reason),
        ("approved by", approved_by(request)),
        ("active", f"{stamp(request.activated_at)} until {stamp(request.ended_at or request.expires_at)}"),
    ]
    if request.deny_reason:
        facts.append(("denied because", request.deny_reason))
    if request.last_error:
        facts.append(("last error", request.last_error))
    width = max(len(k) for k, _ in facts)
    for key, value in facts:
        print(f"{key:<{width}}  {value}")
    print()
    print(
        table(
            ["TIME", "ACTOR", "ACTION", "STATE", "DETAILS"],
            [
                [stamp(e.created_at), e.actor, e.action, _move(e.from_status, e.to_status), details_text(e.details)]
                for e in events
            ],
        )
    )
    return 0


def grants(engine: Engine) -> int:
    """`accessbot grants`: active grants, soonest to end first, with time left."""
    now = utcnow()
    with session_scope(engine) as session:
        rows = sorted(
            queries.find_requests(session=session, status=Status.ACTIVE.value, limit=10_000),
            key=lambda r: r.expires_at or now,
        )
    print(
        table(
            ["ID", "RESOURCE", "KIND", "REQUESTER", "IAM USER", "SINCE", "EXPIRES", "LEFT", "APPROVED BY"],
            [
                [
                    f"#{r.id}",
                    r.resource,
                    r.kind,
                    r.requester_id,
                    r.iam_user,
                    stamp(r.activated_at),
                    stamp(r.expires_at),
                    time_left(r, now),
                    approved_by(r),
                ]
                for r in rows
            ],
        )
    )
    print(f"{len(rows)} active grant(s)")
    return 0


def revoke(settings: Settings, request_id: int, *, reason: str, operator: str | None) -> int:
    """`accessbot revoke <id> --reason …`: the workflow's early revoke as an operator, run to the end."""
    from bot.runtime import Runtime

    reason = " ".join(reason.split())
    if not reason:
        raise ConfigError("--reason: say why the grant is revoked")
    actor = OPERATOR_PREFIX + (operator or getpass.getuser())
    runtime = Runtime.build(settings, http=False, scheduler=False)
    try:
        workflow = runtime.workflow
        try:
            workflow.revoke_early(request_id=request_id, actor=actor, reason=reason, operator=True)
        except UserError as exc:
            print(f"accessbot: {exc}", file=sys.stderr)
            return 1
        workflow.end(request_id)
        with session_scope(workflow.engine) as session:
            row = queries.get_request(request_id, session=session)
        assert row is not None
    finally:
        runtime.stop()
    if row.status != Status.REVOKED:
        print(
            f"accessbot: AWS has not accepted the revoke of #{request_id} yet ({row.last_error}); "
            "the bot retries it by itself",
            file=sys.stderr,
        )
        return 1
    print(f"revoked #{request_id}: {row.resource} for {row.requester_id} ({row.iam_user}) at {stamp(row.ended_at)}")
    return 0


# -- rendering -----------------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table: a header, a rule, and left-aligned columns two spaces apart."""
    cells = [[_one_line(c) for c in row] for row in rows]
    widths = [max([len(h), *(len(row[i]) for row in cells)]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(row) for row in cells)])


def stamp(moment: datetime | None) -> str:
    """A UTC time to the second, or `-`."""
    return f"{moment:%Y-%m-%d %H:%M:%S}Z" if moment else "-"


def time_left(request: AccessRequest, now: datetime) -> str:
    """Time until the grant ends, as people write durations."""
    if request.expires_at is None:
        return "-"
    remaining = request.expires_at - now
    return format_duration(remaining) if remaining > timedelta(seconds=1) else "due now"


def approved_by(request: AccessRequest) -> str:
    """Who approved it: people, or how it was approved without one."""
    if request.break_glass:
        return f"break-glass, acknowledged by {request.acknowledged_by}" if request.acknowledged_by else "break-glass"
    if request.auto_approved:
        return "auto-approved"
    if request.status in (Status.DENIED, Status.CANCELLED, Status.TIMED_OUT, Status.PENDING):
        return "-"
    return request.decided_by or "-"


def details_text(details: str) -> str:
    """Audit details as `key=value` pairs."""
    try:
        parsed = json.loads(details)
    except ValueError:
        return details
    if not isinstance(parsed, dict):
        return str(parsed)
    return " ".join(f"{k}={_value(v)}" for k, v in parsed.items() if v not in (None, ""))


def clip(text: str, width: int) -> str:
    """At most `width` characters, with an ellipsis when cut."""
    return text if len(text) <= width else text[: width - 1] + "…"


def _value(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return json.dumps(text) if " " in text else text


def _move(before: str | None, after: str | None) -> str:
    if after is None:
        return ""
    return f"{before or '-'} -> {after}"


def _one_line(value: str) -> str:
    return " ".join(str(value).split())


def _request_id(text: str) -> int:
    value = text.removeprefix("#")
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a request ID (a positive number, or #number)")
    return int(value)
