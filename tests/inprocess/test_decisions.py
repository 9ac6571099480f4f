"""Filing and deciding: who may ask, who may vote, how many votes it takes, and what each person is told."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from bot.errors import UserError
from bot.testing.inprocess import InProcess


@dataclass(frozen=True)
class Votes:
    """A sequence of votes on one request, and where it must end up."""

    description: str
    resource: str
    votes: tuple[tuple[str, bool], ...]
    status: str
    approval: str  # what the approval message says afterwards
    told: tuple[str, ...]  # the requester's DMs, by step


VOTES = [
    Votes("one approver grants at once", "deploy-admins", (("U0BOB", True),), "active",
          "Approved by <@U0BOB>.", ("filed", "approved", "active")),
    Votes("one of two votes leaves it pending, showing progress", "payments-key", (("U0DAVE", True),), "pending",
          "Waiting for approval: 1 of 2 (approved by <@U0DAVE>).", ("filed",)),
    Votes("two distinct approvers reach the quorum", "payments-key", (("U0DAVE", True), ("U0ERIN", True)), "active",
          "Approved by <@U0DAVE>, <@U0ERIN>.", ("filed", "approved", "active")),
    Votes("one deny ends a quorum request", "payments-key", (("U0DAVE", True), ("U0ERIN", False)), "denied",
          "Denied by <@U0ERIN>: not during the audit", ("filed", "denied")),
    Votes("a deny tells the requester why", "deploy-admins", (("U0CAROL", False),), "denied",
          "Denied by <@U0CAROL>: not during the audit", ("filed", "denied")),
    Votes("self-approval where the resource allows it", "self-served", (("U0ALICE", True),), "active",
          "Approved by <@U0ALICE>.", ("filed", "approved", "active")),
    Votes("a user-group member approves", "auditors", (("U0OSCAR", True),), "active",
          "Approved by <@U0OSCAR>.", ("filed", "approved", "active")),
]  # fmt: skip


@pytest.mark.parametrize("case", VOTES, ids=[c.description for c in VOTES])
def test_votes(bot: InProcess, case: Votes) -> None:
    request_id = bot.file("U0ALICE", case.resource, "1h", "fix the deploy")
    if case.resource == "auditors":  # its auto-approval (30m, once a day) does not cover 1h
        assert bot.status(request_id) == "pending"
    for approver, approve in case.votes:
        bot.vote(request_id, approver, approve=approve, comment=None if approve else "not during the audit")
    assert bot.status(request_id) == case.status
    assert case.approval in bot.notifier.approval(request_id)
    labels = [label for label, _action in bot.notifier.approval_now(request_id).buttons]
    assert labels == (["Approve", "Deny"] if case.status == "pending" else [])
    assert bot.notifier.told("U0ALICE", request_id) == list(case.told)
    target = bot.row(request_id).target
    assert bot.granter(bot.row(request_id).kind).has(bot.row(request_id).iam_user, target) == (case.status == "active")


@dataclass(frozen=True)
class Refusal:
    """A vote that must be refused, with nothing changed."""

    description: str
    resource: str
    before: tuple[str, ...]  # approvals recorded first
    voter: str
    says: str


REFUSALS = [
    Refusal("the requester may not approve their own request", "deploy-admins", (), "U0ALICE",
            "You cannot approve or deny your own request #1."),
    Refusal("someone who is no approver", "deploy-admins", (), "U0MALLORY",
            "Only the approvers of deploy-admins can decide request #1."),
    Refusal("one approver twice", "payments-key", ("U0DAVE",), "U0DAVE",
            "You already voted on request #1; it needs 2 distinct approvers."),
    Refusal("an escalation contact before the escalation", "auditors", (), "U0FRANK",
            "Only the approvers of auditors can decide request #1."),
]  # fmt: skip


@pytest.mark.parametrize("case", REFUSALS, ids=[c.description for c in REFUSALS])
def test_refused_votes_change_nothing(bot: InProcess, case: Refusal) -> None:
    request_id = bot.file("U0ALICE", case.resource, "1h", "fix the deploy")
    for approver in case.before:
        bot.vote(request_id, approver)
    before = bot.actions(request_id)
    with pytest.raises(UserError) as refused:
        bot.vote(request_id, case.voter)
    assert str(refused.value) == case.says
    assert bot.status(request_id) == "pending" and bot.actions(request_id) == before


def test_a_decided_request_takes_no_more_votes(bot: InProcess) -> None:
    request_id = bot.file("U0ALICE", "deploy-admins")
    bot.approve(request_id, "U0BOB")
    with pytest.raises(UserError, match="already active"):
        bot.vote(request_id, "U0CAROL", approve=False)
    assert bot.granter("iam_group").called("grant") == [request_id]


def test_requesters_limit_who_may_ask(bot: InProcess) -> None:
    with pytest.raises(UserError, match="Unknown resource 'auditors'") as refused:
        bot.file("U0BOB", "auditors", "10m")
    assert "auditors" not in str(refused.value).split("Available:")[1]
    assert "auditors" not in bot.workflow.requestable("U0BOB") and "auditors" in bot.workflow.requestable("U0ALICE")
    assert bot.notifier.posts == []


@pytest.mark.parametrize(
    ("duration", "reason", "says"),
    [
        ("9h", "x", "deploy-admins can be granted for 5m to 8h; you asked for 9h."),
        ("1h", "  ", "Say why you need access"),
        ("soon", "x", "soon"),
    ],
    ids=["over the maximum", "no reason", "not a duration"],
)
def test_bad_requests_store_nothing(bot: InProcess, duration: str, reason: str, says: str) -> None:
    with pytest.raises(UserError, match=says):
        bot.file("U0ALICE", "deploy-admins", duration, reason)
    assert bot.notifier.posts == [] and bot.workflow.mine("U0ALICE") == []


def test_auto_approval_within_its_daily_limit(bot: InProcess) -> None:
    first = bot.file("U0ALICE", "auditors", "10m", "quick check")
    assert bot.status(first) == "active" and bot.granter("iam_group").has("alice", "auditors")
    assert "Auto-approved" in bot.notifier.approval(first)
    assert bot.moves(first)[1] == ("pending", "approved", "accessbot")
    second = bot.file("U0ALICE", "auditors", "10m", "again")
    assert bot.status(second) == "pending"  # auto_approve_limit is 1 a day
    longer = bot.file("U0ALICE", "self-served", "1h", "no auto-approval there")
    assert bot.status(longer) == "pending"


def test_cancel_a_pending_request(bot: InProcess) -> None:
    request_id = bot.file("U0ALICE", "deploy-admins")
    with pytest.raises(UserError, match=f"Only the requester can cancel request #{request_id}."):
        bot.workflow.cancel(request_id=request_id, actor="U0BOB")
    bot.workflow.cancel(request_id=request_id, actor="U0ALICE")
    assert bot.status(request_id) == "cancelled"
    assert "Cancelled by <@U0ALICE>" in bot.notifier.approval(request_id)
    assert bot.notifier.approval_now(request_id).buttons == ()
    with pytest.raises(UserError, match="is cancelled, so it cannot be cancelled now"):
        bot.workflow.cancel(request_id=request_id, actor="U0ALICE")


def test_a_vote_refused_inside_its_transaction_tells_nobody(bot: InProcess) -> None:
    request_id = bot.file("U0ALICE", "deploy-admins")
    posts = len(bot.notifier.posts)
    with pytest.raises(UserError):
        bot.vote(request_id, "U0ALICE")
    assert len(bot.notifier.posts) == posts


def test_on_behalf_the_filer_may_not_approve_and_both_are_told(bot: InProcess) -> None:
    request_id = bot.file("U0ALICE", "deploy-admins", filed_by="U0BOB")
    with pytest.raises(UserError, match="You filed request"):
        bot.vote(request_id, "U0BOB")
    bot.approve(request_id, "U0CAROL")
    assert bot.status(request_id) == "active"
    assert "filed it for you" in bot.notifier.dms("U0ALICE")[0]
    assert bot.notifier.dms("U0BOB")[0].startswith("About the request you filed for <@U0ALICE>")
