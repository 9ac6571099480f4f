"""Extending an active grant: approval moves the expiry in AWS and in the row; limits, denial, failure."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.aws.errors import AwsError
from bot.errors import UserError
from bot.testing.inprocess import InProcess


def granted(bot: InProcess, resource: str, duration: str = "1h") -> int:
    request_id = bot.file("U0ALICE", resource, duration, "investigate")
    assert bot.approve(request_id, "U0BOB").status == "active"
    return request_id


def test_an_approved_extension_moves_the_role_policy_condition_and_the_expiry(bot: InProcess) -> None:
    request_id = granted(bot, "prod-readonly")
    before = bot.row(request_id)
    assert before.expires_at is not None
    bot.clock.advance(timedelta(minutes=20))
    bot.extend(request_id, "U0ALICE", "30m")
    posts = bot.notifier.approval_posts(request_id)
    assert len(posts) == 2 and "Waiting for approval" in posts[-1].text
    with pytest.raises(UserError, match="earlier decision"):
        bot.workflow.decide(request_id=request_id, actor="U0BOB", approve=True, round=0)  # a stale button
    bot.vote(request_id, "U0BOB")
    after = bot.row(request_id)
    assert after.expires_at == before.expires_at + timedelta(minutes=30) and after.extensions_used == 1
    role = bot.granter("iam_role")
    assert [c.expires_at for c in role.calls if c.operation == "grant"] == [before.expires_at, after.expires_at]
    assert role.objects[f"accessbot-{request_id}"].expires_at == after.expires_at
    assert bot.actions(request_id).count("extended") == 1 and bot.notifier.told("U0ALICE")[-1] == "extended"
    bot.advance(timedelta(minutes=69))
    assert bot.status(request_id) == "active"
    bot.advance(timedelta(minutes=1))
    assert bot.status(request_id) == "expired" and bot.row(request_id).ended_at == after.expires_at


def test_extensions_are_limited_and_can_be_denied(bot: InProcess) -> None:
    request_id = granted(bot, "deploy-admins")  # max_extensions: 1
    with pytest.raises(UserError, match="Only the requester can extend"):
        bot.extend(request_id, "U0BOB", "1h")
    with pytest.raises(UserError, match="deploy-admins can be granted for 1s to 8h; you asked for 9h"):
        bot.extend(request_id, "U0ALICE", "9h")
    bot.extend(request_id, "U0ALICE", "1h")
    with pytest.raises(UserError, match="already waiting"):
        bot.extend(request_id, "U0ALICE", "1h")
    bot.vote(request_id, "U0CAROL", approve=False, comment="finish tomorrow")
    row = bot.row(request_id)
    assert row.extensions_used == 0 and row.extension_seconds is None
    assert bot.notifier.told("U0ALICE")[-1] == "extension_denied"
    assert "Extension denied by <@U0CAROL>: finish tomorrow" in bot.notifier.approval(request_id)
    bot.extend(request_id, "U0ALICE", "1h")  # a denied round counts against nothing
    bot.vote(request_id, "U0CAROL")
    assert bot.row(request_id).extensions_used == 1
    with pytest.raises(UserError, match="already extended 1 time\\(s\\), the most deploy-admins allows"):
        bot.extend(request_id, "U0ALICE", "1h")


def test_an_extension_aws_refuses_is_dropped_and_the_grant_ends_as_before(bot: InProcess) -> None:
    request_id = granted(bot, "prod-readonly")
    expires = bot.row(request_id).expires_at
    bot.extend(request_id, "U0ALICE", "30m")
    bot.granter("iam_role").fail("grant", AwsError("AWS refused iam:PutUserPolicy (LimitExceeded)", operation="x"))
    bot.vote(request_id, "U0BOB")
    row = bot.row(request_id)
    assert row.expires_at == expires and row.extension_seconds is None and row.extensions_used == 0
    assert bot.notifier.told("U0ALICE")[-1] == "extension_failed" and "extension_failed" in bot.actions(request_id)
    bot.advance(timedelta(hours=1))
    assert bot.status(request_id) == "expired"


def test_a_revoke_while_the_extension_is_written_wins(bot: InProcess) -> None:
    request_id = granted(bot, "prod-readonly")
    bot.extend(request_id, "U0ALICE", "30m")
    role = bot.granter("iam_role")
    role.before("grant", lambda _spec: bot.workflow.revoke_early(request_id=request_id, actor="U0ALICE"))
    bot.vote(request_id, "U0BOB")
    row = bot.row(request_id)
    assert row.status == "revoked" and "extended" not in bot.actions(request_id)
    assert role.objects == {} and not role.has("alice", row.target)
