"""Attribution, paging, bounds and throttling of activity reports, against the fake CloudTrail endpoint."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine

from bot.activity.attribution import Grant
from bot.activity.lookup import Unavailable, Window
from bot.activity.summary import summarize
from bot.store.db import make_engine
from bot.testing.fake_cloudtrail import FakeCloudTrail, assumed_role, event, iam_user, running
from tests.support.cloudtrail import ACCOUNT, lookup_on, minutes

T0 = datetime(2026, 12, 8, 1, 0, tzinfo=UTC)
WINDOW = Window(T0, T0 + timedelta(hours=4))
ROLE = f"arn:aws:iam::{ACCOUNT}:role/prod-readonly"
KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"


@pytest.fixture(scope="module")
def _served() -> Iterator[FakeCloudTrail]:
    with running() as fake:
        yield fake


@pytest.fixture
def fake(_served: FakeCloudTrail) -> FakeCloudTrail:
    _served.reset()
    return _served


def group_grant(user: str = "alice") -> Grant:
    return Grant("iam_group", user, f"arn:aws:iam::{ACCOUNT}:user/{user}", "deploy-admins", None)


def test_iam_group_counts_the_users_calls_writes_and_denials_across_pages(fake: FakeCloudTrail, engine: Engine) -> None:
    alice = iam_user("alice")
    fake.add("us-east-1", *[event("ListBuckets", "s3.amazonaws.com", minutes(T0, i), alice) for i in range(100)])
    fake.add(
        "us-east-1",
        *[
            event("PutBucketPolicy", "s3.amazonaws.com", minutes(T0, 100 + i), alice, read_only=False)
            for i in range(25)
        ],
    )
    fake.add(
        "us-east-1",
        event(
            "DeleteStack",
            "cloudformation.amazonaws.com",
            minutes(T0, 130),
            alice,
            read_only=False,
            error="AccessDenied",
        ),
    )
    fake.add("us-east-1", event("ListBuckets", "s3.amazonaws.com", minutes(T0, 5), iam_user("bob")))  # someone else
    fake.add(
        "us-east-1", event("ListBuckets", "s3.amazonaws.com", T0 - timedelta(minutes=1), alice)
    )  # before the grant

    calls, reading, coverage = lookup_on(fake, engine).read(group_grant(), WINDOW)
    body = summarize(calls, reading, coverage)

    assert (body["calls"], body["writes"], body["denied"]) == (126, 26, 1)
    assert body["by_call"][0] == ["s3", "ListBuckets", 100]
    assert len(body["write_calls"]) == 20
    assert body["denied_calls"][0]["name"] == "DeleteStack"
    assert body["first"] == T0.isoformat() and body["last"] == minutes(T0, 130).isoformat()
    assert reading.pages == 3 and not body["partial"]
    assert all(c.attribute == ("Username", "alice") for c in fake.calls)


def test_iam_role_follows_the_keys_assume_role_returned_and_checks_the_source_identity(
    fake: FakeCloudTrail, engine: Engine
) -> None:
    # AssumeRole as the IAM user (caller's account), its response's access key (IAM User Guide, "Logging IAM
    # and AWS STS API calls with AWS CloudTrail": responseElements.credentials.accessKeyId).
    fake.add(
        "us-east-1",
        event(
            "AssumeRole",
            "sts.amazonaws.com",
            minutes(T0, 1),
            iam_user("alice"),
            request={"roleArn": ROLE, "roleSessionName": "whatever-she-chose", "sourceIdentity": "alice"},
            response={
                "credentials": {"accessKeyId": "ASIAALICESESSION0001", "expiration": "Dec 8, 2026, 2:01:00 AM"},
                "sourceIdentity": "alice",
            },
        ),
        event(
            "AssumeRole",
            "sts.amazonaws.com",
            minutes(T0, 2),
            iam_user("alice"),
            request={"roleArn": f"arn:aws:iam::{ACCOUNT}:role/other"},
            response={"credentials": {"accessKeyId": "ASIAOTHERROLE0000001"}},
        ),
    )
    session = assumed_role("prod-readonly", "whatever-she-chose", "ASIAALICESESSION0001", source_identity="alice")
    other = assumed_role("prod-readonly", "bob", "ASIABOBSESSION000001", source_identity="bob")
    fake.add(
        "us-east-1", *[event("DescribeInstances", "ec2.amazonaws.com", minutes(T0, 3 + i), session) for i in range(3)]
    )
    fake.add(
        "eu-west-1",
        event("TerminateInstances", "ec2.amazonaws.com", minutes(T0, 9), session, region="eu-west-1", read_only=False),
    )
    fake.add("us-east-1", event("DescribeInstances", "ec2.amazonaws.com", minutes(T0, 4), other))

    grant = Grant("iam_role", "alice", f"arn:aws:iam::{ACCOUNT}:user/alice", ROLE, None)
    calls, reading, coverage = lookup_on(fake, engine, regions=("us-east-1", "eu-west-1")).read(grant, WINDOW)
    body = summarize(calls, reading, coverage)

    assert body["calls"] == 5  # AssumeRole on this role, three reads, one write in eu-west-1
    assert body["writes"] == 1 and body["write_calls"][0]["name"] == "TerminateInstances"
    assert ("AccessKeyId", "ASIAALICESESSION0001") in {c.attribute for c in fake.calls}
    assert ("AccessKeyId", "ASIAOTHERROLE0000001") not in {c.attribute for c in fake.calls}
    assert "console sessions" in coverage


def test_identity_center_sessions_of_the_permission_set_only(fake: FakeCloudTrail, engine: Engine) -> None:
    # An Identity Center session: role AWSReservedSSO_<set>_<suffix>, session name = the user's UserName, and
    # onBehalfOf naming the Identity Store user (CloudTrail userIdentity element, onBehalfOf).
    store = "arn:aws:identitystore::123456789012:identitystore/d-1234567890"
    mine = assumed_role(
        "AWSReservedSSO_ProdAdmin_0123456789abcdef",
        "alice@example.com",
        "ASIASSO0000000000001",
        on_behalf_of={"userId": "u-alice", "identityStoreArn": store},
    )
    other_set = assumed_role("AWSReservedSSO_ReadOnly_0123456789abcdef", "alice@example.com", "ASIASSO0000000000002")
    impostor = assumed_role(
        "AWSReservedSSO_ProdAdmin_0123456789abcdef",
        "alice@example.com",
        "ASIASSO0000000000003",
        on_behalf_of={"userId": "u-mallory", "identityStoreArn": store},
    )
    fake.add(
        "us-east-1",
        event("GetCallerIdentity", "sts.amazonaws.com", minutes(T0, 1), mine),
        event("DeleteBucket", "s3.amazonaws.com", minutes(T0, 2), mine, read_only=False),
        event("ListBuckets", "s3.amazonaws.com", minutes(T0, 3), other_set),
        event("ListBuckets", "s3.amazonaws.com", minutes(T0, 4), impostor),
    )
    grant = Grant("sso_permission_set", "alice@example.com", "u-alice", f"ProdAdmin in {ACCOUNT},222222222222", None)

    calls, reading, coverage = lookup_on(fake, engine).read(grant, WINDOW)
    body = summarize(calls, reading, coverage)

    assert (body["calls"], body["writes"]) == (2, 1)
    assert reading.not_read == [
        "account 222222222222 (not listed under the catalog's `accounts`: the bot has no role there to read its "
        "CloudTrail)"
    ]


def test_kms_key_reads_the_keys_events_in_its_region_for_the_user_only(fake: FakeCloudTrail, engine: Engine) -> None:
    on_key = [{"ResourceType": "AWS::KMS::Key", "ResourceName": KEY}]
    fake.add(
        "us-east-1",
        event("Decrypt", "kms.amazonaws.com", minutes(T0, 1), iam_user("alice"), resources=on_key),
        event("Decrypt", "kms.amazonaws.com", minutes(T0, 2), iam_user("bob"), resources=on_key),
        event("ListBuckets", "s3.amazonaws.com", minutes(T0, 3), iam_user("alice")),
    )
    grant = Grant("kms_key", "alice", f"arn:aws:iam::{ACCOUNT}:user/alice", "alias/payments", KEY)

    calls, _reading, _coverage = lookup_on(fake, engine, regions=("eu-west-1", "us-east-1")).read(grant, WINDOW)

    assert [c.name for c in calls] == ["Decrypt"]
    assert {c.region for c in fake.calls} == {"us-east-1"}  # the key's Region only


def test_a_report_stops_at_the_page_bound_and_says_it_is_partial(fake: FakeCloudTrail, engine: Engine) -> None:
    alice = iam_user("alice")
    fake.add("us-east-1", *[event("ListBuckets", "s3.amazonaws.com", minutes(T0, i / 10), alice) for i in range(130)])

    calls, reading, _coverage = lookup_on(fake, engine, max_pages=2).read(group_grant(), WINDOW)

    assert len(calls) == 100 and reading.partial and reading.pages == 2
    assert "stopped: page limit" in reading.lines[-1]


def test_throttling_backs_off_for_every_replica_then_succeeds(fake: FakeCloudTrail, engine: Engine) -> None:
    alice = iam_user("alice")
    fake.add("us-east-1", *[event("ListBuckets", "s3.amazonaws.com", minutes(T0, i / 10), alice) for i in range(160)])

    # No pacing of its own: the fake's limit throttles the third call of a second, and the backoff recovers.
    calls, _reading, _ = lookup_on(fake, engine, interval=0.0).read(group_grant(), WINDOW)

    assert len(calls) == 160
    assert any(c.throttled for c in fake.calls)


def test_unavailable_cloudtrail_raises_for_the_report_to_stay_owed(fake: FakeCloudTrail, engine: Engine) -> None:
    fake.unavailable = True
    with pytest.raises(Unavailable, match="CloudTrail us-east-1"):
        lookup_on(fake, engine).read(group_grant(), WINDOW)


@pytest.mark.both_databases
def test_rate_limits_hold_with_two_replicas(fake: FakeCloudTrail, database_url: str) -> None:
    alice, bob = iam_user("alice"), iam_user("bob")
    fake.add("us-east-1", *[event("ListBuckets", "s3.amazonaws.com", minutes(T0, i / 10), alice) for i in range(200)])
    fake.add("us-east-1", *[event("ListBuckets", "s3.amazonaws.com", minutes(T0, i / 10), bob) for i in range(200)])
    engines = [make_engine(database_url), make_engine(database_url)]  # two replicas: two pools, one database
    results: dict[str, int] = {}

    def replica(n: int, user: str) -> None:
        calls, _, _ = lookup_on(fake, engines[n]).read(group_grant(user), WINDOW)
        results[user] = len(calls)

    threads = [threading.Thread(target=replica, args=(0, "alice")), threading.Thread(target=replica, args=(1, "bob"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for e in engines:
        e.dispose()

    assert results == {"alice": 200, "bob": 200}
    assert len(fake.calls) == 8 and not any(c.throttled for c in fake.calls)
    assert fake.most_in_a_second("us-east-1") <= 2


def test_check_config_asks_lookup_events_once_per_region_and_names_the_missing_permission(
    fake: FakeCloudTrail,
) -> None:
    from bot.activity.checks import lookup_checks
    from tests.support.cloudtrail import client_factory

    ok = lookup_checks(client_factory(fake), ("us-east-1", "eu-west-1"))
    assert [c.line for c in ok] == [
        "ok   cloudtrail us-east-1: activity reports can read its event history",
        "ok   cloudtrail eu-west-1: activity reports can read its event history",
    ]
    fake.denied = True
    [refused] = lookup_checks(client_factory(fake), ("us-east-1",))
    assert refused.line.startswith("FAIL cloudtrail us-east-1") and "allow cloudtrail:LookupEvents" in refused.line


def test_an_unknown_own_account_leaves_the_report_owed(fake: FakeCloudTrail, engine: Engine) -> None:
    from botocore.exceptions import EndpointConnectionError

    from bot.activity.lookup import Lookup
    from bot.activity.pacer import Pacer
    from tests.support.cloudtrail import client_factory

    def unreachable() -> str:
        raise EndpointConnectionError(endpoint_url="https://sts.amazonaws.com")

    lookup = Lookup(client_factory(fake), Pacer(engine), home=unreachable, regions=("us-east-1",), max_pages=5)
    with pytest.raises(Unavailable, match="STS cannot say"):
        lookup.read(group_grant(), WINDOW)
    assert fake.calls == []


REPLICA = """
import sys
from datetime import datetime
from bot.activity.attribution import Grant
from bot.activity.lookup import Window
from bot.store.db import make_engine
from bot.testing.fake_cloudtrail import FakeCloudTrail
from tests.support.cloudtrail import lookup_on

url, endpoint, user, start, end = sys.argv[1:]
grant = Grant("iam_group", user, "arn:aws:iam::123456789012:user/" + user, "deploy-admins", None)
window = Window(datetime.fromisoformat(start), datetime.fromisoformat(end))
calls, _, _ = lookup_on(FakeCloudTrail(url=endpoint), make_engine(url)).read(grant, window)
print(len(calls))
"""


@pytest.mark.postgres
def test_rate_limits_hold_with_two_replica_processes(fake: FakeCloudTrail, database_url: str) -> None:
    import subprocess
    import sys
    from pathlib import Path

    for user in ("alice", "bob"):
        who = iam_user(user)
        fake.add("us-east-1", *[event("ListBuckets", "s3.amazonaws.com", minutes(T0, i / 10), who) for i in range(150)])
    root = Path(__file__).resolve().parents[2]
    span = [WINDOW.start.isoformat(), WINDOW.end.isoformat()]
    replicas = [  # two processes, each with its own pool and pacer, one database
        subprocess.Popen(
            [sys.executable, "-c", REPLICA, database_url, fake.url, user, *span],
            cwd=root,
            stdout=subprocess.PIPE,
            text=True,
        )
        for user in ("alice", "bob")
    ]
    found = [int(replica.communicate(timeout=120)[0].strip()) for replica in replicas]

    assert found == [150, 150]
    assert len(fake.calls) == 6 and not any(c.throttled for c in fake.calls)
    assert fake.most_in_a_second("us-east-1") <= 2
