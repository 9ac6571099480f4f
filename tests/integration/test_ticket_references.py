"""Ticket references: a resource's `reason_pattern` refuses a reason without one; the approval links it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bot.cli import main
from tests.conftest import Bot
from tests.integration.flows import approval_update, approve, catalog_with, file_request
from tests.support.catalogs import BASIC
from tests.support.fake_slack import FakeSlack

TICKETED = r"""
  ticketed:
    kind: iam_group
    group_name: deploy-admins
    approvers: [platform]
    reason_pattern: '[A-Z]+-[0-9]+'
    ticket_url: https://tickets.example.com/browse/{ticket}
  restricted-ticketed:
    kind: iam_group
    group_name: deploy-admins
    approvers: [platform]
    requesters: [U0ALICE]
    reason_pattern: 'INC-[0-9]+'
"""
REFUSAL = (
    "ticketed needs a ticket reference in the reason: text matching `[A-Z]+-[0-9]+`. "
    "Yours has none; add the ticket to your reason and ask again."
)
# Defaults ask every resource for a ticket; one resource turns it off with null.
DEFAULTS = BASIC.replace(
    "  warn_before: 10m\n",
    "  warn_before: 10m\n  reason_pattern: 'OPS-[0-9]+'\n  ticket_url: https://jira.example.com/browse/{ticket}\n",
).replace(
    "    allow_self_approval: true\n", "    allow_self_approval: true\n    reason_pattern: null\n    ticket_url: null\n"
)


@pytest.fixture
def bot(make_bot: Callable[..., Bot], catalog_file: Path) -> Bot:
    catalog_file.write_text(catalog_with(TICKETED))
    return make_bot()


APPROVALS = "C0APPROVALS"  # the approval channel of the test catalogs


def approval_posts(slack: FakeSlack) -> list[str]:
    return [c.text() for c in slack.find("chat.postMessage", lambda c: c.args.get("channel") == "C0APPROVALS")]


@pytest.mark.parametrize(
    "reason",
    [
        pytest.param("deploy the hotfix", id="no-ticket"),
        pytest.param(".", id="a-dot-defeats-nothing"),
        pytest.param("ops-123 in lowercase", id="near-miss"),
    ],
)
def test_a_reason_without_a_ticket_is_refused_privately_at_once_and_nothing_is_stored(
    bot: Bot, slack: FakeSlack, reason: str
) -> None:
    answer = bot.sender.command("U0ALICE", f"request ticketed 1h {reason}")

    assert answer.status_code == 200
    assert answer.json() == {"response_type": "ephemeral", "text": REFUSAL}  # the ack itself: no database needed
    assert bot.count() == 0 and bot.audit() == []
    assert approval_posts(slack) == []


def test_a_reason_with_a_ticket_is_filed_and_the_approval_message_links_it(bot: Bot, slack: FakeSlack) -> None:
    request_id = file_request(bot, "U0ALICE", "request ticketed 1h deploy the OPS-123 hotfix (after OPS-99)")

    row = bot.request(request_id)
    assert row is not None and row.reason == "deploy the OPS-123 hotfix (after OPS-99)"
    posted = slack.wait_for("chat.postMessage", lambda c: c.args.get("channel") == "C0APPROVALS")
    fields = [f["text"] for b in posted.blocks() if b.get("type") == "section" for f in b.get("fields", [])]
    link = "<https://tickets.example.com/browse/OPS-123|OPS-123>"
    assert f"*Ticket*\n{link}" in fields  # the first match, next to the reason
    assert "*Reason*\ndeploy the OPS-123 hotfix (after OPS-99)" in fields
    assert link in str(posted.args["text"])  # the notification text too

    approve(bot, request_id)
    assert link in approval_update(slack, request_id, "Approved by")  # still linked once decided


def test_a_resource_without_a_pattern_takes_any_reason_and_shows_no_ticket(bot: Bot, slack: FakeSlack) -> None:
    request_id = file_request(bot, "U0ALICE", "request deploy-admins 1h OPS-123 hotfix")
    posted = slack.wait_for("chat.postMessage", lambda c: c.args.get("channel") == "C0APPROVALS")
    assert f"#{request_id}" in posted.text() and "Ticket" not in posted.text()


def test_a_restricted_resource_is_checked_after_the_ack_and_refused_privately(bot: Bot, slack: FakeSlack) -> None:
    # Not checked before the ack (that answer must not reveal a restricted resource): refused after it.
    said = bot.ask("U0ALICE", "request restricted-ticketed 1h look at the incident")

    assert said.startswith("restricted-ticketed needs a ticket reference in the reason: text matching `INC-[0-9]+`")
    assert bot.count() == 0 and approval_posts(slack) == []
    filed = file_request(bot, "U0ALICE", "request restricted-ticketed 1h look at INC-42")
    posted = slack.wait_for("chat.postMessage", lambda c: c.args.get("channel") == "C0APPROVALS")
    assert f"#{filed}" in posted.text() and "`INC-42`" in posted.text()  # no ticket_url: shown, not linked


def test_the_form_shows_the_missing_ticket_on_the_reason_field(bot: Bot, slack: FakeSlack) -> None:
    assert bot.sender.command("U0ALICE", "").status_code == 200
    form = slack.wait_for("views.open").args["view"]
    reason = next(b for b in form["blocks"] if b.get("block_id") == "reason")
    assert "ticketed: [A-Z]+-[0-9]+" in reason["hint"]["text"]

    refused = bot.sender.submit_view("U0ALICE", form, {"resource": "ticketed", "duration": "1h", "reason": "."})
    assert refused.json() == {"response_action": "errors", "errors": {"reason": REFUSAL}}
    assert bot.count() == 0

    ok = bot.sender.submit_view("U0ALICE", form, {"resource": "ticketed", "duration": "1h", "reason": "SEC-7 audit"})
    assert ok.status_code == 200 and ok.text == ""
    posted = slack.wait_for("chat.postMessage", lambda c: c.args.get("channel") == "C0APPROVALS")
    assert "<https://tickets.example.com/browse/SEC-7|SEC-7>" in posted.text()


def test_defaults_ask_every_resource_for_a_ticket_unless_it_turns_them_off(
    make_bot: Callable[..., Bot], catalog_file: Path, slack: FakeSlack
) -> None:
    catalog_file.write_text(DEFAULTS)
    bot = make_bot()

    refused = bot.sender.command("U0ALICE", "request prod-readonly 1h read the logs").json()
    assert refused["text"].startswith(
        "prod-readonly needs a ticket reference in the reason: text matching `OPS-[0-9]+`"
    )
    assert bot.count() == 0

    ticketed = file_request(bot, "U0ALICE", "request prod-readonly 1h read the logs for OPS-5")
    posted = slack.wait_for(
        "chat.postMessage", lambda c: c.args.get("channel") == APPROVALS and f"#{ticketed}" in c.text()
    )
    assert "<https://jira.example.com/browse/OPS-5|OPS-5>" in posted.text()

    free = file_request(bot, "U0ALICE", "request auditors 1h quarterly review")  # reason_pattern: null
    assert bot.request(free) is not None
    approval = slack.wait_for(
        "chat.postMessage", lambda c: c.args.get("channel") == APPROVALS and f"#{free}" in c.text()
    )
    assert "Ticket" not in approval.text()


def test_catalog_and_help_say_which_resources_need_a_ticket(bot: Bot) -> None:
    listed = bot.ask("U0ALICE", "catalog")
    line = next(x for x in listed.splitlines() if "*ticketed*" in x)
    assert "the reason needs a ticket (`[A-Z]+-[0-9]+`)" in line
    assert "ticket reference" in bot.ask("U0ALICE", "help")


def test_check_config_lists_the_ticket_keys_and_refuses_bad_ones(
    catalog_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ACCESSBOT_CATALOG", str(catalog_file))
    catalog_file.write_text(catalog_with(TICKETED))
    assert main(["check-config", "--no-aws"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "ok   ticketed.reason_pattern: [A-Z]+-[0-9]+, linked to https://tickets.example.com/browse/{ticket}" in out
    assert "ok   restricted-ticketed.reason_pattern: INC-[0-9]+" in out

    catalog_file.write_text(catalog_with(TICKETED.replace("'[A-Z]+-[0-9]+'", "'\\w*'")))
    assert main(["check-config", "--no-aws"]) == 2
    err = capsys.readouterr().err
    assert "resources.ticketed.reason_pattern: '\\w*' matches an empty reason" in err
