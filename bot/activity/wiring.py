"""Builds the activity reporter from settings: CloudTrail clients per account and Region, the pacer, the lookup."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config
from sqlalchemy.engine import Engine

from bot.activity.lookup import Lookup
from bot.activity.pacer import Pacer
from bot.activity.reporter import ActivityReporter, Poster
from bot.aws.accounts import MemberAccounts
from bot.aws.clients import botocore_session
from bot.config import Settings
from bot.store.models import AccessRequest

# One try per call: the pacer decides when LookupEvents is called again (botocore's own retries would call
# again without asking it, and so past the rate every replica shares).
ONE_TRY = Config(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=5, read_timeout=20)


def cloudtrail_clients(session: boto3.session.Session | None = None) -> tuple[Callable[[str], Any], str]:
    """A CloudTrail client per Region (built once each), and the bot's own Region."""
    session = session or boto3.session.Session(botocore_session=botocore_session())
    made: dict[str, Any] = {}
    lock = threading.Lock()

    def client_for(region: str) -> Any:
        with lock:
            if region not in made:
                made[region] = session.client("cloudtrail", region_name=region, config=ONE_TRY)
            return made[region]

    return client_for, session.region_name or "us-east-1"


def member_trails(members: MemberAccounts | None) -> Callable[[str, str], Any]:
    """(account, Region) -> a CloudTrail client as the role the bot assumes in that listed account; None if not
    listed. Each client is built once, on the account's one session (so one AssumeRole serves IAM, KMS and this)."""
    made: dict[tuple[str, str], Any] = {}
    lock = threading.Lock()

    def client_for(account: str, region: str) -> Any:
        session = members.session(account) if members is not None else None
        if session is None:
            return None
        with lock:
            if (account, region) not in made:
                made[account, region] = session.client("cloudtrail", region_name=region, config=ONE_TRY)
            return made[account, region]

    return client_for


def build_reporter(
    settings: Settings,
    engine: Engine,
    poster: Poster,
    *,
    sts: Any,
    owner: str,
    acknowledgers: Callable[[AccessRequest], frozenset[str]],
    members: MemberAccounts | None = None,
) -> ActivityReporter:
    """The reporter, reading the Regions and page bound the settings name, in the bot's own account and, through
    the roles the bot assumes there, in the catalog's `accounts`."""
    client_for, own = cloudtrail_clients()

    @functools.cache
    def home() -> str:
        return str(sts.get_caller_identity()["Account"])

    lookup = Lookup(
        client_for,
        Pacer(engine),
        home=home,
        regions=settings.activity_regions(own),
        max_pages=settings.accessbot_activity_max_pages,
        elsewhere=member_trails(members),
    )
    return ActivityReporter(
        engine, lookup, poster, delay=settings.accessbot_activity_delay, owner=owner, acknowledgers=acknowledgers
    )
