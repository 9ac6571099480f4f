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


def moto_account_of() -> Callable[[str], str]:
    """The fake's `account_of` on moto: the account an access key ID acts in, as moto's GetCallerIdentity says.

    moto names the account from the access key ID alone (it checks no signature), and a key from sts:AssumeRole
    acts in the assumed role's account, as in AWS; asked once per key.
    """
    known: dict[str, str] = {}

    def account_of(key: str) -> str:
        if key not in known:
            sts = boto3.client("sts", aws_access_key_id=key, aws_secret_access_key="unchecked-by-moto")
            known[key] = str(sts.get_caller_identity()["Account"])
        return known[key]

    return account_of


def lookup_on(
    fake: FakeCloudTrail,
    engine: Engine,
    *,
    regions: tuple[str, ...] = ("us-east-1",),
    max_pages: int = 50,
    interval: float = 0.7,
    elsewhere: Callable[[str, str], Any] = lambda _account, _region: None,
) -> Lookup:
    """A Lookup on the fake with its own pacer on `engine` (a replica of its own); `elsewhere`: other accounts."""
    pacer = Pacer(engine, interval=timedelta(seconds=interval))
    return Lookup(
        client_factory(fake), pacer, home=lambda: ACCOUNT, regions=regions, max_pages=max_pages, elsewhere=elsewhere
    )


def minutes(start: datetime, n: float) -> datetime:
    """`n` minutes after start."""
    return start + timedelta(minutes=n)
