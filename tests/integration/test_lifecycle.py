"""The spine, end to end: /access request -> Approve -> IAM group membership -> automatic expiry."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import timedelta

from bot.slack.messages import ACTION_APPROVE, ACTION_DENY
from tests.conftest import Bot, wait_until
from tests.integration.flows import file_request
from tests.support.aws import World, members
from tests.support.fake_slack import FakeSlack


def test_group_grant_is_applied_on_approval_and_removed_at_expiry(
    make_bot: Callable[..., Bot], slack: FakeSlack, world: World
) -> None:
    # The safety sweep every 30 s: the expiry below is on time only through its own precise wake-up.
    bot = make_bot(accessbot_sweep_seconds=30.0)
    request_id = file_request(bot, "U0ALICE", "request deploy-admins 3s deploying the hotfix")

    posted = slack.wait_for("chat.postMessage", lambda c: c.args.get("channel") == "C0APPROVALS")
    assert f"#{request_id}" in posted.text() and "deploying the hotfix" in posted.text()
    assert [b["text"]["text"] for b in posted.buttons()] == ["Approve", "Deny"]
    assert {b["value"] for b in posted.buttons()} == {f"{request_id}:0"}
    assert bot.status(request_id) == "pending"
    assert "alice" not in members(world.iam, "deploy-admins")

    assert bot.sender.click("U0BOB", ACTION_APPROVE, str(request_id)).status_code == 200
    active = bot.wait_status(request_id, "active")
    assert "alice" in members(world.iam, "deploy-admins")
    assert active.expires_at is not None and active.activated_at is not None
    assert active.grant_started_at is not None and active.grant_started_at <= active.activated_at
    assert active.expires_at - active.grant_started_at == timedelta(seconds=3)

    updated = slack.wait_for("chat.update", lambda c: c.args.get("ts") == posted.args.get("ts") or True)
    assert updated.args["channel"] == "C0APPROVALS"
    assert "Approved by <@U0BOB>" in updated.text()
    assert updated.buttons() == []

    ended = bot.wait_status(request_id, "expired", timeout=8)
    assert "alice" not in members(world.iam, "deploy-admins")
    assert ended.ended_at is not None and ended.expires_at is not None
    lag = (ended.ended_at - ended.expires_at).total_seconds()
    assert 0 <= lag < 5, f"revoked {lag:.2f}s after expiry"  # long before the 30 s sweep

    dms = "\n".join(slack.dms_to("U0ALICE"))
    for phrase in ("waiting for approval", "approved by <@U0BOB>", "You now have", "has ended (expired)"):
        assert phrase in dms, phrase
    moves = [(e.from_status, e.to_status, e.actor) for e in bot.audit(request_id) if e.to_status]
    assert moves == [
        (None, "pending", "U0ALICE"),
        ("pending", "approved", "U0BOB"),
        ("approved", "active", "accessbot"),
        ("active", "expired", "accessbot"),
    ]


def test_deny_ends_the_request_and_tells_the_requester(bot: Bot, slack: FakeSlack, world: World) -> None:
    request_id = file_request(bot, "U0ALICE", "request deploy-admins 1h please")
    slack.wait_for("chat.postMessage", lambda c: c.args.get("channel") == "C0APPROVALS")
    assert bot.sender.click("U0CAROL", ACTION_DENY, str(request_id)).status_code == 200
    form = slack.wait_for("views.open").args["view"]
    assert form["callback_id"] == "accessbot_deny_reason"
    assert bot.status(request_id) == "pending", "opening the form decides nothing"

    empty = bot.sender.submit_view("U0CAROL", form, {"reason": "  "})
    assert empty.json() == {
        "response_action": "errors",
        "errors": {"reason": "Say why, so the requester knows what to change."},
    }
    assert bot.status(request_id) == "pending"

    assert bot.sender.submit_view("U0CAROL", form, {"reason": "use the read-only role"}).status_code == 200
    bot.wait_status(request_id, "denied")
    update = slack.wait_for("chat.update")
    assert "Denied by <@U0CAROL>: use the read-only role" in update.text() and update.buttons() == []
    wait_until(lambda: any("denied by <@U0CAROL>: use the read-only role" in t for t in slack.dms_to("U0ALICE")))
    assert "alice" not in members(world.iam, "deploy-admins")


def test_healthz_reports_the_database(bot: Bot) -> None:
    answer = bot.sender.session.get(bot.url + "/healthz", timeout=5)
    assert answer.status_code == 200
    assert json.loads(answer.text) == {"status": "ok", "database": True}
    assert bot.sender.session.get(bot.url + "/nope", timeout=5).status_code == 404
    time.sleep(0)
