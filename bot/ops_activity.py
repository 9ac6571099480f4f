"""The activity CLI: `accessbot activity <id> [--json]` and `accessbot report --since 30d [--json|--csv]`."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import asdict
from typing import Any

from sqlmodel import col, select

from bot.activity import render
from bot.activity.lookup import Unavailable
from bot.activity.sizing import Used, sizing
from bot.audit import parse_moment
from bot.clock import utcnow
from bot.config import Settings
from bot.ops import table
from bot.store.activity_tables import ActivityReport
from bot.store.db import session_scope
from bot.store.models import AccessRequest
from bot.wiring import open_database

COMMANDS = frozenset({"activity", "report"})


def add_commands(sub: Any) -> None:
    """Register `activity` and `report` on the `accessbot` parser."""
    one = sub.add_parser("activity", help="what one grant was used for (CloudTrail)")
    one.add_argument("request_id", type=lambda t: int(t.lstrip("#")))
    one.add_argument("--json", action="store_true", help="the report's body as JSON")
    every = sub.add_parser("report", help="right-sizing: per resource, how much of the granted time was used")
    every.add_argument("--since", default="30d", help="grants ended since: 30d, 2026-11-24, … (default 30d)")
    shape = every.add_mutually_exclusive_group()
    shape.add_argument("--json", action="store_true")
    shape.add_argument("--csv", action="store_true")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run `activity` or `report`; 1 when the request is missing or CloudTrail cannot be read."""
    engine = open_database(settings.database_url, migrate=False)
    try:
        if args.command == "report":
            return report(engine, since=parse_moment(args.since, now=utcnow()), as_json=args.json, as_csv=args.csv)
        return activity(settings, engine, args.request_id, as_json=args.json)
    finally:
        engine.dispose()


def activity(settings: Settings, engine: Any, request_id: int, *, as_json: bool) -> int:
    """Print one grant's report (the stored one, or one read now for a grant not reported yet)."""
    from bot.activity.wiring import build_reporter
    from bot.catalog import load_catalog
    from bot.wiring import aws_clients

    with session_scope(engine) as session:
        request = session.get(AccessRequest, request_id)
    if request is None:
        print(f"no request #{request_id}", file=sys.stderr)
        return 1
    aws = aws_clients(load_catalog(settings.accessbot_catalog))  # its `accounts`: their CloudTrail too
    reporter = build_reporter(
        settings, engine, _NoPosts(), sts=aws.sts, owner="cli", acknowledgers=_nobody, members=aws.members
    )
    try:
        shown = reporter.show(request)
    except (LookupError, Unavailable) as exc:
        print(str(exc), file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps({"request_id": request_id, "so_far": shown.so_far, **shown.body}, indent=2, sort_keys=True))
    else:
        print(shown.text)
    return 0


def report(engine: Any, *, since: Any, as_json: bool, as_csv: bool) -> int:
    """Print per resource: grants reported, the median share of granted time used, grants never used."""
    with session_scope(engine) as session:
        rows = session.exec(
            select(AccessRequest, ActivityReport)
            .join(ActivityReport, col(ActivityReport.request_id) == col(AccessRequest.id))
            .where(col(ActivityReport.reported_at).is_not(None), col(ActivityReport.ended_at) >= since)
        ).all()
    used = [
        Used(r.resource, r.activated_at or r.grant_started_at or a.ended_at, a.ended_at, a.last_call_at)
        for r, a in rows
    ]
    lines = sizing(used)
    if as_json:
        print(json.dumps([asdict(s) for s in lines], indent=2))
    elif as_csv:
        out = csv.writer(sys.stdout)
        out.writerow(["resource", "grants", "median_used", "never_used"])
        out.writerows([s.resource, s.grants, f"{s.median_used:.3f}", s.never_used] for s in lines)
    else:
        headers = ["RESOURCE", "GRANTS", "MEDIAN TIME USED", "NEVER USED"]
        print(table(headers, [[s.resource, str(s.grants), f"{s.median_used:.0%}", str(s.never_used)] for s in lines]))
        print(f"{len(used)} reported grant(s) ended since {since:%Y-%m-%d %H:%M}Z; {render.MANAGEMENT_ONLY}")
    return 0


class _NoPosts:
    def add(self, *_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("the CLI posts nothing")


def _nobody(_request: AccessRequest) -> frozenset[str]:
    return frozenset()
