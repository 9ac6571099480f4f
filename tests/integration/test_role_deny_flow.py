"""A role's session deny through the running bot: a new grant takes it over (and its undo owes it again),
reconcile puts back a deny a session deleted, and a role with no room for a deny alerts at once."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from bot.aws.clients import AwsClients
from bot.aws.granters import RoleGranter
from bot.aws.granters.role_denies import INLINE_NAME
from bot.catalog import load_catalog
from bot.reconcile import Problem, Reconciler
from bot.reconcile.denies import DENY_THING
from bot.wiring import build_granters
from tests.conftest import Bot, wait_until
from tests.integration.faults import bot_iam, inject
from tests.integration.flows import approve, file_request
from tests.support.aws import World
from tests.support.fake_slack import FakeSlack

ROLE = "prod-readonly"


def denied(world: World) -> dict[str, datetime]:
    return RoleGranter(world.iam).denied(world.role_arn)


def actions(bot: Bot, request_id: int) -> list[str]:
    return [e.action for e in bot.audit(request_id)]


def revoked_once(bot: Bot) -> int:
    """Alice's role grant, revoked: her deny is owed on the role."""
    first = file_request(bot, "U0ALICE", "request prod-readonly 1h reading logs")
    approve(bot, first)
    bot.wait_status(first, "active")
    bot.sender.command("U0ALICE", f"revoke {first}")
    bot.wait_status(first, "revoked")
    return first


@pytest.mark.both_databases
def test_a_new_grant_takes_over_the_deny_and_its_end_writes_it_again(bot: Bot, world: World) -> None:
    first = revoked_once(bot)
    owed = bot.request(first)
    assert owed is not None and owed.sessions_denied_before is not None
    assert denied(world) == {"alice": owed.sessions_denied_before}

    second = file_request(bot, "U0ALICE", "request prod-readonly 1h more logs")
    approve(bot, second)
    bot.wait_status(second, "active")  # within the first end's margin: the deny would kill its sessions
    assert denied(world) == {}
    taken = bot.request(first)
    assert taken is not None and taken.sessions_denied_until is None and taken.sessions_denied_before is None
    assert "sessions_deny_superseded" in actions(bot, first)

    bot.sender.command("U0ALICE", f"revoke {second}")
    ended = bot.wait_status(second, "revoked")
    assert ended.sessions_denied_before is not None and ended.sessions_denied_before >= owed.sessions_denied_before
    assert denied(world) == {"alice": ended.sessions_denied_before}


def test_a_new_grant_that_fails_owes_the_deny_again(bot: Bot, world: World) -> None:
    first = revoked_once(bot)
    owed = bot.request(first)
    assert owed is not None and owed.sessions_denied_before is not None
    refused = inject(bot_iam(bot), "PutUserPolicy", code="AccessDenied", status=403)
    second = file_request(bot, "U0ALICE", "request prod-readonly 1h more logs")
    approve(bot, second)
    bot.wait_status(second, "failed")
    refused.stop()
    # The grant removed the deny before AWS refused the allow; its undo is an end, and writes it again.
    undone = wait_until(lambda: (r := bot.request(second)) is not None and r.sessions_denied_before is not None and r)
    assert undone.sessions_denied_before >= owed.sessions_denied_before
    assert denied(world) == {"alice": undone.sessions_denied_before}


def test_reconcile_puts_back_a_deny_a_session_deleted(
    bot: Bot, world: World, engine: Any, catalog_file: Path, slack: FakeSlack
) -> None:
    first = revoked_once(bot)
    owed = bot.request(first)
    assert owed is not None and owed.sessions_denied_before is not None
    aws = AwsClients.create()
    reconciler = Reconciler(
        engine=engine, catalog=load_catalog(catalog_file), granters=build_granters(aws), iam=aws.iam, kms=aws.kms
    )
    assert reconciler.check().drift == ()
    world.iam.delete_role_policy(RoleName=ROLE, PolicyName=INLINE_NAME)  # what a session with IAM rights can do

    report = reconciler.check()
    [drift] = report.drift
    assert (drift.problem, drift.thing, drift.request_id, drift.user) == (Problem.MISSING, DENY_THING, first, "alice")
    assert "is gone" in drift.detail
    fixed = reconciler.fix(report)
    assert [f.outcome for f in fixed.fixes] == ["put back"] and fixed.unresolved == 0
    assert denied(world) == {"alice": owed.sessions_denied_before}
    assert "sessions_deny_restored" in actions(bot, first)

    # The scheduled check puts it back by itself, and says so.
    world.iam.delete_role_policy(RoleName=ROLE, PolicyName=INLINE_NAME)
    reconciler.scheduled(bot.runtime.notifier, interval=0)
    assert denied(world) == {"alice": owed.sessions_denied_before}
    alert = slack.wait_for("chat.postMessage", lambda c: "reconcile found" in c.text())
    assert "the deny of alice's sessions" in alert.text() and "is gone from the role" in alert.text()
    assert "; put back" in alert.text()


def test_a_role_with_no_room_for_the_deny_alerts_at_the_first_refusal(bot: Bot, world: World, slack: FakeSlack) -> None:
    inject(bot_iam(bot), "PutRolePolicy", code="LimitExceeded", status=409, message="Maximum policy size")
    inject(bot_iam(bot), "AttachRolePolicy", code="LimitExceeded", status=409, message="Cannot exceed quota")
    request_id = file_request(bot, "U0ALICE", "request prod-readonly 1h reading logs")
    approve(bot, request_id)
    bot.wait_status(request_id, "active")
    bot.sender.command("U0ALICE", f"revoke {request_id}")
    alert = slack.wait_for(
        "chat.postMessage", lambda c: c.args.get("channel") == "C0APPROVALS" and "no room" in c.text(), timeout=15
    )
    assert f"Ending #{request_id}" in alert.text() and world.role_arn in alert.text() and "Fix:" in alert.text()
    row = bot.request(request_id)
    assert row is not None and row.attempts == 1 and row.ended_at is None  # still owed, retried
    assert world.iam.list_user_policies(UserName="alice")["PolicyNames"] == []  # no new session at least
