"""The model of AWS in front of moto: the change log and its delayed view, the simulator through boto3, sessions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from bot.aws.granters.base import GrantSpec
from bot.aws.granters.role import role_policy
from bot.aws.granters.role_denies import session_deny
from tests.support.aws import ACCOUNT, World
from tests.support.aws_model.outcome import policies_now, still_held
from tests.support.aws_model.proxy import AwsModelProxy
from tests.support.aws_model.sessions import Sessions, User, trust_the_account_root

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
ADMIN = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})


class Clock:
    """A settable clock the proxy stamps accepted changes with."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def model(world: World, moto_url: str, clock: Clock) -> Iterator[AwsModelProxy]:
    trust_the_account_root(world.iam, "prod-readonly")
    proxy = AwsModelProxy(moto_url, clock=clock).start()
    proxy.log.baseline(world.iam)
    with proxy.endpoints():
        yield proxy
    proxy.stop()


def spec(world: World, user: str = "alice", *, mfa: bool = False, hours: int = 1) -> GrantSpec:
    return GrantSpec(1, user, f"arn:aws:iam::{ACCOUNT}:user/{user}", world.role_arn, T0 + timedelta(hours=hours), mfa)


def test_a_change_takes_effect_only_after_the_delay(world: World, model: AwsModelProxy, clock: Clock) -> None:
    iam = boto3.client("iam")
    model.log.delay = timedelta(seconds=30)
    iam.put_user_policy(UserName="alice", PolicyName="p", PolicyDocument=json.dumps(role_policy(spec(world))))
    clock.now = T0 + timedelta(seconds=10)
    iam.delete_user_policy(UserName="alice", PolicyName="p")

    assert [c.operation for c in model.log.changes if c.at >= T0] == ["PutUserPolicy", "DeleteUserPolicy"]
    assert model.log.in_effect(T0 + timedelta(seconds=29)).user_policies("alice") == []
    assert model.log.in_effect(T0 + timedelta(seconds=30)).user_policies("alice") == [role_policy(spec(world))]
    assert model.log.in_effect(T0 + timedelta(seconds=40)).user_policies("alice") == []


def test_managed_policies_follow_versions_and_attachments(world: World, model: AwsModelProxy) -> None:
    iam = boto3.client("iam")
    deny = session_deny("alice", T0)
    arn = iam.create_policy(PolicyName="d", Path="/accessbot/", PolicyDocument=json.dumps(deny))["Policy"]["Arn"]
    iam.attach_role_policy(RoleName="prod-readonly", PolicyArn=arn)
    assert model.log.latest().role_policies("prod-readonly") == [deny]
    later = session_deny("alice", T0 + timedelta(hours=1))
    iam.create_policy_version(PolicyArn=arn, PolicyDocument=json.dumps(later), SetAsDefault=True)
    assert model.log.latest().role_policies("prod-readonly") == [later]
    iam.detach_role_policy(RoleName="prod-readonly", PolicyArn=arn)
    assert model.log.latest().role_policies("prod-readonly") == []


def context(**entries: tuple[str, str]) -> list[dict[str, Any]]:
    return [
        {"ContextKeyName": name.replace("__", ":"), "ContextKeyValues": [value], "ContextKeyType": kind}
        for name, (value, kind) in entries.items()
    ]


def test_the_simulator_answers_boto3_in_aws_shape(world: World, model: AwsModelProxy) -> None:
    iam = boto3.client("iam")
    allow = json.dumps(role_policy(spec(world, mfa=True)))

    def decide(source: str, at: datetime, mfa: str = "true") -> str:
        answer = iam.simulate_custom_policy(
            PolicyInputList=[allow],
            ActionNames=["sts:AssumeRole", "sts:SetSourceIdentity"],
            ResourceArns=[world.role_arn],
            ContextEntries=context(
                sts__SourceIdentity=(source, "string"),
                aws__CurrentTime=(at.strftime("%Y-%m-%dT%H:%M:%SZ"), "date"),
                aws__MultiFactorAuthPresent=(mfa, "boolean"),
            ),
        )
        results = answer["EvaluationResults"]
        assert [r["EvalActionName"] for r in results] == ["sts:AssumeRole", "sts:SetSourceIdentity"]
        assert all(r["MissingContextValues"] == [] for r in results)
        return "/".join(sorted({r["EvalDecision"] for r in results}))

    assert decide("alice", T0) == "allowed"
    assert decide("mallory", T0) == "implicitDeny"
    assert decide("alice", T0 + timedelta(hours=2)) == "implicitDeny"
    assert decide("alice", T0, mfa="false") == "implicitDeny"


def test_simulate_principal_policy_adds_the_input_to_the_role_policies(world: World, model: AwsModelProxy) -> None:
    iam = boto3.client("iam")
    iam.put_role_policy(RoleName="prod-readonly", PolicyName="admin", PolicyDocument=ADMIN)

    def decide(issued: datetime) -> str:
        return str(
            iam.simulate_principal_policy(
                PolicySourceArn=world.role_arn,
                PolicyInputList=[json.dumps(session_deny("alice", T0))],
                ActionNames=["s3:ListAllMyBuckets"],
                ContextEntries=context(
                    aws__SourceIdentity=("alice", "string"),
                    aws__TokenIssueTime=(issued.strftime("%Y-%m-%dT%H:%M:%SZ"), "date"),
                ),
            )["EvaluationResults"][0]["EvalDecision"]
        )

    assert decide(T0 - timedelta(seconds=1)) == "explicitDeny"
    assert decide(T0) == "allowed"


def test_a_chained_session_keeps_its_source_identity_and_a_deny_reaches_it(
    world: World, model: AwsModelProxy, clock: Clock
) -> None:
    iam = boto3.client("iam")
    iam.put_role_policy(RoleName="prod-readonly", PolicyName="admin", PolicyDocument=ADMIN)
    iam.put_user_policy(UserName="alice", PolicyName="grant", PolicyDocument=json.dumps(role_policy(spec(world))))
    sessions = Sessions(model.log)
    alice = User("alice", mfa=False)

    assert sessions.assume_role(alice, world.role_arn, "mallory", T0) is None
    assert sessions.assume_role(User("bob"), world.role_arn, "bob", T0) is None
    first = sessions.assume_role(alice, world.role_arn, "alice", T0)
    assert first is not None and sessions.usable(first, T0)
    # The role's own AdministratorAccess-like policy lets its session assume the role again: role chaining.
    chained = sessions.assume_role(first, world.role_arn, None, T0 + timedelta(minutes=50))
    assert chained is not None and chained.source_identity == "alice"
    assert chained.expires_at == T0 + timedelta(minutes=110)
    assert sessions.assume_role(first, world.role_arn, "bob", T0 + timedelta(minutes=50)) is None
    assert sessions.assume_role(alice, world.role_arn, "alice", T0 + timedelta(hours=1)) is None  # the allow expired

    clock.now = T0 + timedelta(hours=1)
    iam.put_role_policy(
        RoleName="prod-readonly", PolicyName="end", PolicyDocument=json.dumps(session_deny("alice", clock.now))
    )
    after = T0 + timedelta(hours=1, seconds=1)
    assert not sessions.usable(chained, after)
    assert sessions.assume_role(chained, world.role_arn, None, after) is None


def test_still_held_names_what_would_still_work(world: World, model: AwsModelProxy) -> None:
    iam = boto3.client("iam")
    iam.put_role_policy(RoleName="prod-readonly", PolicyName="admin", PolicyDocument=ADMIN)
    iam.put_user_policy(UserName="alice", PolicyName="grant", PolicyDocument=json.dumps(role_policy(spec(world))))
    now = T0 + timedelta(minutes=30)

    assert still_held(policies_now(world.iam), world.role_arn, "alice", T0, now) == [
        f"alice may still assume {world.role_arn}",
        "a session of alice issued at 2026-01-01T12:00:00Z is not denied on prod-readonly",
    ]
    iam.delete_user_policy(UserName="alice", PolicyName="grant")
    deny = json.dumps(session_deny("alice", now))
    iam.put_role_policy(RoleName="prod-readonly", PolicyName="end", PolicyDocument=deny)
    assert still_held(policies_now(world.iam), world.role_arn, "alice", T0, now) == []
    assert still_held(policies_now(world.iam), world.role_arn, "alice", now, now) == [
        "a session of alice issued at 2026-01-01T12:30:00Z is not denied on prod-readonly"
    ]
