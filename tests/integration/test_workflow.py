"""The approval workflow people expect, end to end through signed requests and the fake Slack."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.slack.messages import ACTION_ACK, ACTION_APPROVE, ACTION_DENY, ACTION_EXTEND, ACTION_REVOKE
from tests.conftest import Bot, wait_until
from tests.integration.flows import file_request
from tests.support.aws import World, members
from tests.support.catalogs import WORKFLOW
from tests.support.fake_slack import FakeSlack


@pytest.fixture
def bot(make_bot: Callable[..., Bot], catalog_file: Path, slack: FakeSlack) -> Bot:
    catalog_file.write_text(WORKFLOW)
    slack.usergroups = {"S0ONCALL": ["U0OSCAR"]}
    return make_bot()


def approval_posts(slack: FakeSlack, request_id: int) -> list[str]:
    return [c.text() for c in slack.find("chat.postMessage", lambda c: c.args.get("channel") == "C0APPROVALS")
            if f"#{request_id}" in c.text()]  # fmt: skip


def grant(bot: Bot, text: str, approver: str = "U0BOB", user: str = "U0ALICE") -> int:
    request_id = file_request(bot, user, text)
    bot.sender.click(approver, ACTION_APPROVE, f"{request_id}:0")
    bot.wait_status(request_id, "active")
    return request_id


def test_the_form_lists_only_what_i_may_request_and_shows_errors_inline(bot: Bot, slack: FakeSlack) -> None:
    assert bot.sender.command("U0MALLORY", "").status_code == 200
    form = slack.wait_for("views.open").args["view"]
    options = [o["value"] for o in form["blocks"][0]["element"]["options"]]
    assert options == ["deploy-admins", "payments-key", "prod-readonly"]  # auditors: requesters [U0ALICE]

    bad = bot.sender.submit_view("U0MALLORY", form, {"resource": "deploy-admins", "duration": "9h", "reason": "x"})
    assert bad.json() == {
        "response_action": "errors",
        "errors": {"duration": "deploy-admins can be granted for 1s to 8h; you asked for 9h."},
    }
    no_reason = bot.sender.submit_view("U0ALICE", form, {"resource": "deploy-admins", "duration": "1h", "reason": ""})
    assert "reason" in no_reason.json()["errors"]
    assert bot.count() == 0

    ok = bot.sender.submit_view("U0ALICE", form, {"resource": "deploy-admins", "duration": "2h", "reason": "on call"})
    assert ok.status_code == 200 and ok.text == ""
    wait_until(lambda: approval_posts(slack, 1))
    row = bot.request(1)
    assert row is not None and row.duration_seconds == 7200 and row.reason == "on call"


def test_requesters_limit_who_may_ask(bot: Bot) -> None:
    refused = bot.ask("U0MALLORY", "request auditors 10m look")
    assert "Unknown resource 'auditors'" in refused and "auditors" not in refused.split("Available:")[1]
    catalog = bot.ask("U0MALLORY", "catalog")
    assert "deploy-admins" in catalog and "auditors" not in catalog
    assert "auditors" in bot.ask("U0ALICE", "catalog")
    assert bot.count() == 0


def test_quorum_needs_distinct_approvers_and_shows_progress(bot: Bot, slack: FakeSlack, world: World) -> None:
    request_id = file_request(bot, "U0ALICE", "request payments-key 1h reconcile ledger")
    bot.sender.click("U0DAVE", ACTION_APPROVE, f"{request_id}:0")
    update = slack.wait_for("chat.update")
    assert "Waiting for approval: 1 of 2 (approved by <@U0DAVE>)" in update.text()
    assert [b["text"]["text"] for b in update.buttons()] == ["Approve", "Deny"]
    bot.sender.click("U0DAVE", ACTION_APPROVE, f"{request_id}:0")
    told = slack.wait_for("chat.postEphemeral", lambda c: c.args.get("user") == "U0DAVE")
    assert "already voted" in told.text()
    assert bot.status(request_id) == "pending"

    bot.sender.click("U0ERIN", ACTION_APPROVE, f"{request_id}:0")
    row = bot.wait_status(request_id, "active")
    grants = world.kms.list_grants(KeyId=world.key_id)["Grants"]
    assert [(g["Name"], g["GranteePrincipal"], sorted(g["Operations"])) for g in grants] == [
        (f"accessbot-{request_id}", "arn:aws:iam::123456789012:user/alice", ["Decrypt", "GenerateDataKey"])
    ]
    assert row.grant_ref == grants[0]["GrantId"]
    final = slack.wait_for("chat.update", lambda c: "Approved by" in c.text())
    assert "<@U0DAVE>, <@U0ERIN>" in final.text() and final.buttons() == []


def test_cancel_a_pending_request(bot: Bot, slack: FakeSlack) -> None:
    request_id = file_request(bot, "U0ALICE", "request deploy-admins 1h fix")
    wait_until(lambda: approval_posts(slack, request_id))
    other = bot.ask("U0MALLORY", f"cancel #{request_id}")
    assert other == f"Only the requester can cancel request #{request_id}."
    assert bot.ask("U0ALICE", f"cancel {request_id}") == f"Request #{request_id} is cancelled."
    assert bot.status(request_id) == "cancelled"
    update = slack.wait_for("chat.update")
    assert "Cancelled by <@U0ALICE>" in update.text() and update.buttons() == []
    again = bot.ask("U0ALICE", f"cancel {request_id}")
    assert again == f"Request #{request_id} is cancelled, so it cannot be cancelled now."


def test_early_revoke_by_requester_or_approver_removes_access_at_once(bot: Bot, slack: FakeSlack, world: World) -> None:
    first = grant(bot, "request deploy-admins 1h fix")
    refused = bot.ask("U0MALLORY", f"revoke #{first}")
    assert refused == f"Only the requester or an approver of deploy-admins can revoke #{first}."
    assert bot.sender.command("U0ALICE", f"revoke #{first}").status_code == 200
    row = bot.wait_status(first, "revoked")
    assert row.ended_by == "U0ALICE"
    assert "alice" not in members(world.iam, "deploy-admins")
    wait_until(lambda: any("revoked early by <@U0ALICE>" in c.text() for c in slack.find("chat.postMessage")))

    second = grant(bot, "request deploy-admins 1h fix again")
    bot.sender.click("U0CAROL", ACTION_REVOKE, str(second), channel="D0CAROL")
    assert bot.wait_status(second, "revoked").ended_by == "U0CAROL"
    assert "alice" not in members(world.iam, "deploy-admins")
    wait_until(lambda: any("has ended (revoked)" in t for t in slack.dms_to("U0ALICE")))


def test_extend_needs_approval_and_moves_the_role_policy_condition(bot: Bot, slack: FakeSlack, world: World) -> None:
    request_id = grant(bot, "request prod-readonly 1h investigate")
    before = bot.request(request_id)
    assert before is not None and before.expires_at is not None
    answer = bot.ask("U0ALICE", f"extend #{request_id} 30m")
    assert answer == f"Extension of #{request_id} by 30m is waiting for approval."
    post = slack.wait_for("chat.postMessage", lambda c: "Extension 1 of request" in c.text())
    assert [b["value"] for b in post.buttons()] == [f"{request_id}:1", f"{request_id}:1"]
    bot.sender.click("U0BOB", ACTION_APPROVE, f"{request_id}:0")  # a stale button from the first decision
    stale = slack.wait_for("chat.postEphemeral", lambda c: c.args.get("user") == "U0BOB")
    assert "earlier decision" in stale.text()

    bot.sender.click("U0BOB", ACTION_APPROVE, f"{request_id}:1")
    wait_until(lambda: (bot.request(request_id) or before).extensions_used == 1)
    after = bot.request(request_id)
    assert after is not None and after.expires_at is not None
    assert (after.expires_at - before.expires_at).total_seconds() == 1800
    document = world.iam.get_user_policy(UserName="alice", PolicyName=f"accessbot-{request_id}")["PolicyDocument"]
    document = json.loads(document) if isinstance(document, str) else document
    condition = document["Statement"][0]["Condition"]["DateLessThan"]["aws:CurrentTime"]
    assert condition == after.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert [e.action for e in bot.audit(request_id)].count("extended") == 1


def test_extensions_are_limited_and_an_extension_can_be_denied(bot: Bot, slack: FakeSlack) -> None:
    request_id = grant(bot, "request deploy-admins 1h fix")
    assert "only the requester" in bot.ask("U0BOB", f"extend {request_id} 1h").lower()
    assert "1s to 8h" in bot.ask("U0ALICE", f"extend {request_id} 9h")
    assert "waiting for approval" in bot.ask("U0ALICE", f"extend {request_id} 1h")  # filed before the next is sent
    assert "already waiting" in bot.ask("U0ALICE", f"extend {request_id} 1h")
    slack.wait_for("chat.postMessage", lambda c: "Extension 1 of request" in c.text())
    bot.sender.click("U0CAROL", ACTION_DENY, f"{request_id}:1")
    form = slack.wait_for("views.open").args["view"]
    bot.sender.submit_view("U0CAROL", form, {"reason": "finish tomorrow"})
    wait_until(lambda: any("extension of" in t.lower() and "denied" in t for t in slack.dms_to("U0ALICE")))
    row = bot.request(request_id)
    assert row is not None and row.extensions_used == 0 and row.extension_seconds is None
    # The denied round still counted against nothing; one more may be asked, but max_extensions is 1:
    bot.sender.command("U0ALICE", f"extend {request_id} 1h")
    slack.wait_for("chat.postMessage", lambda c: "Extension 2 of request" in c.text())
    bot.sender.click("U0CAROL", ACTION_APPROVE, f"{request_id}:2")
    wait_until(lambda: (bot.request(request_id) or row).extensions_used == 1)
    refused = bot.ask("U0ALICE", f"extend {request_id} 1h")
    assert "already extended 1 time(s), the most deploy-admins allows" in refused


def test_the_extend_button_opens_the_extend_form(bot: Bot, slack: FakeSlack) -> None:
    # When the warning comes and which buttons it carries: tests/inprocess/test_schedule.py. Here: the click.
    request_id = grant(bot, "request prod-readonly 1h quick look")
    bot.sender.click("U0ALICE", ACTION_EXTEND, str(request_id), channel="D0ALICE")
    assert slack.wait_for("views.open").args["view"]["callback_id"] == "accessbot_extend_view"


def test_auto_approval_within_its_daily_limit(bot: Bot, slack: FakeSlack, world: World) -> None:
    answer = bot.ask("U0ALICE", "request auditors 10m quick check")
    assert "auto-approved" in answer
    bot.wait_status(1, "active")
    assert "alice" in members(world.iam, "auditors")
    post = slack.wait_for("chat.postMessage", lambda c: c.args.get("channel") == "C0APPROVALS")
    assert "Auto-approved" in post.text() and post.buttons() == []
    second = bot.ask("U0ALICE", "request auditors 10m again")
    assert "waiting for approval" in second  # the daily limit is 1
    longer = bot.ask("U0ALICE", "request auditors 1h longer")
    assert "waiting for approval" in longer  # over auto_approve.max_duration


def test_user_group_members_approve(bot: Bot, slack: FakeSlack) -> None:
    bot.sender.command("U0ALICE", "request auditors 10m first one uses the auto-approval")
    request_id = file_request(bot, "U0ALICE", "request auditors 1h needs a person")
    bot.sender.click("U0OSCAR", ACTION_APPROVE, f"{request_id}:0")
    bot.wait_status(request_id, "active")
    assert slack.find("usergroups.users.list")


def test_break_glass_activates_at_once_and_is_acknowledged_in_slack(bot: Bot, slack: FakeSlack, world: World) -> None:
    # Its nags until acknowledged, and none after: tests/inprocess/test_schedule.py. Here: the command and buttons.
    assert "does not allow break-glass" in bot.ask("U0ALICE", "breakglass deploy-admins 1h x")
    assert "Usage: /access breakglass" in bot.ask("U0ALICE", "breakglass auditors 1h")
    answer = bot.ask("U0ALICE", "breakglass auditors 1h prod database is down")
    assert "Break-glass #" in answer
    request_id = bot.count()
    bot.wait_status(request_id, "active")
    assert "alice" in members(world.iam, "auditors")
    notice = slack.wait_for("chat.postMessage", lambda c: "BREAK-GLASS" in c.text())
    assert notice.args["channel"] == "C0APPROVALS"

    bot.sender.click("U0MALLORY", ACTION_ACK, str(request_id))
    told = slack.wait_for("chat.postEphemeral", lambda c: c.args.get("user") == "U0MALLORY")
    assert "Only the approvers of auditors can acknowledge" in told.text()
    bot.sender.click("U0OSCAR", ACTION_ACK, str(request_id))
    wait_until(lambda: (bot.request(request_id) or notice).acknowledged_by == "U0OSCAR")  # type: ignore[union-attr]
    update = slack.wait_for("chat.update", lambda c: "Acknowledged by <@U0OSCAR>" in c.text())
    assert update.buttons() == []
    actions = [e.action for e in bot.audit(request_id)]
    assert actions[:2] == ["submitted", "approved"] and "acknowledged" in actions


def test_list_and_pending(bot: Bot, slack: FakeSlack) -> None:
    active = grant(bot, "request deploy-admins 1h fix")
    waiting = file_request(bot, "U0ALICE", "request prod-readonly 1h look")
    mine = bot.ask("U0ALICE", "list")
    assert f"#{active} *deploy-admins* — active, 59m" in mine
    assert f"#{waiting} *prod-readonly* — pending, 1h" in mine
    pending = bot.ask("U0BOB", "pending")
    assert f"#{waiting}" in pending and f"#{active}" not in pending
    assert bot.ask("U0ALICE", "pending") == "Nothing waits for your approval."


def test_app_home_shows_grants_pending_and_approvals(bot: Bot, slack: FakeSlack) -> None:
    active = grant(bot, "request deploy-admins 1h fix")
    waiting = file_request(bot, "U0ALICE", "request prod-readonly 1h look")
    assert bot.sender.event({"type": "app_home_opened", "user": "U0ALICE", "tab": "home"}).status_code == 200
    home = slack.wait_for("views.publish", lambda c: c.args.get("user_id") == "U0ALICE").args["view"]
    text = json.dumps(home)
    assert home["type"] == "home"
    assert f"#{active} *deploy-admins*" in text and f"#{waiting} *prod-readonly*" in text
    values = [
        e["action_id"] + "=" + e["value"] for b in home["blocks"] if b["type"] == "actions" for e in b["elements"]
    ]
    assert f"accessbot_revoke={active}" in values and f"accessbot_cancel={waiting}" in values
    bot.sender.event({"type": "app_home_opened", "user": "U0BOB", "tab": "home"})
    bob = slack.wait_for("views.publish", lambda c: c.args.get("user_id") == "U0BOB").args["view"]
    assert f"accessbot_approve={waiting}:0" in json.dumps(bob).replace('", "value": "', "=")
