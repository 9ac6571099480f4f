"""Who is pinged, quiet auto-approvals and warnings (issue 24, points 2 and 3)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from bot.slack import views
from tests.conftest import Bot, wait_until
from tests.support.catalogs import BASIC
from tests.support.fake_slack import FakeSlack

EXTRA = """
  orders-db:
    kind: iam_group
    group_name: deploy-admins
    approvers: [platform]
    notify: [U0CAROL, S0DBAS]
    remind_after: 2s
    warning: "Production orders database: customer data"
  sandbox:
    kind: iam_group
    group_name: auditors
    approvers: [platform]
    auto_approve: true
    audit_channel: C0AUDIT
"""


def filed(bot: Bot, user: str, text: str) -> tuple[int, str]:
    said = bot.ask(user, text)
    found = re.search(r"Request #(\d+)", said)
    assert found, said
    return int(found.group(1)), said


def approval_message(slack: FakeSlack, request_id: int) -> str:
    call = slack.wait_for("chat.postMessage", lambda c: c.channel == "C0APPROVALS" and f"#{request_id}" in c.text())
    return json.dumps(call.blocks())


def test_notify_names_who_is_mentioned_and_any_approver_may_still_approve(
    make_bot: Callable[..., Bot], catalog_file: Path, slack: FakeSlack
) -> None:
    catalog_file.write_text(BASIC + EXTRA)
    bot = make_bot()
    request_id, _ = filed(bot, "U0ALICE", "request orders-db 1h migration")
    message = approval_message(slack, request_id)
    assert "For <!subteam^S0DBAS> <@U0CAROL>" in message and "U0BOB" not in message
    reminder = slack.wait_for("chat.postMessage", lambda c: c.text().startswith("Reminder: request #"), timeout=15)
    assert "<@U0CAROL>" in reminder.text() and "<!subteam^S0DBAS>" in reminder.text()
    assert "U0BOB" not in reminder.text()
    # Bob was not pinged, but he is an approver: his click counts.
    assert bot.sender.click("U0BOB", "accessbot_approve", str(request_id)).status_code == 200
    bot.wait_status(request_id, "active")


def test_without_notify_the_approvers_are_reminded_as_before(
    make_bot: Callable[..., Bot], catalog_file: Path, slack: FakeSlack
) -> None:
    catalog_file.write_text(BASIC + EXTRA.replace("    notify: [U0CAROL, S0DBAS]\n", ""))
    bot = make_bot()
    request_id, _ = filed(bot, "U0ALICE", "request orders-db 1h migration")
    assert "For <@" not in approval_message(slack, request_id)
    reminder = slack.wait_for("chat.postMessage", lambda c: c.text().startswith("Reminder: request #"), timeout=15)
    assert "<@U0BOB>" in reminder.text() and "<@U0CAROL>" in reminder.text()


def test_quiet_auto_approvals_post_no_approval_message_but_the_audit_channel_gets_the_record(
    make_bot: Callable[..., Bot], catalog_file: Path, slack: FakeSlack
) -> None:
    catalog_file.write_text(BASIC.replace("defaults:\n", "defaults:\n  quiet_auto_approvals: true\n") + EXTRA)
    bot = make_bot()
    quiet, said = filed(bot, "U0ALICE", "request sandbox 1h poke around")
    assert "auto-approved" in said
    bot.wait_status(quiet, "active")
    slack.wait_for("chat.postMessage", lambda c: c.channel == "C0AUDIT" and f"#{quiet}" in c.text())
    loud, _ = filed(bot, "U0ALICE", "request orders-db 1h migration")  # not auto-approved: posted as ever
    approval_message(slack, loud)
    assert slack.find("chat.postMessage", lambda c: c.channel == "C0APPROVALS" and f"#{quiet}" in c.text()) == []


def test_a_warning_is_shown_in_the_form_the_confirmation_and_the_approval_message(
    make_bot: Callable[..., Bot], catalog_file: Path, slack: FakeSlack
) -> None:
    catalog_file.write_text(BASIC + EXTRA)
    bot = make_bot()
    warning = "Production orders database: customer data"
    request_id, said = filed(bot, "U0ALICE", "request orders-db 1h migration")
    assert said.startswith(f":warning: *{warning}*\n")
    blocks = json.loads(approval_message(slack, request_id))
    assert blocks[0]["text"]["text"] == f":warning: *{warning}*", "the warning comes first"

    bot.sender.command("U0ALICE", "request")
    form = slack.wait_for("views.open").args["view"]
    assert f":warning: *orders-db*: {warning}" in json.dumps(form)
    wanted = {"resource": "orders-db", "duration": "1h", "reason": "from the form"}
    assert bot.sender.submit_view("U0ALICE", form, wanted).status_code == 200
    assert form["callback_id"] == views.REQUEST_VIEW
    wait_until(lambda: any(t.startswith(f":warning: *{warning}*") for t in slack.dms_to("U0ALICE")))
