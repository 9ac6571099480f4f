"""Activity reports across accounts: the catalog's `accounts` read through the roles the bot assumes there.

moto gives the bot credentials in the member account (sts:AssumeRole into 222222222222, as in AWS); the fake
CloudTrail tells the accounts apart by those credentials (it asks moto whose access key signed each call), so a
lookup only finds an account's events when it is made as that account.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from bot.activity.attribution import Grant
from bot.activity.checks import lookup_checks, member_lookup_checks
from bot.activity.lookup import Unavailable, Window
from bot.activity.summary import summarize
from bot.activity.wiring import member_trails
from bot.aws.clients import AwsClients
from bot.catalog import MemberAccount
from bot.cli import main
from bot.store.activity_tables import CloudTrailPace
from bot.store.db import make_engine, session_scope
from bot.testing.fake_cloudtrail import FakeCloudTrail, assumed_role, event, iam_user, running
from bot.wiring import in_accounts
from tests.conftest import Bot
from tests.support import iam_policy
from tests.support.aws import ACCOUNT, World
from tests.support.cloudtrail import client_factory, lookup_on, minutes, moto_account_of
from tests.support.member import DOCS, ELSEWHERE, EXTERNAL_ID, MEMBER, MEMBER_ROLE, accounts_yaml, seed_member

T0 = datetime(2026, 12, 8, 1, 0, tzinfo=UTC)
WINDOW = Window(T0, T0 + timedelta(hours=4))
ALICE_ARN = f"arn:aws:iam::{ACCOUNT}:user/alice"
LISTED = {MEMBER: MemberAccount(role_arn=MEMBER_ROLE, external_id=EXTERNAL_ID)}
DEPLOY = f"arn:aws:iam::{MEMBER}:role/deploy"


@pytest.fixture(scope="module")
def _served() -> Iterator[FakeCloudTrail]:
    with running() as fake:
        yield fake


@pytest.fixture
def fake(_served: FakeCloudTrail, world: World, monkeypatch: pytest.MonkeyPatch) -> FakeCloudTrail:
    """The fake, on moto's accounts; the member account seeded in moto; boto3's CloudTrail clients on the fake."""
    _served.reset()
    _served.account_of = moto_account_of()
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDTRAIL", _served.url)
    seed_member()
    return _served


def elsewhere() -> Callable[[str, str], Any]:
    """CloudTrail in the listed member account, as the role the bot assumes there (what the running bot uses)."""
    return member_trails(in_accounts(AwsClients.create(), LISTED).members)


def assume_role_of(user: str, role: str, key: str, at: datetime) -> dict[str, Any]:
    """The caller's account's copy of a cross-account AssumeRole (IAM User Guide, "Logging IAM and AWS STS API
    calls with AWS CloudTrail", "Example cross-account AWS STS API events in CloudTrail log files")."""
    return event(
        "AssumeRole",
        "sts.amazonaws.com",
        at,
        iam_user(user),
        request={"roleArn": role, "roleSessionName": f"{user}-deploy", "sourceIdentity": user},
        response={"credentials": {"accessKeyId": key}, "sourceIdentity": user},
    )


def pace_rows(engine: Engine) -> set[tuple[str, str]]:
    with session_scope(engine) as session:
        return {(row.account, row.region) for row in session.exec(select(CloudTrailPace)).all()}


def test_a_role_in_a_listed_account_is_assumed_here_and_its_session_read_there(
    fake: FakeCloudTrail, engine: Engine
) -> None:
    fake.add("us-east-1", assume_role_of("alice", DEPLOY, "ASIAALICEDEPLOY00001", minutes(T0, 1)))
    session = assumed_role("deploy", "alice-deploy", "ASIAALICEDEPLOY00001", account=MEMBER, source_identity="alice")
    # The role account's copy of the AssumeRole names only the caller's account (type AWSAccount): not counted.
    role_side = event("AssumeRole", "sts.amazonaws.com", minutes(T0, 1), {"type": "AWSAccount", "accountId": ACCOUNT})
    fake.add(
        "us-east-1",
        role_side,
        event("DescribeInstances", "ec2.amazonaws.com", minutes(T0, 2), session),
        event("StopInstances", "ec2.amazonaws.com", minutes(T0, 3), session, read_only=False),
        account=MEMBER,
    )
    # The same key's events seeded in the bot's account would be found only by a lookup made there.
    fake.add("us-east-1", event("ListBuckets", "s3.amazonaws.com", minutes(T0, 4), session))

    grant = Grant("iam_role", "alice", ALICE_ARN, DEPLOY, None)
    calls, reading, coverage = lookup_on(fake, engine, elsewhere=elsewhere()).read(grant, WINDOW)
    body = summarize(calls, reading, coverage)

    assert sorted(c.name for c in calls) == ["AssumeRole", "DescribeInstances", "StopInstances"]
    assert body["writes"] == 1 and body["not_read"] == []
    followed = [c for c in fake.calls if c.attribute == ("AccessKeyId", "ASIAALICEDEPLOY00001")]
    assert followed and {c.account for c in followed} == {MEMBER}
    assert {c.account for c in fake.calls if c.attribute == ("Username", "alice")} == {ACCOUNT}
    # The pace is kept per account and Region: the member account has its own row.
    assert pace_rows(engine) == {(ACCOUNT, "us-east-1"), (MEMBER, "us-east-1")}


def test_a_role_in_an_account_not_listed_keeps_its_sessions_under_not_read(
    fake: FakeCloudTrail, engine: Engine
) -> None:
    role = f"arn:aws:iam::{ELSEWHERE}:role/deploy"
    fake.add("us-east-1", assume_role_of("alice", role, "ASIAALICEELSEWHERE01", minutes(T0, 1)))

    grant = Grant("iam_role", "alice", ALICE_ARN, role, None)
    calls, reading, _ = lookup_on(fake, engine, elsewhere=elsewhere()).read(grant, WINDOW)

    assert [c.name for c in calls] == ["AssumeRole"]  # her AssumeRole, read at home; the session is not
    assert reading.not_read == [
        f"account {ELSEWHERE} (not listed under the catalog's `accounts`: the bot has no role there to read its "
        "CloudTrail)"
    ]
    assert {c.account for c in fake.calls} == {ACCOUNT}


def test_a_permission_set_is_read_in_each_granted_account_that_is_listed(fake: FakeCloudTrail, engine: Engine) -> None:
    def sso(account: str, key: str) -> dict[str, Any]:
        return assumed_role("AWSReservedSSO_ProdAdmin_0123456789abcdef", "alice@example.com", key, account=account)

    home = sso(ACCOUNT, "ASIASSOHOME000000001")
    fake.add("us-east-1", event("ListBuckets", "s3.amazonaws.com", minutes(T0, 1), home))
    fake.add(
        "us-east-1",
        event("DeleteBucket", "s3.amazonaws.com", minutes(T0, 2), sso(MEMBER, "ASIASSOMEMBER0000001"), read_only=False),
        event("ListBuckets", "s3.amazonaws.com", minutes(T0, 3), sso(MEMBER, "ASIASSOMEMBER0000001")),
        account=MEMBER,
    )
    target = f"ProdAdmin in {ACCOUNT},{MEMBER},{ELSEWHERE}"
    grant = Grant("sso_permission_set", "alice@example.com", "u-alice", target, None)

    calls, reading, coverage = lookup_on(fake, engine, elsewhere=elsewhere()).read(grant, WINDOW)
    body = summarize(calls, reading, coverage)

    assert (body["calls"], body["writes"]) == (3, 1)
    assert [note.split(" (")[0] for note in body["not_read"]] == [f"account {ELSEWHERE}"]
    assert {c.account for c in fake.calls} == {ACCOUNT, MEMBER}


def test_a_key_in_another_account_is_read_where_the_holder_called_it_refusals_included(
    fake: FakeCloudTrail, engine: Engine
) -> None:
    key = f"arn:aws:kms:us-east-1:{MEMBER}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    on_key = [{"ResourceType": "AWS::KMS::Key", "ResourceName": key}]
    alice = iam_user("alice")
    decrypt = event("Decrypt", "kms.amazonaws.com", minutes(T0, 1), alice, resources=on_key)
    refused = event("Decrypt", "kms.amazonaws.com", minutes(T0, 2), alice, resources=on_key, error="AccessDenied")
    # KMS logs a cross-account call in the caller's and the key owner's account, a refused one only in the
    # caller's (KMS Developer Guide, "Logging AWS KMS API calls with AWS CloudTrail").
    fake.add("us-east-1", decrypt, refused)
    fake.add("us-east-1", dict(decrypt, eventID="owner-copy"), account=MEMBER)

    grant = Grant("kms_key", "alice", ALICE_ARN, "member-payments", key)
    calls, reading, _ = lookup_on(fake, engine, elsewhere=elsewhere()).read(grant, WINDOW)

    assert sorted(c.error or "" for c in calls) == ["", "AccessDenied"]
    assert reading.not_read == [] and {c.account for c in fake.calls} == {ACCOUNT}


def test_a_member_role_refused_lookup_events_leaves_the_report_owed(fake: FakeCloudTrail, engine: Engine) -> None:
    fake.add("us-east-1", assume_role_of("alice", DEPLOY, "ASIAALICEDEPLOY00002", minutes(T0, 1)))
    fake.denied_in.add(MEMBER)

    grant = Grant("iam_role", "alice", ALICE_ARN, DEPLOY, None)
    with pytest.raises(Unavailable, match=f"CloudTrail {MEMBER} us-east-1: AccessDeniedException"):
        lookup_on(fake, engine, elsewhere=elsewhere()).read(grant, WINDOW)


def test_a_member_role_that_cannot_be_assumed_leaves_the_report_owed(fake: FakeCloudTrail, engine: Engine) -> None:
    from tests.integration.faults import error_response

    aws = in_accounts(AwsClients.create(), LISTED)

    def refuse(request: Any, **_: Any) -> Any:
        return error_response("sts", request.url, code="AccessDenied", status=403, message="not trusted")

    aws.sts.meta.events.register("before-send.sts.AssumeRole", refuse)
    fake.add("us-east-1", assume_role_of("alice", DEPLOY, "ASIAALICEDEPLOY00003", minutes(T0, 1)))

    grant = Grant("iam_role", "alice", ALICE_ARN, DEPLOY, None)
    with pytest.raises(Unavailable, match=f"CloudTrail {MEMBER} us-east-1: .*AssumeRole"):
        lookup_on(fake, engine, elsewhere=member_trails(aws.members)).read(grant, WINDOW)
    assert not any(c.account == MEMBER for c in fake.calls)


def test_two_replicas_reading_a_member_account_share_its_pace(fake: FakeCloudTrail, database_url: str) -> None:
    for user in ("alice", "bob"):
        key = f"ASIA{user.upper()}DEPLOY".ljust(20, "0")
        fake.add("us-east-1", assume_role_of(user, DEPLOY, key, minutes(T0, 1)))
        session = assumed_role("deploy", f"{user}-deploy", key, account=MEMBER, source_identity=user)
        fake.add(
            "us-east-1",
            *[event("GetObject", "ec2.amazonaws.com", minutes(T0, 2 + i / 10), session) for i in range(150)],
            account=MEMBER,
        )
    engines = [make_engine(database_url), make_engine(database_url)]  # two replicas: two pools, one database
    results: dict[str, int] = {}

    def replica(n: int, user: str) -> None:
        grant = Grant("iam_role", user, f"arn:aws:iam::{ACCOUNT}:user/{user}", DEPLOY, None)
        calls, _, _ = lookup_on(fake, engines[n], elsewhere=elsewhere()).read(grant, WINDOW)
        results[user] = len(calls)

    threads = [threading.Thread(target=replica, args=(n, user)) for n, user in enumerate(("alice", "bob"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for e in engines:
        e.dispose()

    assert results == {"alice": 151, "bob": 151}
    assert not any(c.throttled for c in fake.calls)
    assert len([c for c in fake.calls if c.account == MEMBER]) == 6  # three pages each, in the member account
    assert fake.most_in_a_second("us-east-1", account=MEMBER) <= 2


def test_check_config_asks_lookup_events_in_each_listed_account_as_its_role(fake: FakeCloudTrail) -> None:
    home = lookup_checks(client_factory(fake), ("us-east-1",))
    listed = member_lookup_checks(elsewhere(), [MEMBER], ("us-east-1", "eu-west-1"))
    assert [c.line for c in home + listed] == [
        "ok   cloudtrail us-east-1: activity reports can read its event history",
        f"ok   cloudtrail {MEMBER} us-east-1: activity reports can read its event history",
        f"ok   cloudtrail {MEMBER} eu-west-1: activity reports can read its event history",
    ]
    assert {(c.account, c.region) for c in fake.calls} == {
        (ACCOUNT, "us-east-1"),
        (MEMBER, "us-east-1"),
        (MEMBER, "eu-west-1"),
    }

    fake.denied_in.add(MEMBER)
    [refused] = member_lookup_checks(elsewhere(), [MEMBER], ("us-east-1",))
    assert refused.line.startswith(f"FAIL cloudtrail {MEMBER} us-east-1") and "member role's policy" in refused.line


def test_the_member_role_policy_allows_lookup_events(capsys: pytest.CaptureFixture[str]) -> None:
    assert "cloudtrail:LookupEvents" in iam_policy.allowed_actions(DOCS / "iam-policy-member.json")
    assert main(["iam-policy", "--member"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert any(s["Action"] == ["cloudtrail:LookupEvents"] for s in printed["policy"]["Statement"])


def test_accessbot_check_config_asks_lookup_events_as_each_member_role(
    fake: FakeCloudTrail, catalog_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.integration.flows import catalog_with
    from tests.integration.test_member_accounts import MEMBER_RESOURCES, check_config_lines

    text = catalog_with(MEMBER_RESOURCES) + accounts_yaml()
    _code, lines = check_config_lines(monkeypatch, capsys, catalog_file, text)
    assert f"ok   cloudtrail {MEMBER} us-east-1: activity reports can read its event history" in lines
    assert (MEMBER, "us-east-1") in {(c.account, c.region) for c in fake.calls}

    fake.denied_in.add(MEMBER)
    _code, lines = check_config_lines(monkeypatch, capsys, catalog_file, text)
    refused = next(line for line in lines if line.startswith(f"FAIL cloudtrail {MEMBER} us-east-1"))
    assert "allow cloudtrail:LookupEvents in the member role's policy" in refused
    assert "ok   cloudtrail us-east-1: activity reports can read its event history" in lines  # home still may


def test_the_running_bot_reports_a_member_role_grant_from_the_member_accounts_cloudtrail(
    fake: FakeCloudTrail, make_bot: Callable[..., Bot], catalog_file: Path
) -> None:
    from tests.integration.flows import approve, catalog_with, file_request
    from tests.integration.test_activity_reports import reported

    catalog_file.write_text(
        catalog_with(f"\n  member-deploy:\n    kind: iam_role\n    role_arn: {DEPLOY}\n    approvers: [platform]\n")
        + accounts_yaml()
    )
    bot = make_bot(accessbot_activity_delay=timedelta(0), accessbot_activity_regions="us-east-1")
    request_id = file_request(bot, "U0ALICE", "request member-deploy 1h deploying the member service")
    approve(bot, request_id)
    at = bot.wait_status(request_id, "active").activated_at
    assert at is not None
    key = "ASIAALICEDEPLOY00009"
    fake.add("us-east-1", assume_role_of("alice", DEPLOY, key, at))
    session = assumed_role("deploy", "alice-deploy", key, account=MEMBER, source_identity="alice")
    fake.add("us-east-1", event("UpdateService", "ecs.amazonaws.com", at, session, read_only=False), account=MEMBER)
    assert "Revoking" in bot.ask("U0ALICE", f"revoke #{request_id}")
    bot.wait_status(request_id, "revoked")

    row = reported(bot, request_id)

    body = json.loads(row.body or "{}")
    # Her AssumeRole (read here; read-only, as CloudTrail marks it) and the session's write (read there).
    assert (row.calls, row.writes) == (2, 1)
    assert body["not_read"] == [] and f"{MEMBER} us-east-1 AccessKeyId={key}" in " ".join(body["read"])
