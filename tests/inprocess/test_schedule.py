"""What the clock brings: reminders, escalation, timeouts, the expiring-soon warning, break-glass nags and
scheduled starts, each at its moment and not before (the clock is moved to a second either side)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.errors import UserError
from bot.slack.messages import ACTION_ACK, ACTION_EXTEND, ACTION_REVOKE
from bot.testing.inprocess import InProcess
from tests.inprocess.conftest import CATALOG

SECOND = timedelta(seconds=1)


def test_reminders_then_escalation_then_timeout(bot: InProcess) -> None:
    """auditors: remind_after 30m (at most 2), escalate_after 1h15m to U0FRANK, pending_timeout 2h."""
    request_id = bot.file("U0ALICE", "auditors", "1h", "needs a person")

    def thread(event: str) -> list[str]:
        return [p.text for p in bot.notifier.thread(request_id) if p.event == event]

    with pytest.raises(UserError):
        bot.vote(request_id, "U0FRANK")  # not escalated yet: no approver
    bot.advance(timedelta(minutes=30) - SECOND)
    assert thread("reminder") == []
    bot.advance(SECOND)
    assert thread("reminder") == [f"Reminder: request #{request_id} is still waiting for a decision. <@U0OSCAR>"]
    bot.advance(timedelta(minutes=30))
    assert len(thread("reminder")) == 2
    bot.advance(timedelta(minutes=15) - SECOND)
    assert thread("escalated") == []
    bot.advance(SECOND)
    assert thread("escalated") == [
        f"Escalated: request #{request_id} is still waiting for a decision. <@U0FRANK> <@U0OSCAR>"
    ]
    assert bot.actions(request_id).count("reminded") == 2 and bot.actions(request_id).count("escalated") == 1
    bot.advance(timedelta(minutes=45) - SECOND)
    assert bot.status(request_id) == "pending"
    bot.advance(SECOND)
    assert bot.status(request_id) == "timed_out"
    assert "Timed out" in bot.notifier.approval(request_id)
    assert bot.notifier.approval_now(request_id).buttons == ()
    assert bot.notifier.told("U0ALICE", request_id) == ["filed", "timed_out"]
    bot.advance(timedelta(hours=5))
    assert len(thread("reminder")) == 2 and len(thread("escalated")) == 1


def test_an_escalation_contact_may_approve_once_escalated(bot: InProcess) -> None:
    request_id = bot.file("U0ALICE", "auditors", "1h", "needs a person")
    bot.clock.advance(timedelta(hours=1, minutes=15))
    assert request_id in [r.id for r in bot.workflow.waiting_for("U0FRANK")]
    bot.vote(request_id, "U0FRANK")
    assert bot.status(request_id) == "active"


def test_a_decided_request_gets_no_more_reminders(bot: InProcess) -> None:
    request_id = bot.file("U0ALICE", "auditors", "1h", "needs a person")
    bot.vote(request_id, "U0OSCAR", approve=False, comment="not today")
    bot.advance(timedelta(hours=3))
    assert bot.notifier.thread(request_id) == [] and bot.status(request_id) == "denied"


def test_the_expiring_soon_warning_comes_warn_before_the_end(bot: InProcess) -> None:
    request_id = bot.file("U0ALICE", "deploy-admins", "1h")
    bot.approve(request_id)
    bot.advance(timedelta(minutes=50) - SECOND)
    assert "expiring" not in bot.notifier.told("U0ALICE")
    bot.advance(SECOND)
    row = bot.row(request_id)
    assert bot.notifier.told("U0ALICE")[-1] == "expiring" and row.warned_at == bot.clock.now()
    assert "ends at" in bot.notifier.dms("U0ALICE")[-1] and "Extend it" in bot.notifier.dms("U0ALICE")[-1]
    assert [action for _label, action in bot.notifier.last_dm("U0ALICE").buttons] == [ACTION_EXTEND, ACTION_REVOKE]
    bot.advance(timedelta(minutes=10))
    assert bot.notifier.told("U0ALICE").count("expiring") == 1 and bot.status(request_id) == "expired"


def test_a_grant_shorter_than_the_warning_is_not_warned(bot: InProcess) -> None:
    request_id = bot.file("U0ALICE", "deploy-admins", "5m")  # warn_before is 10m
    bot.approve(request_id)
    bot.advance(timedelta(minutes=5))
    assert bot.status(request_id) == "expired" and "expiring" not in bot.notifier.told("U0ALICE")


def test_break_glass_is_active_at_once_and_nagged_until_acknowledged(bot: InProcess) -> None:
    with pytest.raises(UserError, match="does not allow break-glass"):
        bot.file("U0ALICE", "deploy-admins", "1h", "x", break_glass=True)
    request_id = bot.file("U0ALICE", "auditors", "2h", "prod database is down", break_glass=True)
    assert bot.status(request_id) == "active" and bot.granter("iam_group").has("alice", "auditors")
    assert "Needs acknowledgement" in bot.notifier.approval(request_id)
    assert bot.notifier.approval_now(request_id).buttons == (("Acknowledge", ACTION_ACK),)

    def nags() -> int:
        return len([p for p in bot.notifier.thread(request_id) if p.event == "nag"])

    bot.advance(timedelta(minutes=30) - SECOND)
    assert nags() == 0
    bot.advance(SECOND)
    assert nags() == 1
    assert f"Break-glass request #{request_id} is still not acknowledged" in bot.notifier.thread(request_id)[-1].text
    bot.advance(timedelta(minutes=30))
    assert nags() == 2
    with pytest.raises(UserError, match="Only the approvers of auditors can acknowledge"):
        bot.workflow.acknowledge(request_id=request_id, actor="U0MALLORY")
    with pytest.raises(UserError, match="another approver must acknowledge"):
        bot.workflow.acknowledge(request_id=request_id, actor="U0ALICE")
    bot.workflow.acknowledge(request_id=request_id, actor="U0OSCAR")
    assert "Acknowledged by <@U0OSCAR>" in bot.notifier.approval(request_id)
    assert bot.notifier.approval_now(request_id).buttons == ()
    assert bot.actions(request_id)[:2] == ["submitted", "approved"] and "acknowledged" in bot.actions(request_id)
    bot.advance(timedelta(minutes=59))
    assert nags() == 2 and bot.status(request_id) == "active"


# -- scheduled starts ---------------------------------------------------------------------------


def test_a_request_approved_ahead_is_granted_at_its_start(bot: InProcess) -> None:
    request_id = bot.file("U0ALICE", "deploy-admins", "1h", "release", start="+2h")
    row = bot.row(request_id)
    assert row.starts_at == bot.clock.now() + timedelta(hours=2)
    assert "starting at" in bot.notifier.approval(request_id) and "starting at" in bot.notifier.dms("U0ALICE")[0]
    bot.approve(request_id)
    assert bot.status(request_id) == "approved" and "starts at" in bot.notifier.approval(request_id)
    assert "it starts at" in bot.notifier.dms("U0ALICE")[-1]
    with pytest.raises(UserError, match="has not started yet"):
        bot.extend(request_id, "U0ALICE", "30m")
    bot.advance(timedelta(hours=2) - SECOND)
    assert bot.status(request_id) == "approved" and bot.granter("iam_group").calls == []
    bot.advance(SECOND)
    active = bot.row(request_id)
    assert active.status == "active" and active.grant_started_at == row.starts_at
    assert active.expires_at == row.starts_at + timedelta(hours=1)  # the hour counts from the grant
    bot.advance(timedelta(hours=1))
    assert bot.status(request_id) == "expired"


@pytest.mark.parametrize(
    "between",
    [lambda bot, request_id: bot.restart(), lambda bot, request_id: None],
    ids=["a restart between approval and start", "no restart"],
)
def test_the_start_survives_a_restart(bot: InProcess, between: Callable[[InProcess, int], object]) -> None:
    request_id = bot.file("U0ALICE", "deploy-admins", "1h", "release", start="+10m")
    bot.workflow.decide(request_id=request_id, actor="U0BOB", approve=True)  # the process stops right after
    between(bot, request_id)
    bot.advance(timedelta(minutes=10))
    assert bot.row(request_id).grant_started_at == bot.row(request_id).starts_at
    assert bot.status(request_id) == "active"


def test_an_approved_request_cancelled_before_its_start_is_never_granted(bot: InProcess) -> None:
    request_id = bot.file("U0ALICE", "deploy-admins", "1h", "release", start="+1h")
    bot.approve(request_id)
    bot.workflow.cancel(request_id=request_id, actor="U0ALICE")
    row = bot.row(request_id)
    assert (
        row.status == "cancelled" and row.decided_by == "U0BOB"
    )  # who approved it stays; the audit says who cancelled
    assert "Cancelled by" in bot.notifier.approval(request_id)
    bot.advance(timedelta(hours=3))
    row = bot.row(request_id)
    assert row.grant_started_at is None and row.next_due_at is None and bot.granter("iam_group").calls == []
    cancelled = [e for e in bot.audit(request_id) if e.action == "cancelled"]
    assert [(e.actor, e.from_status) for e in cancelled] == [("U0ALICE", "approved")]


TEAM_ONLY = """
  team-admins:
    kind: iam_group
    group_name: deploy-admins
    approvers: [platform]
    requesters: [S0TEAM]
"""


def test_who_may_request_is_asked_again_at_the_start(make: Callable[..., InProcess]) -> None:
    bot = make(CATALOG + TEAM_ONLY)
    bot.directory.groups["S0TEAM"] = frozenset({"U0ALICE"})
    request_id = bot.file("U0ALICE", "team-admins", "1h", "release", start="+1h")
    bot.approve(request_id)
    bot.directory.groups["S0TEAM"] = frozenset()  # Alice left the team after the approval, before the start
    bot.advance(timedelta(hours=1))
    failed = bot.row(request_id)
    assert failed.status == "failed" and "may no longer request team-admins" in (failed.last_error or "")
    assert bot.granter("iam_group").called("grant") == [] and not bot.granter("iam_group").has("alice", "deploy-admins")


def test_a_start_is_read_in_the_filers_slack_zone(bot: InProcess) -> None:
    tokyo = ZoneInfo("Asia/Tokyo")
    bot.directory.zones["U0ALICE"] = tokyo
    clock_time = bot.row(bot.file("U0ALICE", "deploy-admins", "1h", "release", start="14:00"))
    assert clock_time.starts_at is not None and clock_time.starts_at.astimezone(tokyo).strftime("%H:%M") == "14:00"
    local = (bot.clock.now() + timedelta(days=2)).astimezone(tokyo).replace(second=0, microsecond=0)
    iso = bot.row(bot.file("U0ALICE", "deploy-admins", "1h", "release", start=f"{local:%Y-%m-%dT%H:%M}"))
    assert iso.starts_at == local.astimezone(UTC)
    submitted = [e for e in bot.audit(iso.id or 0) if e.action == "submitted"]
    assert "starts_at" in submitted[0].details


@pytest.mark.parametrize(
    ("start", "break_glass", "says"),
    [
        ("2020-01-01T09:00", False, "is in the past"),
        ("+8d", False, "at most 7d ahead"),
        ("later", False, "is not a start time"),
        ("+1h", True, "takes no start="),
    ],
    ids=["past", "beyond max_start_ahead", "not a time", "break-glass"],
)
def test_a_start_that_cannot_be_is_refused_and_nothing_is_stored(
    bot: InProcess, start: str, break_glass: bool, says: str
) -> None:
    with pytest.raises(UserError, match=says):
        bot.file("U0ALICE", "auditors", "1h", "release", start=start, break_glass=break_glass)
    assert bot.workflow.mine("U0ALICE") == [] and bot.notifier.posts == []
