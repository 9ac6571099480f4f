"""The fake CloudTrail for tests: a client on it, and events of a grant shaped from AWS's documented examples."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import boto3
from sqlalchemy.engine import Engine

from bot.activity.lookup import Lookup
from bot.activity.pacer import Pacer
from bot.activity.wiring import ONE_TRY
from bot.testing.fake_cloudtrail import FakeCloudTrail

ACCOUNT = "123456789012"


def client_factory(fake: FakeCloudTrail) -> Callable[[str], Any]:
    """A CloudTrail client per Region, on the fake, through boto3 (SigV4 carries the Region to the fake)."""
    made: dict[str, Any] = {}

    def client_for(region: str) -> Any:
        if region not in made:
            made[region] = boto3.client(
                "cloudtrail",
                region_name=region,
                endpoint_url=fake.url,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
                config=ONE_TRY,
            )
        return made[region]

    return client_for


def lookup_on(
    fake: FakeCloudTrail,
    engine: Engine,
    *,
    regions: tuple[str, ...] = ("us-east-1",),
    max_pages: int = 50,
    interval: float = 0.7,
) -> Lookup:
    """A Lookup on the fake with its own pacer on `engine` (a replica of its own)."""
    pacer = Pacer(engine, interval=timedelta(seconds=interval))
    return Lookup(client_factory(fake), pacer, home=lambda: ACCOUNT, regions=regions, max_pages=max_pages)


def minutes(start: datetime, n: float) -> datetime:
    """`n` minutes after start."""
    return start + timedelta(minutes=n)
