"""Ending access: on time and exactly once (across a restart and two replicas), early, shared membership, and
AWS refusing the revoke (retried with backoff, alerted, never dropped), a role's session deny lifted later."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.aws.errors import AwsError
from bot.aws.granters import GrantSpec
from bot.errors import UserError
from bot.testing.granter import ProcessDied
from bot.testing.inprocess import InProcess


def die(_spec: GrantSpec) -> None:
    raise ProcessDied


def granted(bot: InProcess, resource: str = "deploy-admins", duration: str = "1h", user: str = "U0ALICE") -> int:
    request_id = bot.file(user, resource, duration, "fix the deploy")
    assert bot.approve(request_id, "U0BOB").status == "active"
    return request_id


def test_a_grant_that_fell_due_while_the_bot_was_down_is_revoked_once_at_restart(bot: InProcess) -> None:
    request_id = granted(bot, duration="5m")
    bot.clock.advance(timedelta(hours=3))  # nobody runs: the grant is long overdue
    assert bot.granter("iam_group").has("alice", "deploy-admins"), "nobody may revoke while the bot is down"
    bot.restart()
    bot.sweep()  # the catch-up at start, not a sweep interval later
    row = bot.row(request_id)
    assert row.status == "expired" and row.ended_at == bot.clock.now()
    assert not bot.granter("iam_group").has("alice", "deploy-admins")
    bot.advance(timedelta(hours=1))
    assert [m[1] for m in bot.moves(request_id)].count("expired") == 1
    assert bot.granter("iam_group").called("revoke") == [request_id]


def test_two_replicas_sweeping_the_same_moment_revoke_once(bot: InProcess) -> None:
    ids = [granted(bot, duration="30m") for _ in range(3)]
    other = bot.replica("replica-2")
    bot.clock.advance(timedelta(minutes=30))
    assert bot.workflow.run_due() + other.run_due() == len(ids)
    assert other.run_due() == bot.workflow.run_due() == 0
    assert [bot.status(i) for i in ids] == ["expired"] * 3
    assert bot.granter("iam_group").called("revoke") == ids[-1:]  # the others' membership is shared: kept


def test_overlapping_grants_keep_membership_until_the_last_one_ends(bot: InProcess) -> None:
    short = granted(bot, duration="10m")
    long = granted(bot, duration="1h")
    group = bot.granter("iam_group")
    bot.advance(timedelta(minutes=10))
    assert bot.status(short) == "expired" and bot.status(long) == "active"
    assert group.has("alice", "deploy-admins") and group.called("revoke") == []
    assert "another grant of the same access keeps it" in bot.audit(short)[-1].details
    bot.advance(timedelta(minutes=50))
    assert bot.status(long) == "expired" and not group.has("alice", "deploy-admins")


@pytest.mark.parametrize("actor", ["U0MALLORY", "U0DAVE"], ids=["someone else", "an approver of another resource"])
def test_early_revoke_by_anyone_else_is_refused(bot: InProcess, actor: str) -> None:
    request_id = granted(bot)
    with pytest.raises(UserError, match=f"Only the requester or an approver of deploy-admins can revoke #{request_id}"):
        bot.revoke(request_id, actor)
    assert bot.status(request_id) == "active" and bot.granter("iam_group").has("alice", "deploy-admins")
    assert "revoke_requested" not in bot.actions(request_id)


@pytest.mark.parametrize("actor", ["U0ALICE", "U0CAROL"], ids=["by the requester", "by an approver"])
def test_early_revoke(bot: InProcess, actor: str) -> None:
    request_id = granted(bot)
    bot.clock.advance(timedelta(minutes=5))
    bot.revoke(request_id, actor)
    row = bot.row(request_id)
    assert row.status == "revoked" and row.ended_by == actor and row.ended_at == bot.clock.now()
    assert not bot.granter("iam_group").has("alice", "deploy-admins")
    assert f"has ended (revoked) by <@{actor}>." in bot.notifier.dms("U0ALICE")[-1]
    assert f"revoked early by <@{actor}>" in bot.notifier.thread(request_id)[-1].text
    assert f"Revoked early by <@{actor}>" in bot.notifier.approval(request_id)
    assert "revoked" in bot.notifier.audit_lines("C0AUDIT")[-1]
    bot.advance(timedelta(hours=1))  # the expiry that was due later owes nothing now
    assert [m[1] for m in bot.moves(request_id)][-1] == "revoked"
    assert bot.granter("iam_group").called("revoke") == [request_id]


def test_a_refused_revoke_is_retried_with_backoff_and_alerted_until_aws_takes_it(bot: InProcess) -> None:
    request_id = granted(bot, duration="5m")
    group = bot.granter("iam_group")
    throttled = AwsError("AWS refused iam:RemoveUserFromGroup: slow down (Throttling)",
                         operation="iam:RemoveUserFromGroup", code="Throttling", transient=True)  # fmt: skip
    group.fail("revoke", throttled, times=3)
    bot.advance(timedelta(minutes=5))
    first = bot.row(request_id)
    assert first.status == "active" and first.attempts == 1 and group.has("alice", "deploy-admins")
    assert first.retry_at == bot.clock.now() + timedelta(seconds=5)  # Tuning.retry_base, then doubling
    bot.advance(timedelta(seconds=5))
    assert bot.row(request_id).attempts == 2
    assert bot.row(request_id).retry_at == bot.clock.now() + timedelta(seconds=10)
    bot.advance(timedelta(seconds=10))
    third = bot.row(request_id)
    assert third.attempts == 3 and third.status == "active"
    alerts = [p for p in bot.notifier.thread(request_id) if p.event == "alert:revoke_failing"]
    assert len(alerts) == 1 and "failed 3 times" in alerts[0].text and "Throttling" in alerts[0].text
    assert "alert" in bot.actions(request_id)
    bot.advance(timedelta(seconds=20))
    row = bot.row(request_id)
    assert row.status == "expired" and not group.has("alice", "deploy-admins")
    assert bot.actions(request_id).count("revoke_failed") == 3
    assert group.called("revoke") == [request_id] * 4


def test_a_role_end_denies_old_sessions_and_lifts_the_deny_once_they_have_expired(bot: InProcess) -> None:
    request_id = granted(bot, "prod-readonly", "1h")
    role = bot.granter("iam_role")
    bot.advance(timedelta(hours=1))
    ended = bot.row(request_id)
    assert ended.status == "expired" and not role.has("alice", ended.target)
    name = f"accessbot-{request_id}"
    assert role.denies == {name: ended.ended_at + timedelta(hours=12)}
    assert ended.sessions_denied_until == ended.ended_at + timedelta(hours=12)
    role.fail("lift", AwsError("AWS refused iam:PutRolePolicy (Throttling)", operation="iam:PutRolePolicy"))
    bot.advance(timedelta(hours=12))
    assert name in role.denies and "lift_failed" in bot.actions(request_id)
    bot.advance(timedelta(seconds=5))
    assert role.denies == {} and bot.actions(request_id)[-1] == "sessions_deny_lifted"
    assert bot.row(request_id).sessions_denied_until is None
    assert bot.workflow.next_due_at() is None


def test_ended_at_is_the_moment_aws_accepted_the_revoke(bot: InProcess) -> None:
    request_id = granted(bot, "prod-readonly", "1h")
    role = bot.granter("iam_role")
    role.before("revoke", lambda _spec: bot.clock.advance(timedelta(seconds=40)))  # AWS is slow to answer
    bot.advance(timedelta(hours=1))
    ended = bot.row(request_id)
    assert ended.expires_at is not None and ended.revoke_started_at == ended.expires_at
    assert ended.ended_at == ended.expires_at + timedelta(seconds=40)
    assert bot.audit(request_id)[-1].action == "expired" and bot.audit(request_id)[-1].created_at == ended.ended_at
    # The session deny covers sessions issued up to the end as AWS saw it, and is kept 12 hours from then.
    assert ended.sessions_denied_until == ended.ended_at + timedelta(hours=12)


@pytest.mark.parametrize("when", ["before", "after"], ids=["dies before AWS acts", "dies after AWS answered"])
def test_a_process_dying_mid_revoke_leaves_the_end_owed_and_it_is_done_once(bot: InProcess, when: str) -> None:
    request_id = granted(bot, duration="30m")
    group = bot.granter("iam_group")
    getattr(group, when)("revoke", die)
    with pytest.raises(ProcessDied):
        bot.advance(timedelta(minutes=30))
    crashed = bot.row(request_id)
    assert crashed.status == "active" and crashed.revoke_started_at is not None  # the intent, committed first
    assert group.has("alice", "deploy-admins") == (when == "before")
    bot.restart()
    bot.advance(timedelta(seconds=8))  # the dead process's lease
    row = bot.row(request_id)
    assert row.status == "expired" and not group.has("alice", "deploy-admins")
    assert [m[1] for m in bot.moves(request_id)].count("expired") == 1
    assert bot.notifier.told("U0ALICE", request_id).count("ended") == 1


def test_an_early_revoke_recorded_by_a_process_that_died_is_finished_by_the_sweep(bot: InProcess) -> None:
    request_id = granted(bot, "prod-readonly", "4h")
    # The revoke is recorded, and the process that recorded it never gets to run the end (it died).
    bot.workflow.revoke_early(request_id=request_id, actor="U0ALICE")
    bot.restart()
    bot.advance(timedelta(seconds=7))
    assert bot.status(request_id) == "active", "the dead process's claim holds for its lease"
    bot.advance(timedelta(seconds=1))
    ended = bot.row(request_id)
    assert ended.status == "revoked" and ended.ended_by == "U0ALICE"
    assert bot.granter("iam_role").objects == {}


def test_a_revoke_recorded_while_the_expiry_is_applied_keeps_its_reason(bot: InProcess) -> None:
    request_id = granted(bot, "prod-readonly", "1h")
    bot.granter("iam_role").before(
        "revoke",  # the expiry's revoke is on its way to AWS when an operator revokes
        lambda _spec: bot.workflow.revoke_early(
            request_id=request_id, actor="cli:sec", reason="laptop stolen", operator=True
        ),
    )
    bot.advance(timedelta(hours=1))
    ended = bot.row(request_id)
    assert ended.status == "revoked" and ended.ended_by == "cli:sec"
    assert "laptop stolen" in bot.notifier.dms("U0ALICE")[-1]
    assert bot.granter("iam_role").called("revoke") == [request_id]


def test_an_extension_applied_while_the_expiry_was_due_is_not_revoked(bot: InProcess) -> None:
    request_id = bot.file("U0ALICE", "quick-role", "10m", "quick look")
    assert bot.status(request_id) == "active"
    role = bot.granter("iam_role")
    expires = bot.row(request_id).expires_at
    assert expires is not None
    # The auto-approved extension's policy rewrite is slow: the expiry falls due while AWS is answering.
    role.before("grant", lambda _spec: bot.clock.set(expires + timedelta(seconds=1)))
    bot.clock.advance(timedelta(minutes=5))
    bot.extend(request_id, "U0ALICE", "30m")
    bot.sweep()
    extended = bot.row(request_id)
    assert extended.status == "active" and extended.extensions_used == 1
    assert extended.expires_at == expires + timedelta(minutes=30) and extended.expires_at > bot.clock.now()
    assert role.called("revoke") == [] and role.objects[f"accessbot-{request_id}"].expires_at == extended.expires_at
