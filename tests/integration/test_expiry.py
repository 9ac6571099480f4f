"""Expiry survives restarts (on both databases); foreign membership is found in IAM and untouched.

Shared membership ending with the last grant: tests/inprocess/test_ends.py."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from bot.clock import utcnow
from bot.slack.messages import ACTION_APPROVE
from tests.conftest import Bot, wait_until
from tests.integration.flows import file_request
from tests.support.aws import World, members
from tests.support.fake_slack import FakeSlack


def grant(bot: Bot, text: str, *, user: str = "U0ALICE", approver: str = "U0BOB") -> int:
    request_id = file_request(bot, user, text)
    bot.sender.click(approver, ACTION_APPROVE, str(request_id))
    bot.wait_status(request_id, "active")
    return request_id


# On SQLite the same catch-up is tests/inprocess/test_ends.py; here the real scheduler's start and PostgreSQL's
# claims and leases.
@pytest.mark.postgres
def test_a_grant_that_fell_due_while_the_bot_was_down_is_revoked_soon_after_restart(
    make_bot: Callable[..., Bot], world: World
) -> None:
    first = make_bot(accessbot_sweep_seconds=30.0)
    request_id = grant(first, "request deploy-admins 5s fix the deploy")  # it ends after the stop below
    row = first.request(request_id)
    assert row is not None and row.expires_at is not None
    first.runtime.stop()

    wait_until(lambda: utcnow() > row.expires_at, timeout=10)
    time.sleep(0.5)
    assert "alice" in members(world.iam, "deploy-admins"), "nobody may revoke while the bot is down"

    second = make_bot(accessbot_sweep_seconds=30.0)  # the sweep interval is long: catch-up must not wait for it
    ended = second.wait_status(request_id, "expired", timeout=10)  # well before the 30 s sweep
    assert "alice" not in members(world.iam, "deploy-admins")
    assert ended.ended_at is not None
    assert [e.to_status for e in second.audit(request_id)].count("expired") == 1


# On SQLite: tests/inprocess/test_grants.py; here the real scheduler's takeover and PostgreSQL's leases.
@pytest.mark.postgres
def test_an_approval_interrupted_before_the_grant_is_finished_by_the_sweep(
    make_bot: Callable[..., Bot], world: World
) -> None:
    bot = make_bot()
    request_id = file_request(bot, "U0ALICE", "request deploy-admins 1h fix")
    # Simulate a crash right after the approval was recorded: approved, activation owed, nobody doing it.
    bot.runtime.workflow.decide(request_id=request_id, actor="U0BOB", approve=True)
    assert bot.status(request_id) == "approved"
    assert "alice" not in members(world.iam, "deploy-admins")
    bot.runtime.stop()
    second = make_bot()
    second.wait_status(request_id, "active", timeout=10)  # after the claim's lease (5s in tests) runs out
    assert "alice" in members(world.iam, "deploy-admins")


def test_membership_the_bot_did_not_add_is_reported_and_never_removed(bot: Bot, slack: FakeSlack, world: World) -> None:
    world.iam.add_user_to_group(GroupName="deploy-admins", UserName="alice")
    request_id = file_request(bot, "U0ALICE", "request deploy-admins 2s fix")
    bot.sender.click("U0BOB", ACTION_APPROVE, str(request_id))
    failed = bot.wait_status(request_id, "failed")
    assert "already a member of deploy-admins by other means" in (failed.last_error or "")
    wait_until(lambda: any("already a member" in t for t in slack.dms_to("U0ALICE")))
    # Never removed, not even once its end would have come: tests/inprocess/test_grants.py (no revoke is ever
    # called). Here: the real check of the membership in IAM found it, and left it.
    assert "alice" in members(world.iam, "deploy-admins")
