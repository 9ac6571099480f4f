"""Issue 20's promise on the AWS model: nobody holds a usable session of a role after the end plus the margin.

The bot's RoleGranter writes through the model in front of moto, each change stamped with a simulated clock;
IAM applies each change PROPAGATION later (see ChangeLog). Then someone who held the role before the end
replays the timeline, re-assuming the role every 100 ms by role chaining and straight from their IAM user
(see Holder). No sleeping: the timeline is the recorded change log.

Before issue 20 points 1 and 2 these failed: the deny's cutoff was the moment of the revoke, so a session
chained while the deny propagated was issued after the cutoff and renewed itself for ever; and the deny was
lifted after the role's MaxSessionDuration, while a console session lasts up to 12 hours.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from bot.aws.granters.base import GrantSpec
from bot.aws.granters.role import RoleGranter
from bot.aws.granters.role_denies import session_deny
from tests.support.aws import ACCOUNT, World
from tests.support.aws_model.holder import TICK, Holder
from tests.support.aws_model.proxy import AwsModelProxy
from tests.support.aws_model.sessions import CONSOLE_LIMIT, Sessions, User, trust_the_account_root

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
PROPAGATION = timedelta(seconds=60)  # "It might take a few minutes for policy updates to take effect"
MARGIN = timedelta(minutes=5)  # issue 20 point 1: the propagation margin's default
ADMIN = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


class Clock:
    """The simulated time both the bot and the model's change log read."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def model(world: World, moto_url: str, clock: Clock) -> Iterator[AwsModelProxy]:
    # The role's own permissions allow sts:AssumeRole on itself (as AdministratorAccess does) and its trust
    # names the account root, as check-config wants: its sessions can re-assume it (role chaining).
    world.iam.put_role_policy(RoleName="prod-readonly", PolicyName="admin", PolicyDocument=json.dumps(ADMIN))
    trust_the_account_root(world.iam, "prod-readonly")
    proxy = AwsModelProxy(moto_url, clock=clock, delay=PROPAGATION).start()
    proxy.log.baseline(world.iam)
    with proxy.endpoints():
        yield proxy
    proxy.stop()


def granter(clock: Clock) -> RoleGranter:
    """The bot's granter, writing through the model (its IAM client is built inside model.endpoints())."""
    return RoleGranter(boto3.client("iam"), clock=clock, margin=MARGIN)


def spec(world: World, end: datetime) -> GrantSpec:
    return GrantSpec(1, "alice", f"arn:aws:iam::{ACCOUNT}:user/alice", world.role_arn, end)


def end_at(role: RoleGranter, clock: Clock, grant: GrantSpec, at: datetime) -> datetime | None:
    """The bot ends the grant at `at`, and lifts the deny when it says; the lift's time."""
    clock.now = at
    ended = role.revoke(grant, grant.name)
    if ended.lift_at is not None:
        clock.now = ended.lift_at
        role.lift(replace(grant, denied_before=ended.cutoff))
    return ended.lift_at


def held_after(holder: Holder, end: datetime) -> datetime | None:
    """Replay the holder from just before the end to past end + margin; the last tick it held something."""
    holder.keep_trying(end - 2 * TICK * 10, end + MARGIN + timedelta(minutes=2))
    last = holder.last_usable()
    return last if last is not None and last >= end + MARGIN else None


def test_at_expiry_a_session_renewed_every_100_ms_is_useless_after_the_margin(
    world: World, model: AwsModelProxy, clock: Clock
) -> None:
    end = T0 + timedelta(hours=1)
    role, grant = granter(clock), spec(world, end)
    role.grant(grant)
    end_at(role, clock, grant, end)

    holder = Holder(Sessions(model.log), User("alice"), world.role_arn)
    holder.start(end - timedelta(minutes=30))
    assert held_after(holder, end) is None


def test_after_an_early_revoke_nothing_is_usable_after_the_margin(
    world: World, model: AwsModelProxy, clock: Clock
) -> None:
    end, revoked = T0 + timedelta(hours=4), T0 + timedelta(hours=1)
    role, grant = granter(clock), spec(world, end)
    role.grant(grant)
    end_at(role, clock, grant, revoked)

    holder = Holder(Sessions(model.log), User("alice"), world.role_arn)
    holder.start(revoked - timedelta(minutes=30))
    assert held_after(holder, revoked) is None


def test_a_revoke_during_a_slow_grant_leaves_nothing_usable_after_the_margin(
    world: World, model: AwsModelProxy, clock: Clock
) -> None:
    # AWS applied the grant's PutUserPolicy 2 s before the revoke, but its answer was still on the way.
    end, revoked = T0 + timedelta(hours=4), T0 + timedelta(hours=1)
    role, grant = granter(clock), spec(world, end)
    clock.now = revoked - timedelta(seconds=2)
    role.grant(grant)
    end_at(role, clock, grant, revoked)

    holder = Holder(Sessions(model.log), User("alice"), world.role_arn)  # no session before: it tries from the user
    assert held_after(holder, revoked) is None


def test_a_12_hour_console_session_stays_denied_until_it_expires(
    world: World, model: AwsModelProxy, clock: Clock
) -> None:
    end = T0 + timedelta(hours=1)
    role, grant = granter(clock), spec(world, end)
    role.grant(grant)
    end_at(role, clock, grant, end)

    sessions = Sessions(model.log)
    console = sessions.assume_role(User("alice"), world.role_arn, "alice", end - timedelta(minutes=1), CONSOLE_LIMIT)
    assert console is not None and console.expires_at > end + timedelta(hours=11)
    at, usable = end + MARGIN, []
    while at < console.expires_at:
        if sessions.usable(console, at):
            usable.append(at)
        at += timedelta(minutes=1)
    assert usable == []


def test_the_holder_keeps_a_role_while_nothing_ends_it(world: World, model: AwsModelProxy, clock: Clock) -> None:
    """The scenario can fail: without any end, re-assuming every 100 ms keeps a usable session past the margin."""
    end = T0 + timedelta(hours=4)
    granter(clock).grant(spec(world, end))

    holder = Holder(Sessions(model.log), User("alice"), world.role_arn)
    holder.start(T0 + timedelta(hours=1))
    assert held_after(holder, T0 + timedelta(hours=1)) is not None


def test_a_deny_written_first_with_the_margin_leaves_nothing_usable(
    world: World, model: AwsModelProxy, clock: Clock
) -> None:
    """The scenario can pass: issue 20's order by hand (deny first, cutoff end + margin, then delete the allow)."""
    end, revoked = T0 + timedelta(hours=4), T0 + timedelta(hours=1)
    grant = spec(world, end)
    granter(clock).grant(grant)
    iam = boto3.client("iam")
    clock.now = revoked
    deny = session_deny("alice", revoked + MARGIN)
    iam.put_role_policy(RoleName="prod-readonly", PolicyName=grant.name, PolicyDocument=json.dumps(deny))
    iam.delete_user_policy(UserName="alice", PolicyName=grant.name)

    holder = Holder(Sessions(model.log), User("alice"), world.role_arn)
    holder.start(revoked - timedelta(minutes=30))
    assert held_after(holder, revoked) is None
    assert holder.last_usable() == revoked + PROPAGATION - TICK  # usable until the deny took effect, not after
