"""Applying a grant: each kind's AWS state, AWS refusing, access held by other means, and a process that dies
between AWS's answer and the database write (the intent is recorded first; the sweep finishes or undoes it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest

from bot.aws.errors import AwsError
from bot.aws.granters import GrantSpec
from bot.testing.granter import ProcessDied
from bot.testing.inprocess import InProcess

LEASE = timedelta(seconds=8)  # Tuning's default claim lease: a crashed process's work is taken over after it


@dataclass(frozen=True)
class Kinds:
    description: str
    resource: str
    approvers: tuple[str, ...]
    grant_ref: str | None
    target_arn: str | None


KINDS = [
    Kinds("an IAM group membership", "deploy-admins", ("U0BOB",), None, None),
    Kinds("an IAM role policy", "prod-readonly", ("U0BOB",), None, None),
    Kinds("a KMS grant, its GrantId and key ARN stored", "payments-key", ("U0DAVE", "U0ERIN"), "ref-1",
          "arn:fake:alias/payments"),
]  # fmt: skip


@pytest.mark.parametrize("case", KINDS, ids=[c.description for c in KINDS])
def test_a_grant_is_active_exactly_while_aws_has_it(bot: InProcess, case: Kinds) -> None:
    request_id = bot.file("U0ALICE", case.resource, "2h", "incident 42")
    row = bot.approve(request_id, *case.approvers)
    granter = bot.granter(row.kind)
    assert row.status == "active" and granter.has("alice", row.target)
    assert (row.grant_ref, row.target_arn) == (case.grant_ref, case.target_arn)
    assert row.grant_started_at == row.activated_at == bot.clock.now()
    assert row.expires_at == row.grant_started_at + timedelta(hours=2)
    assert [c.expires_at for c in granter.calls if c.operation == "grant"] == [row.expires_at]

    bot.advance(timedelta(hours=2) - timedelta(seconds=1))
    assert bot.status(request_id) == "active" and granter.has("alice", row.target)
    bot.advance(timedelta(seconds=1))
    ended = bot.row(request_id)
    assert ended.status == "expired" and not granter.has("alice", row.target)
    assert ended.ended_at == ended.expires_at  # on the dot: the scheduler wakes at the expiry
    assert bot.moves(request_id)[-2:] == [("approved", "active", "accessbot"), ("active", "expired", "accessbot")]
    assert bot.notifier.told("U0ALICE", request_id)[-1] == "ended"
    assert "has ended (expired)" in bot.notifier.dms("U0ALICE")[-1]


@dataclass(frozen=True)
class Refused:
    description: str
    operation: str
    error: AwsError
    says: str


REFUSED = [
    Refused("AWS refuses the grant", "grant",
            AwsError("AWS refused iam:AddUserToGroup: denied (AccessDenied)", operation="iam:AddUserToGroup",
                     code="AccessDenied"), "AWS refused iam:AddUserToGroup"),
    Refused("the group does not exist", "locate",
            AwsError("AWS refused iam:GetGroup: no such group (NoSuchEntity)", operation="iam:GetGroup",
                     code="NoSuchEntity"), "no such group"),
]  # fmt: skip


@pytest.mark.parametrize("case", REFUSED, ids=[c.description for c in REFUSED])
def test_aws_refusing_the_grant_fails_the_request_with_its_words(bot: InProcess, case: Refused) -> None:
    granter = bot.granter("iam_group")
    granter.fail(case.operation, case.error)
    request_id = bot.file("U0ALICE", "deploy-admins")
    row = bot.approve(request_id)
    assert row.status == "failed" and case.says in (row.last_error or "")
    assert not granter.has("alice", "deploy-admins")
    assert bot.moves(request_id)[-1] == ("approved", "failed", "accessbot")
    assert case.says in bot.notifier.dms("U0ALICE")[-1] and "failed" in bot.notifier.dms("U0ALICE")[-1]
    assert "AWS refused the grant" in bot.notifier.approval(request_id)
    bot.advance(timedelta(hours=2))
    assert bot.status(request_id) == "failed"


def test_a_grant_refused_after_its_intent_is_undone_by_the_sweep(bot: InProcess) -> None:
    """AWS may have applied part of a grant it then refused: the row still holds it, and the undo is owed."""
    granter = bot.granter("iam_group")
    granter.fail("grant", AwsError("timed out", operation="iam:AddUserToGroup", transient=True))
    granter.fail("revoke", AwsError("throttled", operation="iam:RemoveUserFromGroup", code="Throttling"))
    request_id = bot.file("U0ALICE", "deploy-admins")
    bot.approve(request_id)
    assert bot.status(request_id) == "failed"
    assert "undo_failed" in bot.actions(request_id) and "undone" not in bot.actions(request_id)
    bot.advance(timedelta(minutes=1))
    assert bot.actions(request_id)[-1] == "undone" and bot.row(request_id).ended_at is not None
    assert granter.called("revoke") == [request_id, request_id]


def test_membership_held_by_other_means_is_reported_and_never_removed(bot: InProcess) -> None:
    granter = bot.granter("iam_group")
    granter.give_elsewhere("alice", "deploy-admins")
    request_id = bot.file("U0ALICE", "deploy-admins")
    row = bot.approve(request_id)
    assert row.status == "failed"
    assert "alice is already a member of deploy-admins by other means" in (row.last_error or "")
    assert "already a member" in bot.notifier.dms("U0ALICE")[-1]
    bot.advance(timedelta(hours=2))
    assert granter.has("alice", "deploy-admins") and granter.called("revoke") == []
    assert granter.called("grant") == []


def die(_spec: GrantSpec) -> None:
    raise ProcessDied


@pytest.mark.parametrize("when", ["before", "after"], ids=["dies before AWS acts", "dies after AWS answered"])
def test_a_process_dying_mid_grant_leaves_it_to_the_sweep(bot: InProcess, when: str) -> None:
    granter = bot.granter("iam_group")
    getattr(granter, when)("grant", die)
    request_id = bot.file("U0ALICE", "deploy-admins")
    with pytest.raises(ProcessDied):
        bot.approve(request_id)
    crashed = bot.row(request_id)
    assert crashed.status == "approved" and crashed.grant_started_at is not None  # the intent, committed first
    assert granter.has("alice", "deploy-admins") == (when == "after")

    bot.restart()
    bot.advance(LEASE - timedelta(seconds=1))
    assert bot.status(request_id) == "approved", "the dead process's claim holds for its lease"
    bot.advance(timedelta(seconds=1))
    row = bot.row(request_id)
    assert row.status == "active" and granter.has("alice", "deploy-admins")
    assert row.expires_at == crashed.grant_started_at + timedelta(hours=1)  # from the intent, not the takeover
    assert bot.actions(request_id).count("grant_started") == 1
    assert bot.notifier.told("U0ALICE", request_id) == ["filed", "approved", "active"]
    bot.advance(timedelta(hours=1))
    assert bot.status(request_id) == "expired" and not granter.has("alice", "deploy-admins")


def test_an_approval_whose_process_stopped_before_granting_is_granted_by_the_sweep(bot: InProcess) -> None:
    request_id = bot.file("U0ALICE", "deploy-admins")
    bot.workflow.decide(request_id=request_id, actor="U0BOB", approve=True)  # the process stops right after
    assert bot.status(request_id) == "approved" and bot.granter("iam_group").calls == []
    bot.restart()
    bot.advance(LEASE - timedelta(seconds=1))
    assert bot.status(request_id) == "approved", "the approving process's claim holds for its lease"
    bot.advance(timedelta(seconds=1))
    assert bot.status(request_id) == "active" and bot.granter("iam_group").has("alice", "deploy-admins")


def test_a_revoke_asked_while_the_grant_is_in_flight_ends_it_once_aws_has_it(bot: InProcess) -> None:
    granter = bot.granter("iam_role")
    request_id = bot.file("U0ALICE", "prod-readonly")
    granter.before("grant", lambda _spec: bot.workflow.revoke_early(request_id=request_id, actor="U0ALICE"))
    row = bot.approve(request_id)
    assert row.status == "revoked" and row.ended_by == "U0ALICE"
    assert not granter.has("alice", row.target)
    assert granter.called("grant") == [request_id] and granter.called("revoke") == [request_id]
    assert [m[1] for m in bot.moves(request_id)] == ["pending", "approved", "active", "revoked"]
    assert "revoked early by <@U0ALICE>" in bot.notifier.thread(request_id)[-1].text


def test_a_revoke_before_anything_was_applied_touches_no_aws(bot: InProcess) -> None:
    granter = bot.granter("iam_group")
    request_id = bot.file("U0ALICE", "deploy-admins", start="+1h")
    bot.approve(request_id)
    assert bot.status(request_id) == "approved"
    bot.revoke(request_id, "U0ALICE")
    assert bot.status(request_id) == "revoked"
    assert granter.calls == []
    bot.advance(timedelta(hours=2))
    assert granter.calls == [] and bot.status(request_id) == "revoked"


def test_a_grant_that_outlasts_its_claim_is_not_applied_twice_and_leaves_nothing_behind(bot: InProcess) -> None:
    """CreateGrant hangs past the claim's lease: another replica's sweep may claim the row, but not the grant."""
    key = bot.granter("kms_key")
    other = bot.replica("replica-2")

    def hangs_past_the_lease(_spec: GrantSpec) -> None:
        bot.clock.advance(LEASE * 3)
        # It claims the row (the lease ran out) and finds the request's lock held: it backs off.
        assert other.run_due() == 1

    key.before("grant", hangs_past_the_lease)
    request_id = bot.file("U0ALICE", "payments-key", "10m", "decrypting")
    bot.approve(request_id, "U0DAVE", "U0ERIN")
    assert bot.status(request_id) == "active" and key.called("grant") == [request_id]
    bot.advance(timedelta(minutes=10))
    assert bot.status(request_id) == "expired" and key.objects == {}
    assert key.called("grant") == [request_id] and key.called("revoke") == [request_id]


def test_a_slow_grant_whose_process_is_alive_keeps_its_claim(bot: InProcess) -> None:
    """The live process's heartbeat renews the lease while AWS is slow: no other replica even claims the row."""
    other = bot.replica("replica-2")

    def slow_but_alive(_spec: GrantSpec) -> None:
        for _ in range(3):
            bot.clock.advance(LEASE / 2)
            assert bot.workflow.ctx.claims.beat() == 1  # the heartbeat, every third of a lease in real life
            assert other.run_due() == 0

    bot.granter("iam_group").before("grant", slow_but_alive)
    request_id = bot.file("U0ALICE", "deploy-admins")
    assert bot.approve(request_id).status == "active"
