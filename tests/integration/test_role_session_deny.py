"""A role's session deny against moto (with IAM's quotas modelled in front of it): its order, cutoff, lift,
the new grant that takes it over, and a busy role's capacity. The RoleGranter runs in-process on a test clock."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import boto3
import pytest
from sqlalchemy.engine import Engine

from bot.aws.errors import AwsError
from bot.aws.granters import GrantSpec, RoleGranter, session_deny
from bot.aws.granters.role_denies import INLINE_NAME, LIFT_AFTER, parse
from bot.aws.granters.role_store import CAPACITY_CODE, PATH
from bot.store.db import hold_lock
from tests.integration.faults import inject
from tests.support.aws import ACCOUNT, World
from tests.support.aws_model.outcome import policies_now, still_held
from tests.support.iam_quotas import IamQuotas

ROLE = "prod-readonly"
MARGIN = timedelta(minutes=5)
T = datetime(2026, 12, 8, 3, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def spec(world: World, user: str = "alice", *, request_id: int = 1, expires_at: datetime = T, **more: Any) -> GrantSpec:
    return GrantSpec(
        request_id=request_id,
        iam_user=user,
        iam_user_arn=f"arn:aws:iam::{ACCOUNT}:user/{user}",
        target=world.role_arn,
        expires_at=expires_at,
        **more,
    )


def denied(world: World) -> dict[str, datetime]:
    """Every person the role denies, read straight from moto: inline and the bot's managed policies."""
    found: dict[str, datetime] = {}
    if INLINE_NAME in world.iam.list_role_policies(RoleName=ROLE)["PolicyNames"]:
        found |= parse(world.iam.get_role_policy(RoleName=ROLE, PolicyName=INLINE_NAME)["PolicyDocument"])
    for attached in world.iam.list_attached_role_policies(RoleName=ROLE, PathPrefix=PATH)["AttachedPolicies"]:
        version = world.iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]["DefaultVersionId"]
        document = world.iam.get_policy_version(PolicyArn=attached["PolicyArn"], VersionId=version)
        for user, cutoff in parse(document["PolicyVersion"]["Document"]).items():
            assert user not in found, "one statement per person"
            found[user] = cutoff
    return found


@pytest.fixture
def clock() -> Clock:
    return Clock(T)


@pytest.fixture
def iam(world: World) -> Any:
    return boto3.client("iam")


@pytest.fixture
def quotas(iam: Any, world: World) -> IamQuotas:
    return IamQuotas(iam, world.iam)


@pytest.fixture
def granter(iam: Any, clock: Clock, quotas: IamQuotas) -> RoleGranter:
    return RoleGranter(iam, clock, margin=MARGIN)


def test_the_deny_is_written_before_the_allow_is_deleted(
    granter: RoleGranter, world: World, clock: Clock, quotas: IamQuotas
) -> None:
    granter.grant(spec(world, expires_at=T + timedelta(hours=1)))
    clock.now = T + timedelta(minutes=20, microseconds=1)  # an early revoke
    quotas.calls.clear()
    ended = granter.revoke(spec(world, expires_at=T + timedelta(hours=1)), None)
    assert quotas.calls.index("PutRolePolicy") < quotas.calls.index("DeleteUserPolicy")
    assert world.iam.list_user_policies(UserName="alice")["PolicyNames"] == []
    # The later of the end and the write (here: now), plus the margin, rounded up to the second.
    assert ended.cutoff == T + timedelta(minutes=25, seconds=1)
    assert denied(world) == {"alice": ended.cutoff}
    assert ended.lift_at == ended.cutoff + LIFT_AFTER == ended.cutoff + timedelta(hours=12)


def test_a_late_bot_denies_every_session_issued_until_it_ends_the_grant_plus_the_margin(
    granter: RoleGranter, world: World, clock: Clock
) -> None:
    granter.grant(spec(world))
    clock.now = T + timedelta(hours=2)  # the expiry was at T; the bot was down until now
    ended = granter.revoke(spec(world), None)
    assert ended.cutoff == T + timedelta(hours=2) + MARGIN
    assert denied(world) == {"alice": T + timedelta(hours=2) + MARGIN}


def test_a_deletion_that_returns_late_moves_the_cutoff_past_it(
    granter: RoleGranter, iam: Any, world: World, clock: Clock
) -> None:
    granter.grant(spec(world))

    def slow(**_kwargs: Any) -> None:
        clock.now += timedelta(seconds=40)  # AWS answered the deletion 40 s after the deny was written

    iam.meta.events.register("before-send.iam.DeleteUserPolicy", slow)
    ended = granter.revoke(spec(world), None)
    assert ended.cutoff == T + timedelta(seconds=40) + MARGIN
    assert denied(world) == {"alice": ended.cutoff}


def test_a_new_grant_of_the_same_role_takes_over_the_person_s_deny(
    granter: RoleGranter, world: World, clock: Clock
) -> None:
    for user in ("alice", "bob"):
        granter.grant(spec(world, user))
        granter.revoke(spec(world, user), None)
    assert set(denied(world)) == {"alice", "bob"}
    clock.now = T + timedelta(minutes=1)  # inside alice's cutoff: her deny would kill the new grant's sessions
    granter.grant(spec(world, request_id=2, expires_at=T + timedelta(hours=1)))
    assert set(denied(world)) == {"bob"}
    assert world.iam.list_user_policies(UserName="alice")["PolicyNames"] == ["accessbot-2"]
    # Its own end covers every session again, from before the first end too.
    clock.now = T + timedelta(minutes=30)
    ended = granter.revoke(spec(world, request_id=2, expires_at=T + timedelta(hours=1)), None)
    assert denied(world)["alice"] == ended.cutoff == T + timedelta(minutes=30) + MARGIN


def test_a_lift_leaves_a_later_end_s_deny_and_removes_its_own(granter: RoleGranter, world: World, clock: Clock) -> None:
    first = granter.revoke(spec(world), None)
    clock.now = T + timedelta(hours=1)
    second = granter.revoke(spec(world, request_id=2), None)
    assert first.cutoff is not None and second.cutoff is not None and second.cutoff > first.cutoff
    assert denied(world) == {"alice": second.cutoff}
    granter.lift(spec(world, denied_before=first.cutoff))
    assert denied(world) == {"alice": second.cutoff}
    granter.lift(spec(world, request_id=2, denied_before=second.cutoff))
    assert denied(world) == {}
    assert INLINE_NAME not in world.iam.list_role_policies(RoleName=ROLE)["PolicyNames"]


def test_a_busy_role_keeps_every_person_denied_through_500_ends_of_100_people_in_12_hours(
    granter: RoleGranter, world: World, clock: Clock, quotas: IamQuotas
) -> None:
    last: dict[str, datetime] = {}
    for n in range(500):
        clock.now = T + timedelta(seconds=80 * n)  # 500 ends within 11.1 hours: none may be dropped yet
        user = f"person.{(n * 37) % 100:03d}"  # 100 people, in a scattered order
        ended = granter.revoke(spec(world, user, request_id=n + 1, expires_at=clock.now), None)
        assert ended.cutoff is not None
        last[user] = ended.cutoff
    assert denied(world) == last
    # As AWS decides it on what IAM holds (inline and every managed document): each person's session issued
    # just before their cutoff is denied, another person's session is not.
    state, now = policies_now(world.iam), clock.now + timedelta(minutes=10)
    assert [
        p for u, c in last.items() for p in still_held(state, world.role_arn, u, c - timedelta(seconds=1), now)
    ] == []
    assert still_held(state, world.role_arn, "nobody.ended", T, now) != []
    attached = world.iam.list_attached_role_policies(RoleName=ROLE)["AttachedPolicies"]
    assert 1 <= len(attached) <= 10
    for policy in attached:  # updated in place: within IAM's 5 versions
        assert len(world.iam.list_policy_versions(PolicyArn=policy["PolicyArn"])["Versions"]) <= 5
    assert "PutRolePolicy" not in quotas.refused  # the bot packs within the quotas by itself

    # Each person's last end lifts their deny (an earlier end's lift leaves it: see the test above); then
    # nothing of the bot's is left, whichever document emptied first.
    for n, user in enumerate(sorted(last, reverse=True)):
        granter.lift(spec(world, user, request_id=n + 1, denied_before=last[user]))
    assert denied(world) == {}
    assert world.iam.list_attached_role_policies(RoleName=ROLE)["AttachedPolicies"] == []
    assert [p for p in world.iam.list_policies(Scope="Local")["Policies"] if p["Path"] == PATH] == []


def test_a_role_with_no_room_left_refuses_with_the_role_the_figures_and_the_fix(
    iam: Any, world: World, clock: Clock
) -> None:
    IamQuotas(iam, world.iam, attached_per_role=1)
    granter = RoleGranter(iam, clock, margin=MARGIN)
    # The role's own inline policy leaves room for a few denies only; one managed policy may be attached.
    buckets = [f"arn:aws:s3:::bucket-{n:04d}/*" for n in range(300)]
    own = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": buckets}]}
    world.iam.put_role_policy(RoleName=ROLE, PolicyName="own", PolicyDocument=json.dumps(own))
    users = [f"person.{n:03d}" for n in range(60)]
    refused = []
    for user in users:
        try:
            granter.revoke(spec(world, user), None)
        except AwsError as exc:
            refused.append(user)
            error = exc
    assert refused and refused == users[users.index(refused[0]) :]  # once full, every further end is refused
    assert error.code == CAPACITY_CODE
    assert world.role_arn in str(error) and "10,240" in str(error) and "Fix:" in str(error)
    assert set(denied(world)) == set(users) - set(refused)  # everyone before is still denied
    # The refused person's allow is gone even so: no new session at least (the end stays owed, and alerts).
    granter.grant(spec(world))
    with pytest.raises(AwsError):
        granter.revoke(spec(world), None)
    assert world.iam.list_user_policies(UserName="alice")["PolicyNames"] == []


@pytest.mark.both_databases
def test_ends_on_one_role_from_two_replicas_are_merged_one_after_the_other(
    world: World, clock: Clock, engine: Engine
) -> None:
    # Two granters with clients of their own, as two replicas have; the role's lock is held in the database.
    first, second = boto3.client("iam"), boto3.client("iam")
    a = RoleGranter(first, clock, margin=MARGIN, lock=partial(hold_lock, engine))
    b = RoleGranter(second, clock, margin=MARGIN, lock=partial(hold_lock, engine))
    order: list[str] = []
    writing, go_on = threading.Event(), threading.Event()

    def held(**_kwargs: Any) -> None:
        order.append("a writes")
        writing.set()
        assert go_on.wait(20)

    first.meta.events.register("before-send.iam.PutRolePolicy", held)
    second.meta.events.register("before-send.iam.ListRolePolicies", lambda **_kw: order.append("b reads"))
    ending = threading.Thread(target=a.revoke, args=(spec(world, "alice"), None))
    ending.start()
    assert writing.wait(20)  # a has read the role and is about to write it
    other = threading.Thread(target=b.revoke, args=(spec(world, "bob"), None))
    other.start()
    other.join(0.5)
    assert other.is_alive() and order == ["a writes"]  # b waits for the role's lock before it reads
    go_on.set()
    ending.join(20)
    other.join(20)
    assert order == ["a writes", "b reads"]
    assert set(denied(world)) == {"alice", "bob"}  # neither write lost the other's statement


def test_a_refused_deny_still_removes_the_allow_and_the_retry_denies_past_it(
    granter: RoleGranter, iam: Any, world: World, clock: Clock
) -> None:
    granter.grant(spec(world))
    refusal = inject(iam, "PutRolePolicy", code="AccessDenied", status=403)
    with pytest.raises(AwsError):
        granter.revoke(spec(world), None)
    assert world.iam.list_user_policies(UserName="alice")["PolicyNames"] == []  # no new session at least
    assert denied(world) == {}
    refusal.stop()
    clock.now = T + timedelta(minutes=1)  # the end stays owed: its retry
    ended = granter.revoke(spec(world), None)
    assert ended.cutoff == T + timedelta(minutes=1) + MARGIN  # past the deletion, plus the margin
    assert denied(world) == {"alice": ended.cutoff}


def test_a_deny_written_before_cutoffs_were_recorded_is_lifted_as_it_was_written(
    granter: RoleGranter, world: World
) -> None:
    # An end from before one statement per person: its own inline policy named after the request.
    legacy = json.dumps(session_deny("alice", T))
    world.iam.put_role_policy(RoleName=ROLE, PolicyName="accessbot-7", PolicyDocument=legacy)
    granter.revoke(spec(world, "bob"), None)
    granter.lift(spec(world, request_id=7))  # no cutoff recorded
    assert world.iam.list_role_policies(RoleName=ROLE)["PolicyNames"] == [INLINE_NAME]
    assert set(denied(world)) == {"bob"}
