"""Filing on someone's behalf (`for=@someone`): who may, who gets the access and the messages, who may not decide."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.domain.audit import AuditAction
from bot.slack.messages import ACTION_APPROVE
from tests.conftest import Bot
from tests.integration.flows import approve, dm_containing, file_request
from tests.support.aws import World, members
from tests.support.fake_slack import FakeSlack
from tests.support.operator import operator_for

CATALOG = """
defaults:
  approval_channel: C0APPROVALS
  min_duration: 1s
  default_duration: 1h
  max_duration: 8h
  warn_before: 10m
  delegates: [helpdesk]
identity:
  strategy: email_tag
  tag_key: email
  static:
    U0DAVE: dave
approver_groups:
  platform: [U0BOB, U0CAROL]
  helpdesk: [S0HELPDESK]
resources:
  deploy-admins:
    kind: iam_group
    group_name: deploy-admins
    approvers: [platform]
    delegates: [U0DAVE]
    allow_self_approval: true
  auditors:
    kind: iam_group
    group_name: auditors
    approvers: [platform]
    requesters: [platform]
  prod-readonly:
    kind: iam_role
    role_arn: arn:aws:iam::123456789012:role/prod-readonly
    approvers: [platform]
    auto_approve: {max_duration: 1h}
"""
ALICE, BOB, CAROL, DAVE, ERIN, MALLORY = "U0ALICE", "U0BOB", "U0CAROL", "U0DAVE", "U0ERIN", "U0MALLORY"


@pytest.fixture
def bot(make_bot: Callable[..., Bot], catalog_file: Path, slack: FakeSlack) -> Bot:
    catalog_file.write_text(CATALOG)
    slack.usergroups = {"S0HELPDESK": [ERIN]}
    return make_bot()


def refused_click(slack: FakeSlack, user: str, request_id: int) -> str:
    return slack.wait_for(
        "chat.postEphemeral", lambda c: c.args.get("user") == user and f"#{request_id}" in c.text()
    ).text()


def test_an_approver_files_for_a_teammate_who_gets_the_access(bot: Bot, slack: FakeSlack, world: World) -> None:
    said = bot.ask(BOB, "request deploy-admins 1h for=<@U0ALICE|alice> hotfix OPS-1")
    assert said.startswith("Request #1 for *deploy-admins* (1h) for <@U0ALICE> is waiting"), said
    row = bot.request(1)
    assert row is not None and (row.requester_id, row.filed_by, row.iam_user) == (ALICE, BOB, "alice")
    assert row.reason == "hotfix OPS-1"

    posted = slack.wait_for("chat.postMessage", lambda c: c.args.get("channel") == "C0APPROVALS").text()
    assert "for <@U0ALICE>, filed by <@U0BOB>" in posted
    assert "#1" not in bot.ask(BOB, "pending")  # Bob may not decide what he filed: it does not wait for him
    assert "#1" in bot.ask(CAROL, "pending")
    assert "<@U0BOB> filed it for you" in dm_containing(slack, ALICE, "is waiting for approval")
    assert "About the request you filed for <@U0ALICE>" in dm_containing(slack, BOB, "is waiting for approval")

    approve(bot, 1, CAROL)
    bot.wait_status(1, "active")
    assert members(world.iam, "deploy-admins") == {"alice"}
    assert "approved by <@U0CAROL>" in dm_containing(slack, ALICE, "was approved")
    dm_containing(slack, ALICE, "You now have *deploy-admins*")
    assert dm_containing(slack, BOB, "You now have *deploy-admins*").startswith("About the request you filed for")


def test_neither_the_filer_nor_the_beneficiary_may_approve(bot: Bot, slack: FakeSlack, world: World) -> None:
    # deploy-admins has allow_self_approval: true, and Bob files for Carol: both are approvers of it.
    request_id = file_request(bot, BOB, "request deploy-admins 1h for=<@U0CAROL> rotate keys")
    approve(bot, request_id, BOB)
    assert "filed request" in refused_click(slack, BOB, request_id)
    bot.sender.click(CAROL, ACTION_APPROVE, str(request_id))
    assert "cannot approve or deny your own request" in refused_click(slack, CAROL, request_id)
    assert bot.status(request_id) == "pending"
    assert members(world.iam, "deploy-admins") == set()
    assert not [v for v in bot.audit(request_id) if v.action == AuditAction.APPROVAL_VOTE]


def test_a_delegate_may_file_and_a_user_group_delegate_from_defaults_too(bot: Bot, slack: FakeSlack) -> None:
    assert file_request(bot, DAVE, "request deploy-admins 30m for=<@U0ALICE> pairing") == 1
    assert file_request(bot, ERIN, "request prod-readonly 30m for=<@U0ALICE> incident 12") == 2
    # deploy-admins lists its own delegates: the default helpdesk group is replaced, not added to.
    refused = bot.ask(ERIN, "request deploy-admins 30m for=<@U0ALICE> pairing")
    assert refused.startswith("Only the approvers and delegates of deploy-admins can file it"), refused
    row = bot.request(2)
    assert row is not None and (row.requester_id, row.filed_by) == (ALICE, ERIN)
    assert bot.count() == 2


def test_anyone_else_is_refused_privately_and_nothing_is_stored(bot: Bot, slack: FakeSlack) -> None:
    refused = bot.ask(MALLORY, "request deploy-admins 1h for=<@U0ALICE> let me in")
    assert refused.startswith("Only the approvers and delegates of deploy-admins"), refused
    # A resource hidden from the filer stays hidden: the answer is the one for an unknown resource.
    hidden = bot.ask(MALLORY, "request auditors 1h for=<@U0BOB> let me in")
    assert hidden.startswith("Unknown resource 'auditors'"), hidden
    assert bot.count() == 0
    assert not slack.find("chat.postMessage", lambda c: c.args.get("channel") in ("C0APPROVALS", ALICE, BOB))


def test_the_beneficiary_must_be_allowed_to_request_it(bot: Bot, slack: FakeSlack) -> None:
    refused = bot.ask(BOB, "request auditors 1h for=<@U0ALICE> quarterly audit")
    assert refused == "<@U0ALICE> may not request auditors (it is limited to its requesters)."
    assert bot.count() == 0
    assert not slack.find("chat.postMessage", lambda c: c.args.get("channel") == "C0APPROVALS")


def test_bad_for_values_are_answered_at_once(bot: Bot) -> None:
    assert "'@alice' is not a mention" in bot.ask(BOB, "request deploy-admins 1h for=@alice fix")
    assert "Unknown option 'until='" in bot.ask(BOB, "request deploy-admins 1h until=5pm fix")
    assert bot.count() == 0


def test_the_audit_trail_names_both(
    bot: Bot, slack: FakeSlack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    request_id = file_request(bot, DAVE, "request deploy-admins 1h for=<@U0ALICE|alice> pairing")
    submitted = next(e for e in bot.audit(request_id) if e.action == AuditAction.SUBMITTED)
    assert submitted.actor == DAVE
    assert json.loads(submitted.details)["for"] == ALICE

    operator = operator_for(bot.runtime.settings, monkeypatch, capsys, tmp_path)
    shown = operator("show", str(request_id))
    assert shown.code == 0, shown.err
    assert "U0ALICE as IAM user alice" in shown.out and "U0DAVE on the requester's behalf" in shown.out
    exported = operator("audit", "export", "--format", "jsonl")
    record = next(json.loads(line) for line in exported.out.splitlines() if '"submitted"' in line)
    assert (record["actor"], record["details"]["for"]) == (DAVE, ALICE)


def test_a_request_filed_for_someone_else_is_never_auto_approved(bot: Bot, slack: FakeSlack) -> None:
    assert "auto-approved" in bot.ask(ALICE, "request prod-readonly 10m her own look")  # auto-approvable
    said = bot.ask(BOB, "request prod-readonly 10m for=<@U0ALICE> a look for her")
    assert "is waiting for approval" in said, said
    row = bot.request(2)
    assert row is not None and row.status == "pending" and not row.auto_approved and row.filed_by == BOB
